"""Wall-clock marks of a run's phases (imports, preflight, Hydra's setup, the experiment, the report),
written into summary.json timing.phases so start-up costs are visible next to the work itself."""

from __future__ import annotations

import time

_marks: dict[str, float] = {}


def mark(name: str) -> None:
    _marks.setdefault(name, time.perf_counter())


def durations() -> dict[str, float]:
    """Seconds between consecutive marks, named by the later mark."""
    names = sorted(_marks, key=_marks.get)
    return {b: round(_marks[b] - _marks[a], 3) for a, b in zip(names, names[1:])}


JOB = ("job", "setup", "experiment", "report")


def start_job() -> None:
    """A new job in this process (the next job of a sweep): its own marks from here."""
    for name in JOB:
        _marks.pop(name, None)
    mark("job")


def reset() -> None:
    _marks.clear()
