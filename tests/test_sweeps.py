"""Sweeps end in files and verdicts, even when a job fails; `report` rebuilds; reruns skip done cells."""

import csv
import json

import pytest
from conftest import SMOKE

from kexue_runs.common.errors import ConfigError
from kexue_runs.experiments import fsq_vs_vq
from kexue_runs.preflight import validate


def sweep_dirs(outputs):
    return sorted((outputs / "sweeps" / "fsq_vs_vq").glob("*"))


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_smoke_multirun_aggregates_with_verdicts(kexue, tmp_path, monkeypatch):
    real_run = fsq_vs_vq.run

    def flaky(cfg, ctx):  # one job of the sweep raises: it must not take the sweep down
        if cfg.quantizer.name == "vq_ste" and cfg.seed == 1:
            raise RuntimeError("injected failure")
        return real_run(cfg, ctx)

    monkeypatch.setattr(fsq_vs_vq, "run", flaky)
    code, out = kexue("-m", *SMOKE, "quantizer=fsq,vq_ste", "quantizer.codebook_size=16,64", "seed=0,1",
                      "trainer.steps=10", "trainer.eval_every=5")
    assert code == 1, out  # the sweep ran every job and aggregated, then says some failed
    (sweep,) = sweep_dirs(tmp_path / "outputs")
    for name in ("aggregate.csv", "grouped.csv", "claim_report.md", "claim_report.json", "figure.png"):
        assert (sweep / name).exists(), name
    table = read_csv(sweep / "aggregate.csv")
    assert len(table) == 8
    assert {"quantizer.name", "quantizer.codebook_size", "seed", "val/mse", "val/utilization"} <= set(table[0])
    assert "trainer.threads" not in table[0] and "trainer.steps" not in table[0]  # only what varies
    failed = [r for r in table if r["status"] == "failed"]
    assert len(failed) == 2 and all(r["quantizer.name"] == "vq_ste" and r["seed"] == "1" for r in failed)
    assert "injected failure" in failed[0]["error"]
    report = json.loads((sweep / "claim_report.json").read_text())
    assert report["jobs"] == {"ok": 6, "failed": 2}
    verdicts = {c["id"]: c for c in report["checks"]}
    assert set(verdicts) >= {"fsq_uses_nearly_all_codes", "vq_utilization_falls", "fsq_overtakes_vq"}
    assert all(c["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE", "NOT REACHED", "N/A") for c in report["checks"])
    # the VQ arm lost a job: checks on it cannot be trusted
    assert verdicts["vq_utilization_falls"]["verdict"] in ("INCONCLUSIVE", "NOT REACHED")  # never PASS or FAIL
    assert "failed" in verdicts["vq_utilization_falls"]["note"]
    md = (sweep / "claim_report.md").read_text()
    assert "the post's |" in md and "crossover near 1000 codes" in md
    assert md.index("**Verdict on the post") < md.index("Sweep `")

    # `report` rebuilds everything from the run files alone
    for name in ("aggregate.csv", "claim_report.json", "figure.png"):
        (sweep / name).unlink()
    code, out = kexue("report", str(sweep))
    assert code == 0, out
    assert json.loads((sweep / "claim_report.json").read_text())["jobs"] == {"ok": 6, "failed": 2}
    assert (sweep / "figure.png").exists()

    # rerunning into the sweep folder skips the finished cells and retries the failed ones
    monkeypatch.setattr(fsq_vs_vq, "run", real_run)
    code, out = kexue("-m", *SMOKE, "quantizer=fsq,vq_ste", "quantizer.codebook_size=16,64", "seed=0,1",
                      "trainer.steps=10", "trainer.eval_every=5", f"resume={sweep}")
    assert code == 0, out
    assert out.count("cell already completed") == 6
    assert json.loads((sweep / "claim_report.json").read_text())["jobs"] == {"ok": 8}
    assert len(sweep_dirs(tmp_path / "outputs")) == 1


def test_canonical_sweep_plan():
    plan = validate.preflight(["experiment=fsq_vs_vq", "sweep=fsq_vs_vq", "scale=smoke"], multirun=True)
    assert plan.jobs == 60 + 30 + 24 and len(plan.grids) == 3
    assert "sweeps/fsq_vs_vq/" in plan.sweep_dir
    # a command-line value replaces the grid's values for that key
    plan = validate.preflight(["experiment=fsq_vs_vq", "sweep=fsq_vs_vq", "seed=0"], multirun=True)
    assert plan.jobs == 10 + 5 + 4
    with pytest.raises(ConfigError, match="unknown sweep 'nope'"):
        validate.preflight(["experiment=fsq_vs_vq", "sweep=nope"], multirun=True)


def test_list_shows_the_last_verdict(kexue, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _ = kexue("-m", *SMOKE, "quantizer=fsq", "seed=0,1", outputs=tmp_path / "outputs")
    assert code == 0
    code, out = kexue("list")
    line = next(x for x in out.splitlines() if x.startswith("fsq_vs_vq"))
    # one smoke cell decides nothing the sweep claims: not reached (cells not run) or underpowered
    assert code == 0 and "smoke sweep" in line and line.split()[-1] in ("not_reached", "underpowered")
    assert len(line) <= 80 and "9826" in line  # one line per experiment at 80 columns
    code, out = kexue("show", "fsq_vs_vq")
    assert code == 0 and "fsq_uses_nearly_all_codes (empirical; FSQ paper Fig. 3" in out.replace("\n", " ")
    assert "INCONCLUSIVE" in out and "kexue-run -m experiment=fsq_vs_vq sweep=fsq_vs_vq" in out


def test_parallel_jobs_share_the_free_cores(monkeypatch):
    """The policy on a 4-core allocation, whatever this machine is: busy cores (read from /proc/stat in a run,
    given here) are not free, and parallel jobs split what is."""
    from omegaconf import OmegaConf

    from kexue_runs.lifecycle import runner

    monkeypatch.setattr(runner, "usable_cores", lambda: 4)
    cfg = OmegaConf.create({"trainer": {"threads": None}, "scale": {"name": "cpu"}})
    assert runner.thread_policy(cfg, 1, busy=0)[0] == 4
    assert runner.thread_policy(cfg, 1, busy=1)[0] == 3
    assert runner.thread_policy(cfg, 2, busy=0)[0] == 2
    assert runner.thread_policy(cfg, 2, busy=1)[0] == 1
    assert runner.thread_policy(cfg, 1, busy=9)[0] == 1  # never below one
    threads, why = runner.thread_policy(cfg, 1, busy=1)
    assert "1 busy" in why and "4 usable" in why
    assert runner.thread_policy(OmegaConf.create({"trainer": {"threads": 3}}), 8, busy=0) == (3, "trainer.threads set")
    smoke = OmegaConf.create({"trainer": {"threads": None}, "scale": {"name": "smoke"}})
    assert runner.thread_policy(smoke, 1, busy=0)[0] == 1


def test_busy_cores_reads_the_kernels_runnable_count(monkeypatch, tmp_path):
    import builtins

    from kexue_runs.lifecycle import runner

    stat = tmp_path / "stat"
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(stat if path == "/proc/stat" else path,
                                                                           *a, **k))
    stat.write_text("cpu  1 2 3\nprocs_running 3\nprocs_blocked 0\n")
    assert runner.busy_cores(samples=3, gap_s=0) == 2  # this process is one of the three
    stat.write_text("cpu  1 2 3\n")
    assert runner.busy_cores(samples=3, gap_s=0) == 0  # unreadable: assume none


def test_a_resumed_run_keeps_the_thread_count_it_started_with(monkeypatch, tmp_path):
    from omegaconf import OmegaConf

    from kexue_runs.lifecycle import runner

    cfg = OmegaConf.create({"trainer": {"threads": None}, "scale": {"name": "cpu"}})
    monkeypatch.setattr(runner, "usable_cores", lambda: 2)
    monkeypatch.setattr(runner, "busy_cores", lambda: 0)
    assert runner.run_threads(cfg, tmp_path, 1) == (2, runner.thread_policy(cfg, 1, busy=0)[1])
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    monkeypatch.setattr(runner, "busy_cores", lambda: 1)  # the machine got busy since
    assert runner.run_threads(cfg, tmp_path, 1) == (2, "as the run started (resumed)")
    (tmp_path / "checkpoint.pt").unlink()
    assert runner.run_threads(cfg, tmp_path, 1)[0] == 1  # a fresh start decides anew


def test_joblib_sweep_matches_the_sequential_one(kexue, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    args = ["-m", *SMOKE, "quantizer=fsq,vq_ste", "seed=0", "trainer.steps=10", "trainer.eval_every=5"]
    # same seed, same thread count: the launcher must not change a single bit
    args.append("trainer.threads=1")
    assert kexue(*args, outputs=tmp_path / "seq")[0] == 0
    assert kexue(*args, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", outputs=tmp_path / "par")[0] == 0
    seq, par = (read_csv(next((tmp_path / d / "sweeps" / "fsq_vs_vq").glob("*")) / "aggregate.csv")
                for d in ("seq", "par"))
    key = lambda r: r["quantizer.name"]  # noqa: E731  (seed=0 does not vary: no column)
    assert {key(r): r["val/mse"] for r in seq} == {key(r): r["val/mse"] for r in par}


def test_submitit_local_sweep_aggregates_like_any_other(kexue, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    code, out = kexue("-m", *SMOKE, "quantizer=fsq,vq_ste", "seed=0", "trainer.threads=1", "trainer.steps=10",
                      "trainer.eval_every=5", "hydra/launcher=submitit_local")
    assert code == 0, out
    (sweep,) = sweep_dirs(tmp_path / "outputs")
    assert [r["status"] for r in read_csv(sweep / "aggregate.csv")] == ["ok", "ok"]
    assert (sweep / "claim_report.json").exists() and (sweep / "figure.png").exists()


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from kexue_runs import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=fsq_vs_vq", "hydra/launcher=slurm"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert "SlurmLauncher" in launcher._target_
    assert (launcher.timeout_min, launcher.gpus_per_node, launcher.cpus_per_task, launcher.mem_gb) == (120, 1, 8, 32)


def test_ray_launcher_jobs_get_their_num_cpus_as_threads():
    from types import SimpleNamespace

    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from kexue_runs.cli import parallel_jobs
    from kexue_runs.lifecycle.runner import usable_cores

    cores = usable_cores()
    ray = SimpleNamespace(mode=RunMode.MULTIRUN, launcher=OmegaConf.create({"ray": {"remote": {"num_cpus": 1}}}))
    assert parallel_jobs(ray) == cores
    joblib = SimpleNamespace(mode=RunMode.MULTIRUN, launcher=OmegaConf.create({"n_jobs": 2}))
    assert parallel_jobs(joblib) == min(2, cores)
    basic = SimpleNamespace(mode=RunMode.MULTIRUN, launcher=OmegaConf.create({}))
    assert parallel_jobs(basic) == 1


def test_ray_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    from hydra import compose, initialize_config_dir

    from kexue_runs import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=fsq_vs_vq", "hydra/launcher=ray_cluster"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("RayLauncher")
    assert cfg.hydra.launcher.ray.remote.max_calls == 1


def test_ray_sweep_matches_the_sequential_one(kexue, tmp_path):
    """Runs where hydra-ray-launcher is installed (its own environment; see README "Scaling out")."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    args = ["-m", *SMOKE, "quantizer=fsq,vq_ste", "seed=0", "trainer.threads=1"]
    assert kexue(*args, "hydra/launcher=ray_cluster", "hydra.launcher.ray.remote.num_cpus=1",
                 outputs=tmp_path / "ray")[0] == 0
    assert kexue(*args, outputs=tmp_path / "seq")[0] == 0
    (ray,), (seq,) = sweep_dirs(tmp_path / "ray"), sweep_dirs(tmp_path / "seq")
    assert [r["val/mse"] for r in read_csv(ray / "aggregate.csv")] == \
        [r["val/mse"] for r in read_csv(seq / "aggregate.csv")]


def test_a_finished_cell_is_reused_only_while_the_code_it_ran_is_unchanged(tmp_path, monkeypatch):
    """codehash: an edit inside an experiment's import closure (or the runner) changes its hash; an edit to
    another experiment's method, or outside the package, does not."""
    import shutil

    from kexue_runs.lifecycle import codehash

    package = tmp_path / "kexue_runs"
    shutil.copytree(codehash.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(codehash, "PACKAGE", package)

    def fresh(task="kexue_runs.experiments.nbce"):
        codehash.code_hash.cache_clear()
        return codehash.code_hash(task)

    before = fresh()
    with open(package / "methods" / "fsq.py", "a") as f:  # not imported by nbce
        f.write("\n# an unrelated edit\n")
    assert fresh() == before
    with open(package / "methods" / "nbce.py", "a") as f:  # nbce's pooling rules
        f.write("\n# an edit to code nbce ran\n")
    changed = fresh()
    assert changed != before
    with open(package / "lifecycle" / "runner.py", "a") as f:
        f.write("\n# the runner seeds every job\n")
    assert fresh() != changed
    codehash.code_hash.cache_clear()


def test_the_code_hash_reads_imports_as_a_whole_file_parse_would(tmp_path):
    """codehash parses only a file's import statements (for start-up time): every module of the package must
    give the closure a whole-file parse gives, and a file whose imports do not parse alone falls back."""
    from kexue_runs.lifecycle import codehash

    for path in codehash.PACKAGE.rglob("*.py"):
        parts = path.relative_to(codehash.PACKAGE).with_suffix("").parts
        name = ".".join(("kexue_runs",) + tuple(p for p in parts if p != "__init__"))
        assert codehash.imported(name, path) == codehash.imported(name, path, whole_file=True), name
    odd = tmp_path / "odd.py"
    odd.write_text('"""\nimport this line is prose\n"""\nfrom kexue_runs.methods import \\\n    fsq\n'
                   'def f():\n    from kexue_runs.common import (\n        runfiles,  # a comment\n    )\n')
    expected = {"kexue_runs.methods", "kexue_runs.methods.fsq", "kexue_runs.common", "kexue_runs.common.runfiles"}
    assert codehash.imported("kexue_runs.odd", odd) == expected
    assert codehash.imported("kexue_runs.odd", odd, whole_file=True) == expected
