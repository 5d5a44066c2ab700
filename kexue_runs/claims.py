"""The claim engine: checks from an experiment's config, evaluated on a table of runs.

A table is a list of rows, one per job: `status`, every config value as a dotted key
(`quantizer.codebook_size`), and the final metrics (`val/mse`). Cells are groups of ok rows that
differ only in seed. Each check yields PASS, FAIL or INCONCLUSIVE (missing cells, too few seeds,
failed jobs, or a difference inside the noise).

Kinds (fields in brackets are optional):
  threshold  metric op value [where for_each]             every cell's mean satisfies `mean op value`
  ordering   metric better a b [where for_each]           arm a beats arm b (in every for_each cell)
  monotone   metric along direction [where]               the mean moves one way along a key
  crossover  metric better a b along [where]              b wins at the smallest `along`, a at the largest;
                                                          reports where the sign changes
  approx     metric value [rtol atol where]               the mean is close to the post's number
  identity   metric value [atol test where]               an exact identity, cross-checked by `test`

Common: `id`, `statement`, `reported` (the post's number, shown beside ours), `min_seeds` (default 2),
`sigma` (default 2: a difference must exceed sigma standard errors to decide), `values` (the
for_each/along values the claim needs; a missing one is INCONCLUSIVE).
"""

from __future__ import annotations

import math
import operator
from collections import defaultdict

from .progress import fmt

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
KINDS = ("threshold", "ordering", "monotone", "crossover", "approx", "identity")
NOT_CONFIG = ("meta", "claim", "reported", "checks", "figure", "hydra", "sweep_grids")


def flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if not prefix and key in NOT_CONFIG:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = tuple(value) if isinstance(value, list) else value
    return flat


def table_from_runs(summaries: list[dict]) -> list[dict]:
    """Rows from summaries that carry their composed config under 'config'."""
    rows = []
    for s in summaries:
        row = flatten(s.get("config") or {})
        row.update({"status": s.get("status", "missing"), "job": s.get("job", "")})
        for key, value in (s.get("final") or {}).items():
            row[key] = float(value) if isinstance(value, (int, float)) else math.nan
        rows.append(row)
        # An experiment that compares several arms inside one run (inference-time variants of one
        # trained model) lists one row per arm (and test-set shard, which then plays the seeds'
        # part). Those rows carry the config but not the run's final metrics, so a check on a
        # final metric still sees one value per run.
        config_only = {k: v for k, v in row.items() if k not in (s.get("final") or {})}
        rows.extend(config_only | {k: number(v) for k, v in extra.items()} for extra in s.get("claim_rows") or [])
    return rows


def number(value):
    """JSON keeps inf and nan as strings ("inf"): read them back as floats; leave other values alone."""
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return value


def matches(row: dict, where: dict | None) -> bool:
    for key, want in (where or {}).items():
        have = row.get(key)
        wanted = want if isinstance(want, (list, tuple)) else [want]
        if not any(same(have, w) for w in wanted):
            return False
    return True


def same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return str(a) == str(b)


class Cell:
    """The seeds of one configuration: mean, std, n and the standard error of the mean."""

    def __init__(self, values: list[float]):
        self.values = [v for v in values if v is not None and math.isfinite(v)]
        self.n = len(self.values)
        self.mean = sum(self.values) / self.n if self.n else math.nan
        var = sum((v - self.mean) ** 2 for v in self.values) / (self.n - 1) if self.n > 1 else 0.0
        self.std = math.sqrt(var)
        self.se = self.std / math.sqrt(self.n) if self.n else math.nan

    def __repr__(self) -> str:
        return f"{fmt(self.mean)}±{fmt(self.std)} (n={self.n})"


class Inconclusive(Exception):
    pass


def cells_by(rows: list[dict], metric: str, key: str | None) -> dict:
    groups: dict = defaultdict(list)
    for row in rows:
        groups[row.get(key) if key else None].append(row.get(metric))
    return {k: Cell(v) for k, v in groups.items()}


def select(rows: list[dict], check: dict, extra: dict | None = None) -> list[dict]:
    """Rows for a check; failed or diverged jobs among them make it INCONCLUSIVE."""
    chosen = [r for r in rows if matches(r, check.get("where")) and matches(r, extra)]
    bad = [r for r in chosen if r.get("status") != "ok"]
    if bad:
        raise Inconclusive(f"{len(bad)} job(s) not ok ({', '.join(sorted({r['status'] for r in bad}))})")
    if not chosen:
        raise Inconclusive(f"no runs match {extra or check.get('where') or 'the check'}")
    if not any(check["metric"] in r for r in chosen):
        raise Inconclusive(f"metric {check['metric']} not recorded")
    return chosen


def need_seeds(cell: Cell, check: dict, label) -> None:
    if cell.n < int(check.get("min_seeds", 2)):
        raise Inconclusive(f"{label}: {cell.n} seed(s), need {check.get('min_seeds', 2)}")


def need_values(found, check: dict, key: str) -> list:
    values = sorted(v for v in found if v is not None)
    for want in check.get("values") or []:
        if not any(same(v, want) for v in values):
            raise Inconclusive(f"missing cell {key}={want}")
    return values


def compare(a: Cell, b: Cell, better: str, sigma: float) -> str:
    """PASS if a beats b beyond sigma standard errors, FAIL if b beats a so, a tie is FAIL."""
    diff = (b.mean - a.mean) if better == "lower" else (a.mean - b.mean)  # > 0: a is better
    noise = sigma * math.sqrt(a.se ** 2 + b.se ** 2)
    if noise == 0:
        return PASS if diff > 0 else FAIL
    if diff > noise:
        return PASS
    if diff < -noise:
        return FAIL
    return INCONCLUSIVE


def combine(verdicts: list[str]) -> str:
    if FAIL in verdicts:
        return FAIL
    if INCONCLUSIVE in verdicts or not verdicts:
        return INCONCLUSIVE
    return PASS


def check_threshold(rows, check):
    key = check.get("for_each")
    chosen = select(rows, check)
    cells = cells_by(chosen, check["metric"], key)
    need_values(cells, check, key)
    op = OPS[check["op"]]
    parts, verdicts = [], []
    for value, cell in sorted(cells.items(), key=lambda kv: (kv[0] is None, kv[0])):
        need_seeds(cell, check, f"{key}={value}")
        verdicts.append(PASS if op(cell.mean, float(check["value"])) else FAIL)
        parts.append(f"{fmt(cell.mean)}" + (f" @ {value}" if key else ""))
    return combine(verdicts), ", ".join(parts), f"need mean {check['op']} {check['value']}"


def arm_cells(rows, check, key):
    a_rows = select(rows, check, check["a"])
    b_rows = select(rows, check, check["b"])
    return cells_by(a_rows, check["metric"], key), cells_by(b_rows, check["metric"], key)


def check_ordering(rows, check):
    key = check.get("for_each")
    a, b = arm_cells(rows, check, key)
    keys = need_values(set(a) | set(b), check, key) if key else [None]
    sigma = float(check.get("sigma", 2.0))
    verdicts, parts = [], []
    for value in keys:
        if value not in a or value not in b:
            raise Inconclusive(f"missing cell {key}={value} for arm {'a' if value not in a else 'b'}")
        need_seeds(a[value], check, f"a {key}={value}")
        need_seeds(b[value], check, f"b {key}={value}")
        verdicts.append(compare(a[value], b[value], check["better"], sigma))
        parts.append(f"{fmt(a[value].mean)} vs {fmt(b[value].mean)}" + (f" @ {value}" if key else ""))
    note = f"a={label(check['a'])} vs b={label(check['b'])}, {check['better']} is better"
    return combine(verdicts), "; ".join(parts), note


def check_monotone(rows, check):
    key = check["along"]
    cells = cells_by(select(rows, check), check["metric"], key)
    keys = need_values(cells, check, key)
    for k in keys:
        need_seeds(cells[k], check, f"{key}={k}")
    if len(keys) < 2:
        raise Inconclusive(f"need at least 2 values of {key}")
    sigma = float(check.get("sigma", 2.0))
    better = "lower" if check["direction"] == "decreasing" else "higher"
    # each later cell must not go the wrong way beyond the noise, and the ends must differ the right way
    steps = [compare(cells[hi], cells[lo], better, sigma) for lo, hi in zip(keys[:-1], keys[1:])]
    ends = compare(cells[keys[-1]], cells[keys[0]], better, sigma)
    verdict = FAIL if FAIL in steps or ends == FAIL else (PASS if ends == PASS else INCONCLUSIVE)
    observed = " -> ".join(f"{fmt(cells[k].mean)}" for k in keys)
    return verdict, observed, f"{check['direction']} along {key} = {', '.join(map(str, keys))}"


def check_crossover(rows, check):
    key = check["along"]
    a, b = arm_cells(rows, check, key)
    keys = need_values(set(a) & set(b), check, key)
    if len(keys) < 2:
        raise Inconclusive(f"need both arms at 2 or more values of {key}")
    sigma = float(check.get("sigma", 2.0))
    for k in keys:
        need_seeds(a[k], check, f"a {key}={k}")
        need_seeds(b[k], check, f"b {key}={k}")
    wins = {k: compare(a[k], b[k], check["better"], sigma) for k in keys}
    first_a = next((k for k in keys if wins[k] == PASS), None)
    b_before = [k for k in keys if wins[k] == FAIL and (first_a is None or k < first_a)]
    if first_a is None:
        observed = f"no crossover: {label(check['a'])} never better up to {key}={keys[-1]}"
    elif not b_before:
        observed = f"no crossover: {label(check['a'])} better from {key}={keys[0]}"
    else:
        observed = f"crossover between {key}={b_before[-1]} and {first_a}"
    if wins[keys[-1]] == PASS and wins[keys[0]] == FAIL:
        verdict = PASS
    elif wins[keys[-1]] == FAIL or (wins[keys[0]] == PASS and wins[keys[-1]] != INCONCLUSIVE):
        verdict = FAIL
    else:
        verdict = INCONCLUSIVE
    detail = ", ".join(f"{k}: {'a' if wins[k] == PASS else 'b' if wins[k] == FAIL else '~'}" for k in keys)
    return verdict, observed, f"winner per {key} ({detail}); a={label(check['a'])}, b={label(check['b'])}"


def check_approx(rows, check):
    cells = cells_by(select(rows, check), check["metric"], None)
    cell = cells[None]
    need_seeds(cell, check, "cell")
    target = float(check["value"])
    tol = float(check.get("atol", 0.0)) + float(check.get("rtol", 0.0)) * abs(target)
    verdict = PASS if abs(cell.mean - target) <= tol else FAIL
    return verdict, fmt(cell.mean), f"|ours - {fmt(target)}| <= {fmt(tol)}"


def check_identity(rows, check):
    verdict, observed, note = check_approx(rows, {"min_seeds": 1, **check})
    return verdict, observed, note + (f"; test: {check['test']}" if check.get("test") else "")


def label(where: dict) -> str:
    return ",".join(f"{k.split('.')[-1]}={v}" for k, v in where.items())


RUNNERS = {"threshold": check_threshold, "ordering": check_ordering, "monotone": check_monotone,
           "crossover": check_crossover, "approx": check_approx, "identity": check_identity}


def evaluate_checks(checks: list[dict], rows: list[dict]) -> list[dict]:
    results = []
    for check in checks:
        base = {"id": check["id"], "kind": check["kind"], "statement": check.get("statement", ""),
                "reported": check.get("reported", ""), "metric": check.get("metric", "")}
        try:
            verdict, observed, note = RUNNERS[check["kind"]](rows, check)
        except Inconclusive as exc:
            verdict, observed, note = INCONCLUSIVE, "", str(exc)
        n = len({r.get("job") for r in rows if r.get("status") == "ok" and matches(r, check.get("where"))})  # runs
        results.append(base | {"verdict": verdict, "observed": observed, "note": note, "n": n})
    return results


def overall(results: list[dict]) -> str:
    return combine([r["verdict"] for r in results]) if results else INCONCLUSIVE


def validate_checks(checks: list[dict]) -> list[str]:
    """Problems in check definitions (so a typo in a YAML file is caught by the tests)."""
    problems = []
    need = {"threshold": ("metric", "op", "value"), "ordering": ("metric", "better", "a", "b"),
            "monotone": ("metric", "along", "direction"), "crossover": ("metric", "better", "a", "b", "along"),
            "approx": ("metric", "value"), "identity": ("metric", "value")}
    for check in checks:
        kind = check.get("kind")
        if kind not in KINDS:
            problems.append(f"{check.get('id')}: kind {kind!r} not in {KINDS}")
            continue
        problems += [f"{check.get('id')}: {kind} needs '{f}'" for f in need[kind] if f not in check]
        if kind == "threshold" and check.get("op") not in OPS:
            problems.append(f"{check.get('id')}: op must be one of {tuple(OPS)}")
    return problems
