"""Configs through Hydra's compose API: every experiment at every scale, overrides, packaging."""

import subprocess
import sys
import zipfile

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from kexue_runs import config_dir
from kexue_runs.claims.catalog import experiment_files, scales
from kexue_runs.claims.engine import validate_checks

EXPERIMENTS = [p.stem for p in experiment_files()]


def make(overrides):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_at_every_scale(name):
    for scale in scales(name):
        cfg = make([f"experiment={name}", f"scale={scale}"])
        assert cfg.name == name and cfg.scale.name == scale
        assert cfg.meta.posts and cfg.claim and cfg.task
        OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_checks_are_well_formed(name):
    cfg = make([f"experiment={name}"])
    assert validate_checks(OmegaConf.to_container(cfg.checks)) == []


def test_experiment_selects_its_groups_and_scale_sizes_apply():
    cpu = make(["experiment=fsq_vs_vq"])
    smoke = make(["experiment=fsq_vs_vq", "scale=smoke"])
    assert cpu.quantizer.name == "fsq" and cpu.model.name == "conv_ae" and cpu.data.name == "photo_patches"
    assert smoke.trainer.steps < cpu.trainer.steps
    # a command-line value wins over the scale's
    assert make(["experiment=fsq_vs_vq", "scale=smoke", "trainer.steps=7"]).trainer.steps == 7
    assert make(["experiment=fsq_vs_vq", "quantizer=vq_rotation"]).quantizer.name == "vq_rotation"


def test_configs_ship_inside_the_wheel(tmp_path):
    """A non-editable install finds its configs: build the wheel and import from it alone."""
    repo = config_dir().parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(repo)], check=True, capture_output=True, timeout=240)
    wheel = next((tmp_path / "dist").glob("kexue_runs-*.whl"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import kexue_runs, sys; from kexue_runs.claims.catalog import experiment_files; "
             "d = kexue_runs.config_dir(); print(d); assert str(d).startswith(sys.argv[1]); "
             "assert [p.stem for p in experiment_files()]; import importlib, pkgutil; "
             "[importlib.import_module(m.name) for m in pkgutil.walk_packages(kexue_runs.__path__, 'kexue_runs.')]")
    out = subprocess.run([sys.executable, "-c", probe, str(site)], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "site/kexue_runs/configs" in out.stdout
