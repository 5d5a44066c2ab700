"""Adding a numeric post takes three files: its experiment config (with its own schema rules), its module and
its test. The template in docs/add_a_post/ runs as a new user would add it, with nothing else touched."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_dirs, summary

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "docs" / "add_a_post"


def test_the_template_is_three_files():
    assert sorted(p.name for p in TEMPLATE.iterdir() if p.suffix in (".py", ".yaml")) == [
        "example_post.py", "example_post.yaml", "test_example_post.py"]
    compile((TEMPLATE / "test_example_post.py").read_text(), "test_example_post.py", "exec")


def test_a_new_numeric_post_runs_from_its_config_and_module_alone(tmp_path):
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    before = {p.relative_to(configs) for p in configs.rglob("*")}
    shutil.copy(TEMPLATE / "example_post.yaml", configs / "experiment" / "example_post.yaml")
    modules = tmp_path / "modules"
    modules.mkdir()
    shutil.copy(TEMPLATE / "example_post.py", modules / "example_post.py")
    added = {p.relative_to(configs) for p in configs.rglob("*")} - before
    assert added == {Path("experiment/example_post.yaml")}  # no schema, sizing or catalog file to edit
    env = os.environ | {"KEXUE_CONFIG_DIR": str(configs), "PYTHONPATH": f"{modules}{os.pathsep}{ROOT}",
                        "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "outputs"
    done = subprocess.run([sys.executable, "-m", "kexue_runs.cli", "experiment=example_post", "sim.samples=1000",
                           "trainer.progress=false", f"output_root={out}"], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (run,) = run_dirs(out, "example_post")
    s = summary(run)
    assert s["final"]["quadrature_minus_third"] == pytest.approx(0.0, abs=1e-15)
    assert s["final"]["z"] == pytest.approx(1.5845551416037333, abs=1e-9)  # seeded numpy: exact
    assert {c["id"]: c["verdict"] for c in s["checks"]} == {"closed_form": "PASS", "monte_carlo_agrees": "PASS"}
    # its own schema block covers its keys, and a bad value is refused with one line
    bad = subprocess.run([sys.executable, "-m", "kexue_runs.cli", "experiment=example_post", "sim.samples=3",
                          f"output_root={out}"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert bad.returncode == 2 and "sim.samples=3: must be >= 10" in bad.stdout + bad.stderr
