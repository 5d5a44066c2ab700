"""Rich console output: progress bars with live metrics and the closing table."""

from __future__ import annotations

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

console = Console()


def make_progress(enabled: bool = True) -> Progress:
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
    return "  ".join(f"{k}={fmt(v)}" for k, v in list(values.items())[:limit])


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
