"""The package's shape: every subpackage ships in the wheel (ARCHITECTURE.md names the layers)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_in_pyprojects_package_list():
    """pyproject names its packages one by one (discovery would drop the mapped configs/ folder); an editable
    install finds a forgotten one anyway, so only a wheel would lack it: this list is the check."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "kexue_runs").rglob("__init__.py")}
    assert listed - {"kexue_runs.configs"} == folders
