"""Trackers the Hydra way (logger=...): each one's own files read back, a missing package in one line."""

import json

import pytest
from conftest import SMOKE, run_dirs, summary

TB = pytest.importorskip("tensorboard")


def test_tensorboard_and_mlflow_together_get_config_metrics_figures_and_verdicts(kexue, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)
    code, out = kexue(*SMOKE, "logger=[jsonl,tensorboard,mlflow]", "scale.curves=true", outputs=tmp_path / "outputs")
    assert code == 0, out
    (run,) = run_dirs(tmp_path / "outputs")
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    val_mse = {r["step"]: r["mse"] for r in rows if r["split"] == "val"}

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars = {e.step: e.value for e in events.Scalars("val/mse")}
    assert scalars.keys() == val_mse.keys() and all(abs(scalars[k] - v) < 1e-6 for k, v in val_mse.items())
    assert "train/loss" in events.Tags()["scalars"]
    assert {"figures/curves", "figures/reconstructions"} <= set(events.Tags()["images"])
    assert {"config", "verdicts"} <= {t.split("/")[0] for t in events.Tags()["tensors"]}

    import mlflow

    client = mlflow.tracking.MlflowClient((tmp_path / "outputs" / "mlruns").resolve().as_uri())
    run_id = (run / ".mlflow_run_id").read_text().strip()
    history = {m.step: m.value for m in client.get_metric_history(run_id, "val/mse")}
    assert history.keys() == val_mse.keys() and all(abs(history[k] - v) < 1e-6 for k, v in val_mse.items())
    record = client.get_run(run_id)
    assert record.data.params["quantizer.name"] == "fsq" and record.data.tags["verdict"] == summary(run)["verdict"]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    artifacts |= {a.path for a in client.list_artifacts(run_id, "figures")}
    assert "verdicts.md" in artifacts and "figures/curves.png" in artifacts


def test_wandb_offline_writes_its_run_files(kexue, tmp_path):
    pytest.importorskip("wandb")
    code, out = kexue(*SMOKE, "logger=wandb")
    assert code == 0, out
    (run,) = run_dirs(tmp_path / "outputs")
    assert list((run / "wandb").glob("offline-run-*"))


def test_a_missing_tracker_package_is_one_line_and_exit_3(kexue, tmp_path, monkeypatch):
    from kexue_runs.lifecycle import trackers

    monkeypatch.setitem(trackers.PACKAGES, "tensorboard", "no_such_package_kexue")
    code, out = kexue(*SMOKE, "logger=tensorboard")
    assert code == 3 and len(out.strip().splitlines()) == 1 and "make install-trackers" in out
    assert not (tmp_path / "outputs").exists()
