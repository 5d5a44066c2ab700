"""The code a job's numbers depend on, as one hash: the experiment's module, every module of this package it
imports (followed transitively through the source, not through sys.modules), and the runner that seeds and
calls it. A sweep reuses a finished cell when its config hash and this hash match, so a commit that touches
only the docs, the tests, the report or another experiment no longer reruns a whole sweep, while any edit to
the code a cell ran (committed or not) does."""

from __future__ import annotations

import ast
import hashlib
import re
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # kexue_runs/, this file being in kexue_runs/lifecycle/
ALWAYS = ("kexue_runs.lifecycle.runner",)  # seeds, threads, the training-loop context: part of every job's numbers


def module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != PACKAGE.name:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


# the import statements of a source file, parenthesised lists included; parsing only these was 0.08 s less of
# every run's setup than parsing whole files (19 files for a small experiment)
IMPORT_STATEMENT = re.compile(r"^[ \t]*(from[ \t]+[.\w]+[ \t]+import[ \t]*(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)",
                              re.M)


def import_statements(source: str, filename: str) -> ast.Module:
    """The file's import statements, parsed; the whole file where they do not parse alone (a backslash
    continuation, or a docstring line that happens to start with "import")."""
    snippet = "\n".join(m.group(1).rstrip() for m in IMPORT_STATEMENT.finditer(source))
    try:
        return ast.parse(snippet, filename)
    except SyntaxError:
        return ast.parse(source, filename)


def imported(name: str, path: Path, whole_file: bool = False) -> set[str]:
    """This package's modules that `name` (at `path`) imports, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    source = path.read_text()
    tree = ast.parse(source, str(path)) if whole_file else import_statements(source, str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import runfiles`
    return {m for m in found if module_file(m) is not None}


@cache
def code_hash(task: str) -> str:
    """sha256 (16 hex digits) over the sources of `task`'s import closure within the package, plus ALWAYS."""
    todo, seen = [task, *ALWAYS], {}
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or name in seen:
            continue
        seen[name] = path
        todo.extend(imported(name, path))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode() + b"\0" + seen[name].read_bytes() + b"\0")
    return digest.hexdigest()[:16]
