"""The run lifecycle: set up, run the experiment, and always leave a complete run folder.

    <run dir>/.hydra/          composed config and overrides (Hydra)
    <run dir>/metrics.jsonl    one JSON object per event: step, wall time, split, metric values
    <run dir>/checkpoint.pt    periodic, atomic; `resume=<run dir>` continues from it
    <run dir>/summary.json     status (ok / failed / diverged / interrupted), metrics, timing, environment
    <run dir>/figures/*.png    training curves plus the experiment's own figures
    <run dir>/report.md        what ran, the claim, the post's numbers, ours
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..common import runfiles
from ..common.errors import Diverged, Terminated
from ..common.progress import console, fmt, format_metrics, make_progress, metrics_table
from . import faults, phases
from .codehash import code_hash
from .distributed import Dist, from_env, start, stop


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # numpy's range; the seed itself is checked in preflight, rank offsets are not
    torch.manual_seed(seed)


def deterministic() -> None:
    """torch's deterministic-algorithms switch without torch.use_deterministic_algorithms' import of
    torch._inductor (which pulls in dynamo: over a second of start-up for nothing on this path)."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is not None:
        setter(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)


def git_sha() -> str:
    repo = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device) -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        or platform.machine(),
        "threads": torch.get_num_threads(),
        "git_sha": git_sha(),
        "host": platform.node(),
    }


class RunContext:
    """What an experiment gets to talk to the run: logging, the training loop, progress, figures.

    `ctx.steps(total, state)` is the training loop's iterator. It restores `state` (anything with
    state_dict/load_state_dict) from the checkpoint on resume, saves it every
    trainer.checkpoint_every steps, and drives the progress bar. Batches must be a function of the
    step (see data.batch_indices), so a resumed run sees the very batches the killed one would have.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, device: torch.device, resuming: bool,
                 higher_is_better: Iterable[str] = (), dist: Dist | None = None):
        self.cfg = cfg
        self.dist = dist or Dist()  # under torchrun: rank 0 writes every file, the other ranks only train
        self.run_dir = Path(run_dir)
        self.device = device
        self.resuming = resuming
        self.higher_is_better = set(higher_is_better)
        self.figures_dir = self.run_dir / runfiles.FIGURES
        self.metrics_path = self.run_dir / runfiles.METRICS
        self.checkpoint_path = self.run_dir / runfiles.CHECKPOINT
        self.last: dict[str, float] = {}
        self.best: dict[str, float] = {}
        self.step = 0
        self.samples_per_step = 0
        self.elapsed_before = 0.0  # wall time spent before a resume
        self.trackers: list = []  # kexue_runs.lifecycle.trackers, from the logger config group (rank 0 only)
        self.claim_rows: list[dict] = []  # one row per arm (x test shard) for runs that compare arms inside
        self.details: dict = {}  # anything else the experiment wants in summary.json (e.g. optimizer groups)
        self.warnings: list[str] = []  # what the run lost or changed on the way (summary.json's warnings)
        self.started = time.time()
        self.progress = make_progress(bool(cfg.trainer.progress) and self.dist.is_main)
        self._live: dict[str, float] = {}
        self._train_task = None
        # A fresh run, or a resumed one with no checkpoint to resume from (killed before its first, or an
        # experiment without checkpoints): it starts over, so what the killed run logged goes.
        if self.dist.is_main and self.metrics_path.exists() and not (resuming and self.checkpoint_path.exists()):
            self.metrics_path.unlink()

    @property
    def is_main(self) -> bool:
        """True except on the non-zero ranks of a torchrun run."""
        return self.dist.is_main

    # -- metrics ------------------------------------------------------------------------------
    def log(self, step: int, split: str, **values: float) -> None:
        """Append one event to metrics.jsonl; a non-finite value stops the run as diverged."""
        values = {k: float(v) for k, v in values.items()}
        row = {"step": step, "time": round(self.wall_time(), 4), "split": split, **values}
        if self.is_main:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(runfiles.to_jsonable(row)) + "\n")
            for tracker in self.trackers:
                tracker.log_metrics(step, split, values)
        self._remember(split, values)
        self._live.update({f"{split}/{k}": v for k, v in values.items()})  # train/loss and val/loss apart
        if self._train_task is not None:
            self.progress.update(self._train_task, metrics=format_metrics(self._live))
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise Diverged(f"{split}/{bad[0]} = {values[bad[0]]} at step {step}")

    def _remember(self, split: str, values: dict[str, float]) -> None:
        for name, value in values.items():
            key = f"{split}/{name}"
            self.last[key] = value
            if not math.isfinite(value):
                continue
            better = max if name in self.higher_is_better else min
            self.best[key] = better(self.best.get(key, value), value)

    # -- the training loop ---------------------------------------------------------------------
    def steps(self, total: int, state: dict, description: str = "train") -> Iterator[int]:
        start = self._restore(state) if self.resuming and self.checkpoint_path.exists() else 0
        every = int(self.cfg.trainer.checkpoint_every)
        self._train_task = self.progress.add_task(description, total=total, completed=start,
                                                  metrics=format_metrics(self._live))
        for step in range(start, total):
            self.step = step
            yield step
            done = step + 1
            self.step = done
            faults.hit("step")
            if self.is_main and (done % every == 0 or done == total):
                self._save(state, done)
            self.progress.advance(self._train_task)
        self.progress.update(self._train_task, metrics=format_metrics(self._live))

    def is_eval_step(self, step: int, total: int) -> bool:
        done = step + 1
        return done % int(self.cfg.trainer.eval_every) == 0 or done == total

    def is_log_step(self, step: int) -> bool:
        return step % int(self.cfg.trainer.log_every) == 0

    def track(self, iterable: Iterable, description: str, total: int | None = None) -> Iterator:
        """A progress bar for an evaluation (or any other long) loop."""
        task = self.progress.add_task(description, total=total, metrics="")
        faults.hit("eval")
        for item in iterable:
            yield item
            self.progress.advance(task)
        self.progress.remove_task(task)

    def _save(self, state: dict, step: int) -> None:
        # The checkpoint records the metrics file's length: that length must be on disk before the checkpoint
        # is, or a crash can leave a checkpoint pointing past the end of the metrics (#32).
        if self.metrics_path.exists():
            fd = os.open(self.metrics_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        payload = {
            "step": step,
            "state": {name: obj.state_dict() for name, obj in state.items()},
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
            "metrics_bytes": self.metrics_path.stat().st_size if self.metrics_path.exists() else 0,
            "elapsed": self.wall_time(),
        }
        # a temp name of its own (two writers never share one), removed on any error: a failed or
        # killed write leaves the previous checkpoint as it was
        runfiles.atomic_save(self.checkpoint_path, payload, before_replace=lambda: faults.hit("checkpoint_write"))

    def _restore(self, state: dict) -> int:
        ckpt = read_checkpoint(self.checkpoint_path, self.device)
        for name, obj in state.items():
            obj.load_state_dict(ckpt["state"][name])
        if not self.is_main:  # the checkpoint holds rank 0's generators; the others reseed by rank and step
            seed_everything(int(self.cfg.seed) + self.dist.rank + 1_000_003 * int(ckpt["step"]))
            return int(ckpt["step"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(ckpt["rng"]["numpy"])
        random.setstate(ckpt["rng"]["python"])
        self._cut_metrics(int(ckpt["metrics_bytes"]), int(ckpt["step"]))
        for row in runfiles.read_metrics(self.run_dir):
            self._remember(row["split"], {k: v for k, v in row.items() if k not in ("step", "time", "split")
                                          and isinstance(v, (int, float))})
        self.elapsed_before = float(ckpt["elapsed"])
        self.started = time.time()
        console.print(f"[cyan]resumed from step {ckpt['step']}[/] ({self.checkpoint_path})")
        return int(ckpt["step"])

    def _cut_metrics(self, recorded: int, step: int) -> None:
        """Drop what the killed run logged after its last checkpoint: it will be logged again. A file shorter
        than the checkpoint recorded (lost in a crash before it reached the disk) is cut back to its last whole
        line, never padded, and the loss is said on the console and in summary.json's warnings."""
        self.metrics_path.touch()
        with open(self.metrics_path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size >= recorded:
                f.truncate(recorded)
                return
            f.seek(0)
            whole = f.read().rfind(b"\n") + 1
            f.truncate(whole)
        rows = runfiles.read_metrics(self.run_dir)
        last = rows[-1]["step"] if rows else None
        message = (f"{self.metrics_path} has {size} bytes, fewer than the {recorded} the checkpoint at step {step} "
                   f"recorded (lost in a crash); cut back to its last whole line ({len(rows)} rows, through step "
                   f"{last}): the rows logged after step {last} and before step {step} are missing")
        self.warnings.append(message)
        console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    def wall_time(self) -> float:
        return self.elapsed_before + time.time() - self.started


class CheckpointUnreadable(RuntimeError):
    """checkpoint.pt exists but cannot be read: damaged on disk or cut short."""


def read_checkpoint(path: Path, device) -> dict:
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # torch raises RuntimeError, pickle's errors, EOFError, ... for a damaged file
        if runfiles.is_environment_error(exc):
            raise
        raise CheckpointUnreadable(runfiles.unreadable_message(path, str(exc) or type(exc).__name__)) from None
    if not isinstance(ckpt, dict) or not {"step", "state", "rng", "metrics_bytes"} <= set(ckpt):
        raise CheckpointUnreadable(runfiles.unreadable_message(path, "not a kexue-run checkpoint"))
    return ckpt


def final_metrics(ctx: RunContext, returned: dict | None) -> dict:
    """What run() returned (or, for a run that stopped early, the last logged values), then train/*."""
    final = dict(returned) if returned else {k: v for k, v in ctx.last.items() if not k.startswith("train/")}
    final.update({k: v for k, v in ctx.last.items() if k.startswith("train/")})
    return final


def reuse_completed(cfg: DictConfig, resolved: dict, run_dir: Path) -> bool:
    from .sweeps import copy_job, find_completed

    done = find_completed(Path(cfg.output_root), cfg.name, runfiles.config_hash(resolved), code_hash(cfg.task))
    if done is None:
        return False
    if done.resolve() != run_dir.resolve():
        copy_job(done, run_dir)
    console.print(f"[cyan]{cfg.name}: cell already completed[/] ({done}); skipped")
    return True


def cpu_threads(cfg: DictConfig, parallel_jobs: int = 1) -> int:
    return thread_policy(cfg, parallel_jobs)[0]


def thread_policy(cfg: DictConfig, parallel_jobs: int = 1, busy: int | None = None) -> tuple[int, str]:
    """(threads, why). trainer.threads when set; 1 at scale=smoke (on a shared 2-core machine a 2-thread
    process waits a scheduler tick on every parallel op: a smoke run was 2.6x slower with 2 threads than with
    1 while anything else ran); otherwise the cores this process may use less those busy right now, divided
    between the jobs running at once. A core another process keeps busy is not free: torch's threads
    synchronise at every op, so one thread waiting on a busy core stalls them all (make run took 1130 s at 2
    threads beside a busy loop, 72 s at 1)."""
    if cfg.trainer.threads:
        return int(cfg.trainer.threads), "trainer.threads set"
    if cfg.scale.name == "smoke":
        return 1, "scale=smoke: 1 thread"
    cores = usable_cores()
    busy = busy_cores() if busy is None else busy
    free = max(1, cores - busy)
    jobs = max(1, parallel_jobs)
    threads = max(1, free // jobs)
    return threads, (f"{cores} usable cores, {busy} busy with other processes, {jobs} job(s) at once "
                     f"-> {threads} thread(s)")


THREADS_FILE = ".threads"  # the thread count a run started with: a resumed run keeps it (same numbers)


def run_threads(cfg: DictConfig, run_dir: Path, parallel_jobs: int, is_main: bool = True) -> tuple[int, str]:
    """The policy's choice for a new run; for a run resumed from a checkpoint without trainer.threads set,
    the count it started with (a different thread count can change float reductions, so the numbers)."""
    path = Path(run_dir) / THREADS_FILE
    if not cfg.trainer.threads and (Path(run_dir) / runfiles.CHECKPOINT).exists() and path.exists():
        try:
            return int(path.read_text().strip()), "as the run started (resumed)"
        except ValueError:
            pass
    threads, reason = thread_policy(cfg, parallel_jobs)
    if is_main:
        try:
            path.write_text(f"{threads}\n")
        except OSError:
            pass  # a read-only folder: the run reports it where it writes its files
    return threads, reason


def busy_cores(samples: int = 5, gap_s: float = 0.01) -> int:
    """Cores that other processes keep busy now: the median over a few samples of the kernel's count of
    runnable threads (/proc/stat procs_running) less this one. 0 where the count cannot be read."""
    import statistics
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/stat") as f:
                running = next(int(line.split()[1]) for line in f if line.startswith("procs_running"))
        except (OSError, StopIteration, ValueError):
            return 0
        counts.append(max(0, running - 1))
        if i + 1 < samples:
            time.sleep(gap_s)
    return int(statistics.median(counts))


def usable_cores() -> int:
    """The cores this process may run on: a Slurm allocation or a cpuset, not the whole node."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def execute(cfg: DictConfig, run_dir: Path | None, overrides: list[str], in_sweep: bool = False,
            parallel_jobs: int = 1) -> str:
    """Run one experiment into run_dir. Returns the status; never raises for a failed run.

    In a sweep, a cell already completed with the same config hash and code (in this sweep or an
    earlier one) is reused instead of rerun, and a job folder holding a checkpoint resumes from it.
    Under torchrun every rank calls this; the non-zero ranks pass run_dir=None and get rank 0's.
    """
    phases.start_job()
    dist = from_env()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if in_sweep and reuse_completed(cfg, resolved, Path(run_dir)):
        return "ok"
    device = start(dist, cfg.trainer.device)
    run_dir = Path(dist.broadcast(str(run_dir) if dist.is_main else None))
    if dist.is_main:
        try:
            runfiles.lock_run_dir(run_dir)
        except runfiles.LockHeld as exc:
            console.print(f"[red]{exc}[/]", highlight=False)
            return "busy"
    threads, thread_reason = run_threads(cfg, run_dir, parallel_jobs * dist.local_world_size, dist.is_main)
    torch.set_num_threads(threads)
    if device.type == "cpu":
        deterministic()
    seed_everything(int(cfg.seed) + dist.rank)
    module = importlib.import_module(cfg.task)
    # the code this run runs, read now: a long run's tree may change under it before its summary is written
    env = environment(device) | {"world_size": dist.world_size, "code_hash": code_hash(cfg.task),
                                 "thread_policy": thread_reason} if dist.is_main else {}
    phases.mark("setup")
    resuming = bool(cfg.resume) or (in_sweep and (run_dir / runfiles.CHECKPOINT).exists())
    ctx = RunContext(cfg, run_dir, device, resuming, getattr(module, "HIGHER_IS_BETTER", ()), dist)
    if dist.is_main:
        from .trackers import make_trackers

        ctx.trackers = make_trackers(cfg.get("logger"), run_dir, cfg.name)
        for tracker in ctx.trackers:
            tracker.log_config({k: v for k, v in resolved.items() if k not in runfiles.SPEC_KEYS})
    started_at = datetime.now().isoformat(timespec="seconds")
    ranks = f" ranks={dist.world_size}" if dist.enabled else ""
    if dist.is_main:
        if in_sweep and phases.sweep_line():
            console.print(phases.sweep_line(), highlight=False, soft_wrap=True)
        console.print(f"[bold]{cfg.name}[/] scale={cfg.scale.name} seed={cfg.seed} device={device}{ranks} "
                      f"threads={torch.get_num_threads()} -> {run_dir}", highlight=False, soft_wrap=True)
    status, error, returned = "ok", None, None
    precision = str(cfg.trainer.get("precision", "32"))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16-mixed" else nullcontext()
    try:
        with ctx.progress, autocast:
            returned = module.run(cfg, ctx)
        phases.mark("experiment")
    except Diverged as exc:
        status, error = "diverged", str(exc)
    except KeyboardInterrupt as exc:
        status, error = "interrupted", "SIGTERM" if isinstance(exc, Terminated) else "KeyboardInterrupt (Ctrl-C)"
    except CheckpointUnreadable as exc:  # one line with the way forward, not torch's traceback
        status, error = "failed", str(exc)
    except Exception as exc:  # a failed run still leaves its summary; the sweep goes on
        status, error = "failed", traceback.format_exc()
        if runfiles.is_environment_error(exc):
            status, error = "failed", f"environment: {exc}"
    if not dist.is_main:  # rank 0 writes the summary, report and figures
        stop(dist)
        return status
    final = final_metrics(ctx, returned)
    wall = ctx.wall_time()
    summary = {
        "experiment": cfg.name,
        "status": status,
        "error": error,
        "overrides": overrides,
        "config_hash": runfiles.config_hash(resolved),
        "seed": int(cfg.seed),
        "scale": cfg.scale.name,
        "final": final,
        "best": {k: v for k, v in ctx.best.items() if not k.startswith("train/")},
        "timing": {
            "wall_s": round(wall, 3),
            "steps": ctx.step,
            "steps_per_s": round(ctx.step / wall, 3) if wall > 0 else None,
            "samples_per_s": round(ctx.step * ctx.samples_per_step / wall, 1) if wall > 0 else None,
        },
        "environment": env,
        "started": started_at,
        "ended": datetime.now().isoformat(timespec="seconds"),
        "run_dir": str(run_dir),
        "config": {k: v for k, v in resolved.items() if k not in runfiles.SPEC_KEYS},
    }
    if ctx.claim_rows:
        summary["claim_rows"] = ctx.claim_rows
    if ctx.details:
        summary["details"] = runfiles.to_jsonable(ctx.details)
    if ctx.warnings:
        summary["warnings"] = ctx.warnings
    from ..claims.report import run_checks, write_run_figures, write_run_report  # matplotlib only when a run ends
    from ..claims.verdicts import build_report, print_verdicts

    report = None
    if cfg.checks:
        summary["checks"] = run_checks(resolved, summary)
        report = build_report(cfg.name, cfg.scale.name, summary["checks"], overrides, dir=str(run_dir))
        summary["verdict"] = report["verdict"]
        summary["reason"] = report["reason"]
        summary["reason_text"] = report["reason_text"]
        summary["counts"] = report["counts"]
        summary["by_basis"] = report["by_basis"]
        summary["stability"] = report["stability"]
        summary["command"] = report["command"]
    try:
        runfiles.write_json(run_dir / runfiles.SUMMARY, summary)
    except OSError as exc:  # disk full or read-only: the previous summary (if any) is intact
        console.print(f"[red]could not write {run_dir / runfiles.SUMMARY}: {exc}[/]", highlight=False)
        return "environment"
    faults.hit("report")
    try:
        if cfg.scale.get("curves", True):  # smoke runs skip it: `kexue-run report <run dir>` draws it later
            write_run_figures(run_dir)
        write_run_report(run_dir, cfg, summary)
        phases.mark("report")
        summary["timing"]["phases"] = phases.durations()
        runfiles.write_json(run_dir / runfiles.SUMMARY, summary)
        for tracker in ctx.trackers:
            for figure in sorted((run_dir / runfiles.FIGURES).glob("*.png")):
                tracker.log_figure(figure.stem, figure)
            if report is not None:
                tracker.log_verdicts(report)
            tracker.close()
    except Exception:  # a plotting problem must not lose the run's numbers
        console.print(f"[red]could not write the report: {traceback.format_exc(limit=1)}")
    colour = {"ok": "green", "diverged": "yellow"}.get(status, "red")
    if in_sweep:  # one line per job; the sweep ends with the claim's table
        phases.job_done(status)
        shown = "  ".join(f"{k}={fmt(v)}" for k, v in list(final.items())[:3] if not k.startswith("train/"))
        console.print(f"  -> [{colour}]{status}[/] {shown} verdict {summary.get('verdict', '-')} "
                      f"({wall:.1f}s)", highlight=False, soft_wrap=True)
    else:
        console.print(metrics_table(f"{cfg.name}: final metrics", {k: v for k, v in final.items()},
                                    summary["best"]))
        if report is not None and status == "ok":
            print_verdicts(report)
        console.print(f"status [{colour}]{status}[/]  wall {wall:.1f}s  ->  {run_dir}", highlight=False,
                      soft_wrap=True)
    if status == "failed":
        console.print(f"[red]{error.strip().splitlines()[-1]}[/]  (traceback in {run_dir / 'summary.json'})",
                      highlight=False)
        if error.startswith("environment: "):
            status = "environment"
    if status == "interrupted":
        console.print(f"interrupted ({error}); continue with: kexue-run resume={run_dir}", highlight=False,
                      soft_wrap=True)
        if error == "SIGTERM":
            status = "terminated"
    sys.stdout.flush()
    stop(dist)
    return status
