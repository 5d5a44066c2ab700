"""Deterministic fault injection, for tests: faults fire at named points of a run, never by timing.

    KEXUE_FAULT="kill@step:120"             SIGKILL when the 120th training step this process runs ends
                                            (in a fresh run: step 120; in a sweep, counted across its jobs)
    KEXUE_FAULT="kill@checkpoint_write:2"   SIGKILL on the 2nd checkpoint, after the temp file is written
    KEXUE_FAULT="enospc@checkpoint_write:1" the 1st checkpoint write fails with ENOSPC (disk full)
    KEXUE_FAULT="kill@eval"                 SIGKILL at the first evaluation (ctx.track)
    KEXUE_FAULT="kill@report"               SIGKILL after summary.json, before the figures and report
    KEXUE_FAULT="sigterm@step:5"            SIGTERM to itself at step 5 (as Slurm sends before killing)
    KEXUE_FAULT="sigint@step:12"            Ctrl-C at step 12 (SIGINT made deliverable first, as from a terminal)
    KEXUE_FAULT="erofs@writable_probe"      the outputs folder reads as a read-only file system

Several faults are separated by commas. Unset in normal use: then every call is one dict lookup.
"""

from __future__ import annotations

import errno
import os
import signal

_seen: dict[str, int] = {}


def parse(spec: str) -> list[tuple[str, str, int]]:
    """'kill@step:120' -> [('kill', 'step', 120)]; a point without a count fires the first time."""
    out = []
    for item in filter(None, (x.strip() for x in spec.split(","))):
        action, _, where = item.partition("@")
        point, _, count = where.partition(":")
        out.append((action, point, int(count) if count else 1))
    return out


def hit(point: str) -> None:
    """Called at a named point; a fault fires on the n-th visit of its point in this process."""
    spec = os.environ.get("KEXUE_FAULT")
    if not spec:
        return
    _seen[point] = _seen.get(point, 0) + 1
    current = _seen[point]
    for action, where, count in parse(spec):
        if where == point and current == count:
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            elif action == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            elif action == "sigint":
                # a Ctrl-C as a terminal delivers it, whatever this process inherited: a process started from a
                # background job of a non-interactive shell starts with SIGINT ignored (the suite's children did)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
                signal.signal(signal.SIGINT, signal.default_int_handler)
                os.kill(os.getpid(), signal.SIGINT)
            elif action == "enospc":
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            elif action == "erofs":
                raise OSError(errno.EROFS, "Read-only file system (injected)")
