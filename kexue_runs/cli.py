"""`kexue-run`: the one entry point.

    kexue-run list                       the catalog (rich table)
    kexue-run report <sweep or run dir>  rebuild aggregate, verdicts and figure from saved files
    kexue-run [hydra args] key=value...  a Hydra app: run (or -m sweep) an experiment
"""

from __future__ import annotations

import os
import sys

# Offline by default: a hub lookup without these flags retries for ~23 s before failing.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from . import config_dir  # noqa: E402
from .errors import ConfigError  # noqa: E402

HYDRA_INFO_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--version", "--shell-completion", "-sc")
HYDRA_VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--experimental-rerun")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def hydra_app(cfg: DictConfig) -> None:
    from .runner import execute

    hc = HydraConfig.get()
    status = execute(cfg, hc.runtime.output_dir, list(hc.overrides.task), in_sweep=hc.mode == RunMode.MULTIRUN,
                     parallel_jobs=parallel_jobs(hc))
    if hc.mode == RunMode.RUN and status == "failed":
        sys.exit(1)


def parallel_jobs(hc) -> int:
    """How many jobs a parallel launcher runs at once on this machine (joblib's n_jobs; for Ray, the
    cores over each job's num_cpus); 1 otherwise, so a job gets every core it may use."""
    from .runner import usable_cores

    if hc.mode != RunMode.MULTIRUN:
        return 1
    cores = usable_cores()
    ray_cpus = OmegaConf.select(hc.launcher, "ray.remote.num_cpus", default=None)
    if ray_cpus:
        return max(1, cores // int(ray_cpus))
    n_jobs = hc.launcher.get("n_jobs")
    if not n_jobs:
        return 1
    return cores if n_jobs < 0 else min(int(n_jobs), cores)


def split_args(argv: list[str]) -> tuple[list[str], bool, bool]:
    """(overrides, multirun, info_only) from a Hydra command line."""
    overrides, multirun, info, skip = [], False, False, False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in HYDRA_INFO_FLAGS or arg.startswith("--info="):
            info = True
        elif arg in HYDRA_VALUE_FLAGS:
            skip = i + 1 < len(argv)
        elif arg.startswith("-"):
            continue
        else:
            overrides.append(arg)
    return overrides, multirun, info


def fail(message: str) -> int:
    from .progress import console

    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "list":
        from .catalog import print_catalog

        print_catalog()
        return 0
    if argv and argv[0] == "report":
        from .sweeps import report_main

        return report_main(argv[1:])
    try:
        argv = expand_resume(argv)
        overrides, multirun, info = split_args(argv)
        plan = None
        if not info:
            from .validate import preflight

            plan = preflight(overrides, multirun)
    except ConfigError as exc:
        return fail(str(exc))
    prog = sys.argv[0] if sys.argv else "kexue-run"
    from .distributed import from_env

    if not info and not from_env().is_main:
        return run_worker_rank(overrides)
    if not multirun or plan is None:
        sys.argv = [prog] + argv
        hydra_app()
        return 0
    # One sweep folder for every grid of the sweep; Hydra launches each grid's jobs.
    pinned = [a for a in argv if not a.startswith("hydra.sweep.dir=")] + [f"hydra.sweep.dir={plan.sweep_dir}"]
    for grid in plan.grids:
        GlobalHydra.instance().clear()
        sys.argv = [prog] + pinned + grid
        hydra_app()
    from .sweeps import finish_sweep

    finish_sweep(plan.sweep_dir)
    return 0


def run_worker_rank(overrides: list[str]) -> int:
    """A non-zero torchrun rank: the same config, no Hydra app, so no folders of its own."""
    from .runner import execute
    from .validate import compose_job

    cfg = compose_job(overrides)
    return 1 if execute(cfg, None, overrides) == "failed" else 0


def expand_resume(argv: list[str]) -> list[str]:
    """resume=<run dir> reruns a run's own overrides in its folder; with -m, resume=<sweep dir>
    reruns the sweep into that folder, where finished cells are skipped and killed ones resume."""
    given = [a for a in argv if a.startswith("resume=")]
    if not given or given[0] in ("resume=null", "resume="):
        return argv
    target = given[0].split("=", 1)[1]
    rest = [a for a in argv if not a.startswith("resume=")]
    if "-m" in argv or "--multirun" in argv:
        if not Path(target).is_dir():
            raise ConfigError(f"resume={target}: no such sweep folder; give outputs/sweeps/<experiment>/<stamp>")
        return rest + [f"hydra.sweep.dir={target}"]
    from .validate import resume_overrides

    return [a for a in rest if a.startswith("-")] + resume_overrides(target)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
