"""Console output: rich on a terminal, plain lines elsewhere (Slurm .out files, CI, nohup), and every
line also in the run folder's log.

`console.print` goes to the terminal as usual and, as plain text, to the `kexue_runs` logger, which
Hydra's job logging writes to <run dir>/kexue-run.log. Without a terminal the live progress bar becomes
periodic plain lines (step, metrics, elapsed, ETA) and long lines (paths) are never wrapped.
"""

from __future__ import annotations

import io
import logging
import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from .durations import clock

log = logging.getLogger("kexue_runs")
PLAIN_KWARGS = ("sep", "end", "style", "justify", "overflow", "no_wrap", "markup", "highlight", "soft_wrap")


class LoggingConsole(Console):
    """A rich Console whose every print is also logged as plain text (when logging has somewhere to go)."""

    def print(self, *objects, **kwargs) -> None:
        super().print(*objects, **kwargs)
        if not writes_to_a_file(log):
            return
        plain = Console(file=io.StringIO(), width=120, color_system=None, highlight=False, soft_wrap=True)
        plain.print(*objects, **{k: v for k, v in kwargs.items() if k in PLAIN_KWARGS and k != "soft_wrap"})
        text = plain.file.getvalue().rstrip("\n")
        if text:
            log.info(text)


def writes_to_a_file(logger: logging.Logger) -> bool:
    """Whether the logger's records reach a file (a run's kexue-run.log). Between a sweep's jobs only Hydra's
    console handler is left, and logging there would print every line a second time."""
    while logger is not None:
        if any(isinstance(h, logging.FileHandler) or not isinstance(h, logging.StreamHandler) for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


console = LoggingConsole(soft_wrap=not sys.stdout.isatty())


def say(*parts) -> None:
    """A plain message (no markup, no highlighting, never wrapped): what experiments print."""
    console.print(" ".join(str(p) for p in parts), markup=False, highlight=False, soft_wrap=True)


class PlainProgress:
    """The progress bar's interface for a non-terminal: a line at every tenth of a task (at most one every
    few seconds), with the step, the latest metrics, the elapsed time and an ETA."""

    def __init__(self, out: Console, min_interval: float = 5.0):
        self.out, self.min_interval = out, min_interval
        self.tasks: dict[int, dict] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: int | None = None, completed: int = 0, **fields) -> int:
        task = len(self.tasks)
        self.tasks[task] = {"description": description, "total": total, "completed": completed, "fields": fields,
                            "start": time.time(), "start_completed": completed, "last": time.time(), "next": 0.1}
        return task

    def update(self, task: int, **fields) -> None:
        self.tasks[task]["fields"].update(fields)

    def remove_task(self, task: int) -> None:
        self.tasks.pop(task, None)

    def advance(self, task: int, amount: int = 1) -> None:
        t = self.tasks[task]
        t["completed"] += amount
        total = t["total"]
        if not total:
            return
        fraction = t["completed"] / total
        now = time.time()
        # short tasks stay silent; longer ones report every tenth, at most once per min_interval, and their end
        finished = fraction >= 1 and now - t["start"] >= self.min_interval
        if finished or (fraction >= t["next"] and now - t["last"] >= self.min_interval):
            t["next"] = (int(fraction * 10) + 1) / 10
            t["last"] = now
            elapsed = now - t["start"]
            done = t["completed"] - t["start_completed"]
            eta = elapsed / done * (total - t["completed"]) if done else 0.0
            metrics = t["fields"].get("metrics", "")
            self.out.print(f"{t['description']} {t['completed']}/{total} ({fraction:.0%}) {metrics} "
                           f"elapsed {clock(elapsed)} eta {clock(eta)}".replace("  ", " "), markup=False,
                           highlight=False, soft_wrap=True)


def make_progress(enabled: bool = True):
    if enabled and not console.is_terminal:
        return PlainProgress(console)
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
        console=console,
        disable=not enabled,
    )


def format_metrics(values: dict, limit: int = 4) -> str:
    """The latest train/ metrics first, then the latest validation ones: `limit` in all."""
    train = [k for k in values if k.startswith("train/")][:2]
    rest = [k for k in values if not k.startswith("train/")][: limit - len(train)]
    return "  ".join(f"{k}={fmt(values[k])}" for k in train + rest)


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if 1e3 <= abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def metrics_table(title: str, final: dict, best: dict | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("metric")
    table.add_column("final", justify="right")
    if best is not None:
        table.add_column("best", justify="right")
    for key, value in final.items():
        row = [key, fmt(value)]
        if best is not None:
            row.append(fmt(best.get(key, "")))
        table.add_row(*row)
    return table
