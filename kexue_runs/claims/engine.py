"""The claim engine: an experiment's checks, evaluated on a table of runs, with honest statistics.

A table is a list of rows: one per job (its config as dotted keys, `status`, its final metrics) and,
for runs that compare arms inside one run, one per arm and replicate (`claim_rows`). A row's
*replicate id* is the tuple of its `seed`, `shard` and `replicate` values: the independent repeats
that give a cell its noise. A cell is the set of ok rows that match a check's selection and carry
its metric; it holds one value per replicate.

What a check is (every check says):
  basis    derivation  the post's arithmetic or closed form recomputed: a consistency check of the
                       post's own reasoning, not evidence about the world
           empirical   a measurement that could contradict the post's claim
           ours        an extension beyond the post; shown, never decides the post's verdict
  source   where the statement comes from: "post 9902", "paper: Zinkevich 2003", "ours", ...
  reported the post's (or paper's) number, shown beside ours

Kinds (fields in brackets are optional):
  threshold  metric op value [for_each]        every cell's mean satisfies `mean op value`
  ordering   metric better a b [for_each]      arm a beats arm b (in every for_each cell)
  monotone   metric along direction            the mean moves one way along a key
  crossover  metric better a b along           b wins at the smallest `along`, a at the largest
  approx     metric value [rtol atol for_each] the mean lies within the tolerance of the value (in every cell)
  identity   metric value [atol for_each]      an exact computation equals the value (in every cell)
  zscore     metric [comparisons]              a Monte Carlo |z| (deviation / its standard error)
                                               stays under the Bonferroni bound for that many comparisons
Common optional fields: `where` (rows to use), `values` (the for_each/along cells the claim needs),
`exact` (true: the metric is a deterministic computation with no sampling noise), `paired` (false:
replicates with the same id are independent draws, so compare with Welch's t), `min_reps`
(replicates a noisy cell needs; default 3), `alpha` (default 0.05; 0.01 for zscore), `scales` (the
scales where the check decides; elsewhere it is shown, not decided), `regime` ({where, reason}: the
cells the claim is about; others are reported as outside it), `requires` (ids of earlier checks that
state the setup's precondition, e.g. "the base model can do the task at all": unless every one PASSES,
this check is INCONCLUSIVE, its own reading shown as where it leans).

How a verdict is decided (one rule for every kind):
  * Noisy metrics are tested at the real n with a t test: a one-sample t for thresholds and
    tolerances, and for comparisons a paired t when both arms carry the same replicate ids (they
    share seeds, test shards or starting noise), Welch's t otherwise. The (1 - alpha) confidence
    interval of the effect decides: entirely on the claimed side -> PASS, entirely on the other
    side -> FAIL, straddling it -> INCONCLUSIVE, with the replicates that would resolve the effect.
  * A cell with fewer than `min_reps` replicates is INCONCLUSIVE and says which way it leans.
  * Exact metrics (exact: true, or every value identical across replicates) are compared directly.
  * Ties: with noise, a difference the test cannot tell from zero is INCONCLUSIVE. Without noise, an
    exact tie FAILS a strict claim (>, <, "a beats b") and PASSES a non-strict one (>=, <=).
  * A check over several cells FAILS if any cell FAILS, else is INCONCLUSIVE if any cell is
    undecided or missing, else PASSES. Failed, diverged or missing jobs make it INCONCLUSIVE.
  * N/A: the check does not apply here (another scale, or no cell in the claim's regime).
  * A check whose precondition (`requires`) did not PASS is INCONCLUSIVE: a comparison on a setup that
    cannot show the effect is no evidence either way.
The post's verdict combines the derivation and empirical checks; `ours` is reported apart.
"""

from __future__ import annotations

import math
import operator
from collections import defaultdict
from dataclasses import dataclass

from ..common.progress import fmt
from .quantiles import normal_quantile, student_t_quantile

PASS, FAIL, INCONCLUSIVE, NA = "PASS", "FAIL", "INCONCLUSIVE", "N/A"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, NA)
OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
KINDS = ("threshold", "ordering", "monotone", "crossover", "approx", "identity", "zscore")
BASES = ("derivation", "empirical", "ours")
REPLICATE_KEYS = ("seed", "shard", "replicate")
NOT_CONFIG = ("meta", "claim", "reported", "checks", "figure", "hydra", "sweep_grids", "schema")
DEFAULT_MIN_REPS = 3


# -- the table -------------------------------------------------------------------------------------

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
        # a metric the claim rows carry per replicate is theirs: the run's own summary of it is not a replicate
        per_replicate = {k for extra in s.get("claim_rows") or [] for k in extra}
        for key, value in (s.get("final") or {}).items():
            if key not in per_replicate:
                row[key] = float(value) if isinstance(value, (int, float)) else math.nan
        rows.append(row)
        # Arms compared inside one run (inference-time variants of one trained model, or Monte Carlo
        # replicates) come as one row per arm and replicate. They carry the config but not the run's
        # final metrics, so a check on a final metric still sees one value per run.
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


def replicate_id(row: dict) -> tuple:
    return tuple((k, row[k]) for k in REPLICATE_KEYS if k in row and row[k] is not None)


# -- cells and tests -------------------------------------------------------------------------------

class Cell:
    """The replicates of one configuration: their values, ids, mean, sample std and standard error."""

    def __init__(self, pairs: list[tuple[tuple, float]]):
        kept = [(i, float(v)) for i, v in pairs if isinstance(v, (int, float)) and math.isfinite(v)]
        self.ids = [i for i, _ in kept]
        self.values = [v for _, v in kept]
        self.n = len(self.values)
        self.mean = sum(self.values) / self.n if self.n else math.nan
        var = sum((v - self.mean) ** 2 for v in self.values) / (self.n - 1) if self.n > 1 else math.nan
        self.std = math.sqrt(var) if self.n > 1 else math.nan
        self.se = self.std / math.sqrt(self.n) if self.n > 1 else math.nan
        self.constant = self.n > 1 and max(self.values) == min(self.values)

    @property
    def unique_ids(self) -> bool:
        return len(set(self.ids)) == len(self.ids)

    def __repr__(self) -> str:
        return f"{fmt(self.mean)} (n={self.n})"


class Undecided(Exception):
    """A check that cannot be evaluated on these rows (missing cells, failed jobs, no metric)."""


@dataclass
class Stat:
    """One comparison: the effect (> 0 means the claim's direction), its CI, and how it was tested."""

    effect: float
    lo: float
    hi: float
    test: str
    n: int
    exact: bool = False
    short: bool = False  # fewer replicates than the check needs
    need: int = 0

    def verdict(self, strict: bool = True) -> str:
        if self.short:
            return INCONCLUSIVE
        if self.exact:
            if self.effect > 0:
                return PASS
            if self.effect < 0:
                return FAIL
            return FAIL if strict else PASS
        if self.lo > 0:
            return PASS
        if self.hi < 0:
            return FAIL
        return INCONCLUSIVE

    def leans(self) -> str:
        return PASS if self.effect > 0 else FAIL if self.effect < 0 else "neither way"

    def describe(self) -> str:
        if self.exact:
            return self.test
        if self.short:
            return f"{self.test}; needs >= {self.need} replicates, has {self.n}; leans {self.leans()}"
        return f"{self.test}, effect {fmt(self.effect)}, CI [{fmt(self.lo)}, {fmt(self.hi)}]"

    def resolving_n(self) -> int | None:
        """Replicates at which an effect this size would leave its CI on one side (normal approximation)."""
        if self.exact or self.short or self.effect == 0 or not math.isfinite(self.hi - self.lo):
            return None
        half = (self.hi - self.lo) / 2
        return max(self.n + 1, math.ceil(self.n * (half / abs(self.effect)) ** 2))


def t_quantile(alpha: float, df: float) -> float:
    """Student's t two-sided critical value."""
    return student_t_quantile(1 - alpha / 2, df)


def exact_cell(cell: Cell, check: dict) -> bool:
    """No sampling noise: the check says the metric is a deterministic computation, or every replicate agrees."""
    return bool(check.get("exact")) or cell.constant


def min_reps(check: dict) -> int:
    return int(check.get("min_reps", 1 if check.get("exact") else DEFAULT_MIN_REPS))


def one_sample(cell: Cell, target: float, sign: float, check: dict) -> Stat:
    """Effect sign * (mean - target), tested with a one-sample t at the cell's n."""
    alpha = float(check.get("alpha", 0.05))
    effect = sign * (cell.mean - target)
    if exact_cell(cell, check):
        return Stat(effect, effect, effect, "exact", cell.n, exact=True)
    if cell.n < max(2, min_reps(check)):
        return Stat(effect, math.nan, math.nan, f"one-sample t, n={cell.n}", cell.n, short=True,
                    need=max(2, min_reps(check)))
    half = t_quantile(alpha, cell.n - 1) * cell.se
    return Stat(effect, effect - half, effect + half, f"one-sample t, n={cell.n}, {1 - alpha:.0%} CI", cell.n)


def two_sample(a: Cell, b: Cell, better: str, check: dict) -> Stat:
    """Effect = how much a beats b (> 0: a better). Paired t when the arms share replicate ids."""
    alpha = float(check.get("alpha", 0.05))
    sign = -1.0 if better == "lower" else 1.0
    effect = sign * (a.mean - b.mean)
    n = min(a.n, b.n)
    if exact_cell(a, check) and exact_cell(b, check):
        return Stat(effect, effect, effect, "exact", n, exact=True)
    need = max(2, min_reps(check))
    paired = (check.get("paired", True) and a.unique_ids and b.unique_ids and set(a.ids) == set(b.ids)
              and a.n >= 2)
    if paired:
        by_id = dict(zip(b.ids, b.values))
        diffs = [sign * (va - by_id[i]) for i, va in zip(a.ids, a.values)]
        d = Cell([((k,), v) for k, v in enumerate(diffs)])
        if d.n < need:
            return Stat(effect, math.nan, math.nan, f"paired t, n={d.n}", d.n, short=True, need=need)
        if d.constant:
            return Stat(d.mean, d.mean, d.mean, f"paired, n={d.n}, every difference equal", d.n, exact=True)
        half = t_quantile(alpha, d.n - 1) * d.se
        return Stat(d.mean, d.mean - half, d.mean + half, f"paired t, n={d.n}, {1 - alpha:.0%} CI", d.n)
    if a.n < need or b.n < need:
        return Stat(effect, math.nan, math.nan, f"Welch t, n={a.n}+{b.n}", n, short=True, need=need)
    va, vb = a.se ** 2, b.se ** 2
    se = math.sqrt(va + vb)
    if se == 0:
        return Stat(effect, effect, effect, f"n={a.n}+{b.n}, no spread", n, exact=True)
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    half = t_quantile(alpha, df) * se
    return Stat(effect, effect - half, effect + half, f"Welch t, n={a.n}+{b.n}, {1 - alpha:.0%} CI", n)


def combine(verdicts: list[str]) -> str:
    decided = [v for v in verdicts if v != NA]
    if FAIL in decided:
        return FAIL
    if INCONCLUSIVE in decided or not decided:
        return INCONCLUSIVE if decided or not verdicts else NA
    return PASS


# -- selecting rows --------------------------------------------------------------------------------

def select(rows: list[dict], check: dict, extra: dict | None = None) -> list[dict]:
    """Rows for a check that carry its metric; failed or diverged jobs among them make it undecided."""
    chosen = [r for r in rows if matches(r, check.get("where")) and matches(r, extra)]
    bad = [r for r in chosen if r.get("status") != "ok"]
    if bad:
        raise Undecided(f"{len(bad)} job(s) not ok ({', '.join(sorted({str(r['status']) for r in bad}))})")
    with_metric = [r for r in chosen if r.get(check["metric"]) is not None]
    if not with_metric:
        what = label(extra) if extra else label(check.get("where") or {}) or "the check"
        raise Undecided(f"no run of {what} has {check['metric']}" if chosen else f"{what}: not run")
    return with_metric


def cells_by(rows: list[dict], metric: str, key: str | None) -> dict:
    groups: dict = defaultdict(list)
    for row in rows:
        groups[row.get(key) if key else None].append((replicate_id(row), row.get(metric)))
    cells = {k: Cell(v) for k, v in groups.items()}
    empty = [k for k, c in cells.items() if c.n == 0]
    if empty:
        where = f" at {key}={empty[0]}" if key else ""
        raise Undecided(f"{metric}{where} is not finite (nan or inf) in every replicate")
    return cells


def wanted_values(check: dict) -> list:
    return list(check.get("values") or [])


def missing_values(found, check: dict) -> list:
    return [w for w in wanted_values(check) if not any(same(v, w) for v in found)]


def sort_values(values) -> list:
    return sorted((v for v in values if v is not None), key=lambda v: (0, float(v), "") if isinstance(
        v, (int, float)) else (1, 0.0, str(v)))


def label(where: dict) -> str:
    return ",".join(f"{k.split('.')[-1]}={v}" for k, v in (where or {}).items())


# -- the kinds -------------------------------------------------------------------------------------

@dataclass
class Outcome:
    verdict: str
    observed: str
    note: str
    stat: str = ""
    leans: str = ""
    needs: str = ""


def finish(verdicts: list[str], stats: list[Stat], missing: list, key: str | None, observed: str, note: str,
           total: int) -> Outcome:
    verdict = combine(verdicts)
    stat_text = "; ".join(dict.fromkeys(s.describe() for s in stats)) if len(stats) <= 2 else \
        "; ".join(dict.fromkeys(s.test.split(",")[0] + f", n={s.n}" for s in stats))
    leans_list = [s.leans() for s in stats if s.short]
    needs = []
    if missing:
        needs.append(f"{len(missing)} of {total} {key} cells not run ({', '.join(map(str, missing))})")
        if verdict == PASS:
            verdict = INCONCLUSIVE
    short = [s for s in stats if s.short]
    if short:
        needs.append(f"needs >= {short[0].need} replicates per cell, has {min(s.n for s in short)}")
    unresolved = [s.resolving_n() for s in stats if s.verdict() == INCONCLUSIVE and not s.short]
    unresolved = [n for n in unresolved if n]
    if unresolved:
        needs.append(f"the effect is inside the noise; ~{max(unresolved)} replicates would resolve it if it holds")
    leans = ""
    if verdict == INCONCLUSIVE and leans_list and not any(v == FAIL for v in verdicts):
        leans = FAIL if FAIL in leans_list else PASS
    return Outcome(verdict, observed, note, stat_text, leans, "; ".join(needs))


def check_threshold(rows, check) -> Outcome:
    key = check.get("for_each")
    cells = cells_by(select(rows, check), check["metric"], key)
    op, target = check["op"], float(check["value"])
    sign = 1.0 if op in (">", ">=") else -1.0
    keys = sort_values(cells) if key else [None]
    stats = {k: one_sample(cells[k], target, sign, check) for k in keys}
    verdicts = [stats[k].verdict(strict=op in (">", "<")) for k in keys]
    observed = ", ".join(f"{fmt(cells[k].mean)}" + (f" @ {k}" if key else "") for k in keys)
    return finish(verdicts, list(stats.values()), missing_values(cells, check), key, observed,
                  f"need mean {op} {fmt(target)}", len(wanted_values(check)))


def arm_cells(rows, check, key):
    a_rows = select(rows, check, check["a"])
    b_rows = select(rows, check, check["b"])
    return cells_by(a_rows, check["metric"], key), cells_by(b_rows, check["metric"], key)


def check_ordering(rows, check) -> Outcome:
    key = check.get("for_each")
    a, b = arm_cells(rows, check, key)
    keys = [k for k in sort_values(set(a) & set(b))] if key else [None]
    if key and not keys:
        raise Undecided(f"no {key} value has both arms")
    missing = missing_values(keys, check) if key else []
    if key:
        missing += [k for k in sort_values(set(a) ^ set(b)) if k not in missing and not wanted_values(check)]
    stats = {k: two_sample(a[k], b[k], check["better"], check) for k in keys}
    verdicts = [stats[k].verdict(strict=True) for k in keys]
    observed = "; ".join(f"{fmt(a[k].mean)} vs {fmt(b[k].mean)}" + (f" @ {k}" if key else "") for k in keys)
    note = f"a={label(check['a'])} vs b={label(check['b'])}, {check['better']} is better"
    return finish(verdicts, list(stats.values()), missing, key, observed, note,
                  len(wanted_values(check)) or len(keys) + len(missing))


def check_monotone(rows, check) -> Outcome:
    key = check["along"]
    cells = cells_by(select(rows, check), check["metric"], key)
    keys = sort_values(cells)
    missing = missing_values(cells, check)
    if len(keys) < 2:
        return Outcome(INCONCLUSIVE, ", ".join(fmt(cells[k].mean) for k in keys), f"along {key}",
                       needs=f"needs at least 2 values of {key}; has {len(keys)}"
                       + (f" ({len(missing)} not run: {', '.join(map(str, missing))})" if missing else ""))
    better = "lower" if check["direction"] == "decreasing" else "higher"
    steps = [two_sample(cells[hi], cells[lo], better, check) for lo, hi in zip(keys[:-1], keys[1:])]
    ends = two_sample(cells[keys[-1]], cells[keys[0]], better, check)
    step_verdicts = [s.verdict() for s in steps]
    # each step must not go the wrong way beyond the noise, and the ends must differ the right way
    if FAIL in step_verdicts or ends.verdict() == FAIL:
        verdict = FAIL
    else:
        verdict = ends.verdict()
    out = finish([verdict], [ends] + [s for s in steps if s.verdict() == FAIL], missing, key,
                 " -> ".join(fmt(cells[k].mean) for k in keys),
                 f"{check['direction']} along {key} = {', '.join(map(str, keys))}", len(wanted_values(check)))
    return out


def check_crossover(rows, check) -> Outcome:
    key = check["along"]
    a, b = arm_cells(rows, check, key)
    keys = sort_values(set(a) & set(b))
    missing = missing_values(keys, check)
    if len(keys) < 2:
        return Outcome(INCONCLUSIVE, "", f"along {key}", needs=f"needs both arms at 2 or more values of {key}; "
                       f"has {len(keys)}" + (f" ({len(missing)} not run)" if missing else ""))
    stats = {k: two_sample(a[k], b[k], check["better"], check) for k in keys}
    wins = {k: stats[k].verdict() for k in keys}
    first_a = next((k for k in keys if wins[k] == PASS), None)
    before = keys[:keys.index(first_a)] if first_a is not None else keys
    b_before = [k for k in before if wins[k] == FAIL]
    who = {PASS: "a", FAIL: "b", INCONCLUSIVE: "~"}
    detail = ", ".join(f"{k}: {who[wins[k]]}" for k in keys)
    if first_a is None:
        observed = f"no crossover: a never better up to {key}={keys[-1]} ({detail})"
    elif not b_before:
        observed = f"no crossover: a better from {key}={keys[0]} on ({detail})"
    else:
        observed = f"crossover between {key}={b_before[-1]} and {first_a} ({detail})"
    lo, hi = wins[keys[0]], wins[keys[-1]]
    if lo == FAIL and hi == PASS:
        verdict = PASS
    elif hi == FAIL or (lo == PASS and hi == PASS):
        verdict = FAIL  # b wins at the top, or a wins everywhere: no crossover either way
    else:
        verdict = INCONCLUSIVE
    note = f"b={label(check['b'])} better at the smallest {key}, a={label(check['a'])} at the largest"
    return finish([verdict], [stats[keys[0]], stats[keys[-1]]], missing, key, observed, note,
                  len(wanted_values(check)))


def check_approx(rows, check) -> Outcome:
    key = check.get("for_each")
    cells = cells_by(select(rows, check), check["metric"], key)
    keys = sort_values(cells) if key else [None]
    target = float(check["value"])
    tol = float(check.get("atol", 0.0)) + float(check.get("rtol", 0.0)) * abs(target)
    verdicts, stats = [], []
    for k in keys:
        cell = cells[k]
        # inside the band: the effect is the margin to the nearer edge (> 0 inside)
        if exact_cell(cell, check) or check.get("kind") == "identity":
            margin = tol - abs(cell.mean - target)
            st = Stat(margin, margin, margin, "exact", cell.n, exact=True)
            verdict = st.verdict(strict=False)
        else:
            lower = one_sample(cell, target - tol, 1.0, check)  # mean above the band's floor
            upper = one_sample(cell, target + tol, -1.0, check)  # and below its ceiling
            if lower.short:
                verdict, st = INCONCLUSIVE, lower
            else:
                vl, vu = lower.verdict(False), upper.verdict(False)
                verdict = FAIL if FAIL in (vl, vu) else PASS if vl == vu == PASS else INCONCLUSIVE
                st = lower if vl != PASS else upper
        verdicts.append(verdict)
        stats.append(st)
    missing = missing_values(cells, check) if key else []
    observed = "; ".join(fmt(cells[k].mean) + (f" @ {k}" if key else "") for k in keys)
    return finish(verdicts, stats, missing, key, observed, f"|ours - {fmt(target)}| <= {fmt(tol)}",
                  len(wanted_values(check)) or len(keys) + len(missing))


def check_identity(rows, check) -> Outcome:
    return check_approx(rows, {"value": 0, **check, "exact": True})


def check_zscore(rows, check) -> Outcome:
    cell = cells_by(select(rows, check), check["metric"], None)[None]
    comparisons = check.get("comparisons", 1)
    if isinstance(comparisons, str):  # the name of a metric that counts them
        counts = cells_by(select(rows, {**check, "metric": comparisons}), comparisons, None)[None]
        comparisons = counts.mean
    k = max(1, int(comparisons))
    alpha = float(check.get("alpha", 0.01))
    critical = normal_quantile(1 - alpha / (2 * k))
    worst = max(cell.values) if cell.values else math.nan
    verdict = PASS if worst <= critical else FAIL
    observed = f"max |z| = {fmt(worst)} over {k} comparison{'s' * (k > 1)}"
    return Outcome(verdict, observed, f"Monte Carlo deviation / its standard error; bound {fmt(critical)} "
                   f"(Bonferroni, family-wise alpha {alpha:g})", f"z-score, bound {fmt(critical)}")


RUNNERS = {"threshold": check_threshold, "ordering": check_ordering, "monotone": check_monotone,
           "crossover": check_crossover, "approx": check_approx, "identity": check_identity,
           "zscore": check_zscore}


# -- evaluating a list of checks -------------------------------------------------------------------

def scale_of(rows: list[dict]) -> str | None:
    return next((r.get("scale.name") for r in rows if r.get("scale.name")), None)


def evaluate_check(check: dict, rows: list[dict]) -> dict:
    base = {"id": check["id"], "kind": check["kind"], "basis": check.get("basis", "empirical"),
            "source": check.get("source", ""), "statement": check.get("statement", ""),
            "reported": check.get("reported", ""), "metric": check.get("metric", "")}
    regime = check.get("regime") or {}
    in_regime = [r for r in rows if matches(r, regime.get("where"))] if regime else rows
    try:
        usable = [r for r in in_regime if r.get(check["metric"]) is not None and matches(r, check.get("where"))]
        if regime and not usable:
            out = Outcome(NA, "", f"not in the claim's regime: {regime.get('reason', label(regime.get('where')))}")
        else:
            out = RUNNERS[check["kind"]](in_regime, check)
            if regime:
                out.note = (out.note + "; " if out.note else "") + f"regime: {regime.get('reason', '')}"
    except Undecided as exc:
        out = Outcome(INCONCLUSIVE, "", str(exc), needs=str(exc))
    scale = scale_of(rows)
    if check.get("scales") and scale and scale not in check["scales"] and out.verdict != NA:
        out = Outcome(NA, out.observed, f"decides at scale {', '.join(check['scales'])} only "
                      f"({check.get('scales_reason', 'the post’s number comes from a setting far from ours')}); "
                      f"shown at {scale}", out.stat)
    jobs = {r.get("job") for r in rows if r.get("status") == "ok" and matches(r, check.get("where"))}
    return base | {"verdict": out.verdict, "observed": out.observed, "note": out.note, "stat": out.stat,
                   "leans": out.leans, "needs": out.needs, "n": len(jobs)}


def evaluate_checks(checks: list[dict], rows: list[dict], stability: bool = True) -> list[dict]:
    results = [evaluate_check(check, rows) for check in checks]
    verdict_of = {r["id"]: r["verdict"] for r in results}
    for check, result in zip(checks, results):
        unmet = [i for i in check.get("requires") or [] if verdict_of.get(i) != PASS]
        if unmet and result["verdict"] in (PASS, FAIL, INCONCLUSIVE):
            own = result["verdict"]
            unmet_text = ", ".join(f"{i} {verdict_of.get(i, 'missing')}" for i in unmet)
            result.update(verdict=INCONCLUSIVE, leans=own if own != INCONCLUSIVE else result.get("leans", ""),
                          note=f"precondition not met: {unmet_text}"
                               + (f"; {result['note']}" if result.get("note") else ""),
                          needs=f"a setup where {', '.join(unmet)} passes")
    if stability:
        for check, result in zip(checks, results):
            result["stability"] = check_stability(check, rows, result["verdict"])
    return results


def overall(results: list[dict]) -> str:
    """The post's verdict: derivation and empirical checks; `ours` never decides it."""
    deciding = [r["verdict"] for r in results if r.get("basis", "empirical") != "ours"]
    if not deciding:
        return INCONCLUSIVE
    verdict = combine(deciding)
    return INCONCLUSIVE if verdict == NA else verdict


def by_basis(results: list[dict]) -> dict:
    """{basis: verdict} for the bases present (ours included, shown apart)."""
    out = {}
    for basis in BASES:
        chosen = [r["verdict"] for r in results if r.get("basis", "empirical") == basis]
        if chosen:
            v = combine(chosen)
            out[basis] = INCONCLUSIVE if v == NA and any(c != NA for c in chosen) else v
    return out


def stable(results: list[dict]) -> str:
    """'unstable' if a deciding check flips between held-out halves of the replicates, 'stable' if some
    decided check was re-tested on held-out replicates and none flipped, else '-'."""
    deciding = [r for r in results if r.get("basis", "empirical") != "ours"]
    if any(r.get("stability", "").startswith("unstable") for r in deciding):
        return "unstable"
    if any(r.get("stability", "").startswith("held") for r in deciding):
        return "stable"
    return "-"


def check_stability(check: dict, rows: list[dict], verdict: str) -> str:
    """Re-evaluate a decided check on each half of the replicates, split on the outermost replicate key
    that varies (seeds, else shards, else Monte Carlo replicates; the later half is the held-out one):
    'unstable' when a half decides the opposite way."""
    if verdict not in (PASS, FAIL) or check.get("exact") or check["kind"] in ("identity", "zscore"):
        return ""
    ids = sort_ids({replicate_id(r) for r in rows if r.get(check.get("metric")) is not None
                    and r.get("status") == "ok"})
    if len(ids) < 2:
        return ""
    # split on the outermost replicate key that varies (seeds before shards): the later half is held out
    key = next((k for k in REPLICATE_KEYS if len({dict(i).get(k) for i in ids}) > 1), None)
    groups = sort_values({dict(i).get(key) for i in ids})
    cut = (len(groups) + 1) // 2
    first = set(groups[:cut])
    halves = ({i for i in ids if dict(i).get(key) in first}, {i for i in ids if dict(i).get(key) not in first})
    if not halves[1]:
        return ""
    seen = []
    for part in halves:
        subset = [r for r in rows if replicate_id(r) in part or r.get(check.get("metric")) is None]
        sub = evaluate_check({**check, "min_reps": min(min_reps(check), max(2, len(part)))}, subset)["verdict"]
        seen.append(sub)
    opposite = FAIL if verdict == PASS else PASS
    if opposite in seen:
        return (f"unstable: {seen[0]} on {key}s {', '.join(map(str, groups[:cut]))}, {seen[1]} on the held-out "
                f"{key}s {', '.join(map(str, groups[cut:]))}")
    if seen[1] == verdict:
        return f"held on the held-out {key}s ({', '.join(map(str, groups[cut:]))})"
    return f"not decided on the held-out {key}s ({seen[1]})"


def sort_ids(ids) -> list:
    return sorted(ids, key=lambda i: tuple((k, (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v)))
                                           for k, v in i))


# -- defining checks -------------------------------------------------------------------------------

def validate_checks(checks: list[dict]) -> list[str]:
    """Problems in check definitions (so a typo in a YAML file is caught by the tests)."""
    problems = []
    need = {"threshold": ("metric", "op", "value"), "ordering": ("metric", "better", "a", "b"),
            "monotone": ("metric", "along", "direction"), "crossover": ("metric", "better", "a", "b", "along"),
            "approx": ("metric", "value"), "identity": ("metric",), "zscore": ("metric",)}
    ids = [c.get("id") for c in checks]
    problems += [f"{i}: duplicate check id" for i in {i for i in ids if ids.count(i) > 1}]
    for check in checks:
        cid, kind = check.get("id"), check.get("kind")
        if kind not in KINDS:
            problems.append(f"{cid}: kind {kind!r} not in {KINDS}")
            continue
        problems += [f"{cid}: {kind} needs '{f}'" for f in need[kind] if f not in check]
        if kind == "threshold" and check.get("op") not in OPS:
            problems.append(f"{cid}: op must be one of {tuple(OPS)}")
        if check.get("basis") not in BASES:
            problems.append(f"{cid}: basis must be one of {BASES} (derivation, empirical or ours)")
        if not check.get("source"):
            problems.append(f"{cid}: say where the statement comes from (source: post NNNN, paper ..., ours)")
        if check.get("better") not in (None, "lower", "higher"):
            problems.append(f"{cid}: better must be lower or higher")
        if check.get("direction") not in (None, "increasing", "decreasing"):
            problems.append(f"{cid}: direction must be increasing or decreasing")
        unknown = [i for i in check.get("requires") or [] if i not in ids[:ids.index(cid)]]
        if unknown:
            problems.append(f"{cid}: requires {unknown}: not the id of an earlier check")
        if "sigma" in check:
            problems.append(f"{cid}: 'sigma' is gone; decisions use a t test at alpha (default 0.05)")
    return problems
