"""Faults of sweeps (a signal mid-sweep, a failed job) and same seed, same bytes for every training experiment
with a checkpointed loop; split from test_faults.py so that the two halves run on different test workers."""

import json

import pytest
from conftest import REPO, SMOKE, run_dirs, subprocess_cli, summary


def metrics(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_signal_stops_a_sweep_which_aggregates_what_finished(tmp_path):
    args = ["-m", *SMOKE, "trainer.threads=1", "quantizer.codebook_size=16,64,256", f"output_root={tmp_path}"]
    out = subprocess_cli(*args, cwd=REPO, env={"KEXUE_FAULT": "sigterm@step:45"})  # the second job's 15th step
    assert out.returncode == 143, out.stderr[-2000:]
    (sweep,) = (tmp_path / "sweeps" / "fsq_vs_vq").glob("*")
    report = json.loads((sweep / "claim_report.json").read_text())
    assert report["jobs"] == {"ok": 1, "interrupted": 1}  # the third job never started
    done = subprocess_cli(*args[:-1], f"output_root={tmp_path}", f"resume={sweep}", cwd=REPO)
    assert done.returncode == 0
    assert json.loads((sweep / "claim_report.json").read_text())["jobs"] == {"ok": 3}


def test_a_sweep_with_a_failed_job_exits_1_after_aggregating(tmp_path):
    args = ["-m", *SMOKE, "trainer.threads=1", "quantizer=vq_ste", "optimizer=sgd", "optimizer.lr=1e30,0.01",
            f"output_root={tmp_path}"]
    out = subprocess_cli(*args, cwd=REPO)
    assert out.returncode == 1
    (sweep,) = (tmp_path / "sweeps" / "fsq_vs_vq").glob("*")
    assert json.loads((sweep / "claim_report.json").read_text())["jobs"] == {"diverged": 1, "ok": 1}


@pytest.mark.parametrize("args", [
    ["experiment=fsq_vs_vq"], ["experiment=ddim_cifar"], ["experiment=rerope_extrapolation"],
    ["experiment=lora_plus"]], ids=lambda a: a[0].split("=")[1])
def test_same_seed_same_bytes(tmp_path, args):
    """metrics.jsonl is identical across two runs apart from the wall-time field."""
    runs = []
    for name in ("a", "b"):
        out = subprocess_cli(*args, "scale=smoke", "trainer.progress=false", "trainer.threads=1",
                             f"output_root={tmp_path / name}", cwd=REPO)
        assert out.returncode == 0, out.stderr[-2000:]
        (run,) = run_dirs(tmp_path / name, args[0].split("=")[1])
        runs.append(run)
    assert metrics(runs[0]) == metrics(runs[1]) and metrics(runs[0])
    a, b = (summary(r) for r in runs)
    assert a["final"] == b["final"] and a.get("claim_rows") == b.get("claim_rows")
