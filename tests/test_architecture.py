"""The package's shape: the layers of ARCHITECTURE.md hold (import-linter's contracts in pyproject.toml), and
every subpackage ships in the wheel."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


CONTRACTS = ("layers", "experiments")  # the ids in pyproject.toml's [tool.importlinter]


def lint_imports(root: Path, contract: str | None = None) -> subprocess.CompletedProcess:
    """import-linter on the kexue_runs package under `root`, with the contracts of root/pyproject.toml (or one)."""
    pytest.importorskip("importlinter", reason="import-linter is a dev dependency: make install")
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"]
    command += ["--contract", contract] if contract else []
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in CONTRACTS:  # each id names a contract that runs (an unknown id is an error)
        assert lint_imports(REPO, contract).returncode == 0, contract


@pytest.mark.parametrize("module, line, contract", [
    ("claims/quantiles.py", "from ..lifecycle import runner", "layers"),  # the claim engine importing upward
    ("common/errors.py", "from ..methods import retry", "layers"),  # the bottom layer importing the next one up
    ("preflight/validate.py", "from ..publishing import publish", "layers"),  # preflight sits below publishing
    ("experiments/tailr.py", "from . import amos", "experiments"),  # one experiment importing another
    ("helpers.py", "", "layers"),  # a new top-level module without a layer (the layers are exhaustive)
])
def test_the_contracts_break_on_a_forbidden_import(tmp_path, module, line, contract):
    """A copy of the package with one forbidden import (found before the installed one: lint-imports runs from
    the copy's folder) fails the named contract."""
    shutil.copytree(REPO / "kexue_runs", tmp_path / "kexue_runs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with open(tmp_path / "kexue_runs" / module, "a") as f:
        f.write(f"\n{line}\n")
    broken = [c for c in CONTRACTS if lint_imports(tmp_path, c).returncode != 0]
    assert broken == [contract]


def test_every_package_folder_is_in_pyprojects_package_list():
    """pyproject names its packages one by one (discovery would drop the mapped configs/ folder); an editable
    install finds a forgotten one anyway, so only a wheel would lack it: this list is the check."""
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "kexue_runs").rglob("__init__.py")}
    assert listed - {"kexue_runs.configs"} == folders
