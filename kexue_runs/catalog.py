"""`kexue-run list`: every experiment with its post, claim, scales and last verdict.

Reads the experiment YAML files directly (no composition, no torch import), so it is instant.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from rich.table import Table

from . import config_dir
from .progress import console

VERDICT_STYLE = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow"}


def experiment_files() -> list[Path]:
    return sorted((config_dir() / "experiment").glob("*.yaml"))


def load_experiment(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def scales(name: str) -> list[str]:
    order = {"smoke": 0, "cpu": 1, "gpu": 2}
    found = [p.stem for p in (config_dir() / "sizing" / name).glob("*.yaml")]
    return sorted(found, key=lambda s: order.get(s, 9))


def last_report(name: str, outputs: Path = Path("outputs")) -> dict | None:
    """The newest claim report of the experiment's sweeps, else its newest run's own verdict."""
    from .sweeps import newest_claim_report

    return newest_claim_report(name, outputs) or newest_run_verdict(name, outputs)


def last_verdict(name: str, outputs: Path = Path("outputs")) -> str:
    report = last_report(name, outputs)
    if report is None:
        return "-"
    from .claims import overall, stable

    verdict = report.get("verdict") or overall(report["checks"])
    stability = report.get("stability") or stable(report["checks"])
    shown = "unstable" if stability == "unstable" and verdict in ("PASS", "FAIL") else verdict
    style = VERDICT_STYLE.get(shown, "magenta")
    return f"[{style}]{shown}[/] ({report.get('scale', '?')})"


def newest_run_verdict(name: str, outputs: Path) -> dict | None:
    """A run's own verdict (experiments a single run can decide, and the newest run of the others)."""
    from . import runfiles

    for path in sorted((Path(outputs) / "runs" / name).glob(f"*/{runfiles.SUMMARY}"), reverse=True):
        summary = runfiles.read_summary(path.parent)
        if summary and summary.get("checks") and summary.get("status") == "ok":
            return {"checks": summary["checks"], "scale": f"{summary['scale']} run",
                    "verdict": summary.get("verdict"), "stability": summary.get("stability")}
    return None


def print_catalog(outputs: Path = Path("outputs")) -> None:
    table = Table(title="kexue-runs experiments", show_lines=True)
    for column in ("experiment", "post", "claim", "scales", "last verdict"):
        table.add_column(column, overflow="fold")
    for path in experiment_files():
        spec = load_experiment(path)
        posts = (spec.get("meta") or {}).get("posts", [])
        post = "\n".join(f"{p['archive']} {p['title']}" for p in posts)
        headline = (spec.get("meta") or {}).get("headline") or spec.get("claim", "")
        table.add_row(path.stem, post, str(headline).strip(), " ".join(scales(path.stem)),
                      last_verdict(path.stem, outputs))
    console.print(table)


def data_parallel_experiments() -> list[str]:
    """Experiments whose module trains data-parallel under torchrun (DATA_PARALLEL = True)."""
    import importlib

    names = []
    for path in experiment_files():
        spec = load_experiment(path)
        if spec.get("task") and getattr(importlib.import_module(spec["task"]), "DATA_PARALLEL", False):
            names.append(spec["name"])
    return names
