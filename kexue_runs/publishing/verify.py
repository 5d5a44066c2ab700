"""Checking and regenerating the ledger.

    kexue-run verify <name> [--scale cpu]     re-run the entry's command at HEAD and compare with the ledger
    kexue-run verify --all [--scale cpu]      every entry: a plan of estimated times, a line per job, resumable
    kexue-run reproduce [--scale cpu]         regenerate the ledger: run what is not current, publish it
    kexue-run publish [...]                   = make figures (scripts/make_figures.py): ledger, README, site

A verification reproduces when every check gives the same verdict and every number the ledger records a
tolerance for stays within it: a check's effect within the half-width of its published 95% interval, a
deterministic value within float noise, each key number within its replicates' interval (or float drift for
a single measurement); wall-clock times are not compared as numbers (their checks' verdicts are). Exit 0:
reproduced; 1: a verdict changed, a number moved outside its tolerance or the run failed (the diff table says
which); 2: bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from .. import config_dir
from ..common.durations import span
from ..common.errors import ConfigError
from .ledger import SCALES, build_entry, read_entries, read_entry, repo_root

STARTUP_S = 5.0  # a kexue-run process's start-up before the run's own wall time (torch import, composing)
REPRODUCED, NUMBERS_MOVED, VERDICT_CHANGED, FAILED = "reproduced", "numbers moved", "verdict changed", "failed"


def estimate(entry: dict | None) -> float | None:
    if entry is None:
        return None
    return float(entry["provenance"]["wall_s"]) + STARTUP_S * max(1, int(entry["provenance"].get("jobs") or 1))


def head() -> str:
    from ..lifecycle.runner import git_sha

    return git_sha()


# -- comparing two entries ---------------------------------------------------------------------------------

# wall-clock times by name; an experiment declares any other metric made of them (a ratio of two timings) in its
# config's meta.timing_metrics
TIMING = re.compile(r"(^|_)(seconds|ms_per_iteration|wall_s)$")


def is_timing(name: str, declared: tuple[str, ...] = ()) -> bool:
    """A key number that is a wall-clock time (`seconds`, `*_ms_per_iteration`, or a metric the experiment declares
    a timing): on another machine, or the same one under load, it moves by any factor; verify compares the
    verdicts of the checks that read it instead."""
    metric = name.split(" [")[0]
    return bool(TIMING.search(metric)) or metric in declared


def declared_timings(name: str) -> tuple[str, ...]:
    """The experiment's meta.timing_metrics (metrics that are timings without a timing's name)."""
    from ..claims.catalog import load_experiment

    path = config_dir() / "experiment" / f"{name}.yaml"
    meta = (load_experiment(path).get("meta") or {}) if path.is_file() else {}
    return tuple(meta.get("timing_metrics") or ())


def within(new, old, tolerance) -> bool:
    if old is None or tolerance is None:
        return True
    if new is None or not math.isfinite(new):
        return False
    return abs(new - old) <= tolerance * (1 + 1e-9) + 1e-300


def compare(old: dict, new: dict, timings: tuple[str, ...] = ()) -> tuple[str, list[dict]]:
    """(status, the rows that differ): each check's verdict, its effect or value against its tolerance, and each
    key number against its tolerance."""
    rows = []
    now = {c["id"]: c for c in new["checks"]}
    for c in old["checks"]:
        n = now.get(c["id"])
        if n is None:
            rows.append({"what": c["id"], "field": "verdict", "published": c["verdict"], "now": "missing",
                         "tolerance": "", "verdict_changed": True})
            continue
        if n["verdict"] != c["verdict"]:
            rows.append({"what": c["id"], "field": "verdict", "published": c["verdict"], "now": n["verdict"],
                         "tolerance": "same verdict", "verdict_changed": True})
        tol = c.get("tolerance") or {}
        if "effect" in tol and not within(n.get("effect"), c.get("effect"), tol["effect"]):
            rows.append({"what": c["id"], "field": "effect", "published": c.get("effect"), "now": n.get("effect"),
                         "tolerance": f"±{tol['effect']:.4g} ({tol.get('from', '')})", "verdict_changed": False})
        if "value" in tol and not within(n.get("value"), c.get("value"), tol["value"]):
            rows.append({"what": c["id"], "field": "value", "published": c.get("value"), "now": n.get("value"),
                         "tolerance": f"±{tol['value']:.4g} ({tol.get('from', '')})", "verdict_changed": False})
    for c in new["checks"]:
        if c["id"] not in {o["id"] for o in old["checks"]}:
            rows.append({"what": c["id"], "field": "verdict", "published": "missing", "now": c["verdict"],
                         "tolerance": "", "verdict_changed": True})
    numbers = {k["name"]: k for k in new["key_numbers"]}
    for k in old["key_numbers"]:
        n = numbers.get(k["name"])
        if is_timing(k["name"], timings):
            continue  # a wall-clock time depends on the machine and its load: its check's verdict is compared
        if n is None or not within(n["value"], k["value"], k["tolerance"]):
            rows.append({"what": k["name"], "field": "key number", "published": k["value"],
                         "now": None if n is None else n["value"],
                         "tolerance": f"±{k['tolerance']:.4g} ({k['tolerance_from']})", "verdict_changed": False})
    if new["verdict"] != old["verdict"]:
        rows.insert(0, {"what": "overall", "field": "verdict", "published": old["verdict"], "now": new["verdict"],
                        "tolerance": "same verdict", "verdict_changed": True})
    status = VERDICT_CHANGED if any(r["verdict_changed"] for r in rows) else NUMBERS_MOVED if rows else REPRODUCED
    return status, rows


def shown(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "-" if value is None else str(value)


def print_diff(rows: list[dict], console) -> None:
    from rich.table import Table

    table = Table(title="what differs from the ledger", title_justify="left")
    for column in ("check or number", "field", "published", "now", "tolerance"):
        table.add_column(column, overflow="fold")
    for r in rows:
        style = "red" if r["verdict_changed"] else "yellow"
        table.add_row(r["what"], r["field"], shown(r["published"]), f"[{style}]{shown(r['now'])}[/]", r["tolerance"])
    console.print(table)


# -- running the ledger's command ---------------------------------------------------------------------------

def run_command(command: str, output_root: Path, log: Path) -> tuple[int, float]:
    """Run a ledger command (`kexue-run ...`) with its outputs under output_root; (exit code, wall seconds)."""
    args = shlex.split(command)[1:] + [f"output_root={output_root.resolve()}", "trainer.progress=false"]
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.run([sys.executable, "-m", "kexue_runs.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                              cwd=repo_root(), env=os.environ | {"COLUMNS": "120"}).returncode
    return code, time.monotonic() - started


def fresh_entry(name: str, scale: str, output_root: Path) -> dict | None:
    from .publish import collect

    (ev,) = collect(output_root, scale, only=[name])
    return build_entry(ev) if ev.kind else None


def verify_one(entry: dict, outputs: Path) -> dict:
    """Re-run one entry's command at HEAD into outputs/verify/..., compare, and write the result beside it."""
    name, scale = entry["experiment"], entry["scale"]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    root = outputs / "verify" / scale / name / stamp
    code, wall = run_command(entry["provenance"]["command"], root, root / "kexue-run.log")
    new = fresh_entry(name, scale, root)
    if new is None:
        status, rows = FAILED, [{"what": "run", "field": "exit code", "published": 0, "now": code,
                                 "tolerance": f"see {root / 'kexue-run.log'}", "verdict_changed": True}]
    else:
        status, rows = compare(entry, new, declared_timings(name))
    result = {"experiment": name, "scale": scale, "status": status, "head": head(), "wall_s": round(wall, 1),
              "estimated_s": estimate(entry), "published_commit": entry["provenance"]["commit"],
              "published": entry["published"], "code_hash": (new or {}).get("provenance", {}).get("code_hash"),
              "published_code_hash": entry["provenance"]["code_hash"], "exit_code": code, "diff": rows,
              "run": str(root), "verified": datetime.now().isoformat(timespec="seconds")}
    (root / "verify.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def summary_line(result: dict) -> str:
    changed = sum(r["verdict_changed"] for r in result["diff"])
    moved = len(result["diff"]) - changed
    detail = {REPRODUCED: "every check the same verdict, every number within its tolerance",
              NUMBERS_MOVED: f"same verdicts; numbers outside their tolerance: {moved}",
              VERDICT_CHANGED: f"{changed} verdict{'s' * (changed != 1)} changed",
              FAILED: "the run failed"}[result["status"]]
    return (f"{result['experiment']} ({result['scale']}): {result['status']} at {result['head']} "
            f"(published at {result['published_commit'][:7]}): {detail}; {span(result['wall_s'])}")


# -- the commands -----------------------------------------------------------------------------------------

def parse(argv: list[str], prog: str, all_flag: bool) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"kexue-run {prog}", add_help=True)
    if all_flag:
        parser.add_argument("name", nargs="?", help="the experiment (or --all)")
        parser.add_argument("--all", action="store_true", help="every ledger entry at the scale, resumable")
        parser.add_argument("--fresh", action="store_true", help="with --all: ignore what an earlier --all verified")
    else:
        parser.add_argument("--only", nargs="+", default=None, metavar="EXPERIMENT")
        parser.add_argument("--threads", type=int, default=1, help="for experiments the ledger lacks (default 1)")
        parser.add_argument("--plan", action="store_true", help="print the plan and stop")
    parser.add_argument("--scale", default=None, choices=list(SCALES))
    parser.add_argument("--outputs", type=Path, default=Path("outputs"))
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code:
            raise ConfigError(f"{prog}: bad arguments (see kexue-run {prog} --help)") from None
        raise


def verify_main(argv: list[str]) -> int:
    from ..common.progress import console

    args = parse(argv, "verify", all_flag=True)
    if args.all == bool(args.name):
        raise ConfigError("verify: give one experiment or --all; usage: kexue-run verify <experiment> "
                          "[--scale cpu] | kexue-run verify --all [--scale cpu]")
    if not args.all:
        entry = read_entry(args.name, args.scale)
        if entry is None:
            published = sorted({f"{e['experiment']} ({e['scale']})" for e in read_entries(args.scale)})
            raise ConfigError(f"verify: no ledger entry for '{args.name}'" + (f" at scale={args.scale}"
                              if args.scale else "") + f"; published: {', '.join(published) or 'none'}")
        console.print(f"verify {args.name} ({entry['scale']}): {entry['provenance']['command']}  "
                      f"(est {span(estimate(entry))})", highlight=False, soft_wrap=True)
        result = verify_one(entry, args.outputs)
        if result["diff"]:
            print_diff(result["diff"], console)
        console.print(summary_line(result), highlight=False, soft_wrap=True)
        return 0 if result["status"] == REPRODUCED else 1
    return verify_all(args.scale or "cpu", args.outputs, args.fresh, console)


def verify_all(scale: str, outputs: Path, fresh: bool, console) -> int:
    from .. import config_dir
    from ..claims.catalog import load_experiment
    from ..lifecycle.codehash import code_hash

    entries = read_entries(scale)
    if not entries:
        raise ConfigError(f"verify --all: no ledger entries at scale={scale}")
    state_path = outputs / "verify" / scale / "all.json"
    state = {} if fresh or not state_path.is_file() else json.loads(state_path.read_text())
    todo, done = [], []
    for e in entries:
        task = load_experiment(config_dir() / "experiment" / f"{e['experiment']}.yaml").get("task", "")
        key = {"published": e["published"], "code_hash": code_hash(task) if task else ""}
        earlier = state.get(e["experiment"])
        if earlier and {k: earlier.get(k) for k in key} == key:
            done.append(e)
        else:
            todo.append((e, key))
    total = sum(estimate(e) for e, _ in todo)
    console.print(f"plan: verify {len(todo)} of {len(entries)} ledger entries at scale={scale} at HEAD {head()}, "
                  f"~{span(total)} (the ledger's wall times + start-up)", highlight=False)
    for e, _ in todo:
        console.print(f"  {e['experiment']:<24} est {span(estimate(e)):>8}   {e['provenance']['command']}",
                      highlight=False, soft_wrap=True)
    for e in done:
        r = state[e["experiment"]]
        console.print(f"  {e['experiment']:<24} skipped: verified earlier ({r['status']} at {r['head']}, same code "
                      f"and ledger entry)", highlight=False, soft_wrap=True)
    started, left, estimated_done = time.monotonic(), total, 0.0
    for k, (e, key) in enumerate(todo, start=1):
        result = verify_one(e, outputs)
        left -= estimate(e)
        estimated_done += estimate(e)
        pace = (time.monotonic() - started) / estimated_done if estimated_done else 1.0  # this machine, now
        state[e["experiment"]] = {**key, "status": result["status"], "head": result["head"],
                                  "wall_s": result["wall_s"], "diff": result["diff"], "run": result["run"]}
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(json.dumps(state, indent=1) + "\n")
        console.print(f"[{k}/{len(todo)}] {e['experiment']}: {result['status']} ({span(result['wall_s'])}, est "
                      f"{span(estimate(e))}); {span(time.monotonic() - started)} elapsed, "
                      f"~{span(max(left, 0) * pace)} left", highlight=False, soft_wrap=True)
        if result["diff"]:
            print_diff(result["diff"], console)
    statuses = {name: r["status"] for name, r in state.items() if name in {e["experiment"] for e in entries}}
    counts = {s: sum(v == s for v in statuses.values()) for s in (REPRODUCED, NUMBERS_MOVED, VERDICT_CHANGED, FAILED)}
    console.print("verify --all: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" (state: {state_path})",
                  highlight=False, soft_wrap=True)
    return 0 if counts[REPRODUCED] == len(statuses) else 1


def canonical_command(name: str, scale: str, threads: int) -> str:
    from .. import config_dir

    if (config_dir() / "sweep" / f"{name}.yaml").is_file():
        return f"kexue-run -m experiment={name} sweep={name} scale={scale} trainer.threads={threads}"
    return f"kexue-run experiment={name} scale={scale} trainer.threads={threads}"


def current(entry: dict | None, name: str, scale: str) -> tuple[bool, str]:
    """(is the entry current, why not): the same code hash and config as the code and configs at HEAD."""
    from omegaconf import OmegaConf

    from .. import config_dir
    from ..claims.catalog import load_experiment
    from ..common import runfiles
    from ..lifecycle.codehash import code_hash
    from ..preflight.validate import compose_job
    from .ledger import sweep_config_hash

    if entry is None:
        return False, "not in the ledger"
    task = load_experiment(config_dir() / "experiment" / f"{name}.yaml").get("task", "")
    if entry["provenance"]["code_hash"] != code_hash(task):
        return False, "its code changed"
    if entry["evidence"] == "sweep":
        config = sweep_config_hash(name, scale)
    else:
        overrides = [a for a in shlex.split(entry["provenance"]["command"])[1:] if a != "-m"]
        config = runfiles.config_hash(OmegaConf.to_container(compose_job(overrides), resolve=True))
    if entry["provenance"]["config_hash"] != config:
        return False, "its config changed"
    return True, ""


def reproduce_main(argv: list[str]) -> int:
    """Regenerate the ledger at a scale: a plan, then each experiment that is not current. A killed reproduce
    publishes what finished; run again, it reuses finished runs that are current and runs the rest."""
    from ..claims.catalog import experiment_files
    from ..common.progress import console
    from .publish import collect
    from .site import publish_results

    args = parse(argv, "reproduce", all_flag=False)
    scale = args.scale or "cpu"
    names = [p.stem for p in experiment_files()]
    unknown = [n for n in args.only or [] if n not in names]
    if unknown:
        raise ConfigError(f"reproduce --only {unknown[0]}: no such experiment; allowed: {', '.join(names)}")
    plan = []
    for name in args.only or names:
        entry = read_entry(name, scale)
        ok, why = current(entry, name, scale)
        command = entry["provenance"]["command"] if entry else canonical_command(name, scale, args.threads)
        plan.append((name, entry, ok, why, command))
    todo = [p for p in plan if not p[2]]
    known = [estimate(p[1]) for p in todo if p[1]]
    console.print(f"plan: {len(todo)} of {len(plan)} experiments to run at scale={scale}, ~{span(sum(known))}"
                  + (f" plus {len(todo) - len(known)} never timed" if len(known) < len(todo) else ""), highlight=False)
    for name, entry, ok, why, command in plan:
        if ok:
            console.print(f"  {name:<24} skipped: current (same code hash and config)", highlight=False)
        else:
            est = span(estimate(entry)) if entry else "unknown"
            console.print(f"  {name:<24} est {est:>8}  ({why})  {command}", highlight=False, soft_wrap=True)
    if args.plan or not todo:
        return 0
    started, failed, finished = time.monotonic(), [], []
    try:
        for k, (name, entry, _, _, command) in enumerate(todo, start=1):
            (ev,) = collect(args.outputs, scale, only=[name])
            wall = 0.0
            if ev.kind and current(build_entry(ev), name, scale)[0]:  # finished by a killed reproduce: reuse it
                how = f"reused {ev.path}"
            else:
                log = args.outputs / "reproduce" / scale / f"{name}.log"
                code, wall = run_command(command, args.outputs, log)
                (ev,) = collect(args.outputs, scale, only=[name])
                if code != 0 or not ev.kind:
                    failed.append(name)
                    console.print(f"[{k}/{len(todo)}] {name}: failed (exit {code}; {log})", highlight=False)
                    continue
                how = f"{span(wall)}, est {span(estimate(entry)) if entry else 'unknown'}"
            finished.append(ev)
            console.print(f"[{k}/{len(todo)}] {name}: {ev.verdict} ({how}); {span(time.monotonic() - started)} "
                          "elapsed", highlight=False, soft_wrap=True)
    finally:
        # published together at the end: a ledger file changed mid-way would mark the later runs' commit dirty
        publish_results(finished, scale, None, None)
    return 1 if failed else 0


def publish_main(argv: list[str]) -> int:
    """`kexue-run publish`: scripts/make_figures.py, the publishing step (`make figures`)."""
    import importlib.util

    script = repo_root() / "scripts" / "make_figures.py"
    spec = importlib.util.spec_from_file_location("make_figures", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)
