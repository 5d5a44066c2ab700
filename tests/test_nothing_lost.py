"""Issue #32, "nothing lost, nothing silent": the faults and inputs a fault tester found getting through.
Each test reads structured files or exit codes; a console line is checked only for being one line."""

import json
import os

import pytest
from conftest import REPO, SMOKE, run_dirs, subprocess_cli, summary

FSQ = [*SMOKE, "quantizer=vq_rotation", "trainer.steps=60", "trainer.checkpoint_every=10", "trainer.eval_every=20",
       "trainer.threads=1"]


def lines_of(out: str) -> list[str]:
    return [x for x in out.strip().splitlines() if x.strip()]


def killed_run(tmp_path, fault: str):
    out = subprocess_cli(*FSQ, f"output_root={tmp_path}", cwd=REPO, env={"KEXUE_FAULT": fault})
    assert out.returncode == -9, (out.returncode, out.stderr[-2000:])
    (run,) = run_dirs(tmp_path)
    return run


# -- data and faults ------------------------------------------------------------------------------------
def test_metrics_shorter_than_the_checkpoint_offset_are_cut_to_a_whole_line_never_padded(tmp_path):
    """A kill and a crash can leave metrics.jsonl shorter than the offset the checkpoint recorded (the checkpoint
    reached the disk, the metrics did not): resume must not pad it with NULs, and must say what it cut."""
    import torch

    run = killed_run(tmp_path, "kill@step:37")
    recorded = torch.load(run / "checkpoint.pt", weights_only=False)["metrics_bytes"]
    data = (run / "metrics.jsonl").read_bytes()
    torn = data[: recorded - 30]  # as the disk had it: the tail lost, the last line torn
    (run / "metrics.jsonl").write_bytes(torn)
    out = subprocess_cli(f"resume={run}", "trainer.progress=false", cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    text = (run / "metrics.jsonl").read_bytes()
    assert b"\0" not in text
    rows = [json.loads(line) for line in text.decode().splitlines()]  # every line whole
    assert max(r["step"] for r in rows) == 60  # the run went on to its end
    warnings = summary(run).get("warnings") or []
    assert len(warnings) == 1 and "metrics.jsonl" in warnings[0] and str(recorded) in warnings[0]


def test_the_metrics_file_is_fsynced_before_each_checkpoint(tmp_path, monkeypatch):
    """The checkpoint records the metrics file's length, so the metrics must be on disk before it is."""
    from omegaconf import OmegaConf

    from kexue_runs.common import runfiles
    from kexue_runs.lifecycle.runner import RunContext

    events = []
    real_fsync = os.fsync

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    real_save = runfiles.atomic_save
    monkeypatch.setattr(runfiles, "atomic_save", lambda path, *a, **k: (events.append(("save", str(path))),
                                                                        real_save(path, *a, **k)))
    cfg = OmegaConf.create({"trainer": {"progress": False, "checkpoint_every": 2}, "seed": 0})
    ctx = RunContext(cfg, tmp_path, device=__import__("torch").device("cpu"), resuming=False)
    for step in ctx.steps(4, {}):
        ctx.log(step, "train", loss=1.0)
    saves = [i for i, e in enumerate(events) if e[0] == "save"]
    assert len(saves) == 2
    metrics_path = str((tmp_path / "metrics.jsonl").resolve())
    for i in saves:
        assert ("fsync", metrics_path) in events[:i] and events[i - 1] == ("fsync", metrics_path)


def test_a_corrupt_checkpoint_is_one_line_with_the_way_forward_and_nothing_written(tmp_path):
    run = killed_run(tmp_path, "kill@step:25")
    with open(run / "checkpoint.pt", "r+b") as f:
        f.truncate(500)
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    out = subprocess_cli(f"resume={run}", "trainer.progress=false", cwd=REPO)
    lines = lines_of(out.stdout + out.stderr)
    assert out.returncode == 2 and len(lines) == 1, out.stdout + out.stderr
    assert "checkpoint.pt" in lines[0] and "delete" in lines[0]
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before
    (run / "checkpoint.pt").unlink()  # the way forward it names
    again = subprocess_cli(f"resume={run}", "trainer.progress=false", cwd=REPO)
    assert again.returncode == 0 and summary(run)["status"] == "ok"


def test_a_checkpoint_damaged_inside_fails_the_run_with_one_line(tmp_path):
    """Damage the cheap check cannot see (the zip's index intact, a record inside broken) is caught when the
    checkpoint is loaded: the run fails with one line naming the way forward, not torch's traceback."""
    from kexue_runs.lifecycle.runner import CheckpointUnreadable, read_checkpoint

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointUnreadable) as info:
        read_checkpoint(path, "cpu")
    assert "\n" not in str(info.value) and "delete" in str(info.value) and str(path) in str(info.value)


def test_report_of_a_run_with_a_truncated_summary_is_one_line_exit_2(kexue, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "summary.json").write_text('{"experiment": "sgd_bound", "status": "ok", "fin')
    code, out = kexue("report", str(run))
    assert code == 2 and len(lines_of(out)) == 1 and "summary.json" in out and "Traceback" not in out


def test_building_the_package_prints_no_setuptools_warnings(tmp_path):
    """`make install` once printed ~1,700 lines of "Python recognizes 'kexue_runs.configs.X' as an importable
    package": setuptools read the config folders as undeclared packages. The wheel holds the same files."""
    import shutil
    import subprocess
    import sys
    import zipfile

    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("kexue_runs", "configs"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "local"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w",
                          str(tmp_path / "dist"), str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    assert "importable package" not in text and "SetuptoolsDeprecationWarning" not in text
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    root = tmp_path / "configs"
    configs = {f"kexue_runs/configs/{p.relative_to(root)}" for p in root.rglob("*.yaml")}
    assert configs <= names and "kexue_runs/preflight/schema.yaml" in names


# -- input: every bad value one line, exit 2, nothing written --------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["experiment=fsq_vs_vq", "seed=4294967296"], ("seed", "4294967295")),
    (["experiment=fsq_vs_vq", "seed=-1"], ("seed",)),
    (["experiment=lora_plus", "lora=5"], ("lora", "lora.")),
    (["experiment=nbce", "finetune=5"], ("finetune", "finetune.")),
    (["experiment=fsq_vs_vq", "trainer=[1,2]"], ("trainer",)),
    (["experiment=fsq_vs_vq", "+trainer.stpes=5"], ("trainer.stpes", "steps")),
    (["experiment=fsq_vs_vq", "++trainer.stpes=5"], ("trainer.stpes",)),
    (["experiment=fsq_vs_vq", "+nonsense=5"], ("nonsense",)),
    (["experiment=fsq_vs_vq", "+logger.foo=1"], ("logger.foo", "jsonl")),  # a logger is a mapping with a _target_
    (["experiment=fsq_vs_vq", "logger=jsonl", "+logger.jsonl.dri=x"], ("logger.jsonl.dri",)),
    (["experiment=fsq_vs_vq", "logger.jsonl.mode=sometimes"], ("logger.jsonl.mode",)),
    (["experiment=fsq_vs_vq", "logger.jsonl._target_=kexue_runs.lifecycle.trackers.NoSuchLogger"],
     ("logger.jsonl._target_", "NoSuchLogger")),
    (["experiment=fsq_vs_vq", "optimizer._target_=torch.optim.Adamm"], ("optimizer._target_", "Adamm")),
    (["experiment=fsq_vs_vq", "~trainer.steps"], ("~trainer.steps", "trainer.steps=")),
    (["experiment=fsq_vs_vq", "~trainer.steps=1000"], ("~trainer.steps",)),
    # found by tests/test_fuzz_inputs.py
    (["experiment=amos", "seed=${nonexistent}"], ("seed", "nonexistent")),
    (["experiment=amos", "seed=${seed}"], ("seed", "Recursive")),
    (["experiment=amos", "task=kexue_runs.experiments.amosx"], ("task=", "experiment=")),
    (["experiment=attention_sparsity", "optimizer.betas._=0"], ("optimizer.betas._=0",)),
    (["experiment=self_consuming", "sim.batches=a\rb\nc"], ("sim.batches",)),
    (["experiment=retry", "sim.p_fail={}"], ("sim.p_fail",)),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(kexue, tmp_path, args, words):
    code, out = kexue(*args, "scale=smoke", "trainer.progress=false")
    assert code == 2 and len(lines_of(out)) == 1 and out.startswith("error:"), out
    assert all(w in out for w in words), out
    assert not (tmp_path / "outputs").exists()


def test_the_seed_range_is_numpys(kexue):
    from kexue_runs.preflight.validate import preflight

    assert preflight(["experiment=sgd_bound", "scale=smoke", "seed=4294967295"], multirun=False).jobs == 1


def test_a_key_added_with_plus_passes_where_the_experiment_declares_it(tmp_path, monkeypatch):
    """+key is for keys the experiment declares (a rule in its schema: block) but leaves unset."""
    import shutil

    from kexue_runs import config_dir
    from kexue_runs.preflight.validate import preflight

    configs = tmp_path / "configs"
    shutil.copytree(config_dir(), configs)
    path = configs / "experiment" / "sgd_bound.yaml"
    path.write_text(path.read_text().replace("schema:", "schema:\n  sim.extra_note: {type: str}", 1)
                    if "\nschema:" in path.read_text() else
                    path.read_text() + "\nschema:\n  sim.extra_note: {type: str}\n")
    monkeypatch.setenv("KEXUE_CONFIG_DIR", str(configs))
    assert preflight(["experiment=sgd_bound", "scale=smoke", "+sim.extra_note=hello"], multirun=False).jobs == 1


def test_a_launcher_plugin_not_installed_names_the_install_target(kexue, tmp_path):
    import importlib.util

    try:
        installed = importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is not None
    except ModuleNotFoundError:
        installed = False
    if installed:
        pytest.skip("the joblib launcher is installed here")
    code, out = kexue("-m", "experiment=sgd_bound", "scale=smoke", "seed=0,1", "hydra/launcher=joblib")
    assert code in (2, 3) and len(lines_of(out)) == 1 and "make install-launchers" in out, out
    assert not (tmp_path / "outputs").exists()


def test_sweep_resume_of_a_job_folder_says_it_is_one_run(kexue, tmp_path):
    job = tmp_path / "sweeps" / "sgd_bound" / "20260101-000000-000000" / "seed=0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- experiment=sgd_bound\n- seed=0\n")
    (job.parent / "multirun.yaml").write_text("hydra: {}\n")
    code, out = kexue("-m", "experiment=sgd_bound", "scale=smoke", "seed=0,1", f"resume={job}")
    assert code == 2 and len(lines_of(out)) == 1 and "hydra.sweep.dir" not in out, out
    assert f"resume={job.parent}" in out.replace("\n", "")


# -- output ---------------------------------------------------------------------------------------------
LONG_REPORT = {"experiment": "fsq_vs_vq", "scale": "smoke", "verdict": "INCONCLUSIVE", "stability": "-",
               "by_basis": {"empirical": "INCONCLUSIVE"},
               "command": "kexue-run -m experiment=fsq_vs_vq sweep=fsq_vs_vq",
               "checks": [{"id": "rotation_reconstructs_worse_from_small_norm_init", "basis": "empirical",
                           "verdict": "INCONCLUSIVE", "observed": "name=vq_ste,init=small_norm,codebook_size=16: "
                           "not run", "reported": "reconstruction loss higher with the trick",
                           "stat": "one-sample t, n=2", "needs": "needs >= 3 replicates per cell, has 2"},
                          {"id": "vq_uses_fewer_codes_than_fsq", "basis": "ours", "verdict": "PASS",
                           "observed": "0.156 @ 1024", "reported": "VQ never uses more than ~2^10 codes"}]}


def test_without_a_terminal_the_verdicts_are_plain_lines_with_whole_ids():
    import io

    from rich.console import Console

    from kexue_runs.claims.verdicts import plain_verdicts, print_verdicts

    lines = plain_verdicts(LONG_REPORT)
    for check in LONG_REPORT["checks"]:
        (head,) = [x for x in lines if check["id"] in x]
        assert check["verdict"] in head
    assert not any(c in "".join(lines) for c in "┃│┏━")
    out = io.StringIO()
    print_verdicts(LONG_REPORT, Console(file=out, width=80, force_terminal=False))  # a log at 80 columns
    text = out.getvalue()
    assert all(check["id"] in text for check in LONG_REPORT["checks"]) and "│" not in text
    assert text.splitlines()[: len(lines)] == lines


def test_a_sweep_prints_its_closing_block_once(kexue):
    code, out = kexue("-m", "experiment=sgd_bound", "scale=smoke", "seed=0,1", "trainer.progress=false",
                      "trainer.threads=1")
    assert code == 0, out
    closing = [x for x in out.splitlines() if x.lstrip().startswith("overall ") or "overall " in x.split("]")[-1][:9]]
    assert len(closing) == 1, closing
