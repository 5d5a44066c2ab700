"""torchrun: two gloo processes on CPU match one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import SMOKE, run_dirs, summary

# The 2-process run averages two half-batch gradients where the single process takes one mean over
# the whole batch: the same numbers up to float32 summation order. After 30 Adam steps we measured
# relative differences of ~1e-7; 1e-4 leaves room for other BLAS builds and still catches a rank
# that trains on the wrong shard or skips the gradient all-reduce (differences of 1e-2 and more).
RTOL = 1e-4


def test_two_gloo_processes_match_one_process(tmp_path, kexue):
    ddp_root, single_root = tmp_path / "ddp", tmp_path / "single"
    env = os.environ | {"OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "kexue_runs.cli", *SMOKE, f"output_root={ddp_root}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    code, _ = kexue(*SMOKE, "trainer.threads=1", outputs=single_root)
    assert code == 0

    (ddp_run,) = run_dirs(ddp_root)  # one run folder: rank 1 created none of its own
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "single"]
    ddp, single = summary(ddp_run), summary(run_dirs(single_root)[0])
    assert ddp["status"] == "ok" and ddp["environment"]["world_size"] == 2
    assert single["environment"]["world_size"] == 1
    for key in ("val/mse", "val/codebook_loss", "train/loss", "train/mse"):
        assert ddp["final"][key] == pytest.approx(single["final"][key], rel=RTOL), key
    assert ddp["final"]["val/codes_used"] == single["final"]["val/codes_used"]
    rows = (ddp_run / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == len((run_dirs(single_root)[0] / "metrics.jsonl").read_text().splitlines())


@pytest.mark.parametrize(("args", "message"), [
    (["trainer.batch_size=33"], "trainer.batch_size=33 does not split over 2 processes"),
    (["-m", "seed=0,1"], "-m under torchrun"),
])
def test_torchrun_bad_input_is_one_line(kexue, monkeypatch, args, message):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code, out = kexue(*SMOKE, *args)
    assert code == 2 and message in out


def test_experiments_without_data_parallel_refuse_torchrun(kexue, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code, out = kexue("experiment=ddpm_schedule", "scale=smoke")
    assert code == 2 and "does not run under torchrun" in out and "allowed: fsq_vs_vq" in out
