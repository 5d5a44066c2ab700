"""The run lifecycle end to end: files, determinism, kill-and-resume, divergence, the CLI surface."""

import json
import os
import subprocess
import sys

from conftest import SMOKE, run_dirs, smoke_run_each, subprocess_cli, summary


def test_smoke_run_writes_every_file(kexue, tmp_path):
    code, out = kexue(*SMOKE)
    assert code == 0, out
    (run,) = run_dirs(tmp_path / "outputs")
    assert len(run.name) == len("20261123-050832-126318")  # stamp with microseconds
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.jsonl", "summary.json", "report.md",
                 "checkpoint.pt", "figures/reconstructions.png", "figures/code_usage.png"):
        assert (run / name).exists(), name
    assert not (run / "figures/curves.png").exists()  # smoke scale skips the training curves (scale.curves)...
    assert kexue("report", str(run))[0] == 0 and (run / "figures/curves.png").exists()  # ...report draws them
    s = summary(run)
    assert s["status"] == "ok" and s["error"] is None and s["scale"] == "smoke" and s["seed"] == 0
    assert "experiment=fsq_vs_vq" in s["overrides"] and len(s["config_hash"]) == 16
    assert 0 <= s["final"]["val/utilization"] <= 1 and s["final"]["val/mse"] > 0
    assert s["best"]["val/mse"] <= s["final"]["val/mse"]
    assert s["timing"]["steps"] == 30 and s["timing"]["steps_per_s"] > 0
    assert {"python", "torch", "device", "git_sha"} <= set(s["environment"])
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train", "val"}
    assert all({"step", "time", "split"} <= set(r) for r in rows)
    report = (run / "report.md").read_text()
    assert "**Claim.**" in report and "## The post's numbers" in report and "val/utilization" in report
    assert str(run) in out.replace("\n", "")


def test_same_seed_same_numbers_other_seed_other_numbers(kexue, tmp_path):
    for seed, curves in ((3, "false"), (3, "true"), (4, "false")):  # drawing the curves changes no number
        assert kexue(*SMOKE, "quantizer=vq_ste", f"seed={seed}", f"scale.curves={curves}")[0] == 0
    a, b, c = (summary(r) for r in run_dirs(tmp_path / "outputs"))
    assert a["final"] == b["final"] and a["config_hash"] == b["config_hash"]
    metrics = lambda r: [{k: v for k, v in json.loads(x).items() if k != "time"}  # noqa: E731
                         for x in (r / "metrics.jsonl").read_text().splitlines()]
    assert metrics(run_dirs(tmp_path / "outputs")[0]) == metrics(run_dirs(tmp_path / "outputs")[1])
    assert c["final"]["val/mse"] != a["final"]["val/mse"]


def test_divergence_stops_the_run_and_keeps_its_metrics(kexue, tmp_path):
    code, out = kexue(*SMOKE, "quantizer=vq_ste", "optimizer=sgd", "optimizer.lr=1e30")
    assert code == 0, out
    (run,) = run_dirs(tmp_path / "outputs")
    s = summary(run)
    assert s["status"] == "diverged" and "step" in s["error"]
    assert s["timing"]["steps"] < 30
    assert (run / "metrics.jsonl").read_text().strip()


def test_help_cfg_and_list(tmp_path):
    helped = subprocess_cli("--help", cwd=tmp_path)
    assert helped.returncode == 0 and "kexue-run list" in helped.stdout and "fsq_vs_vq" in helped.stdout
    assert "quantizer:       fsq, vq_rotation, vq_ste" in helped.stdout
    assert "  sizing:" not in helped.stdout and "  local:" not in helped.stdout
    version = subprocess_cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("kexue-runs 0.1.0 (torch ")
    sweep_cfg = subprocess_cli("-m", "experiment=fsq_vs_vq", "scale=smoke", "quantizer=fsq,vq_ste", "--cfg", "job",
                               cwd=tmp_path)
    assert sweep_cfg.returncode == 0 and sweep_cfg.stdout.count("# job ") == 2 and "name: vq_ste" in sweep_cfg.stdout
    cfg = subprocess_cli("experiment=fsq_vs_vq", "scale=smoke", "--cfg", "job", cwd=tmp_path)
    assert cfg.returncode == 0 and "quantizer:" in cfg.stdout and "steps: 30" in cfg.stdout
    assert not (tmp_path / "outputs").exists()
    listed = subprocess_cli("list", cwd=tmp_path)
    assert listed.returncode == 0 and "fsq_vs_vq" in listed.stdout and "9826" in listed.stdout


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "kexue-run")
    out = subprocess.run([exe, "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "fsq_vs_vq" in out.stdout


def test_the_catalog_shows_the_largest_scale_run_not_the_newest_smoke_run(tmp_path, monkeypatch):
    """A smoke run made after the cpu run (to try a flag) must not hide the cpu verdict."""
    import json

    monkeypatch.setenv("KEXUE_RESULTS_DIR", str(tmp_path / "no-ledger"))  # local runs only, whatever is published
    from kexue_runs.publishing.listing import verdict_and_stability

    def run(stamp, scale, verdict):
        folder = tmp_path / "runs" / "retry" / stamp
        folder.mkdir(parents=True)
        check = {"id": "c", "verdict": verdict, "basis": "empirical"}
        (folder / "summary.json").write_text(json.dumps(
            {"status": "ok", "scale": scale, "checks": [check], "verdict": verdict}))

    run("20260101-000000-000000", "cpu", "PASS")
    run("20260102-000000-000000", "smoke", "FAIL")
    assert verdict_and_stability("retry", tmp_path)[:2] == ("PASS", "cpu run")
    run("20260103-000000-000000", "cpu", "INCONCLUSIVE")
    assert verdict_and_stability("retry", tmp_path)[:2] == ("INCONCLUSIVE", "cpu run")


def test_phases_of_a_later_sweep_job_are_its_own(monkeypatch):
    """timing.phases: a sweep's second job shows the first as `earlier_jobs`, and its own Hydra setup as `job`."""
    from kexue_runs.lifecycle import phases

    clock = iter([0.0, 1.0, 2.0, 3.0, 8.0, 9.0, 12.0, 13.0])
    monkeypatch.setattr(phases.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(phases, "_marks", {})
    phases.mark("process")
    phases.mark("preflight")
    phases.start_job()
    for name in ("setup", "experiment", "report"):
        phases.mark(name)
    assert phases.durations() == {"preflight": 1.0, "job": 1.0, "setup": 1.0, "experiment": 5.0, "report": 1.0}
    phases.start_job()
    phases.mark("setup")
    assert phases.durations() == {"preflight": 1.0, "earlier_jobs": 8.0, "job": 3.0, "setup": 1.0}


def test_a_run_records_the_code_it_started_with(tmp_path, monkeypatch):
    """A commit that lands while a long run is going does not become the run's recorded code."""
    from kexue_runs.experiments import ddpm_schedule
    from kexue_runs.lifecycle import runner

    tree = {"sha": "before"}
    monkeypatch.setattr(runner, "git_sha", lambda: tree["sha"])
    original = ddpm_schedule.run

    def run_then_commit(cfg, ctx):
        out = original(cfg, ctx)
        tree["sha"] = "after"
        return out

    monkeypatch.setattr(ddpm_schedule, "run", run_then_commit)
    _, s = smoke_run_each(["ddpm_schedule"], tmp_path)["ddpm_schedule"]
    assert tree["sha"] == "after" and s["environment"]["git_sha"] == "before"


def test_the_fast_exit_runs_exit_handlers_flushes_and_waits_for_working_threads(tmp_path):
    """cli.exit_now skips the interpreter's teardown (0.25-0.7 s with torch loaded) but not what a run's
    end needs: exit handlers run, buffered output reaches the pipe, the exit code is the run's, and a
    non-daemon thread still working gets the ordinary exit (which waits for it)."""
    marker = tmp_path / "atexit.txt"
    script = f"""
import atexit, sys, threading, time
from kexue_runs.cli import exit_now
atexit.register(lambda: open({str(marker)!r}, "a").write("handler ran\\n"))
sys.stdout.write("buffered, no newline")
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), open({str(marker)!r}, "a").write("thread done\\n"))).start()
exit_now(3)
"""
    for mode in ("plain", "thread"):
        marker.unlink(missing_ok=True)
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=120)
        assert out.returncode == 3, out.stderr
        assert out.stdout == "buffered, no newline"
        lines = marker.read_text().splitlines()
        assert lines == (["handler ran"] if mode == "plain" else ["thread done", "handler ran"])


def test_start_up_imports_only_what_the_command_needs(tmp_path):
    """#19's start-up, structurally (the seconds live in `make bench`): --help and list import no torch; a
    smoke run's own machinery imports neither scipy.stats (the claim engine's quantiles are its own) nor
    dynamo nor scikit-learn; its summary records every phase."""
    probe = ("import sys\nfrom kexue_runs.cli import main\ncode = main(sys.argv[1:])\n"
             "print(sorted(m for m in ('torch', 'scipy.stats', 'torch._dynamo', 'sklearn') if m in sys.modules))")
    for args, loaded in ((["--help"], "[]"), (["list"], "[]"),
                         (["experiment=retry", "scale=smoke", "trainer.progress=false", f"output_root={tmp_path}"],
                          "['torch']")):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=300,
                             cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == loaded, args
    (run,) = run_dirs(tmp_path, "retry")
    assert set(summary(run)["timing"]["phases"]) == {"imports", "torch_import", "preflight", "job", "setup",
                                                      "experiment", "report"}


def test_preflight_composes_a_single_run_once(monkeypatch):
    """A single run's config is composed once by preflight (its group choices; the plain values set on a copy
    as Hydra sets them): the same config Hydra's full composition gives."""
    from kexue_runs.preflight import validate

    calls = []
    compose_cell = validate.compose_cell
    monkeypatch.setattr(validate, "compose_cell",
                        lambda cell, *a, **k: calls.append(cell) or compose_cell(cell, *a, **k))
    cell = ["experiment=fsq_vs_vq", "scale=smoke", "trainer.steps=7", "quantizer.levels=[5,5,3]", "seed=3"]
    validate.preflight(cell, multirun=False)
    assert calls == [["experiment=fsq_vs_vq", "scale=smoke"]]
    choices = ("experiment=fsq_vs_vq", "scale=smoke")
    from hydra import initialize_config_dir

    from kexue_runs import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        defaults = compose_cell(list(choices))
        assert validate.with_values(defaults, cell, choices) == compose_cell(cell)
        assert validate.with_values(defaults, cell, choices).trainer.steps == 7
        # a dict value merges into the config's dict, as Hydra's override does (not a replacement)
        nbce = ("experiment=nbce", "scale=smoke")
        cell = [*nbce, "finetune={steps:7}"]
        merged = validate.with_values(compose_cell(list(nbce)), cell, nbce)
        assert merged == compose_cell(cell) and merged.finetune.steps == 7 and "lr" in merged.finetune


def test_hydra_reads_the_mode_from_the_command_line_and_gets_its_probe_back(kexue, tmp_path):
    """cli.mode_known answers Hydra's mode probe (a whole extra composition) for the run and puts Hydra's own
    method back afterwards; the run is still Hydra's RUN mode, recorded as such."""
    from hydra._internal.hydra import Hydra
    from omegaconf import OmegaConf

    original = Hydra.get_mode
    code, out = kexue("experiment=retry", "scale=smoke", "trainer.progress=false")
    assert code == 0, out
    assert Hydra.get_mode is original
    (run,) = run_dirs(tmp_path / "outputs", "retry")
    assert OmegaConf.load(run / ".hydra" / "hydra.yaml").hydra.mode == "RUN"
