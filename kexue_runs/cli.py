"""`kexue-run`: the one entry point.

    kexue-run list                       the catalog (rich table)
    kexue-run report <sweep or run dir>  rebuild aggregate, verdicts and figure from saved files
    kexue-run [hydra args] key=value...  a Hydra app: run (or -m sweep) an experiment
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from .lifecycle.phases import mark

mark("process")  # as early as the entry point can: before Hydra's import

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
from .common.errors import (  # noqa: E402
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    ConfigError,
    EnvironmentFailure,
    Terminated,
)

# what a run's status means for the process's exit code (a sweep goes on after a failed job)
STATUS_EXIT = {"failed": EXIT_FAILED, "environment": EXIT_ENVIRONMENT, "interrupted": EXIT_INTERRUPTED,
               "terminated": EXIT_TERMINATED, "busy": EXIT_BAD_INPUT}
# overrides that may come with resume=: they change how a run is shown or where it runs, not its numbers
RESUME_SAFE = ("trainer.progress", "trainer.threads", "trainer.device", "logger", "output_root", "scale.curves")

HYDRA_INFO_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--version", "--shell-completion", "-sc")
HYDRA_VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                     "--config-dir", "-cd", "--experimental-rerun")


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def hydra_app(cfg: DictConfig) -> None:
    from .lifecycle.runner import execute

    hc = HydraConfig.get()
    status = execute(cfg, hc.runtime.output_dir, list(hc.overrides.task), in_sweep=hc.mode == RunMode.MULTIRUN,
                     parallel_jobs=parallel_jobs(hc))
    code = STATUS_EXIT.get(status)
    if code is None:
        return
    if hc.mode == RunMode.RUN or code in (EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_ENVIRONMENT):
        sys.exit(code)  # in a sweep: a signal or a broken environment stops it; a failed job does not


def parallel_jobs(hc) -> int:
    """How many jobs a parallel launcher runs at once on this machine (joblib's n_jobs; for Ray, the
    cores over each job's num_cpus); 1 otherwise, so a job gets every core it may use."""
    from .lifecycle.runner import usable_cores

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
        elif arg in ("--cfg", "-c", "--package", "-p") or arg.startswith(("--cfg=", "--package=")):
            info = True  # print the composed config, run nothing
            skip = "=" not in arg and i + 1 < len(argv)
        elif arg in HYDRA_VALUE_FLAGS:
            skip = i + 1 < len(argv)
        elif arg.startswith("-"):
            continue
        else:
            overrides.append(arg)
    return overrides, multirun, info


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    from rich.text import Text

    from .common.progress import console

    console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    return code


def on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """kexue-run: every error the user can cause is one line and exit 2; a broken environment exit 3."""
    import signal

    from .common.runfiles import LockHeld, is_environment_error

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        pass
    import logging

    root = logging.getLogger()
    for handler in list(root.handlers):  # an earlier in-process call's job logging (Hydra's console and run-log
        if type(handler) in (logging.StreamHandler, logging.FileHandler):  # handlers): not this call's
            root.removeHandler(handler)
            handler.close()
    logging.captureWarnings(True)  # library warnings go to the run's log, not the console
    logging.getLogger("py.warnings").addHandler(logging.NullHandler())
    try:
        return run_command(argv)
    except ConfigError as exc:
        return fail(str(exc))
    except LockHeld as exc:
        return fail(str(exc))
    except EnvironmentFailure as exc:
        return fail(str(exc), EXIT_ENVIRONMENT)
    except OSError as exc:
        if not is_environment_error(exc):
            raise
        return fail(f"{exc.filename or ''}: {exc.strerror}; free space or pick a writable folder "
                    f"(output_root=DIR)".lstrip(": "), EXIT_ENVIRONMENT)


USER_GROUPS = ("experiment", "scale", "sweep", "arch", "data", "model", "loss", "optimizer", "quantizer", "trainer",
               "logger", "hydra/launcher")


def print_version() -> int:
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    print(f"kexue-runs {__version__} (torch {v('torch')}, hydra-core {v('hydra-core')}, "
          f"python {sys.version.split()[0]})")
    return 0


def print_help() -> int:
    """The user-facing config groups and their options (Hydra's own help: --hydra-help)."""
    from .preflight.overrides import group_options

    lines = ["kexue-run: reproduce a claim from a Scientific Spaces (kexue.fm) post by running it.", "",
             "  kexue-run list                                   the catalog: experiments, posts, last verdicts",
             "  kexue-run show <experiment>                      one post's claim, checks and last results",
             "  kexue-run experiment=fsq_vs_vq                   one run at the default scale (cpu), embedded data",
             "  kexue-run experiment=fsq_vs_vq scale=smoke       seconds",
             "  kexue-run experiment=fsq_vs_vq quantizer=vq_ste quantizer.codebook_size=256",
             "  kexue-run -m experiment=fsq_vs_vq sweep=fsq_vs_vq   the claim's canonical sweep",
             "  kexue-run resume=outputs/runs/fsq_vs_vq/<stamp>  continue a killed run",
             "  kexue-run report <sweep or run dir>              rebuild aggregate, verdicts and figures",
             "  kexue-run verify <experiment> | --all            re-run the ledger's command at HEAD and compare",
             "  kexue-run reproduce --scale cpu                  regenerate the ledger (results/) where not current",
             "  kexue-run publish                                = make figures: the ledger, README table, site",
             "  kexue-run experiment=fsq_vs_vq --cfg job         the composed config (with -m: every job's)",
             "", "Config groups (group=option):"]
    import textwrap

    for group in USER_GROUPS:
        options = group_options(group) + (["joblib", "submitit_local", "submitit_slurm (plugins)"]
                                          if group == "hydra/launcher" else [])
        if options:
            lines += textwrap.wrap(", ".join(options), 100, initial_indent=f"  {group + ':':<16} ",
                                   subsequent_indent=" " * 19)
    lines += ["", "Any value: key=value (trainer.steps=500); a sweep: -m key=a,b,c; trackers: "
              "logger=[tensorboard,mlflow].",
              "Exit codes: 0 ok, 1 a run failed or a sweep had failed jobs, 2 bad input, 3 the environment failed",
              "(disk, permissions, missing package), 130 Ctrl-C, 143 SIGTERM. Hydra's own help: --hydra-help;",
              "the version: --version."]
    print("\n".join(lines))
    return 0


def run_command(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--version" in argv:
        return print_version()
    if "--help" in argv or "-h" in argv:
        return print_help()
    if argv and argv[0] == "list":
        from .publishing.listing import print_catalog

        print_catalog()
        return 0
    if argv and argv[0] == "show":
        from .publishing.listing import print_experiment

        if len(argv) != 2:
            raise ConfigError("usage: kexue-run show <experiment>")
        return print_experiment(argv[1])
    if argv and argv[0] in ("verify", "reproduce", "publish"):  # the results ledger (kexue_runs/verify.py)
        from .publishing import verify

        return getattr(verify, f"{argv[0]}_main")(argv[1:])
    if argv and argv[0] == "report":
        from .lifecycle.sweeps import report_main

        return report_main(argv[1:])
    mark("imports")
    argv = expand_resume(argv)
    if argv is None:  # resume= of a run that already ended: nothing to do
        return 0
    overrides, multirun, info = split_args(argv)
    plan = None
    if info and multirun and any(a in ("--cfg", "-c") or a.startswith("--cfg=") for a in argv):
        return print_sweep_configs(argv, overrides)
    if not info:
        import torch  # noqa: F401  every experiment needs it: its import is a phase of its own in timing.phases

        mark("torch_import")
        from .preflight.validate import preflight

        plan = preflight(overrides, multirun)
        check_writable(overrides, plan)
        mark("preflight")
    prog = sys.argv[0] if sys.argv else "kexue-run"
    from .lifecycle.distributed import from_env

    if not info and not from_env().is_main:
        return run_worker_rank(overrides)
    if not multirun or plan is None:
        sys.argv = [prog] + argv
        try:
            with mode_known(argv):
                hydra_app()
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_FAILED
        return 0
    # One sweep folder for every grid of the sweep; Hydra launches each grid's jobs.
    from .lifecycle.phases import start_sweep

    start_sweep(plan.jobs)
    pinned = [a for a in argv if not a.startswith("hydra.sweep.dir=")] + \
        [f"hydra.sweep.dir={hydra_quoted(plan.sweep_dir)}"]
    stopped = 0
    for grid in plan.grids:
        GlobalHydra.instance().clear()
        sys.argv = [prog] + pinned + grid
        try:
            with mode_known(argv):
                hydra_app()
        except KeyboardInterrupt as exc:  # between jobs
            stopped = EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
        except SystemExit as exc:  # a job was interrupted, or the environment broke: stop the sweep
            stopped = exc.code if isinstance(exc.code, int) else EXIT_FAILED
        if stopped:
            break
    from .lifecycle.sweeps import finish_sweep

    report = finish_sweep(plan.sweep_dir)
    if stopped:
        from .common.progress import console

        console.print(f"sweep stopped; finish it with: kexue-run -m {' '.join(a for a in argv if a != '-m')} "
                      f"resume={plan.sweep_dir}", highlight=False, soft_wrap=True)
        return stopped
    jobs = (report or {}).get("jobs") or {}
    return EXIT_FAILED if any(status != "ok" for status in jobs) else 0


@contextmanager
def mode_known(argv: list[str]):
    """Hydra's app composes the whole config once only to read `hydra.mode` (Hydra.get_mode), then again to run
    it: 0.1-0.2 s of every run. Our configs never set hydra.mode, so unless the command line does, the answer is
    None, on which Hydra runs or sweeps by the command line's -m, as it would anyway. Hydra 1.3's own method is
    put back on the way out; without it (another Hydra), nothing is changed."""
    from hydra._internal.hydra import Hydra

    original = getattr(Hydra, "get_mode", None)
    if original is None or any(a.lstrip("+~").startswith("hydra.mode") for a in argv):
        yield
        return
    Hydra.get_mode = lambda self, config_name, overrides: None
    try:
        yield
    finally:
        Hydra.get_mode = original


def print_sweep_configs(argv: list[str], overrides: list[str]) -> int:
    """`-m ... --cfg job`: Hydra refuses --cfg with --multirun; print every job's composed config instead."""
    from .common.progress import console
    from .preflight.validate import preflight

    plan = preflight(overrides, multirun=True)
    flags = [a for a in argv if a not in ("-m", "--multirun") and a not in overrides]
    prog = sys.argv[0] if sys.argv else "kexue-run"
    for k, cell in enumerate(plan.cells, start=1):
        console.print(f"# job {k}/{len(plan.cells)}: {' '.join(cell)}", highlight=False, soft_wrap=True,
                      markup=False)
        GlobalHydra.instance().clear()
        sys.argv = [prog] + flags + cell
        try:
            hydra_app()
        except SystemExit as exc:
            if exc.code:
                return exc.code
    return 0


def check_writable(overrides: list[str], plan) -> None:
    """The outputs folder (or hydra.run.dir / hydra.sweep.dir) must be writable before Hydra makes anything."""
    import tempfile

    given = dict(o.split("=", 1) for o in overrides if "=" in o)
    folder = (plan.sweep_dir if plan and plan.sweep_dir else None) or given.get("hydra.sweep.dir") \
        or given.get("hydra.run.dir") or given.get("output_root", "outputs")
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    from .lifecycle import faults

    try:
        with tempfile.TemporaryFile(dir=probe):
            faults.hit("writable_probe")
    except OSError as exc:
        raise EnvironmentFailure(f"{folder} is not writable ({exc.strerror}); pick another folder with "
                                 f"output_root=DIR") from None


def run_worker_rank(overrides: list[str]) -> int:
    """A non-zero torchrun rank: the same config, no Hydra app, so no folders of its own."""
    from .lifecycle.runner import execute
    from .preflight.validate import compose_job

    cfg = compose_job(overrides)
    return 1 if execute(cfg, None, overrides) == "failed" else 0


def expand_resume(argv: list[str]) -> list[str] | None:
    """resume=<run dir> reruns a run's own overrides in its folder, after taking the folder's lock; with -m,
    resume=<sweep dir> reruns the sweep into that folder, where finished cells are skipped and killed ones
    resume. Overrides given with resume= are kept where they cannot change the result (RESUME_SAFE) and
    refused where they could. Returns None for a run that already ended: there is nothing to do."""
    given = [a for a in argv if a.startswith("resume=")]
    if not given or given[0] in ("resume=null", "resume="):
        return argv
    target = given[0].split("=", 1)[1]
    rest = [a for a in argv if not a.startswith("resume=")]
    if "-m" in argv or "--multirun" in argv:
        folder = Path(target)
        if not folder.is_dir():
            raise ConfigError(f"resume={target}: no such sweep folder; give outputs/sweeps/<experiment>/<stamp>")
        if (folder / ".hydra" / "overrides.yaml").is_file() and not (folder / "multirun.yaml").is_file():
            raise ConfigError(f"resume={target} is one run (a job of a sweep, or a single run), not a sweep "
                              f"folder; resume it alone without -m (kexue-run resume={target}), or the whole "
                              f"sweep with -m ... resume={folder.parent}")
        from .common import runfiles

        check_checkpoints(sorted(folder.glob(f"*/{runfiles.CHECKPOINT}")))
        return rest + [f"hydra.sweep.dir={hydra_quoted(target)}"]
    from .common import runfiles
    from .preflight.overrides import resume_overrides

    saved = resume_overrides(target)
    summary = runfiles.read_summary(Path(target))
    extra = [a for a in rest if not a.startswith("-")]
    kept = check_resume_overrides(target, extra, saved)
    if summary and summary.get("status") in ("ok", "diverged"):
        from .common.progress import console

        if not (Path(target) / runfiles.REPORT).exists():  # killed while writing its report: finish that
            from .lifecycle.sweeps import report_main

            runfiles.lock_run_dir(Path(target))
            report_main([target])
        console.print(f"{target}: this run already ended (status {summary['status']}); nothing to resume",
                      highlight=False, soft_wrap=True)
        return None
    check_checkpoints([Path(target) / runfiles.CHECKPOINT])
    runfiles.lock_run_dir(Path(target))  # before Hydra writes anything into the folder
    return [a for a in rest if a.startswith("-")] + saved + kept


def hydra_quoted(value: str) -> str:
    """A path as one value in Hydra's override grammar: quoted when it holds characters the grammar reads."""
    if all(c.isalnum() or c in "/._-+:~@" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_checkpoints(paths) -> None:
    """A checkpoint cut short cannot be resumed from: say so, and the way forward, before anything is written."""
    from .common import runfiles

    for path in paths:
        if path.is_file():
            reason = runfiles.checkpoint_problem(path)
            if reason:
                raise ConfigError(runfiles.unreadable_message(path, reason))


def check_resume_overrides(target: str, extra: list[str], saved: list[str]) -> list[str]:
    """The overrides given with resume=: kept if they cannot change the result, refused otherwise."""
    before = dict(o.split("=", 1) for o in saved if "=" in o)
    kept = []
    for item in extra:
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if key.split(".")[0] in RESUME_SAFE or key in RESUME_SAFE:
            kept.append(item)
        elif before.get(key) == value:
            continue
        else:
            was = f" (the run has {key}={before[key]})" if key in before else ""
            raise ConfigError(f"resume={target}: {item} would change what the run computes{was}; with resume= "
                              f"only {', '.join(RESUME_SAFE)} may change; start a new run instead")
    return kept


def entry() -> None:
    code = main()
    code = 0 if code is None else code if isinstance(code, int) else EXIT_FAILED
    if any(a in ("-m", "--multirun") for a in sys.argv[1:]) or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.exit(code)  # launchers' workers and process groups get the ordinary exit
    exit_now(code)


def exit_now(code: int) -> None:
    """Exit without the interpreter's teardown once everything is written: with torch loaded, freeing every
    module and object at exit took 0.25-0.7 s of each run (#19's start-up budget is 1.5 s). The exit handlers
    still run (trackers, launchers, logging) and the console is flushed. Only when no other thread could
    still be working (Python's own exit would wait for it), and for single runs (entry); otherwise the
    ordinary exit."""
    import threading

    if any(t is not threading.current_thread() and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    import atexit
    import logging

    try:
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # anything odd at the end: the ordinary exit, which reports it
        sys.exit(code)
    os._exit(code)


if __name__ == "__main__":
    entry()
