"""The files a run leaves behind, and the only code that reads or writes them.

Aggregation reads these files alone (never the models), so a sweep can be re-reported after a
crash, on another machine, or after a plotting change. Writes are atomic: a kill leaves either
the old file or the new one, never half of one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import yaml

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
REPORT = "report.md"
FIGURES = "figures"

# Overrides that say where or how a run ran, not what it computed (each names a key and everything under it):
# a sweep does not vary over them, a published run may carry them, and its published command drops those
# it does not state itself. The one list the sweep report, the publisher and the ledger read.
RUN_ONLY_OVERRIDES = ("trainer.threads", "trainer.progress", "trainer.device", "output_root", "resume", "logger",
                      "hydra")


def is_run_only(key: str) -> bool:
    """Whether an override's (or a dotted config) key is one of RUN_ONLY_OVERRIDES or under one."""
    key = key.split("=", 1)[0].lstrip("+~")
    return any(key == k or key.startswith((k + ".", k + "/")) for k in RUN_ONLY_OVERRIDES)


# Keys that change where or how a run is shown, not what it computes: left out of the config hash.
NON_SEMANTIC_KEYS = ("resume", "output_root", "trainer.progress", "trainer.device", "trainer.threads",
                     "scale.curves", "hydra", "sweep_grids", "meta", "claim", "reported", "checks", "figure", "threats")


# The experiment's claim apparatus: kept in the experiment file, not copied into every summary.
SPEC_KEYS = ("meta", "claim", "reported", "checks", "figure", "sweep_grids", "threats")


LOCK = ".lock"
_held: dict[str, int] = {}  # run folders this process holds, path -> open descriptor
ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT)


class LockHeld(RuntimeError):
    """Another process holds the run folder."""


def lock_run_dir(run_dir: Path) -> None:
    """Take the run folder's exclusive lock (one writer per folder). The OS releases it when the process
    ends, however it ends, so a SIGKILL never leaves a stale lock. Re-entrant within one process."""
    path = Path(run_dir).resolve() / LOCK
    if str(path) in _held:
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LockHeld(f"{run_dir} is in use by another kexue-run (pid {holder}); wait for it to end or stop it, "
                       f"then run this again") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[str(path)] = fd


def unlock_run_dir(run_dir: Path) -> None:
    fd = _held.pop(str(Path(run_dir).resolve() / LOCK), None)
    if fd is not None:
        os.close(fd)


def is_environment_error(exc: BaseException) -> bool:
    """Disk full, read-only or forbidden: the machine's fault, not the experiment's."""
    return isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(path: Path, obj, before_replace=None) -> None:
    """torch.save through a unique temp file in the same folder, then a rename: a kill or a full disk leaves
    the previous file as it was and no temp file behind. before_replace: a hook (the fault tests' kill)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def checkpoint_problem(path: Path) -> str | None:
    """A cheap look at a checkpoint before anything runs: torch.save writes a zip whose index sits at the end,
    so a file cut short has none. Returns what is wrong, or None (damage inside shows when it is loaded)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return str(exc) or type(exc).__name__
    return None


def unreadable_message(path: Path, reason: str) -> str:
    reason = (reason.strip().splitlines() or ["unreadable"])[0]
    return (f"{path} cannot be read ({reason[:120]}); delete it and resume again (the run restarts from step 0 "
            f"in its folder), or start afresh without resume=")


def to_jsonable(value):
    """Plain JSON: NaN and inf become strings, so every reader can parse the files."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return to_jsonable(value.item())
    return value


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a torn last line after a kill
                break
    return rows


def read_summary(run_dir: Path) -> dict | None:
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        return None
    try:
        return read_json(path)
    except json.JSONDecodeError:
        return None


def config_hash(resolved: dict) -> str:
    """Hash of what a run computes: the resolved config less the non-semantic keys."""
    cfg = json.loads(json.dumps(resolved, default=str))
    for dotted in NON_SEMANTIC_KEYS:
        node, *rest = dotted.split(".")
        parent = cfg
        while rest and isinstance(parent.get(node), dict):
            parent, node, rest = parent[node], rest[0], rest[1:]
        if not rest and isinstance(parent, dict):
            parent.pop(node, None)
    blob = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def saved_overrides(run_dir: Path) -> list[str]:
    """The overrides a run was made with (.hydra/overrides.yaml); ValueError if the file is not a list."""
    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    try:
        items = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"{path} must be a list of key=value strings")
    return items


def newest_claim_report(name: str, outputs: Path = Path("outputs")) -> dict | None:
    """The newest readable claim_report.json of an experiment's sweeps."""
    reports = sorted((Path(outputs) / "sweeps" / name).glob("*/claim_report.json"))
    for path in reversed(reports):
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
    return None
