"""scripts/device_check.py (make device-check), checked on the CPU through its own dry mode: the same code path,
trainer.device=cpu, the step timed at scale=smoke. The report is read as JSON, never from the console."""

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_the_device_check_dry_run_compares_with_the_pins_and_times_a_step(tmp_path):
    out = subprocess.run([sys.executable, "scripts/device_check.py", "--dry", "--only", "fsq", "--out", str(tmp_path),
                          "--budget", "400"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    (path,) = tmp_path.glob("cpu-dry-*.json")
    report = json.loads(path.read_text())
    assert report["device"] == "cpu" and report["dry"] and report["step_scale"] == "smoke"
    (smoke,) = report["smoke"]
    assert smoke["name"] == "fsq" and smoke["status"] == "ok" and smoke["matches_pins"]
    assert smoke["metrics"]["val/mse"]["within"] and not smoke["verdicts_differ"]
    (step,) = report["gpu_step"]
    assert step["experiment"] == "fsq_vs_vq" and step["status"] == "ok" and step["steps"] == 3
    assert 0 < step["step_s"] < 60
    assert report["all_smoke_match_pins"] and report["elapsed_s"] <= 400


def test_the_device_check_refuses_what_it_cannot_do(tmp_path):
    out = subprocess.run([sys.executable, "scripts/device_check.py", "--dry", "--only", "nonesuch", "--out",
                          str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "nonesuch" in out.stderr and not list(tmp_path.iterdir())
    import torch

    if not torch.cuda.is_available():  # the real check on a machine without CUDA: one line, exit 2, nothing written
        out = subprocess.run([sys.executable, "scripts/device_check.py", "--out", str(tmp_path)], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())
