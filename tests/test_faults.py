"""Faults, driven by deterministic hooks (KEXUE_FAULT, kexue_runs/lifecycle/faults.py), never by timing: kills at
every phase of a run, concurrent writers, a full or read-only disk, malformed files, signals. Every
assertion reads the structured files (summary.json, metrics.jsonl) or exit codes, never console wording
that could wrap."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, SMOKE, run_dirs, subprocess_cli, summary

from kexue_runs import config_dir

FSQ = [*SMOKE, "quantizer=vq_rotation", "trainer.steps=20", "trainer.checkpoint_every=5", "trainer.eval_every=10",
       "data.val_size=256", "trainer.threads=1"]  # 4 checkpoints, 2 evaluations: every phase a kill can land in


def metrics(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The uninterrupted run every killed-and-resumed one must end equal to."""
    root = tmp_path_factory.mktemp("straight")
    out = subprocess_cli(*FSQ, f"output_root={root}", cwd=REPO)
    assert out.returncode == 0, out.stderr
    (run,) = run_dirs(root)
    return run


def killed_run(tmp_path, fault: str, args=FSQ, experiment="fsq_vs_vq"):
    out = subprocess_cli(*args, f"output_root={tmp_path}", cwd=REPO, env={"KEXUE_FAULT": fault})
    assert out.returncode == -9, (out.returncode, out.stderr[-2000:])  # SIGKILL
    (run,) = run_dirs(tmp_path, experiment)
    return run


@pytest.mark.parametrize("fault", [
    "kill@step:3",              # before the first checkpoint (every 5 steps)
    "kill@step:17",             # between checkpoints
    "kill@checkpoint_write:3",  # the third checkpoint's temp file written, not yet in place
    "kill@eval:2",              # inside the second evaluation
    "kill@report",              # summary written, figures and report.md not yet
])
def test_killed_anywhere_resumes_to_the_uninterrupted_run(straight, tmp_path, fault):
    run = killed_run(tmp_path, fault)
    assert not list(run.glob(".checkpoint.*.tmp")) or fault.startswith("kill@checkpoint_write")
    out = subprocess_cli(f"resume={run}", "trainer.progress=false", cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert metrics(run) == metrics(straight)
    assert summary(run)["final"] == summary(straight)["final"] and summary(run)["status"] == "ok"
    assert (run / "report.md").exists()
    if fault == "kill@report":  # once is enough: a finished run resumed has nothing to do and changes nothing
        before = (run / "summary.json").read_text()
        again = subprocess_cli(f"resume={run}", cwd=REPO)
        assert again.returncode == 0 and (run / "summary.json").read_text() == before


def test_an_experiment_without_checkpoints_resumes_without_duplicate_rows(tmp_path):
    args = ["experiment=sgd_bound", "scale=smoke", "trainer.progress=false"]
    straight = subprocess_cli(*args, f"output_root={tmp_path / 'a'}", cwd=REPO)
    assert straight.returncode == 0
    (a,) = run_dirs(tmp_path / "a", "sgd_bound")
    run = killed_run(tmp_path / "b", "kill@report", args, "sgd_bound")
    (run / "summary.json").unlink()  # as if killed before the summary: the run must start over, not append
    out = subprocess_cli(f"resume={run}", cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert metrics(run) == metrics(a) and len(metrics(run)) == len(metrics(a))


def test_a_second_writer_is_refused_with_the_holders_pid(kexue, straight, tmp_path):
    run = killed_run(tmp_path, "kill@step:12")
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from kexue_runs.common.runfiles import lock_run_dir; "
                               f"lock_run_dir({str(run)!r}); print('locked', flush=True); sys.stdin.read()"],
                              cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(p.name for p in run.iterdir())
        code, out = kexue(f"resume={run}")
        assert code == 2 and f"pid {holder.pid}" in out and len(out.strip().splitlines()) == 1
        assert sorted(p.name for p in run.iterdir()) == before
    finally:
        holder.stdin.close()
        holder.wait()
    code, out = kexue(f"resume={run}", "trainer.progress=false")  # the holder is gone: its lock went with it
    assert code == 0 and metrics(run) == metrics(straight)


def test_disk_full_during_a_checkpoint_keeps_the_earlier_one_and_writes_the_summary(tmp_path):
    out = subprocess_cli(*FSQ, f"output_root={tmp_path}", cwd=REPO, env={"KEXUE_FAULT": "enospc@checkpoint_write:2"})
    assert out.returncode == 3, out.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    s = summary(run)
    assert s["status"] == "failed" and s["error"].startswith("environment:") and "space" in s["error"]
    assert not list(run.glob(".checkpoint.*.tmp"))  # the partial file is gone
    import torch

    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 5  # the first checkpoint, intact


def test_a_read_only_outputs_folder_is_one_line_and_exit_3(tmp_path):
    out = subprocess_cli(*FSQ, f"output_root={tmp_path / 'outputs'}", cwd=REPO,
                         env={"KEXUE_FAULT": "erofs@writable_probe"})
    lines = [x for x in (out.stdout + out.stderr).strip().splitlines() if x.strip()]
    assert out.returncode == 3 and len(lines) == 1 and lines[0].startswith("error:") and "Read-only" in lines[0]
    assert not (tmp_path / "outputs").exists()


def test_an_unwritable_run_dir_is_one_line_and_exit_3(kexue, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, out = kexue(*FSQ, f"hydra.run.dir={blocker}/run")
    assert code == 3 and len(out.strip().splitlines()) == 1 and out.startswith("error:")


def test_malformed_yaml_on_the_config_path_is_one_line(kexue, tmp_path, monkeypatch):
    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    (configs / "local").mkdir(exist_ok=True)
    (configs / "local" / "default.yaml").write_text("# @package _global_\ntrainer: {steps: [1,\n")
    monkeypatch.setenv("KEXUE_CONFIG_DIR", str(configs))
    code, out = kexue(*FSQ)
    assert code == 2 and len(out.strip().splitlines()) == 1 and "default.yaml" in out, out


def test_malformed_saved_overrides_are_one_line(kexue, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- experiment=fsq_vs_vq\n- [unclosed\n")
    code, out = kexue(f"resume={run}")
    assert code == 2 and len(out.strip().splitlines()) == 1 and "overrides.yaml" in out


def test_resume_refuses_overrides_that_change_the_result_and_keeps_the_others(kexue, straight, tmp_path):
    run = killed_run(tmp_path, "kill@step:12")
    before = sorted(p.name for p in run.iterdir())
    for bad in ("experiment=sgd_bound", "optimizer.lr=0.1", "seed=3"):
        code, out = kexue(f"resume={run}", bad)
        assert code == 2 and "would change what the run computes" in out and len(out.strip().splitlines()) == 1
    assert sorted(p.name for p in run.iterdir()) == before
    code, out = kexue(f"resume={run}", "trainer.progress=false", "trainer.threads=1", "quantizer=vq_rotation")
    assert code == 0 and metrics(run) == metrics(straight)
    assert "trainer.progress=false" in (run / ".hydra" / "overrides.yaml").read_text()


def test_sigterm_marks_the_run_interrupted_exits_143_and_resumes(straight, tmp_path):
    out = subprocess_cli(*FSQ, f"output_root={tmp_path}", cwd=REPO, env={"KEXUE_FAULT": "sigterm@step:13"})
    assert out.returncode == 143, out.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    s = summary(run)
    assert s["status"] == "interrupted" and s["error"] == "SIGTERM"
    assert f"kexue-run resume={run}" in out.stdout.replace("\n", "")
    assert subprocess_cli(f"resume={run}", cwd=REPO).returncode == 0
    assert metrics(run) == metrics(straight)


def test_ctrl_c_exits_130(tmp_path):
    """Even in a process that inherited SIGINT ignored (a suite started in the background by a non-interactive
    shell: its children start that way, and the fault was once a no-op there)."""
    ignoring = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                "os.execv(sys.executable, [sys.executable, '-m', 'kexue_runs.cli', *sys.argv[1:]])")
    out = subprocess.run([sys.executable, "-c", ignoring, *FSQ, f"output_root={tmp_path}"], cwd=REPO,
                         env=os.environ | {"KEXUE_FAULT": "sigint@step:8"}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 130, out.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    assert summary(run)["status"] == "interrupted"


def test_fault_spec_parsing():
    from kexue_runs.lifecycle.faults import parse

    assert parse("kill@step:120, enospc@checkpoint_write") == [("kill", "step", 120),
                                                               ("enospc", "checkpoint_write", 1)]
    assert os.environ.get("KEXUE_FAULT") is None  # never set in the test process itself
