"""The results ledger: what we publish, as data that travels with the code.

    results/<scale>/<experiment>.json      one entry per experiment and scale (results/ledger.schema.json)
    results/<scale>/<experiment>/*.png     its figures, size-capped

The scale is a folder rather than a suffix: an experiment may be published at cpu and gpu, and
`results/cpu/` is then the whole cpu ledger, which `make reproduce SCALE=cpu` regenerates.

An entry is written by the publishing step (`make figures`, `kexue-run publish`) from the evidence
publish.collect picks (a complete canonical sweep, else the newest finished run) and holds the overall
verdict with its reason, every check (basis, replicates, ours beside the post's, verdict, reason, test
and CI, the tolerance a re-run must meet), the key numbers with theirs, and provenance (commit, code
hash, config hash, the exact command, seeds, wall time, date, CPU, threads, torch, Python, platform).
Fields the claim engine does not give yet (a check's `reason` and `unit`, the report's `reason` and
`counts`) are derived here and marked `"reason_from": "ledger"`, so the entry reads the same before and
after the engine gives them.
"""

from __future__ import annotations

import json
import math
import platform
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from .. import config_dir
from ..common import runfiles

SCHEMA_VERSION = 1
SCALES = ("smoke", "cpu", "gpu")
FIGURE_BYTES = 150_000  # per figure; the whole results/ folder stays under a few MB
MAX_KEY_NUMBERS = 80
EXACT_RTOL = 1e-6  # a deterministic number: the same up to float noise across machines
DRIFT_RTOL = 1e-4  # a single measured number without replicates: float32 drift across CPUs only
# run-only overrides the published command keeps: the numbers depend on the thread count and the device
STATED_IN_COMMAND = ("trainer.threads", "trainer.device")
REASONS = ("refuted", "slip", "not_reached", "underpowered", "unstable")


def repo_root() -> Path:
    return config_dir().parent


def ledger_root() -> Path:
    """results/ in the repository; $KEXUE_RESULTS_DIR elsewhere (a scratch ledger: tests, trials)."""
    import os

    return Path(os.environ["KEXUE_RESULTS_DIR"]) if os.environ.get("KEXUE_RESULTS_DIR") else repo_root() / "results"


def is_repository_ledger(root: Path) -> bool:
    return Path(root).resolve() == (repo_root() / "results").resolve()


def schema_path() -> Path:
    return repo_root() / "results" / "ledger.schema.json"


def entry_path(name: str, scale: str, root: Path | None = None) -> Path:
    return (root or ledger_root()) / scale / f"{name}.json"


def read_entries(scale: str | None = None, root: Path | None = None) -> list[dict]:
    """Every ledger entry (at one scale, or all), sorted by experiment then scale."""
    root = root or ledger_root()
    found = []
    for path in sorted(root.glob(f"{scale or '*'}/*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            continue
    return sorted(found, key=lambda e: (e.get("experiment", ""), SCALES.index(e["scale"])
                                        if e.get("scale") in SCALES else 9))


def read_entry(name: str, scale: str | None = None, root: Path | None = None) -> dict | None:
    """The entry of `name` at `scale`; without a scale, the one at the largest published scale."""
    entries = [e for e in read_entries(scale, root) if e.get("experiment") == name]
    return entries[-1] if entries else None


def published_mark(entry: dict) -> str:
    """How the catalog marks a verdict read from the ledger: "published, commit abc1234, 2026-12-08"."""
    prov = entry.get("provenance") or {}
    return f"published, commit {str(prov.get('commit', '?'))[:7]}, {prov.get('date', '?')}"


def differences(entry: dict, report: dict) -> list[tuple[str, str, str]]:
    """(check id, published verdict, local verdict) where a local report and the ledger entry disagree."""
    local = {c["id"]: c.get("verdict") for c in report.get("checks") or []}
    published = {c["id"]: c.get("verdict") for c in entry.get("checks") or []}
    return [(i, published.get(i, "-"), local.get(i, "-")) for i in dict.fromkeys([*published, *local])
            if published.get(i) != local.get(i)]


def as_report(entry: dict) -> dict:
    """An entry in the shape verdicts.print_verdicts reads."""
    checks = [{"id": c["id"], "basis": c["basis"], "observed": c["ours"], "stat": c["test"],
               "needs": c.get("needs", ""), "note": c.get("note", ""), "reported": c["reported"],
               "verdict": c["verdict"], "leans": c.get("leans", ""), "stability": c.get("stability", "")}
              for c in entry.get("checks") or []]
    return {"experiment": entry["experiment"], "scale": f"{entry['scale']}, {published_mark(entry)}",
            "verdict": entry["verdict"], "by_basis": entry.get("by_basis") or {}, "stability": entry["stability"],
            "checks": checks}


def print_published(name: str, report: dict | None, console) -> bool:
    """`kexue-run show`: without local results, the ledger's table (True); with them, a line on where they and
    the ledger differ, after the local table (False: the caller prints that table)."""
    from ..claims.verdicts import print_verdicts

    entry = read_entry(name)
    if entry is None:
        return False
    mark = published_mark(entry)
    if report is None:
        print_verdicts(as_report(entry), console)
        console.print(f"{mark}: {entry['reason']}\nreproduce: {entry['provenance']['command']}   compare: "
                      f"kexue-run verify {name}", highlight=False, soft_wrap=True)
        return True
    diffs = differences(entry, report)
    if diffs:
        console.print(f"the ledger ({mark}, {entry['scale']}) says {entry['shown']}; the local results differ in "
                      + ", ".join(f"{i} ({a} published, {b} here)" for i, a, b in diffs), highlight=False,
                      soft_wrap=True)
    else:
        console.print(f"the ledger ({mark}, {entry['scale']}): the same verdict per check", highlight=False)
    return False


# -- reading the engine's checks --------------------------------------------------------------------------

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|nan|[-+]?inf"


def parse_stat(stat: str) -> tuple[float | None, list[float] | None]:
    """(effect, [lo, hi]) from a check's test text ("paired t, n=10, 95% CI, effect 0.05, CI [0.03, 0.07]")."""
    effect = re.search(rf"effect ({NUMBER})", stat or "")
    ci = re.search(rf"CI \[({NUMBER}), ({NUMBER})\]", stat or "")
    as_float = lambda s: float(s) if s is not None else None  # noqa: E731
    return (as_float(effect.group(1)) if effect else None,
            [float(ci.group(1)), float(ci.group(2))] if ci else None)


def replicate_unit(check: dict) -> str:
    """What one replicate of the check is: the engine's `unit` when it gives one, else read from its test."""
    if check.get("unit"):
        return str(check["unit"])
    text = f"{check.get('stat', '')} {check.get('stability', '')}"
    if (check.get("stat") or "").startswith("exact") or "every difference equal" in text:
        return "deterministic"
    for unit in ("seed", "shard", "replicate"):
        if f"{unit}s" in text or f"{unit} " in text:
            return unit
    return "replicate"


def check_reason(check: dict) -> tuple[str | None, str]:
    """(reason of a non-PASS check, who gave it): the engine's when it gives one, else derived."""
    if check.get("reason"):
        return check["reason"], "engine"
    verdict = check.get("verdict")
    if verdict in ("PASS", "N/A"):
        return None, "ledger"
    if str(check.get("stability", "")).startswith("unstable"):
        return "unstable", "ledger"
    if str(check.get("note", "")).startswith("precondition not met") or verdict == "NOT REACHED":
        return "not_reached", "ledger"
    if verdict == "FAIL":
        return ("slip" if check.get("basis") == "derivation" else "refuted"), "ledger"
    return "underpowered", "ledger"


def count_verdicts(checks: list[dict]) -> dict:
    counts: dict = defaultdict(lambda: defaultdict(int))
    for c in checks:
        counts[c.get("basis", "empirical")][c.get("verdict", "")] += 1
    return {basis: dict(v) for basis, v in counts.items()}


def overall_reason(verdict: str, checks: list[dict]) -> str:
    """One line on the overall verdict, in the engine's style: "FAIL: refuted in x; 6 of 6 derivation checks
    PASS"."""
    deciding = [c for c in checks if c.get("basis", "empirical") != "ours"]
    against = [c for c in deciding if c.get("verdict") != "PASS" and c.get("verdict") != "N/A"]
    head = verdict
    if against:
        by_reason = defaultdict(list)
        for c in against:
            by_reason[c.get("reason") or "undecided"].append(c["id"])
        head += ": " + "; ".join(f"{reason} in {', '.join(ids[:3])}" + (f" (+{len(ids) - 3})" if len(ids) > 3 else "")
                                 for reason, ids in by_reason.items())
    tallies = []
    for basis in ("derivation", "empirical"):
        chosen = [c for c in deciding if c.get("basis", "empirical") == basis]
        if chosen:
            passed = sum(c.get("verdict") == "PASS" for c in chosen)
            tallies.append(f"{passed} of {len(chosen)} {basis} checks PASS")
    return head + ("; " if against else ": " if tallies else "") + "; ".join(tallies)


def ledger_check(check: dict, final: dict) -> dict:
    """A check as published, with the numbers a re-run is compared on and their tolerances."""
    effect, ci = parse_stat(check.get("stat", ""))
    reason, reason_from = check_reason(check)
    value = final.get(check.get("metric")) if isinstance(final.get(check.get("metric")), (int, float)) else None
    unit = replicate_unit(check)
    if ci is not None and effect is not None and all(math.isfinite(x) for x in ci):
        # the 95% CI's half-width: a re-run whose effect moves further than the replicates' spread allows
        tolerance = {"effect": round((ci[1] - ci[0]) / 2, 12), "from": "half-width of the 95% CI"}
    elif unit == "deterministic" and value is not None and math.isfinite(value):
        tolerance = {"value": max(abs(value) * EXACT_RTOL, 1e-12), "from": "deterministic: float noise only"}
    else:
        tolerance = None
    return {
        "id": check["id"], "kind": check.get("kind", ""), "basis": check.get("basis", "empirical"),
        "source": str(check.get("source", "")), "statement": str(check.get("statement", "")),
        "metric": str(check.get("metric", "")), "unit": unit, "replicates": replicates(check),
        "ours": str(check.get("observed") or ""), "value": finite(value),
        "reported": str(check.get("reported", "")), "verdict": check.get("verdict", ""),
        "reason": reason, "reason_from": reason_from, "leans": check.get("leans") or "",
        "note": str(check.get("note") or ""), "needs": str(check.get("needs") or ""),
        "stability": str(check.get("stability") or ""), "test": str(check.get("stat") or ""),
        "effect": finite(effect), "ci": ci if ci and all(math.isfinite(x) for x in ci) else None,
        "tolerance": tolerance,
    }


def replicates(check: dict) -> int:
    """How many replicates the test used (its n), else how many jobs fed the check."""
    found = re.findall(r"\bn=(\d+)(?:\+(\d+))?", check.get("stat") or "")
    if found:
        return max(int(a) + int(b or 0) for a, b in found)
    return int(check.get("n") or 0)


def finite(x):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def key_numbers(final: dict, claim_rows: list[dict], metrics=()) -> list[dict]:
    """The numbers behind the checks: each cell of the run's replicate rows (mean, n, spread, tolerance = the
    half-width of its 95% interval), then the run's scalar metrics (deterministic or one measurement). A row's
    non-float values label its cell, except a check's metric (`metrics`): an integer count such as `modes` is a
    number, not a label (as a label it differed from seed to seed and run to run)."""
    from ..claims.engine import REPLICATE_KEYS, t_quantile

    out = []
    cells: dict = defaultdict(list)
    metrics = set(metrics)
    for row in claim_rows or []:
        label = ", ".join(f"{k}={v}" for k, v in row.items()
                          if k not in REPLICATE_KEYS and not isinstance(v, float) and k != "job" and k not in metrics)
        for k, v in row.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in REPLICATE_KEYS \
                    and math.isfinite(v) and (isinstance(v, float) or k in metrics):
                cells[(label, k)].append(float(v))
    for (label, metric), values in cells.items():
        n = len(values)
        mean = sum(values) / n
        if n > 1:
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
            tol = t_quantile(0.05, n - 1) * std / math.sqrt(n)
            tol_from = f"half-width of the 95% interval over {n} replicates"
        else:
            std, tol, tol_from = None, max(abs(mean) * DRIFT_RTOL, 1e-12), "one measurement: float drift only"
        out.append({"name": f"{metric} [{label}]" if label else metric, "value": mean, "n": n, "std": std,
                    "tolerance": max(tol, abs(mean) * EXACT_RTOL, 1e-12), "tolerance_from": tol_from})
    for metric, value in (final or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and not metric.startswith("train/"):
            out.append({"name": metric, "value": value, "n": 1, "std": None,
                        "tolerance": max(abs(value) * DRIFT_RTOL, 1e-12),
                        "tolerance_from": "one measurement: float drift only"})
    return out[:MAX_KEY_NUMBERS]


# -- provenance ------------------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def published_command(overrides: list[str], name: str, scale: str, threads, multirun: bool) -> str:
    """The command that reproduces it: the run's own overrides less the ones that only say where or how it
    printed, with its scale and thread count stated (the numbers depend on the thread count)."""
    keep = [o for o in overrides or ()
            if not runfiles.is_run_only(o) or o.split("=", 1)[0].lstrip("+~") in STATED_IN_COMMAND]
    keys = {o.split("=", 1)[0] for o in keep}
    if "experiment" not in keys:
        keep.insert(0, f"experiment={name}")
    if "scale" not in keys:
        keep.append(f"scale={scale}")
    if "trainer.threads" not in keys and threads:
        keep.append(f"trainer.threads={threads}")
    return "kexue-run " + ("-m " if multirun else "") + " ".join(keep)


def provenance(summaries: list[dict], command: str, source: Path, wall_s: float, config_hash: str) -> dict:
    envs = [s.get("environment") or {} for s in summaries]
    env = envs[0] if envs else {}
    here = env.get("host") == platform.node()
    commits = sorted({str(e.get("git_sha", "")) for e in envs if e.get("git_sha")})
    code_hashes = sorted({str(e.get("code_hash", "")) for e in envs if e.get("code_hash")})
    seeds = sorted({int(s["seed"]) for s in summaries if s.get("seed") is not None})
    ended = max((str(s.get("ended") or s.get("started") or "") for s in summaries), default="")
    return {
        "commit": commits[0].removesuffix("-dirty") if commits else "unknown",
        "dirty": any(c.endswith("-dirty") for c in commits),
        "commits": commits,
        "code_hash": code_hashes[0] if len(code_hashes) == 1 else ",".join(code_hashes),
        "config_hash": config_hash,
        "command": command,
        "seeds": seeds,
        "jobs": len(summaries),
        "wall_s": round(wall_s, 1),
        "date": ended[:10],
        "ended": ended,
        # the machine that ran it: read here only when this is that machine, else what the run recorded
        "cpu_model": cpu_model() if here else str(env.get("device_name", "unknown")),
        "threads": int(env.get("threads") or 0),
        "device": str(env.get("device", "cpu")),
        "torch": str(env.get("torch", "")),
        "python": str(env.get("python", "")),
        "platform": platform.platform() if here else "unknown",
        "source": str(source),
    }


def sweep_config_hash(name: str, scale: str) -> str:
    """What a canonical sweep's jobs are composed from that can change between commits: the experiment's
    config, its sweep grid and its sizing at this scale."""
    import hashlib

    digest = hashlib.sha256()
    for path in (config_dir() / "experiment" / f"{name}.yaml", config_dir() / "sweep" / f"{name}.yaml",
                 config_dir() / "sizing" / name / f"{scale}.yaml"):
        digest.update(path.name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return digest.hexdigest()[:16]


# -- building and writing an entry ------------------------------------------------------------------------

def build_entry(ev, report: dict | None = None) -> dict:
    """The ledger entry of a publish.Evidence (kind "run" or "sweep"). `report` is the sweep's claim report
    when the caller has it already."""
    from ..lifecycle.sweeps import aggregate, load_jobs

    spec = ev.spec
    if ev.kind == "sweep":
        report = report or aggregate(ev.path, quiet=True)
        summaries = load_jobs(ev.path)
        final, claim_rows = {}, []
        threads = next(((s.get("environment") or {}).get("threads") for s in summaries), None)
        common = sorted(set.intersection(*(set(s.get("overrides") or ()) for s in summaries))) if summaries else []
        base = [o for o in common if o.split("=", 1)[0] in ("experiment", "sweep", "scale", "trainer.threads")]
        command = published_command(base or [f"sweep={ev.name}"], ev.name, ev.scale, threads, multirun=True)
        config_hash = sweep_config_hash(ev.name, ev.scale)
        wall = sum((s.get("timing") or {}).get("wall_s") or 0 for s in summaries)
    else:
        summary = runfiles.read_summary(ev.path)
        summaries = [summary]
        report = {k: summary.get(k) for k in ("verdict", "by_basis", "stability", "reason", "reason_text", "counts",
                                              "command")}
        report["checks"] = summary.get("checks") or []
        final, claim_rows = summary.get("final") or {}, summary.get("claim_rows") or []
        command = published_command(summary.get("overrides"), ev.name, ev.scale,
                                    (summary.get("environment") or {}).get("threads"), multirun=False)
        config_hash = str(summary.get("config_hash", ""))
        wall = (summary.get("timing") or {}).get("wall_s") or 0
    checks = [ledger_check(c, final) for c in report.get("checks") or []]
    verdict = report.get("verdict") or "INCONCLUSIVE"
    stability = str(report.get("stability") or "-")
    posts = [{"archive": p.get("archive"), "title": str(p.get("title", "")), "url": str(p.get("url", ""))}
             for p in (spec.get("meta") or {}).get("posts") or []]
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": ev.name,
        "scale": ev.scale,
        "posts": posts,
        "headline": str((spec.get("meta") or {}).get("headline", "")),
        "claim": " ".join(str(spec.get("claim") or "").split()),
        "reported": [{k: str(r.get(k, "")) for k in ("what", "value", "source", "setup")}
                     for r in spec.get("reported") or []],
        "evidence": ev.kind,
        "verdict": verdict,
        "shown": verdict,  # a check that did not hold on a held-out half is already INCONCLUSIVE (unstable)
        "reason": str(report.get("reason_text") or overall_reason(verdict, checks)),
        "reason_type": report.get("reason") or None,
        "reason_from": "engine" if report.get("reason_text") else "ledger",
        "stability": stability,
        "by_basis": report.get("by_basis") or {},
        "counts": report.get("counts") or count_verdicts(checks),
        "checks": checks,
        "key_numbers": key_numbers(final, claim_rows, {c.get("metric") for c in report.get("checks") or []}),
        "threats": [str(t) for t in spec.get("threats") or []],
        "to_decide_the_rest": report.get("command") or None,
        "figures": [],
        "provenance": provenance(summaries, command, relative(ev.path), wall, config_hash),
        "published": datetime.now().isoformat(timespec="seconds"),
    }


def relative(path) -> str:
    try:
        return str(Path(path).resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)


def small_png(source: Path, target: Path, cap: int = FIGURE_BYTES) -> None:
    """A copy of a figure under `cap` bytes: 256 colours (plots have few), then halved until it fits."""
    from PIL import Image

    with Image.open(source) as img:
        img = img.convert("RGB")
        while True:
            img.quantize(256).save(target, format="PNG", optimize=True)
            if target.stat().st_size <= cap or min(img.size) < 64:
                return
            img = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.LANCZOS)


def write_entry(entry: dict, figures: list[Path], root: Path | None = None) -> Path:
    """Write the entry and its figures (replacing the experiment's old figures at that scale)."""
    from ..common.runfiles import atomic_write_text

    root = root or ledger_root()
    path = entry_path(entry["experiment"], entry["scale"], root)
    fig_dir = path.with_suffix("")
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):
        old.unlink()
    entry["figures"] = []
    for fig in figures:
        name = fig.name if fig.name != "figure.png" else f"{entry['experiment']}.png"
        small_png(fig, fig_dir / name)
        entry["figures"].append(f"{fig_dir.name}/{name}")
    if not entry["figures"]:
        fig_dir.rmdir()
    atomic_write_text(path, json.dumps(entry, indent=1, ensure_ascii=False) + "\n")
    return path


# overrides a published run may have besides the run-only ones (runfiles.RUN_ONLY_OVERRIDES: where and how it
# ran; `resume` continues the same run from its own saved config, to the same numbers): the seed is in the command
PUBLISHABLE_OVERRIDES = ("experiment", "scale", "seed")


def ad_hoc_overrides(ev) -> list[str]:
    """A run's overrides that change what the experiment computes: such a run is not the published one."""
    if ev.kind != "run":
        return []  # publish.collect takes only complete canonical sweeps
    summary = runfiles.read_summary(ev.path) or {}
    return [o for o in summary.get("overrides") or []
            if o.split("=", 1)[0].lstrip("+~") not in PUBLISHABLE_OVERRIDES and not runfiles.is_run_only(o)]


def publish(evidence: list, root: Path | None = None, log=print) -> list[Path]:
    """Write a ledger entry for every experiment with publishable evidence; the others keep theirs. Evidence
    from code other than HEAD's is published as it is (its provenance says so) and named in the log."""
    from ..lifecycle.codehash import code_hash
    written = []
    for ev in evidence:
        if not ev.kind:
            continue
        extra = ad_hoc_overrides(ev)
        if extra:
            log(f"{ev.name}: not published to the ledger: the newest run is ad hoc ({' '.join(extra[:3])}); "
                f"run {ev.command}")
            continue
        entry = build_entry(ev)
        head_hash = code_hash(ev.spec["task"]) if ev.spec.get("task") else ""
        if head_hash and entry["provenance"]["code_hash"] != head_hash:
            log(f"{ev.name}: published from code that is not HEAD's (code hash {entry['provenance']['code_hash']}, "
                f"HEAD {head_hash}); check it with: kexue-run verify {ev.name} --scale {ev.scale}")
        written.append(write_entry(entry, ev.figures, root))
    return written


# -- the schema --------------------------------------------------------------------------------------------
# jsonschema is not among the pinned packages; this checks the keywords results/ledger.schema.json uses.

JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def is_type(value, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, JSON_TYPES[name])


def schema_errors(value, schema: dict, root: dict | None = None, where: str = "$") -> list[str]:
    """Where `value` breaks `schema` (type, enum, required, properties, additionalProperties, items, minItems,
    maxItems, minimum, pattern, $ref to #/$defs/...), one line each."""
    root = root or schema
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return schema_errors(value, target, root, where)
    errors = []
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        if not any(is_type(value, t) for t in types):
            return [f"{where}: {type(value).__name__} where {' or '.join(types)} is expected"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if is_type(value, "number") and "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value} is below {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: '{key}' is missing")
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                errors += schema_errors(item, props[key], root, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: '{key}' is not allowed")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{where}: {len(value)} items")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += schema_errors(item, schema["items"], root, f"{where}[{i}]")
    return errors


def validate_entry(entry: dict) -> list[str]:
    return schema_errors(entry, json.loads(schema_path().read_text()))
