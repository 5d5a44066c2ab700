"""Shared test helpers. Tests never touch the network and write only under tmp_path."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["MPLBACKEND"] = "Agg"
os.environ["OMP_NUM_THREADS"] = "1"  # tests run on one thread (and so do the subprocesses they start)

REPO = Path(__file__).resolve().parent.parent
SMOKE = ["experiment=fsq_vs_vq", "scale=smoke", "trainer.progress=false"]


@pytest.fixture
def kexue(tmp_path, capsys):
    """Run the CLI in-process: kexue(*overrides) -> (exit code, output)."""
    from kexue_runs import cli

    def run(*args: str, outputs: Path | None = None) -> tuple[int, str]:
        root = outputs or tmp_path / "outputs"
        argv = list(args)
        if not any(a.startswith("output_root=") for a in argv) and args and args[0] not in ("list", "report", "show"):
            argv.append(f"output_root={root}")
        old = sys.argv
        try:
            sys.argv = ["kexue-run"]
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.argv = old
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


def run_dirs(outputs: Path, experiment: str = "fsq_vs_vq") -> list[Path]:
    return sorted((outputs / "runs" / experiment).glob("*"))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


class ForkedCLI:
    """`python -m kexue_runs.cli` without paying its imports each time: a server (tests/forkcli.py) imports them
    once and forks a real child process per command line. KEXUE_TEST_FORK=0 runs plain subprocesses instead."""

    def __init__(self):
        self.server = None

    def run(self, args: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
        if self.server is None or self.server.poll() is not None:
            self.server = subprocess.Popen([sys.executable, str(REPO / "tests" / "forkcli.py")], cwd=REPO,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.server.stdin.write(json.dumps({"args": list(args), "cwd": str(cwd),
                                            "env": env, "timeout": timeout}) + "\n")
        self.server.stdin.flush()
        reply = json.loads(self.server.stdout.readline())
        if reply.get("timeout"):
            raise subprocess.TimeoutExpired(args, timeout)
        return subprocess.CompletedProcess(args, reply["returncode"], reply["stdout"], reply["stderr"])

    def close(self) -> None:
        if self.server is not None:
            self.server.stdin.close()
            self.server.wait(timeout=60)


FORKED_CLI = ForkedCLI()
atexit.register(FORKED_CLI.close)


def subprocess_cli(*args: str, cwd: Path, timeout: float = 300,
                   env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI as its own process (a kill or a signal ends that process, not the test)."""
    env = os.environ | {"COLUMNS": "200"} | (env or {})
    if os.environ.get("KEXUE_TEST_FORK", "1") == "1":
        return FORKED_CLI.run(list(args), cwd, dict(env), timeout)
    return subprocess.run([sys.executable, "-m", "kexue_runs.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def smoke_run_each(names: list[str], root: Path, overrides: list[str] = ()) -> dict:
    """Each experiment once at scale=smoke (plus `overrides`), in-process on 1 thread: {name: (run folder,
    summary)}."""
    from kexue_runs import cli

    out = {}
    for name in names:
        old = sys.argv
        sys.argv = ["kexue-run"]
        try:
            code = cli.main([f"experiment={name}", "scale=smoke", "trainer.progress=false", "trainer.threads=1",
                             f"output_root={root}", *overrides])
        finally:
            sys.argv = old
        assert code == 0, name
        (run,) = run_dirs(root, name)
        out[name] = (run, summary(run))
    return out


def metrics_rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without its wall-time field: what must be identical across runs of one seed."""
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_bytes(first: tuple, again: tuple) -> None:
    """Two (run folder, summary) pairs of the same config and seed: the same metrics rows and results."""
    (a, sa), (b, sb) = first, again
    assert (a / "metrics.jsonl").exists() == (b / "metrics.jsonl").exists()
    if (a / "metrics.jsonl").exists():  # an experiment that logs no curve writes none
        assert metrics_rows(a) == metrics_rows(b) and metrics_rows(a)
    assert sa["final"] == sb["final"] and sa.get("claim_rows") == sb.get("claim_rows") and sa["final"]


def assert_pinned_numbers(pair: tuple, golden: dict) -> None:
    """A smoke run ended ok, each pinned final metric within its tolerance, and it drew its figures."""
    run, s = pair
    assert s["status"] == "ok", s.get("error")
    for key, (value, tol) in golden.items():
        assert s["final"][key] == pytest.approx(value, abs=tol), key
    assert list((run / "figures").glob("*.png"))


def assert_pinned_verdicts(pair: tuple, pinned: tuple) -> None:
    """A smoke run's verdict per check and overall, as pinned; every check with its basis and source."""
    _, s = pair
    overall, checks = pinned
    assert {c["id"]: c["verdict"] for c in s["checks"]} == checks
    assert s["verdict"] == overall
    assert all(c["basis"] in ("derivation", "empirical", "precondition", "ours") and c["source"] for c in s["checks"])
    # a non-PASS check says why, from the fixed list
    assert all(c["reason"] in ("refuted", "slip", "not_reached", "underpowered", "unstable") for c in s["checks"]
               if c["verdict"] != "PASS")


def pytest_collection_modifyitems(session, config, items):
    """Hand the longest test files to the workers first (tests/durations.json): with `--dist loadfile` the
    workers take whole files in collection order, and a long file taken last leaves the other worker idle.
    Within a file the order is kept. Deterministic: every worker sorts the same way."""
    try:
        seconds = json.loads((Path(__file__).parent / "durations.json").read_text())["files"]
    except (OSError, ValueError, KeyError):
        return
    known = sorted(seconds.values())
    median = known[len(known) // 2] if known else 0.0
    first_seen = {}
    for item in items:
        first_seen.setdefault(item.path.name, len(first_seen))
    items.sort(key=lambda item: (-seconds.get(item.path.name, median), first_seen[item.path.name]))
