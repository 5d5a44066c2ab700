"""Durations as people read them: a clock for progress lines, a rounded span for plans and tables. No imports
beyond the standard library: the run's start-up path (lifecycle/phases.py) uses it."""

from __future__ import annotations


def clock(seconds: float) -> str:
    """h:mm:ss."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def span(seconds: float, minute_decimals: int = 1) -> str:
    """'42 s' under 90 s, minutes under 1.5 h (`minute_decimals` places), hours above."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.{minute_decimals}f} min"
    return f"{seconds / 3600:.1f} h"
