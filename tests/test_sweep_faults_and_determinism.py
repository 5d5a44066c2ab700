"""Faults of sweeps (a signal mid-sweep, a failed job); split from test_faults.py so that the two halves run on
different test workers. Same seed, same bytes for the training harnesses is in test_flagship_pins.py, against
the pinned runs (one fresh process each instead of two)."""

import json

from conftest import REPO, SMOKE, subprocess_cli


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
