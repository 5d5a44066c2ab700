"""Wall-clock marks of a run's phases (imports, preflight, Hydra's setup, the experiment, the report),
written into summary.json timing.phases so start-up costs are visible next to the work itself."""

from __future__ import annotations

import time

from ..common.durations import clock

_marks: dict[str, float] = {}


def mark(name: str) -> None:
    _marks.setdefault(name, time.perf_counter())


def durations() -> dict[str, float]:
    """Seconds between consecutive marks, named by the later mark."""
    names = sorted(_marks, key=_marks.get)
    return {b: round(_marks[b] - _marks[a], 3) for a, b in zip(names, names[1:])}


JOB = ("job", "setup", "experiment", "report")


def start_job() -> None:
    """A new job in this process (the next job of a sweep): its own marks from here. Later jobs of a sweep
    show the earlier ones as one phase, `earlier_jobs`, so that `job` stays this job's own Hydra setup."""
    previous_end = _marks.get("report")
    for name in JOB + ("earlier_jobs",):
        _marks.pop(name, None)
    if previous_end is not None:
        _marks["earlier_jobs"] = previous_end
    mark("job")


def reset() -> None:
    _marks.clear()


# -- a sweep's overall progress (sequential launchers: the jobs run in this process) ---------------------
sweep: dict = {}


def start_sweep(total: int) -> None:
    sweep.clear()
    sweep.update(total=total, done=0, statuses={}, start=time.time())


def sweep_line() -> str | None:
    """'job k/N; a ok, b failed; elapsed, eta' before the next job, or None outside a sweep."""
    if not sweep:
        return None
    elapsed = time.time() - sweep["start"]
    done, total = sweep["done"], sweep["total"]
    eta = elapsed / done * (total - done) if done else None
    counts = ", ".join(f"{n} {s}" for s, n in sweep["statuses"].items()) or "none done yet"
    return (f"sweep: job {done + 1}/{total} ({counts}); elapsed {clock(elapsed)}"
            + (f", eta {clock(eta)}" if eta is not None else ""))


def job_done(status: str) -> None:
    if sweep:
        sweep["done"] += 1
        sweep["statuses"][status] = sweep["statuses"].get(status, 0) + 1


