"""Experiment trackers, the Hydra way: each file in configs/logger/ names a class here with `_target_`;
pick one or several (`logger=tensorboard`, `logger=[tensorboard,mlflow]`). metrics.jsonl is written
whatever is chosen (`jsonl`, the default, adds nothing to it). Every tracker gets the resolved config,
every logged metric with its step and split, the run's figures and its verdict table. The packages are
optional (`make install-trackers`), imported when a tracker is built, and named in one line if missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from ..common.errors import EnvironmentFailure

PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def require(package: str, logger: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise EnvironmentFailure(f"logger={logger} needs the {package} package, which is not installed; "
                                 f"make install-trackers (pip install -e '.[trackers]'), or drop logger={logger}")


def check_available(logger_cfg) -> None:
    """Preflight: every chosen tracker's package is importable (before anything is written)."""
    for name in (logger_cfg or {}):
        if name in PACKAGES:
            require(PACKAGES[name], name)


class Tracker:
    """The interface: all methods are optional no-ops."""

    def log_config(self, config: dict) -> None: ...

    def log_metrics(self, step: int, split: str, values: dict[str, float]) -> None: ...

    def log_figure(self, name: str, path: Path) -> None: ...

    def log_verdicts(self, report: dict) -> None: ...

    def close(self) -> None: ...


class JsonlLogger(Tracker):
    """metrics.jsonl, which the runner always writes: nothing more to do."""

    def __init__(self, run_dir: Path, experiment: str, **_):
        pass


def verdict_rows(report: dict) -> list[dict]:
    return [{"check": c["id"], "basis": c.get("basis"), "verdict": c["verdict"], "ours": c.get("observed", ""),
             "post": str(c.get("reported", ""))} for c in report.get("checks") or []]


def verdict_text(report: dict) -> str:
    lines = [f"overall: {report.get('verdict')} ({report.get('by_basis')})", "",
             "| check | basis | verdict | ours | the post's |", "|---|---|---|---|---|"]
    lines += [f"| {r['check']} | {r['basis']} | {r['verdict']} | {r['ours']} | {r['post']} |"
              for r in verdict_rows(report)]
    return "\n".join(lines)


class TensorBoardLogger(Tracker):
    """torch.utils.tensorboard: scalars as <split>/<metric>, figures as images, config and verdicts as text."""

    def __init__(self, run_dir: Path, experiment: str, dir: str = "tensorboard", **_):
        require("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / dir))

    def log_config(self, config: dict) -> None:
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=1, default=str) + "\n```")

    def log_metrics(self, step, split, values) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{split}/{name}", value, step)

    def log_figure(self, name, path) -> None:
        import numpy as np
        from PIL import Image

        image = np.asarray(Image.open(path).convert("RGB"))
        self.writer.add_image(f"figures/{name}", image, dataformats="HWC")

    def log_verdicts(self, report) -> None:
        self.writer.add_text("verdicts", verdict_text(report))

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class MLflowLogger(Tracker):
    """mlflow with a local file store (default: <output_root>/mlruns): params, metrics per step, figures
    and the verdict table as artifacts. A resumed run continues the same mlflow run."""

    def __init__(self, run_dir: Path, experiment: str, store: str = "outputs/mlruns", tracking_uri: str | None = None,
                 **_):
        require("mlflow", "mlflow")
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the local file store, no server
        import mlflow

        self.mlflow = mlflow
        self.client = mlflow.tracking.MlflowClient(tracking_uri or Path(store).resolve().as_uri())
        existing = self.client.get_experiment_by_name(experiment)
        experiment_id = existing.experiment_id if existing else self.client.create_experiment(experiment)
        marker = Path(run_dir) / ".mlflow_run_id"
        if marker.exists():
            self.run_id = marker.read_text().strip()
        else:
            self.run_id = self.client.create_run(experiment_id, run_name=Path(run_dir).name).info.run_id
            marker.write_text(self.run_id + "\n")

    def log_config(self, config: dict) -> None:
        from ..claims.engine import flatten

        for key, value in list(flatten(config).items())[:500]:
            self.client.log_param(self.run_id, key[:250], str(value)[:500])

    def log_metrics(self, step, split, values) -> None:
        for name, value in values.items():
            self.client.log_metric(self.run_id, f"{split}/{name}", value, step=step)

    def log_figure(self, name, path) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path="figures")

    def log_verdicts(self, report) -> None:
        self.client.log_text(self.run_id, verdict_text(report), "verdicts.md")
        self.client.set_tag(self.run_id, "verdict", str(report.get("verdict")))

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class WandbLogger(Tracker):
    """Weights & Biases, offline by default (mode: offline; `wandb sync` uploads later)."""

    def __init__(self, run_dir: Path, experiment: str, project: str = "kexue-runs", mode: str = "offline", **_):
        require("wandb", "wandb")
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=project, name=f"{experiment}/{Path(run_dir).name}", dir=str(run_dir),
                              mode=mode, reinit="create_new", resume="allow", id=Path(run_dir).name)

    def log_config(self, config: dict) -> None:
        self.run.config.update(config, allow_val_change=True)

    def log_metrics(self, step, split, values) -> None:
        self.run.log({f"{split}/{k}": v for k, v in values.items()}, step=step)

    def log_figure(self, name, path) -> None:
        self.run.log({f"figures/{name}": self.wandb.Image(str(path))})

    def log_verdicts(self, report) -> None:
        rows = verdict_rows(report)
        if rows:
            self.run.log({"verdicts": self.wandb.Table(columns=list(rows[0]), data=[list(r.values()) for r in rows])})
        self.run.summary["verdict"] = report.get("verdict")

    def close(self) -> None:
        self.run.finish()


def make_trackers(logger_cfg, run_dir: Path, experiment: str) -> list[Tracker]:
    """Instantiate every chosen tracker (configs/logger/<name>.yaml, merged under logger.<name>)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    trackers = []
    for spec in (OmegaConf.to_container(logger_cfg, resolve=True) if logger_cfg else {}).values():
        if not isinstance(spec, dict) or "_target_" not in spec:
            continue
        trackers.append(instantiate(spec, run_dir=Path(run_dir), experiment=experiment, _convert_="all"))
    return trackers
