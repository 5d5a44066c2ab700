"""The claim engine: an experiment's checks, evaluated on a table of runs, with honest statistics.

A table is a list of rows: one per job (its config as dotted keys, `status`, its final metrics) and,
for runs that compare arms inside one run, one per arm and replicate (`claim_rows`). A row's
*replicate id* is the tuple of its `seed`, `shard` and `replicate` values. A check's *unit* says which
of those identify one independent replicate for its claim; values that share a unit (the evaluation
shards of one trained model) are averaged first, and the test runs over units. A cell is the set of ok
rows that match a check's selection and carry its metric.

What a check is (every check says):
  basis    derivation    the post's arithmetic or closed form recomputed: consistency, not evidence
           empirical     a measurement that could contradict the post's claim
           precondition  a measurement that the setup is in the post's regime (the baseline trains, the
                         base model can do the task): never decides the post's verdict, gates its dependents
           ours          an extension beyond the post; shown, never decides the post's verdict
  source   where the statement comes from: "post 9902", "paper: Zinkevich 2003", "ours", ...
  reported the post's (or paper's) number, shown beside ours
  unit     (empirical and precondition checks) what one independent replicate is:
           model  independently trained models (a claim about a training method or a model)
           data   independent data draws or splits (generalisation; an inference method on test sets)
           draw   Monte Carlo draws of a computation with no training
           `unit_keys` names the row keys of one unit: replicate keys or config keys such as
           pretrain.seed (default: model -> seed, replicate; data and draw -> seed, replicate, shard);
           a claim is decided over >= min_reps (3) units.
  value_from  for every threshold or tolerance: "post: ...", "paper: ...", "derivation: ...",
           "numerical: ..." (a float tolerance on an exact identity) or "ours: ..."; a threshold of
           ours makes the check `ours` (or a precondition).
  preconditions (empirical checks): `requires` (ids of earlier precondition checks),
           `preconditions_unmeasured` (what would put the setup in the post's regime but is not
           measured yet) or `no_precondition` (one line: why none is needed).

Kinds (fields in brackets are optional):
  threshold  metric op value [for_each]        every cell's mean satisfies `mean op value`
  ordering   metric better a b [for_each]      arm a beats arm b (in every for_each cell)
  monotone   metric along direction            the mean moves one way along a key
  crossover  metric better a b along           b wins at the smallest `along`, a at the largest
  approx     metric value [rtol atol for_each] the mean lies within the tolerance of the value (in every cell)
  identity   metric value [atol for_each]      an exact computation equals the value (in every cell)
  zscore     metric [comparisons]              a Monte Carlo |z| (deviation / its standard error)
                                               stays under the Bonferroni bound for that many comparisons
Common optional fields: `where` (rows to use), `values` (the for_each/along cells the claim is about: other values
in the rows are left out, a missing one leaves the check undecided),
`quantifier` (all, the default, or any: the claim holds in every cell or in at least one), `exact`
(true: a deterministic computation; on a check that is not a derivation it needs `exact_why`),
`test` (t, the default, or sign: an exact sign test over paired units, for discrete outcomes),
`paired` (false: compare with Welch's t), `min_reps` (units a noisy cell needs; default 3), `alpha`
(default 0.05; 0.01 for zscore), `scales`, `regime` ({where, reason}: the cells the claim is about).

How a verdict is decided (one rule for every kind):
  * Noisy metrics are tested at the real n of units with a t test: one-sample for thresholds and
    tolerances; for comparisons paired when both arms carry the same units, Welch's otherwise. The
    confidence interval of the effect decides: on the claimed side -> PASS, on the other -> FAIL,
    straddling -> INCONCLUSIVE (underpowered), with the units that would resolve it.
  * Exact only where exact: derivations (or `exact: true` with its reason) compare directly, and an
    exact tie FAILS a strict claim. An empirical cell whose units happen to agree is a sample: with no
    spread the sign test (paired) or complete separation (unpaired) decides, and a tie is never a FAIL.
  * Multiplicity: a claim "in every cell" PASSES when every cell passes at alpha (intersection-union)
    and FAILS when some cell fails at alpha / m (Bonferroni over its m cells); "in at least one cell"
    the other way round. Monotone steps and crossover ends likewise.
  * Fewer than `min_reps` units, missing cells, failed jobs: INCONCLUSIVE, saying which way it leans.
  * Preconditions: a check whose `requires` did not all PASS, or that names unmeasured
    preconditions, is NOT REACHED (never PASS or FAIL), showing the precondition's value and the lean.
  * Stability: a decided empirical verdict is re-decided on each half of the units (the later half
    held out); where the halves are large enough (>= min_reps units each) and one of them does not
    give the same verdict, the check is INCONCLUSIVE, reason `unstable`.
  * N/A: the check does not apply here (another scale, or no cell in the claim's regime).
Every non-PASS check carries a reason: refuted (an empirical FAIL in the post's regime), slip (a
derivation FAIL: the post's own arithmetic or remark), not_reached (a precondition, a cell or a scale
the setup did not reach), underpowered (too few units, or an effect inside the noise), unstable.
The post's verdict combines the derivation and empirical checks; `ours` and preconditions are apart (a
precondition only `ours` checks require is shown as a "precondition of ours").
"""

from __future__ import annotations

import math
import operator
from collections import defaultdict
from dataclasses import dataclass

from ..common.progress import fmt
from .quantiles import normal_quantile, student_t_quantile

PASS, FAIL, INCONCLUSIVE, NA = "PASS", "FAIL", "INCONCLUSIVE", "N/A"
NOT_REACHED = "NOT REACHED"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, NOT_REACHED, NA)
OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
KINDS = ("threshold", "ordering", "monotone", "crossover", "approx", "identity", "zscore")
BASES = ("derivation", "empirical", "precondition", "ours")
DECIDING = ("derivation", "empirical")  # the bases that decide the post's verdict
REASONS = ("refuted", "slip", "not_reached", "underpowered", "unstable")
UNITS = ("model", "data", "draw")
UNIT_WORDS = {"model": "trained models", "data": "data draws", "draw": "Monte Carlo draws", None: "replicates"}
REPLICATE_KEYS = ("seed", "shard", "replicate")
DEFAULT_UNIT_KEYS = {"model": ("seed", "replicate"), "data": REPLICATE_KEYS, "draw": REPLICATE_KEYS}
VALUE_SOURCES = ("post", "paper", "derivation", "numerical", "ours")
NOT_CONFIG = ("meta", "claim", "reported", "checks", "figure", "hydra", "sweep_grids", "schema", "threats")
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


def unit_keys(check: dict) -> tuple:
    """The row keys that identify one independent unit of this check (all replicate keys if it names none)."""
    if check.get("unit_keys"):
        return tuple(check["unit_keys"])
    return DEFAULT_UNIT_KEYS.get(check.get("unit"), REPLICATE_KEYS)


def unit_id(row: dict, check: dict) -> tuple:
    return tuple((k, row[k]) for k in unit_keys(check) if k in row and row[k] is not None)


# -- cells and tests -------------------------------------------------------------------------------

class Cell:
    """The units of one configuration: their values (replicates within a unit averaged), ids, mean, sample
    std and standard error. `inner` is the most values one unit averaged (e.g. shards of one model)."""

    def __init__(self, pairs: list[tuple[tuple, float]]):
        grouped: dict = {}
        for i, v in pairs:
            if isinstance(v, (int, float)) and math.isfinite(v):
                grouped.setdefault(i, []).append(float(v))
        self.inner = max((len(v) for v in grouped.values()), default=0)
        self.ids = list(grouped)
        self.values = [sum(v) / len(v) for v in grouped.values()]
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
    """One comparison: the effect (> 0 means the claim's direction) and how it was tested. [lo, hi] is the
    interval that decides a PASS, [lo_fail, hi_fail] the (possibly wider, multiplicity-corrected) one that
    decides a FAIL. A test without an interval (sign test, complete separation) gives its p value."""

    effect: float
    lo: float
    hi: float
    test: str
    n: int
    exact: bool = False
    short: bool = False  # fewer units than the check needs
    need: int = 0
    lo_fail: float = math.nan
    hi_fail: float = math.nan
    p: float | None = None  # two-sided p of a test without an interval
    alpha_pass: float = 0.05
    alpha_fail: float = 0.05
    units: str = "replicates"
    p_floor: float = 0.0  # the smallest p the test can give at this n (a sign test over 3 units: 0.25)

    def __post_init__(self):
        if math.isnan(self.lo_fail) and math.isnan(self.hi_fail):
            self.lo_fail, self.hi_fail = self.lo, self.hi

    def verdict(self, strict: bool = True) -> str:
        if self.short:
            return INCONCLUSIVE
        if self.exact:
            if self.effect > 0:
                return PASS
            if self.effect < 0:
                return FAIL
            return FAIL if strict else PASS
        if self.p is not None:
            if self.effect > 0 and self.p < self.alpha_pass:
                return PASS
            if self.effect < 0 and self.p < self.alpha_fail:
                return FAIL
            return INCONCLUSIVE
        if self.lo > 0:
            return PASS
        if self.hi_fail < 0:
            return FAIL
        return INCONCLUSIVE

    def leans(self) -> str:
        return PASS if self.effect > 0 else FAIL if self.effect < 0 else "neither way"

    def describe(self) -> str:
        if self.exact:
            return self.test
        if self.short:
            return f"{self.test}; needs >= {self.need} {self.units}, has {self.n}; leans {self.leans()}"
        if self.p is not None:
            return f"{self.test}, effect {fmt(self.effect)}, p = {fmt(self.p)}"
        text = f"{self.test}, effect {fmt(self.effect)}, CI [{fmt(self.lo)}, {fmt(self.hi)}]"
        if (self.lo_fail, self.hi_fail) != (self.lo, self.hi):
            text += f" (FAIL at {1 - self.alpha_fail:.3g}: [{fmt(self.lo_fail)}, {fmt(self.hi_fail)}])"
        return text

    def resolving_n(self) -> int | None:
        """Units at which an effect this size would leave its CI on one side (normal approximation)."""
        if self.exact or self.short or self.p is not None or self.effect == 0 or not math.isfinite(self.hi - self.lo):
            return None
        half = (self.hi - self.lo) / 2
        return max(self.n + 1, math.ceil(self.n * (half / abs(self.effect)) ** 2))


def t_quantile(alpha: float, df: float) -> float:
    """Student's t two-sided critical value."""
    return student_t_quantile(1 - alpha / 2, df)


def exact_cell(cell: Cell, check: dict) -> bool:
    """No sampling noise: the check declares a deterministic computation, or a derivation's cell has one value
    (or agrees everywhere). An empirical cell whose units happen to agree is still a sample."""
    if check.get("exact"):
        return True
    return check.get("basis", "empirical") == "derivation" and (cell.constant or cell.n == 1)


def min_reps(check: dict) -> int:
    return int(check.get("min_reps", 1 if check.get("exact") else DEFAULT_MIN_REPS))


def levels(check: dict) -> tuple[float, float]:
    """(alpha for a PASS, alpha for a FAIL) of one cell, after the engine's multiplicity correction."""
    alpha = float(check.get("alpha", 0.05))
    return float(check.get("_alpha_pass", alpha)), float(check.get("_alpha_fail", alpha))


def with_cells(check: dict, m: int) -> dict:
    """The check with its per-cell levels for m cells: "every cell" claims pass each cell at alpha and fail
    on one cell at alpha/m (Bonferroni); "at least one" claims the other way round."""
    alpha = float(check.get("alpha", 0.05))
    if m <= 1:
        return check
    if check.get("quantifier", "all") == "any":
        return {**check, "_alpha_pass": alpha / m, "_alpha_fail": alpha, "_cells": m}
    return {**check, "_alpha_pass": alpha, "_alpha_fail": alpha / m, "_cells": m}


def multiplicity_note(check: dict) -> str:
    m = check.get("_cells")
    if not m:
        return ""
    alpha = float(check.get("alpha", 0.05))
    if check.get("quantifier", "all") == "any":
        return f"at least one of {m} cells: a cell PASSES at {fmt(alpha / m)} (Bonferroni), every cell must FAIL"
    return f"every one of {m} cells: each must PASS at {fmt(alpha)}, a cell FAILS at {fmt(alpha / m)} (Bonferroni)"


def sign_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test (ties dropped): P(a count as extreme) under a fair coin."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def sign_stat(diffs: list[float], check: dict, what: str) -> Stat:
    """An exact sign test over paired units: for discrete outcomes, or a sample with no spread."""
    a_pass, a_fail = levels(check)
    wins, losses = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    ties = len(diffs) - wins - losses
    effect = sum(diffs) / len(diffs) if diffs else math.nan
    test = f"sign test, n={len(diffs)}: {wins} for, {losses} against, {ties} tied ({what})"
    return Stat(effect, math.nan, math.nan, test, len(diffs), p=sign_p(wins, losses), alpha_pass=a_pass,
                alpha_fail=a_fail, p_floor=sign_p(len(diffs), 0))


def separation_stat(a: Cell, b: Cell, sign: float, check: dict) -> Stat:
    """Two unpaired samples with no spread: the exact rank-sum p of complete separation, 2 / C(na + nb, na)."""
    a_pass, a_fail = levels(check)
    effect = sign * (a.mean - b.mean)
    p = 1.0 if effect == 0 else min(1.0, 2 / math.comb(a.n + b.n, a.n))
    return Stat(effect, math.nan, math.nan, f"rank-sum, n={a.n}+{b.n}, no spread in either arm", min(a.n, b.n),
                p=p, alpha_pass=a_pass, alpha_fail=a_fail, p_floor=min(1.0, 2 / math.comb(a.n + b.n, a.n)))


def interval(effect: float, se: float, df: float, test: str, n: int, check: dict, units: str) -> Stat:
    a_pass, a_fail = levels(check)
    half = t_quantile(a_pass, df) * se
    half_fail = t_quantile(a_fail, df) * se
    return Stat(effect, effect - half, effect + half, f"{test}, {1 - a_pass:.0%} CI", n, lo_fail=effect - half_fail,
                hi_fail=effect + half_fail, alpha_pass=a_pass, alpha_fail=a_fail, units=units)


def one_sample(cell: Cell, target: float, sign: float, check: dict) -> Stat:
    """Effect sign * (mean - target), tested with a one-sample t at the cell's n of units."""
    effect = sign * (cell.mean - target)
    units = UNIT_WORDS.get(check.get("unit"), "replicates")
    if exact_cell(cell, check):
        return Stat(effect, effect, effect, "exact", cell.n, exact=True)
    need = max(2, min_reps(check))
    if cell.n < need:
        return Stat(effect, math.nan, math.nan, f"one-sample t, n={cell.n}{inner_text(cell)}", cell.n, short=True,
                    need=need, units=units)
    if check.get("test") == "sign" or cell.se == 0:
        return sign_stat([sign * (v - target) for v in cell.values], check,
                         "discrete outcome" if check.get("test") == "sign" else "no spread: a sample, not exact")
    return interval(effect, cell.se, cell.n - 1, f"one-sample t, n={cell.n}{inner_text(cell)}", cell.n, check, units)


def inner_text(cell: Cell) -> str:
    return f" (each the mean of {cell.inner})" if cell.inner > 1 else ""


def two_sample(a: Cell, b: Cell, better: str, check: dict) -> Stat:
    """Effect = how much a beats b (> 0: a better). Paired t when the arms share units."""
    sign = -1.0 if better == "lower" else 1.0
    effect = sign * (a.mean - b.mean)
    n = min(a.n, b.n)
    units = UNIT_WORDS.get(check.get("unit"), "replicates")
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
            return Stat(effect, math.nan, math.nan, f"paired t, n={d.n}{inner_text(a)}", d.n, short=True, need=need,
                        units=units)
        if check.get("test") == "sign" or d.se == 0:
            return sign_stat(diffs, check, "discrete outcome" if check.get("test") == "sign"
                             else "every difference equal: a sample, not exact")
        return interval(d.mean, d.se, d.n - 1, f"paired t, n={d.n}{inner_text(a)}", d.n, check, units)
    if a.n < need or b.n < need:
        return Stat(effect, math.nan, math.nan, f"Welch t, n={a.n}+{b.n}", n, short=True, need=need, units=units)
    va, vb = a.se ** 2, b.se ** 2
    se = math.sqrt(va + vb)
    if se == 0:
        return separation_stat(a, b, sign, check)
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1)) if va and vb else \
        (a.n - 1 if va else b.n - 1)
    return interval(effect, se, df, f"Welch t, n={a.n}+{b.n}", n, check, units)


def combine(verdicts: list[str]) -> str:
    decided = [v for v in verdicts if v != NA]
    if FAIL in decided:
        return FAIL
    if INCONCLUSIVE in decided:
        return INCONCLUSIVE
    if NOT_REACHED in decided:
        return NOT_REACHED
    if not decided:
        return NA if verdicts else INCONCLUSIVE
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


def cells_by(rows: list[dict], metric: str, key: str | None, check: dict | None = None) -> dict:
    """{value of key: Cell}, each cell's values averaged within the check's units."""
    groups: dict = defaultdict(list)
    for row in rows:
        groups[row.get(key) if key else None].append((unit_id(row, check or {}), row.get(metric)))
    cells = {k: Cell(v) for k, v in groups.items()}
    empty = [k for k, c in cells.items() if c.n == 0]
    if empty:
        where = f" at {key}={empty[0]}" if key else ""
        raise Undecided(f"{metric}{where} is not finite (nan or inf) in every replicate")
    return cells


def wanted_values(check: dict) -> list:
    return list(check.get("values") or [])


def claimed(values, check: dict) -> list:
    """The cells a claim is about, in order: with `values`, only those (a sweep may hold other values of the key:
    they are shown in no verdict); without, every value present."""
    wanted = wanted_values(check)
    return sort_values(v for v in values if not wanted or any(same(v, w) for w in wanted))


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
    reason: str = ""
    decidable: bool = True  # False: a test here cannot reach its level at this n (a sign test over 3 units)


def finish(verdicts: list[str], stats: list[Stat], missing: list, key: str | None, observed: str, note: str,
           total: int, check: dict | None = None) -> Outcome:
    verdict = combine(verdicts)
    stat_text = "; ".join(dict.fromkeys(s.describe() for s in stats)) if len(stats) <= 2 else \
        "; ".join(dict.fromkeys(s.test.split(",")[0] + f", n={s.n}" for s in stats))
    extra = multiplicity_note(check or {})
    if extra:
        stat_text = f"{stat_text}; {extra}" if stat_text else extra
    leans_list = [s.leans() for s in stats if s.short]
    needs = []
    reason = ""
    if missing:
        needs.append(f"{len(missing)} of {total} {key} cells not run ({', '.join(map(str, missing))})")
        if verdict == PASS:
            verdict = INCONCLUSIVE
        reason = "not_reached"
    short = [s for s in stats if s.short]
    if short:
        needs.append(f"needs >= {short[0].need} {short[0].units} per cell, has {min(s.n for s in short)}"
                     + (" (one trained model does not decide a claim about training)"
                        if short[0].units == "trained models" and min(s.n for s in short) == 1 else ""))
    unresolved = [s.resolving_n() for s in stats if s.verdict() == INCONCLUSIVE and not s.short]
    unresolved = [n for n in unresolved if n]
    if unresolved:
        needs.append(f"the effect is inside the noise; ~{max(unresolved)} replicates would resolve it if it holds")
    if any(s.p is not None and s.verdict() == INCONCLUSIVE for s in stats):
        needs.append("no spread or a discrete outcome: the sign test needs more units that agree (6 of 6 at 5%)")
    leans = ""
    if verdict == INCONCLUSIVE and leans_list and not any(v == FAIL for v in verdicts):
        leans = FAIL if FAIL in leans_list else PASS
    if verdict == INCONCLUSIVE and not leans:
        undecided = [s.leans() for s in stats if s.verdict() == INCONCLUSIVE]
        leans = undecided[0] if undecided and len(set(undecided)) == 1 and undecided[0] != "neither way" else ""
    if verdict == INCONCLUSIVE and not reason:
        reason = "underpowered"
    decidable = not any(s.short or (s.p is not None and s.p_floor >= min(s.alpha_pass, s.alpha_fail)) for s in stats)
    return Outcome(verdict, observed, note, stat_text, leans, "; ".join(needs), reason, decidable)


def check_threshold(rows, check) -> Outcome:
    key = check.get("for_each")
    cells = cells_by(select(rows, check), check["metric"], key, check)
    op, target = check["op"], float(check["value"])
    sign = 1.0 if op in (">", ">=") else -1.0
    keys = claimed(cells, check) if key else [None]
    total = len(wanted_values(check)) or len(keys)
    check = with_cells(check, total if key else 1)
    stats = {k: one_sample(cells[k], target, sign, check) for k in keys}
    verdicts = [stats[k].verdict(strict=op in (">", "<")) for k in keys]
    observed = ", ".join(f"{fmt(cells[k].mean)}" + (f" @ {k}" if key else "") for k in keys)
    return quantified(finish(verdicts, list(stats.values()), missing_values(cells, check), key, observed,
                             f"need mean {op} {fmt(target)}", len(wanted_values(check)), check), verdicts, check)


def quantified(out: Outcome, verdicts: list[str], check: dict) -> Outcome:
    """An "at least one cell" claim: PASS if some cell passes (at its corrected level), FAIL only if every cell
    fails; an "every cell" claim is what finish already decided."""
    if check.get("quantifier", "all") != "any" or not verdicts:
        return out
    if PASS in verdicts:
        out.verdict, out.reason = PASS, ""
    elif all(v == FAIL for v in verdicts) and out.reason != "not_reached":
        out.verdict, out.reason = FAIL, ""
    else:
        out.verdict, out.reason = INCONCLUSIVE, out.reason or "underpowered"
    return out


def arm_cells(rows, check, key):
    a_rows = select(rows, check, check["a"])
    b_rows = select(rows, check, check["b"])
    return cells_by(a_rows, check["metric"], key, check), cells_by(b_rows, check["metric"], key, check)


def check_ordering(rows, check) -> Outcome:
    key = check.get("for_each")
    a, b = arm_cells(rows, check, key)
    keys = claimed(set(a) & set(b), check) if key else [None]
    if key and not keys:
        raise Undecided(f"no {key} value has both arms")
    missing = missing_values(keys, check) if key else []
    if key:
        missing += [k for k in sort_values(set(a) ^ set(b)) if k not in missing and not wanted_values(check)]
    total = len(wanted_values(check)) or len(keys) + len(missing)
    check = with_cells(check, total if key else 1)
    stats = {k: two_sample(a[k], b[k], check["better"], check) for k in keys}
    verdicts = [stats[k].verdict(strict=True) for k in keys]
    observed = "; ".join(f"{fmt(a[k].mean)} vs {fmt(b[k].mean)}" + (f" @ {k}" if key else "") for k in keys)
    note = f"a={label(check['a'])} vs b={label(check['b'])}, {check['better']} is better"
    return quantified(finish(verdicts, list(stats.values()), missing, key, observed, note, total, check),
                      verdicts, check)


def check_monotone(rows, check) -> Outcome:
    key = check["along"]
    cells = cells_by(select(rows, check), check["metric"], key, check)
    keys = claimed(cells, check)
    missing = missing_values(cells, check)
    if len(keys) < 2:
        return Outcome(INCONCLUSIVE, ", ".join(fmt(cells[k].mean) for k in keys), f"along {key}",
                       needs=f"needs at least 2 values of {key}; has {len(keys)}"
                       + (f" ({len(missing)} not run: {', '.join(map(str, missing))})" if missing else ""),
                       reason="not_reached")
    better = "lower" if check["direction"] == "decreasing" else "higher"
    # each step must not go the wrong way beyond the noise (Bonferroni over the steps), and the ends must
    # differ the right way
    step_check = {**check, "_alpha_fail": float(check.get("alpha", 0.05)) / (len(keys) - 1)}
    steps = [two_sample(cells[hi], cells[lo], better, step_check) for lo, hi in zip(keys[:-1], keys[1:])]
    ends = two_sample(cells[keys[-1]], cells[keys[0]], better, check)
    step_verdicts = [s.verdict() for s in steps]
    if FAIL in step_verdicts or ends.verdict() == FAIL:
        verdict = FAIL
    else:
        verdict = ends.verdict()
    note = f"{check['direction']} along {key} = {', '.join(map(str, keys))}"
    if len(keys) > 2:
        note += f"; a step backwards FAILS at {fmt(float(check.get('alpha', 0.05)) / (len(keys) - 1))} (Bonferroni)"
    out = finish([verdict], [ends] + [s for s in steps if s.verdict() == FAIL], missing, key,
                 " -> ".join(fmt(cells[k].mean) for k in keys), note, len(wanted_values(check)))
    return out


def check_crossover(rows, check) -> Outcome:
    key = check["along"]
    a, b = arm_cells(rows, check, key)
    keys = claimed(set(a) & set(b), check)
    missing = missing_values(keys, check)
    if len(keys) < 2:
        return Outcome(INCONCLUSIVE, "", f"along {key}", needs=f"needs both arms at 2 or more values of {key}; "
                       f"has {len(keys)}" + (f" ({len(missing)} not run)" if missing else ""), reason="not_reached")
    # the two ends must both go the claimed way (each at alpha); the claim fails when either end goes the other
    # way at alpha / 2 (Bonferroni over the two ends)
    check = {**check, "_alpha_fail": float(check.get("alpha", 0.05)) / 2}
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
    cells = cells_by(select(rows, check), check["metric"], key, check)
    keys = claimed(cells, check) if key else [None]
    target = float(check["value"])
    tol = float(check.get("atol", 0.0)) + float(check.get("rtol", 0.0)) * abs(target)
    total = len(wanted_values(check)) or len(keys)
    check = with_cells(check, total if key else 1)
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
    return quantified(finish(verdicts, stats, missing, key, observed, f"|ours - {fmt(target)}| <= {fmt(tol)}",
                             len(wanted_values(check)) or len(keys) + len(missing), check), verdicts, check)


def check_identity(rows, check) -> Outcome:
    return check_approx(rows, {"value": 0, **check, "exact": True})


def check_zscore(rows, check) -> Outcome:
    cell = cells_by(select(rows, check), check["metric"], None)[None]  # every z, never averaged within a unit
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
            "reported": check.get("reported", ""), "metric": check.get("metric", ""),
            "unit": check.get("unit", ""), "value_from": check.get("value_from", "")}
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
        out = Outcome(INCONCLUSIVE, "", str(exc), needs=str(exc), reason="not_reached")
    scale = scale_of(rows)
    if check.get("scales") and scale and scale not in check["scales"] and out.verdict != NA:
        out = Outcome(NA, out.observed, f"decides at scale {', '.join(check['scales'])} only "
                      f"({check.get('scales_reason', 'the post’s number comes from a setting far from ours')}); "
                      f"shown at {scale}", out.stat)
    jobs = {r.get("job") for r in rows if r.get("status") == "ok" and matches(r, check.get("where"))}
    units = {unit_id(r, check) for r in rows if r.get("status") == "ok" and matches(r, check.get("where"))
             and r.get(check.get("metric")) is not None}
    return base | {"verdict": out.verdict, "observed": out.observed, "note": out.note, "stat": out.stat,
                   "leans": out.leans, "needs": out.needs, "n": len(jobs), "units": len(units),
                   "reason": out.reason, "decidable": out.decidable}


def evaluate_checks(checks: list[dict], rows: list[dict], stability: bool = True) -> list[dict]:
    results = [evaluate_check(check, rows) for check in checks]
    if stability:
        for check, result in zip(checks, results):
            result["stability"] = check_stability(check, rows, result["verdict"])
            if result["stability"].startswith("unstable"):
                result.update(verdict=INCONCLUSIVE, leans=result["verdict"], reason="unstable")
    by_id = {r["id"]: r for r in results}
    for check, result in zip(checks, results):
        unmet = [i for i in check.get("requires") or [] if by_id.get(i, {}).get("verdict") != PASS]
        unmeasured = list(check.get("preconditions_unmeasured") or [])
        if (unmet or unmeasured) and result["verdict"] != NA:
            own = result["verdict"]
            parts = [f"{i} {by_id[i]['verdict']} ({by_id[i].get('observed') or by_id[i].get('note') or 'no value'})"
                     if i in by_id else f"{i} missing" for i in unmet]
            parts += [f"not measured: {what}" for what in unmeasured]
            result.update(verdict=NOT_REACHED, reason="not_reached",
                          leans=own if own in (PASS, FAIL) else result.get("leans", ""),
                          note="precondition not met: " + "; ".join(parts)
                               + (f"; {result['note']}" if result.get("note") else ""),
                          needs=f"a setup where {', '.join(unmet + unmeasured)} "
                                f"{'passes' if len(unmet + unmeasured) == 1 else 'pass'}")
    # a precondition that only `ours` checks require gates an extension, not the post: the basis line shows it apart
    for check, result in zip(checks, results):
        dependents = [c.get("basis", "empirical") for c in checks if check["id"] in (c.get("requires") or [])]
        if check.get("basis") == "precondition" and dependents and not set(dependents) & set(DECIDING):
            result["gates"] = "ours"
    for result in results:
        result["reason"] = reason_of(result)
    return results


def reason_of(result: dict) -> str:
    """Why a check is not PASS, from the fixed list REASONS ('' for PASS)."""
    verdict, basis = result["verdict"], result.get("basis", "empirical")
    if verdict == PASS:
        return ""
    if verdict == FAIL:
        return {"derivation": "slip", "precondition": "not_reached"}.get(basis, "refuted")
    if verdict in (NOT_REACHED, NA):
        return "not_reached"
    return result.get("reason") if result.get("reason") in REASONS else "underpowered"


def overall(results: list[dict]) -> str:
    """The post's verdict: derivation and empirical checks decide it; `ours` and preconditions never do. FAIL
    if any of them FAILS; PASS if all PASS; NOT REACHED if every one not passed is not reached; else
    INCONCLUSIVE."""
    deciding = [r for r in results if r.get("basis", "empirical") in DECIDING]
    if not deciding:
        return INCONCLUSIVE
    verdicts = [r["verdict"] for r in deciding]
    if FAIL in verdicts:
        return FAIL
    open_ = [r for r in deciding if r["verdict"] not in (PASS, NA)]
    if not open_:
        return PASS if PASS in verdicts else INCONCLUSIVE
    if all(reason_of(r) == "not_reached" for r in open_):
        return NOT_REACHED
    return INCONCLUSIVE


def counts(results: list[dict]) -> dict:
    """{basis: {verdict: how many checks}}."""
    out: dict = {}
    for r in results:
        basis = r.get("basis", "empirical")
        out.setdefault(basis, {})
        out[basis][r["verdict"]] = out[basis].get(r["verdict"], 0) + 1
    return out


REASON_WORDS = {"refuted": "refuted", "slip": "a slip in the post's own arithmetic or remark",
                "not_reached": "not reached", "underpowered": "underpowered", "unstable": "unstable"}


def overall_reason(results: list[dict], scale: str | None = None) -> dict:
    """The overall verdict with its reason type and a line that says it: "FAIL: refuted at scale=cpu
    (1 of 6 empirical checks: x); 3 of 3 derivation checks PASS"."""
    verdict = overall(results)
    deciding = [r for r in results if r.get("basis", "empirical") in DECIDING]
    by = {b: [r for r in deciding if r.get("basis", "empirical") == b] for b in DECIDING}

    def tally(basis: str) -> str:
        chosen = [r for r in by[basis] if r["verdict"] != NA]
        if not chosen:
            return ""
        passed = sum(r["verdict"] == PASS for r in chosen)
        return f"{passed} of {len(chosen)} {basis} check{'s' * (len(chosen) > 1)} PASS"

    where = f" at scale={scale}" if scale else ""
    failed = [r for r in deciding if r["verdict"] == FAIL]
    refuted = [r for r in failed if reason_of(r) == "refuted"]
    slips = [r for r in failed if reason_of(r) == "slip"]
    if refuted:
        reason = "refuted"
        head = f"refuted{where} ({', '.join(r['id'] for r in refuted)})"
    elif slips:
        reason = "slip"
        head = (f"slip in {'one remark' if len(slips) == 1 else f'{len(slips)} derivations'} "
                f"({', '.join(r['id'] for r in slips)})")
    elif verdict == PASS:
        reason, head = "", ""
    else:
        open_ = [r for r in deciding if r["verdict"] not in (PASS, NA)]
        kinds: dict = {}
        for r in open_:
            kinds.setdefault(reason_of(r), []).append(r["id"])
        reason = max(kinds, key=lambda k: len(kinds[k])) if kinds else "underpowered"
        ranked = sorted(kinds.items(), key=lambda kv: -len(kv[1]))
        head = ", ".join(f"{len(ids)} {REASON_WORDS[k]}" for k, ids in ranked)
    tallies = [t for t in (tally("empirical"), tally("derivation")) if t]
    text = verdict + (f": {head}" if head else "") + ("; " if head and tallies else (": " if tallies else "")) \
        + "; ".join(tallies)
    return {"verdict": verdict, "reason": reason, "text": text}


OURS_PRECONDITION = "precondition of ours"  # the basis line's name for a precondition only `ours` checks require


def basis_line_key(result: dict) -> str:
    basis = result.get("basis", "empirical")
    return OURS_PRECONDITION if basis == "precondition" and result.get("gates") == "ours" else basis


def by_basis(results: list[dict]) -> dict:
    """{basis: verdict} for the bases present (ours and preconditions included, shown apart; a precondition that
    gates only `ours` checks under OURS_PRECONDITION). A check left undecided only because its cell or scale was
    not reached counts as NOT REACHED, as in `overall`."""
    out = {}
    for basis in BASES + (OURS_PRECONDITION,):
        chosen = [NOT_REACHED if r["verdict"] == INCONCLUSIVE and reason_of(r) == "not_reached" else r["verdict"]
                  for r in results if basis_line_key(r) == basis]
        if chosen:
            v = combine(chosen)
            out[basis] = INCONCLUSIVE if v == NA and any(c != NA for c in chosen) else v
    return out


def stable(results: list[dict]) -> str:
    """'unstable' if a deciding check did not hold on a held-out half of its units, 'stable' if some decided
    check was re-decided on held-out units and held, else '-'."""
    deciding = [r for r in results if r.get("basis", "empirical") in DECIDING]
    if any(r.get("stability", "").startswith("unstable") for r in deciding):
        return "unstable"
    if any(r.get("stability", "").startswith("held") for r in deciding):
        return "stable"
    return "-"


def check_stability(check: dict, rows: list[dict], verdict: str) -> str:
    """Re-decide a decided check on each half of its units (sorted; the later half is held out). 'unstable'
    when a half large enough to decide (>= min_reps units) does not give the same verdict; where the halves
    are too small, it says so."""
    if verdict not in (PASS, FAIL) or check.get("exact") or check["kind"] in ("identity", "zscore") \
            or check.get("basis", "empirical") == "derivation":
        return ""
    def units_of(arm: dict | None) -> list:
        return sort_ids({unit_id(r, check) for r in rows if r.get(check.get("metric")) is not None
                         and r.get("status") == "ok" and matches(r, check.get("where")) and matches(r, arm)})

    ids = units_of(None)
    if len(ids) < 2:
        return ""
    # each arm's units are halved on their own (unpaired arms have different units), the later half held out
    halves: tuple[set, set] = (set(), set())
    for arm in [check[k] for k in ("a", "b") if k in check] or [None]:
        own = units_of(arm)
        halves[0].update(own[:(len(own) + 1) // 2])
        halves[1].update(own[(len(own) + 1) // 2:])
    halves = (halves[0], halves[1] - halves[0])
    cut = len([i for i in ids if i in halves[0]])
    ids = sorted(halves[0], key=ids.index) + sorted(halves[1], key=ids.index)
    need = max(2, min_reps(check))
    if check.get("test") == "sign":  # the fewest units at which a sign test can decide at all (6 at 5%)
        need = max(need, next(n for n in range(1, 64) if 2 / 2 ** n < float(check.get("alpha", 0.05))))
    if min(len(halves[0]), len(halves[1])) < need * (2 if "a" in check and halves_unpaired(check, rows) else 1):
        return (f"halves too small to re-check: {len(ids)} units split {len(halves[0])} + {len(halves[1])}, "
                f"a half needs >= {need} per arm")
    seen = []
    for part in halves:
        subset = [r for r in rows if unit_id(r, check) in part or r.get(check.get("metric")) is None]
        half = evaluate_check(check, subset)
        if half["verdict"] == INCONCLUSIVE and not half.get("decidable", True):
            return (f"halves too small to re-check: {len(halves[0])} + {len(halves[1])} units, where the test "
                    f"({half['stat'].split(',')[0]}) cannot reach its level")
        seen.append(half["verdict"])
    described = f"{seen[0]} on units {describe_units(ids[:cut])}, {seen[1]} on the held-out {describe_units(ids[cut:])}"
    if seen[0] != verdict or seen[1] != verdict:
        return f"unstable: {described}"
    return f"held on the held-out units {describe_units(ids[cut:])}"


def halves_unpaired(check: dict, rows: list[dict]) -> bool:
    """Do the two arms of a comparison carry different units (so a half holds each arm's units apart)?"""
    def units(arm):
        return {unit_id(r, check) for r in rows if matches(r, arm) and matches(r, check.get("where"))
                and r.get(check.get("metric")) is not None}
    return units(check["a"]) != units(check["b"])


def describe_units(ids: list) -> str:
    return ", ".join("/".join(f"{k}={v}" for k, v in i) or "-" for i in ids[:6]) + (" ..." if len(ids) > 6 else "")


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
        basis_of = {c.get("id"): c.get("basis") for c in checks}
        not_gates = [i for i in check.get("requires") or [] if i in basis_of and basis_of[i] != "precondition"]
        if not_gates:
            problems.append(f"{cid}: requires {not_gates}: a requirement must be a check of basis precondition")
        if "sigma" in check:
            problems.append(f"{cid}: 'sigma' is gone; decisions use a t test at alpha (default 0.05)")
        problems += rule_problems(check)
    return problems


def rule_problems(check: dict) -> list[str]:
    """The verdict rules' fields: a unit for every measurement, preconditions (or why none) for every empirical
    check, exact only with a reason, the source of every threshold."""
    cid, basis, kind = check.get("id"), check.get("basis"), check.get("kind")
    problems = []
    if basis in ("empirical", "precondition") and check.get("unit") not in UNITS:
        problems.append(f"{cid}: unit must be one of {UNITS} (what one independent replicate is)")
    if check.get("unit") is not None and check.get("unit") not in UNITS:
        problems.append(f"{cid}: unit {check.get('unit')!r} not in {UNITS}")
    bad_keys = [k for k in check.get("unit_keys") or [] if not isinstance(k, str) or not k]
    if bad_keys or (check.get("unit_keys") is not None and not isinstance(check.get("unit_keys"), list)):
        problems.append(f"{cid}: unit_keys is a list of row keys: replicate keys {REPLICATE_KEYS} or config keys "
                        f"such as pretrain.seed")
    if basis == "empirical" and not (check.get("requires") or check.get("preconditions_unmeasured")
                                     or str(check.get("no_precondition") or "").strip()):
        problems.append(f"{cid}: an empirical check names its preconditions (requires, preconditions_unmeasured) "
                        f"or says in no_precondition why it needs none")
    if check.get("exact") and basis != "derivation" and not str(check.get("exact_why") or "").strip():
        problems.append(f"{cid}: exact is for deterministic computations: a {basis} check says why in exact_why")
    if check.get("quantifier", "all") not in ("all", "any"):
        problems.append(f"{cid}: quantifier must be all or any")
    if check.get("test", "t") not in ("t", "sign"):
        problems.append(f"{cid}: test must be t or sign")
    has_threshold = kind in ("threshold", "approx", "identity") or "atol" in check or "rtol" in check
    source = str(check.get("value_from") or "")
    origin = source.split(":", 1)[0].strip()
    if has_threshold and origin not in VALUE_SOURCES:
        problems.append(f"{cid}: value_from must say where the threshold comes from: "
                        f"'<{'|'.join(VALUE_SOURCES)}>: ...'")
    elif has_threshold and origin == "ours" and basis not in ("ours", "precondition"):
        problems.append(f"{cid}: a threshold of ours cannot decide the post: make the check basis ours, or find "
                        f"the post's number")
    elif has_threshold and origin == "numerical" and basis != "derivation":
        problems.append(f"{cid}: a numerical tolerance is for exact identities (derivation checks)")
    return problems
