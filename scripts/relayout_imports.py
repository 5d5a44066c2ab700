"""Rewrite imports written for the flat layout of kexue_runs/ (before issue 29) to its subpackages.

    python scripts/relayout_imports.py                      # every tracked .py file; prints each change
    python scripts/relayout_imports.py --check              # only list what would change (exit 1 if anything)
    python scripts/relayout_imports.py --move ledger=publishing.ledger kexue_runs/publishing/ledger.py

For merging a branch that began before the move: git's rename detection carries its edits into the
moved files, but the import lines it added still name the old modules (`from .claims import x` in
what is now kexue_runs/claims/catalog.py). An import that already resolves in the new layout is left
alone, so running it twice changes nothing. `--move old=new` (module names under kexue_runs) adds a
module that the merge brought in at the top and that has since been moved with `git mv`. Imports it
cannot rewrite alone (plain `import kexue_runs.x`, a one-line `from` whose names now live in two
packages but spans lines) are listed for a person. One-off: delete once the old branches are merged.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MOVED = {  # old module (under kexue_runs) -> new
    "errors": "common.errors", "progress": "common.progress", "runfiles": "common.runfiles",
    "costs": "common.costs", "optim": "methods.optim",
    "claims": "claims.engine", "quantiles": "claims.quantiles", "verdicts": "claims.verdicts",
    "report": "claims.report", "figures": "claims.figures", "catalog": "claims.catalog",
    "runner": "lifecycle.runner", "phases": "lifecycle.phases", "faults": "lifecycle.faults",
    "codehash": "lifecycle.codehash", "distributed": "lifecycle.distributed", "trackers": "lifecycle.trackers",
    "sweeps": "lifecycle.sweeps", "validate": "preflight.validate", "publish": "publishing.publish",
}
FROM = re.compile(r"^(\s*from\s+)([.\w]+)(\s+import\b)")
# an old module's name in text (a `_target_`, a mock string, a path in a comment or a doc): rewritten by hand
CLAIMS_MODULES = "|".join(new.split(".")[1] for new in MOVED.values() if new.startswith("claims."))
OLD_NAME = re.compile(r"kexue_runs[./](?:"
                      rf"(?:{'|'.join(old for old in MOVED if old != 'claims')})\b|schema\.yaml|claims\.py\b"
                      rf"|claims\.(?!(?:{CLAIMS_MODULES})\b)\w+)")


def module_path(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def top_level(body: list[ast.stmt]):
    """A module's statements that run at import, through if/try/with blocks but not into functions or classes."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody"):
                yield from top_level(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                yield from top_level(handler.body)


def defines(module: str, name: str) -> bool:
    """`name` is a submodule of `module`, or a top-level name its source binds."""
    if module_path(f"{module}.{name}"):
        return True
    path = module_path(module)
    if path is None:
        return False
    for node in top_level(ast.parse(path.read_text()).body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        for target in targets:
            for n in ast.walk(target):
                if isinstance(n, ast.Name) and n.id == name:
                    return True
    return False


def resolve(package: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    anchor = package.split(".")
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join(anchor + ([node.module] if node.module else []))


def relative(package: str, target: str) -> str:
    here, there = package.split("."), target.split(".")
    common = 0
    while common < min(len(here), len(there)) and here[common] == there[common]:
        common += 1
    return "." * (len(here) - common + 1) + ".".join(there[common:])


def fix_file(path: Path, moved: dict[str, str], write: bool) -> list[str]:
    """The file's imports rewritten to the new layout (in place when `write`); one line per change or problem."""
    new_to_old = {f"kexue_runs.{new}": f"kexue_runs.{old}" for old, new in moved.items()}
    rel = path.relative_to(REPO)
    name = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
    in_package = rel.parts[0] == "kexue_runs"
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    old_name = new_to_old.get(name, name)
    old_package = old_name if path.name == "__init__.py" else old_name.rpartition(".")[0]
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    notes, edits = [], {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            stale = [a.name for a in node.names if a.name.startswith("kexue_runs.") and not module_path(a.name)]
            if stale:
                notes.append(f"{rel}:{node.lineno}: by hand: import {', '.join(stale)}")
            continue
        if not isinstance(node, ast.ImportFrom) or (not node.level and not (node.module or "").startswith(
                "kexue_runs")):
            continue
        base = resolve(package, node)
        if module_path(base) and all(defines(base, a.name) for a in node.names if a.name != "*"):
            continue  # already right in the new layout
        old_base = resolve(old_package, node)
        targets = {}
        for alias in node.names:
            full = f"{old_base}.{alias.name}"
            if full.removeprefix("kexue_runs.") in moved:  # the name is a module that moved
                parent = moved[full.removeprefix("kexue_runs.")].rpartition(".")[0]
                target = "kexue_runs" + (f".{parent}" if parent else "")
            else:
                short = old_base.removeprefix("kexue_runs").lstrip(".")
                target = "kexue_runs." + moved.get(short, short) if short else "kexue_runs"
            targets.setdefault(target, []).append(alias)
        if not all(module_path(t) for t in targets):
            notes.append(f"{rel}:{node.lineno}: by hand: {ast.get_source_segment(source, node)}")
            continue
        spelled = {t: (relative(package, t) if node.level and in_package else t) for t in targets}
        first = lines[node.lineno - 1]
        match = FROM.match(first)
        if len(targets) == 1 and match:
            (target,) = targets
            edits[node.lineno] = match.group(1) + spelled[target] + match.group(3) + first[match.end():]
        elif node.lineno == node.end_lineno and match:
            indent = re.match(r"\s*", first).group(0)
            edits[node.lineno] = "".join(
                f"{indent}from {spelled[t]} import "
                + ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in aliases) + "\n"
                for t, aliases in sorted(targets.items()))
        else:
            notes.append(f"{rel}:{node.lineno}: by hand: {ast.get_source_segment(source, node)}")
            continue
        notes.append(f"{rel}:{node.lineno}: {match.group(2)} -> {', '.join(spelled[t] for t in sorted(targets))}")
    if write and edits:
        path.write_text("".join(edits.get(number, line) for number, line in enumerate(lines, 1)))
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="files to rewrite (default: every tracked .py file)")
    parser.add_argument("--check", action="store_true", help="list what would change, write nothing")
    parser.add_argument("--move", action="append", default=[], metavar="OLD=NEW",
                        help="a module moved since the merge, e.g. ledger=publishing.ledger")
    args = parser.parse_args(argv)
    moved = dict(MOVED)
    for pair in args.move:
        old, _, new = pair.partition("=")
        if not old or not new:
            parser.error(f"--move {pair}: expected OLD=NEW, module names under kexue_runs")
        moved[old] = new
    files = args.files or subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True,
                                         text=True, check=True).stdout.split()
    changed = False
    for file in files:
        for note in fix_file((REPO / file).resolve(), moved, write=not args.check):
            print(note)
            changed = True
    texts = args.files or subprocess.run(["git", "ls-files", "*.py", "*.yaml", "*.md", "*.toml", "Makefile"], cwd=REPO,
                                         capture_output=True, text=True, check=True).stdout.split()
    for file in texts:
        for number, line in enumerate((REPO / file).read_text().splitlines(), 1):
            if OLD_NAME.search(line) and not FROM.match(line):
                print(f"{file}:{number}: by hand (an old name in text): {line.strip()}")
                changed = True
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
