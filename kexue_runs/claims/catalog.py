"""The posts' claims as written: the experiment YAML files read directly (no composition, no torch import), their
scales, and which experiments train data-parallel. What `kexue-run list` and `show` print from them is
publishing/listing.py (it also reads the published ledger)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .. import config_dir


def experiment_files() -> list[Path]:
    return sorted((config_dir() / "experiment").glob("*.yaml"))


def load_experiment(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def scales(name: str) -> list[str]:
    order = {"smoke": 0, "cpu": 1, "gpu": 2}
    found = [p.stem for p in (config_dir() / "sizing" / name).glob("*.yaml")]
    return sorted(found, key=lambda s: order.get(s, 9))


def data_parallel_experiments() -> list[str]:
    """Experiments whose module trains data-parallel under torchrun (DATA_PARALLEL = True)."""
    import importlib

    names = []
    for path in experiment_files():
        spec = load_experiment(path)
        if spec.get("task") and getattr(importlib.import_module(spec["task"]), "DATA_PARALLEL", False):
            names.append(spec["name"])
    return names
