"""The claim engine on hand-made tables: every kind, the t tests at the real n, ties, missing cells,
failed jobs, scales and regimes, bases, stability. Each test has a case where the verdict must flip."""

import math

import pytest
from scipy import stats

from kexue_runs.claims.engine import (
    FAIL,
    INCONCLUSIVE,
    NA,
    NOT_REACHED,
    PASS,
    by_basis,
    evaluate_checks,
    overall,
    stable,
    table_from_runs,
    validate_checks,
)


def rows(spec):
    """spec: list of (arm, K, seed, value[, status])."""
    out = []
    for item in spec:
        arm, k, seed, value, *status = item
        out.append({"arm": arm, "K": k, "seed": seed, "m": value, "status": status[0] if status else "ok"})
    return out


def verdict(check, table):
    (result,) = evaluate_checks([{"id": "c", "metric": "m", "basis": "empirical", "source": "test", **check}], table)
    return result


def jitter(arm, k, s):
    """Deterministic noise that differs between arms, cells and seeds (so no difference is constant)."""
    return 0.01 * ((7 * s + 3 * k + 2 * (arm != "a")) % 5)


def spread(center, offsets, arm="a", k=1):
    return [(arm, k, s, center + o) for s, o in enumerate(offsets)]


T3 = stats.t.ppf(0.975, 2)  # 4.303: the two-sided 95% critical value at n = 3 (df = 2)


def test_threshold_uses_a_one_sample_t_at_the_real_n():
    # mean 1, sample sd 1 at n = 3: SE = 1/sqrt(3); the CI half-width is T3 * SE = 2.48
    data = rows(spread(1.0, (-1.0, 0.0, 1.0)))
    check = {"kind": "threshold", "op": ">", "value": 1.0 - 2.4 / math.sqrt(3) * T3 / T3 * 1.0}
    assert verdict({**check, "value": 1.0 - 1.01 * T3 / math.sqrt(3)}, data)["verdict"] == PASS
    assert verdict({**check, "value": 1.0 - 0.99 * T3 / math.sqrt(3)}, data)["verdict"] == INCONCLUSIVE
    assert verdict({**check, "value": 1.0 + 1.01 * T3 / math.sqrt(3)}, data)["verdict"] == FAIL
    # 2 standard errors would have decided this one; the t test at n = 3 does not
    assert verdict({**check, "value": 1.0 - 2.5 / math.sqrt(3)}, data)["verdict"] == INCONCLUSIVE


def test_too_few_replicates_is_inconclusive_and_says_which_way_it_leans():
    r = verdict({"kind": "threshold", "op": ">=", "value": 0.9}, rows([("a", 1, 0, 0.092)]))
    assert r["verdict"] == INCONCLUSIVE and r["leans"] == FAIL
    assert "needs >= 3 replicates per cell, has 1" in r["needs"]
    r = verdict({"kind": "threshold", "op": ">=", "value": 0.9}, rows(spread(0.95, (0, 0.01))))
    assert r["verdict"] == INCONCLUSIVE and r["leans"] == PASS and "has 2" in r["needs"]
    r = verdict({"kind": "threshold", "op": ">=", "value": 0.9, "min_reps": 5}, rows(spread(0.95, (0, 0.01, 0.02))))
    assert "needs >= 5" in r["needs"]


def test_exact_metrics_compare_directly_and_ties_follow_the_rule():
    one = rows([("a", 1, 0, 1.0)])
    assert verdict({"kind": "threshold", "op": ">=", "value": 1.0, "exact": True}, one)["verdict"] == PASS
    assert verdict({"kind": "threshold", "op": ">", "value": 1.0, "exact": True}, one)["verdict"] == FAIL  # tie, strict
    assert verdict({"kind": "threshold", "op": ">", "value": 0.999, "exact": True}, one)["verdict"] == PASS
    tie = rows([("a", 1, 0, 2.0), ("b", 1, 0, 2.0)])
    check = {"kind": "ordering", "better": "lower", "a": {"arm": "a"}, "b": {"arm": "b"}, "exact": True}
    assert verdict(check, tie)["verdict"] == FAIL  # an exact tie is not a win
    # identical values in every replicate of a derivation count as exact too
    same = rows(spread(2.0, (0, 0, 0)) + spread(2.0, (0, 0, 0), arm="b"))
    assert verdict({**check, "exact": False, "basis": "derivation"}, same)["verdict"] == FAIL
    # but in an empirical check they are a sample: a tie is undecided, never a strict FAIL
    r = verdict({**check, "exact": False}, same)
    assert r["verdict"] == INCONCLUSIVE and r["reason"] == "underpowered" and "sign test" in r["stat"]
    # with noise, a tie within the noise is undecided
    noisy = rows(spread(2.0, (-0.1, 0.0, 0.1)) + spread(2.0, (0.1, -0.1, 0.0), arm="b"))
    assert verdict({**check, "exact": False}, noisy)["verdict"] == INCONCLUSIVE


def test_ordering_is_paired_when_arms_share_seeds_and_welch_otherwise():
    # a is better than b by about 0.1 on every seed (0.09-0.11), but the seeds differ a lot
    shared = rows(spread(1.0, (0.0, 1.0, -1.0)) + spread(1.1, (0.01, 0.99, -1.0), arm="b"))
    check = {"kind": "ordering", "better": "lower", "a": {"arm": "a"}, "b": {"arm": "b"}}
    r = verdict(check, shared)
    assert r["verdict"] == PASS and "paired" in r["stat"]
    # the same values on different seeds: Welch's test cannot separate them
    unshared = rows(spread(1.0, (0.0, 1.0, -1.0)) + [("b", 1, s + 10, v) for s, v in enumerate((1.1, 2.1, 0.1))])
    r = verdict(check, unshared)
    assert r["verdict"] == INCONCLUSIVE and "Welch" in r["stat"]
    assert verdict({**check, "paired": False}, shared)["verdict"] == INCONCLUSIVE


def test_paired_decision_sits_at_the_t_critical_value():
    # differences d = (e - s, e, e + s) have mean e and sd s: PASS iff e / (s / sqrt 3) > T3
    def table(effect, sd=1.0):
        a = [("a", 1, i, 0.0) for i in range(3)]
        b = [("b", 1, i, effect + o) for i, o in enumerate((-sd, 0.0, sd))]
        return rows(a + b)

    check = {"kind": "ordering", "better": "lower", "a": {"arm": "a"}, "b": {"arm": "b"}}
    assert verdict(check, table(1.02 * T3 / math.sqrt(3)))["verdict"] == PASS
    assert verdict(check, table(0.98 * T3 / math.sqrt(3)))["verdict"] == INCONCLUSIVE
    assert verdict(check, table(-1.02 * T3 / math.sqrt(3)))["verdict"] == FAIL
    # a difference of 1.5 standard errors at n = 3 decides nothing
    r = verdict(check, table(1.5 / math.sqrt(3)))
    assert r["verdict"] == INCONCLUSIVE and "replicates would resolve it" in r["needs"]


def test_ordering_for_each_fails_on_one_cell_and_reports_missing_cells():
    grid = rows([(arm, k, s, v + jitter(arm, k, s)) for arm, base in (("a", 1.0), ("b", 2.0))
                 for k, v in ((1, base), (2, base * 2)) for s in range(3)])
    check = {"kind": "ordering", "better": "lower", "a": {"arm": "a"}, "b": {"arm": "b"}, "for_each": "K"}
    assert verdict(check, grid)["verdict"] == PASS
    assert verdict({**check, "better": "higher"}, grid)["verdict"] == FAIL
    r = verdict({**check, "values": [1, 2, 4]}, grid)
    assert r["verdict"] == INCONCLUSIVE and "1 of 3 K cells not run (4)" in r["needs"]
    flipped = [dict(r, m=r["m"] + (10 if r["arm"] == "a" and r["K"] == 2 else 0)) for r in grid]
    assert verdict({**check, "values": [1, 2, 4]}, flipped)["verdict"] == FAIL  # a failing cell decides


def test_values_name_the_cells_a_claim_is_about_and_leave_the_others_out():
    """A sweep may hold values of the key the claim does not speak of: `values` keeps them out of the verdict
    (fsq_vs_vq's vq_usage_settled read K = 16 as well as the 1024 and 4096 it names, #28 review)."""
    grid = rows([("a", k, s, v + jitter("a", k, s)) for k, v in ((16, 5.0), (1024, 0.1), (4096, 0.2))
                 for s in range(4)])
    check = {"kind": "threshold", "for_each": "K", "op": "<", "value": 1}
    assert verdict(check, grid)["verdict"] == FAIL  # every value present: K = 16 fails
    r = verdict({**check, "values": [1024, 4096]}, grid)
    assert r["verdict"] == PASS and "@ 16" not in r["observed"] and "@ 4096" in r["observed"]
    pair = rows([(arm, k, s, (5.0 if (arm == "a") == (k == 16) else 1.0) + jitter(arm, k, s))
                 for arm in ("a", "b") for k in (16, 1024) for s in range(4)])
    ordering = {"kind": "ordering", "better": "lower", "a": {"arm": "a"}, "b": {"arm": "b"}, "for_each": "K"}
    assert verdict(ordering, pair)["verdict"] == FAIL
    assert verdict({**ordering, "values": [1024]}, pair)["verdict"] == PASS
    approx = {"kind": "approx", "for_each": "K", "value": 0.1, "atol": 0.2}
    assert verdict(approx, grid)["verdict"] == FAIL
    assert verdict({**approx, "values": [1024, 4096]}, grid)["verdict"] == PASS


def test_threshold_on_the_cells_a_single_run_has():
    """One run of a sweep experiment: the cell it has is evaluated, the rest are named."""
    run = rows([("fsq", 1024, 0, 0.092)])
    r = verdict({"kind": "threshold", "for_each": "K", "values": [16, 64, 256, 1024, 4096], "op": ">=",
                 "value": 0.9}, run)
    assert r["verdict"] == INCONCLUSIVE and r["leans"] == FAIL and "0.092 @ 1024" in r["observed"]
    assert "4 of 5 K cells not run" in r["needs"]


def test_a_failed_job_makes_the_check_inconclusive():
    table = rows(spread(1.0, (0, 0.01, 0.02)) + [("a", 1, 3, float("nan"), "failed")] + spread(1.0, (0, 0.1, 0.2), "b"))
    r = verdict({"kind": "threshold", "where": {"arm": "a"}, "op": ">=", "value": 0}, table)
    assert r["verdict"] == INCONCLUSIVE and "failed" in r["note"]
    assert verdict({"kind": "threshold", "where": {"arm": "b"}, "op": ">=", "value": 0}, table)["verdict"] == PASS


def test_monotone_needs_the_ends_apart_and_no_step_backwards():
    up = rows([("a", k, s, k + jitter("a", k, s)) for k in (1, 2, 4, 8) for s in range(3)])
    check = {"kind": "monotone", "where": {"arm": "a"}, "along": "K"}
    assert verdict({**check, "direction": "increasing"}, up)["verdict"] == PASS
    assert verdict({**check, "direction": "decreasing"}, up)["verdict"] == FAIL
    bump = rows([("a", k, s, v + jitter("a", k, s)) for k, v in ((1, 1), (2, 5), (4, 3), (8, 9)) for s in range(3)])
    assert verdict({**check, "direction": "increasing"}, bump)["verdict"] == FAIL
    flat = rows([("a", k, s, 1.0 + 0.3 * ((s * 7 + k) % 3)) for k in (1, 2) for s in range(3)])
    assert verdict({**check, "direction": "increasing"}, flat)["verdict"] == INCONCLUSIVE


def test_crossover_reports_where_and_one_arm_winning_everywhere_is_not_one():
    table = rows([(arm, k, s, v + jitter(arm, k, s)) for k, va, vb in ((1, 3, 1), (4, 3, 2), (8, 2, 3), (16, 1, 3))
                  for arm, v in (("a", va), ("b", vb)) for s in range(3)])
    check = {"kind": "crossover", "better": "lower", "a": {"arm": "a"}, "b": {"arm": "b"}, "along": "K"}
    r = verdict(check, table)
    assert r["verdict"] == PASS and "between K=4 and 8" in r["observed"]
    everywhere = rows([(arm, k, s, v + jitter(arm, k, s)) for k in (1, 2, 4) for arm, v in (("a", 1), ("b", 3))
                       for s in range(3)])
    r = verdict(check, everywhere)
    assert r["verdict"] == FAIL and "a better from K=1 on" in r["observed"]
    never = rows([(arm, k, s, v + jitter(arm, k, s)) for k in (1, 2) for arm, v in (("a", 3), ("b", 1))
                  for s in range(3)])
    r = verdict(check, never)
    assert r["verdict"] == FAIL and "never better" in r["observed"]


def test_approx_identity_and_zscore():
    assert verdict({"kind": "approx", "value": 0.806, "atol": 1e-3, "exact": True},
                   rows([("a", 1, 0, 0.8061)]))["verdict"] == PASS
    assert verdict({"kind": "approx", "value": 0.9, "rtol": 0.01, "exact": True},
                   rows([("a", 1, 0, 0.8061)]))["verdict"] == FAIL
    inside = rows(spread(0.5, (-0.001, 0.0, 0.001)))
    assert verdict({"kind": "approx", "value": 0.5, "atol": 0.05}, inside)["verdict"] == PASS
    wide = rows(spread(0.5, (-0.2, 0.0, 0.2)))
    assert verdict({"kind": "approx", "value": 0.5, "atol": 0.05}, wide)["verdict"] == INCONCLUSIVE
    assert verdict({"kind": "approx", "value": 0.9, "atol": 0.05}, inside)["verdict"] == FAIL
    assert verdict({"kind": "identity", "value": 0}, rows([("a", 1, 0, 1e-13)]))["verdict"] == FAIL
    assert verdict({"kind": "identity", "value": 0, "atol": 1e-12}, rows([("a", 1, 0, 1e-13)]))["verdict"] == PASS
    # zscore: Bonferroni bound at family-wise alpha 0.01 over k comparisons
    bound = stats.norm.ppf(1 - 0.01 / (2 * 20))
    z = rows([("a", 1, 0, 0.99 * bound)])
    r = verdict({"kind": "zscore", "comparisons": 20}, z)
    assert r["verdict"] == PASS and f"{bound:.4g}" in r["note"]
    assert verdict({"kind": "zscore", "comparisons": 20}, rows([("a", 1, 0, 1.01 * bound)]))["verdict"] == FAIL
    assert verdict({"kind": "zscore", "comparisons": 1}, rows([("a", 1, 0, 3.0)]))["verdict"] == FAIL


def test_approx_for_each_decides_every_cell():
    near = rows(spread(1.0, (-0.01, 0.0, 0.01), k=1) + spread(1.05, (-0.01, 0.0, 0.01), k=100))
    check = {"kind": "approx", "value": 1.0, "atol": 0.2, "for_each": "K", "values": [1, 100]}
    assert verdict(check, near)["verdict"] == PASS
    far = rows(spread(1.0, (-0.01, 0.0, 0.01), k=1) + spread(1.5, (-0.01, 0.0, 0.01), k=100))
    result = verdict(check, far)
    assert result["verdict"] == FAIL and "@ 100" in result["observed"]
    assert verdict({**check, "values": [1, 10, 100]}, near)["verdict"] == INCONCLUSIVE  # a cell not run


def test_scales_and_regimes_make_a_check_not_applicable():
    table = [dict(r, **{"scale.name": "cpu"}) for r in rows(spread(0.1, (0, 0.01, 0.02)))]
    r = verdict({"kind": "threshold", "op": ">=", "value": 0.9, "scales": ["gpu"]}, table)
    assert r["verdict"] == NA and "gpu" in r["note"] and r["observed"]
    r = verdict({"kind": "threshold", "op": ">=", "value": 0.9,
                 "regime": {"where": {"K": [256]}, "reason": "n/r large"}}, table)
    assert r["verdict"] == NA and "n/r large" in r["note"]
    assert verdict({"kind": "threshold", "op": ">=", "value": 0.9, "regime": {"where": {"K": 1}, "reason": "x"}},
                   table)["verdict"] == FAIL


def test_overall_comes_from_derivation_and_empirical_never_from_ours():
    results = [{"verdict": PASS, "basis": "derivation"}, {"verdict": PASS, "basis": "empirical"},
               {"verdict": FAIL, "basis": "ours"}]
    assert overall(results) == PASS
    assert by_basis(results) == {"derivation": PASS, "empirical": PASS, "ours": FAIL}
    assert overall(results + [{"verdict": FAIL, "basis": "derivation"}]) == FAIL
    assert overall([{"verdict": NA, "basis": "empirical"}, {"verdict": PASS, "basis": "ours"}]) == INCONCLUSIVE
    # a check undecided only because its cells were not run reads NOT REACHED in the basis line, as overall
    unreached = [{"verdict": INCONCLUSIVE, "basis": "empirical", "reason": "not_reached"},
                 {"verdict": NOT_REACHED, "basis": "empirical", "reason": "not_reached"}]
    assert overall(unreached) == NOT_REACHED and by_basis(unreached) == {"empirical": NOT_REACHED}
    underpowered = unreached + [{"verdict": INCONCLUSIVE, "basis": "empirical", "reason": "underpowered"}]
    assert overall(underpowered) == INCONCLUSIVE and by_basis(underpowered) == {"empirical": INCONCLUSIVE}
    assert overall([{"verdict": NA, "basis": "empirical"}, {"verdict": PASS, "basis": "empirical"}]) == PASS


def test_a_verdict_that_flips_on_the_held_out_replicates_is_unstable():
    # a beats b clearly on seeds 0-3, loses clearly on seeds 4-7; over all 8 it is a (weak) win
    a = [("a", 1, s, 1.0 + 0.001 * s) for s in range(8)]
    b = [("b", 1, s, (2.0 if s < 4 else 0.9) + 0.001 * s) for s in range(8)]
    check = {"id": "c", "metric": "m", "basis": "empirical", "source": "t", "kind": "ordering", "better": "lower",
             "a": {"arm": "a"}, "b": {"arm": "b"}, "min_reps": 3}
    table = rows(a + b)
    (r,) = evaluate_checks([{**check, "alpha": 0.5}], table)
    # decided PASS on all 8, but not on both halves: not PASS, reason unstable, leaning PASS
    assert r["verdict"] == INCONCLUSIVE and r["reason"] == "unstable" and r["leans"] == PASS
    assert r["stability"].startswith("unstable") and stable([r]) == "unstable"
    steady = rows(a + [("b", 1, s, 2.0 + jitter("b", 1, s)) for s in range(8)])
    (r,) = evaluate_checks([check], steady)
    assert r["verdict"] == PASS and r["stability"].startswith("held") and stable([r]) == "stable"


def test_table_from_runs_flattens_config_and_keeps_status():
    (row,) = table_from_runs([{"status": "failed", "config": {"quantizer": {"name": "fsq", "levels": [8, 5]}},
                               "final": {"val/mse": 0.5}}])
    assert row["quantizer.name"] == "fsq" and row["quantizer.levels"] == (8, 5)
    assert row["status"] == "failed" and row["val/mse"] == 0.5


def test_claim_rows_expand_a_run_and_the_run_row_never_joins_their_groups():
    run = {"status": "ok", "config": {"arch": {"name": "baseline"}, "seed": 0}, "final": {"acc_run": 0.5, "acc": 0.4},
           "claim_rows": [{"arm": arm, "shard": s, "acc": acc + 0.001 * s + 0.01 * (s % 2) + jitter(arm, 1, s)}
                          for arm, acc in (("rope", 0.5), ("pi", 0.3)) for s in range(4)]}
    table = table_from_runs([run])
    assert len(table) == 9 and all(r["arch.name"] == "baseline" for r in table)
    assert "acc" not in table[0]  # the run's summary of a per-replicate metric is not a replicate
    check = {"id": "x", "basis": "empirical", "source": "t", "kind": "ordering", "metric": "acc", "better": "higher",
             "a": {"arm": "rope"}, "b": {"arm": "pi"}}
    (r,) = evaluate_checks([check], table)
    assert r["verdict"] == PASS and "paired" in r["stat"] and "n=4" in r["stat"]
    # every arm within 1 point of the model as trained: the run-level row (no arm) forms no group
    per_arm = {"id": "y", "basis": "empirical", "source": "t", "kind": "threshold", "metric": "acc", "for_each": "arm",
               "op": ">=", "value": 0.2}
    (r,) = evaluate_checks([per_arm], table)
    assert r["verdict"] == PASS and "None" not in r["observed"]
    threshold = {"id": "t", "basis": "empirical", "source": "t", "kind": "threshold", "metric": "acc_run", "op": ">=",
                 "value": 0.4}
    assert "has 1" in evaluate_checks([threshold], table)[0]["needs"]


@pytest.mark.parametrize("bad", [{"kind": "nope"}, {"kind": "threshold", "metric": "m", "op": "=>", "value": 1},
                                 {"kind": "identity", "metric": "m", "source": "x"},
                                 {"kind": "identity", "metric": "m", "basis": "ours"},
                                 {"kind": "identity", "metric": "m", "basis": "ours", "source": "x", "sigma": 2}])
def test_malformed_checks_are_reported(bad):
    assert validate_checks([{"id": "x", "basis": "empirical", "source": "s"} | bad if "basis" not in bad
                            and bad.get("kind") != "identity" else {"id": "x", **bad}])


def test_a_check_whose_precondition_fails_is_inconclusive_and_leans_its_own_way():
    table = rows(spread(0.2, (0, 0.01, 0.02), arm="base") + spread(0.9, (0, 0.01, 0.02), arm="a")
                 + spread(0.1, (0, 0.01, 0.02), arm="b"))
    ready = {"id": "ready", "kind": "threshold", "metric": "m", "op": ">", "value": 0.5, "where": {"arm": "base"},
             "basis": "precondition", "source": "t", "unit": "model", "value_from": "ours: the base can do the task"}
    compare = {"id": "c", "kind": "ordering", "metric": "m", "better": "higher", "a": {"arm": "a"}, "b": {"arm": "b"},
               "basis": "empirical", "source": "t", "requires": ["ready"], "unit": "model"}
    first, second = evaluate_checks([ready, compare], table)
    assert first["verdict"] == FAIL
    assert second["verdict"] == NOT_REACHED and second["leans"] == PASS and "ready FAIL" in second["note"]
    assert second["reason"] == "not_reached" and "0.21" in second["note"]  # the precondition's own value
    # met: the comparison decides as usual
    ready_met = dict(ready, value=0.1)
    assert [r["verdict"] for r in evaluate_checks([ready_met, compare], table)] == [PASS, PASS]
    # a precondition must be an earlier check
    assert validate_checks([compare, ready]) and not validate_checks([ready, compare])
    # the basis line: a failed gate of the post's checks is 'precondition FAIL'; one only `ours` checks require is
    # shown apart, so an extension's unmet gate never reads as the post's setup failing
    assert by_basis(evaluate_checks([ready, compare], table))["precondition"] == FAIL
    extension = dict(compare, basis="ours")
    line = by_basis(evaluate_checks([ready, extension], table))
    assert line == {"ours": NOT_REACHED, "precondition of ours": FAIL}
    assert by_basis(evaluate_checks([ready, extension, compare], table))["precondition"] == FAIL


def test_the_next_command_asks_for_the_sweep_when_cells_lack_and_for_more_seeds_when_only_noise_undecides():
    from kexue_runs.claims.verdicts import next_command

    lacking = [{"verdict": INCONCLUSIVE, "basis": "empirical", "needs": "needs >= 3 replicates, has 1"}]
    noisy = [{"verdict": INCONCLUSIVE, "basis": "empirical", "needs": "~40 replicates would resolve it if it holds"}]
    assert next_command("lora_plus", "cpu", lacking) == "kexue-run -m experiment=lora_plus sweep=lora_plus"
    more_seeds = "kexue-run -m experiment=lora_plus sweep=lora_plus seed=0,1,2,3,4,5"
    assert next_command("lora_plus", "cpu", noisy) == more_seeds
    assert next_command("lora_plus", "cpu", noisy, seeds_run=[0, 1, 2]) == more_seeds
    # a sweep that already ran seeds 0-5 is asked for 0-11, not for the seeds it has
    assert next_command("lora_plus", "cpu", noisy, seeds_run=range(6)) == more_seeds.replace("5", "5,6,7,8,9,10,11")
    assert next_command("lora_plus", "cpu", [dict(noisy[0], basis="ours")]) is None
    unmet = [dict(noisy[0], note="precondition not met: base FAIL; ~40 replicates would resolve it")]
    assert next_command("lora_plus", "cpu", unmet) is None


def test_the_next_command_runs_what_the_run_ran():
    """More seeds of a run on images are more seeds on images: the run's own overrides are carried, the ones the
    command sets itself (seed, scale, ...) or that name this run only (output_root, resume, hydra.*) are not."""
    from kexue_runs.claims.verdicts import next_command

    noisy = [{"verdict": INCONCLUSIVE, "basis": "empirical", "needs": "~40 replicates would resolve it if it holds"}]
    overrides = ["sim.target=images", "seed=3", "scale=gpu", "output_root=/tmp/x", "hydra.run.dir=/tmp/y",
                 "trainer.progress=false", "+extra=1"]
    assert next_command("gan_qp", "gpu", noisy, overrides) == \
        "kexue-run -m experiment=gan_qp scale=gpu sim.target=images +extra=1 seed=0,1,2,3,4"
    assert next_command("gan_qp", "cpu", noisy) == "kexue-run -m experiment=gan_qp seed=0,1,2,3,4"
    # after a multirun over seeds 0-4, the next five (the same ones again would only reuse their cells)
    assert next_command("gan_qp", "cpu", noisy, ["trainer.threads=1"], [0, 1, 2, 3, 4]) == \
        "kexue-run -m experiment=gan_qp trainer.threads=1 seed=5,6,7,8,9"


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 15.37, 30, 200, 5000])
def test_t_and_normal_quantiles_match_scipy(df):
    """The engine's own quantiles (no scipy import at run time) against scipy's, incl. Welch's fractional df."""
    from kexue_runs.claims.quantiles import normal_quantile, student_t_quantile

    for alpha in (0.2, 0.05, 0.01, 1e-4):
        assert student_t_quantile(1 - alpha / 2, df) == pytest.approx(stats.t.ppf(1 - alpha / 2, df), rel=1e-10)
        assert student_t_quantile(alpha / 2, df) == pytest.approx(stats.t.ppf(alpha / 2, df), rel=1e-10)
        assert normal_quantile(1 - alpha / 2) == pytest.approx(stats.norm.ppf(1 - alpha / 2), rel=1e-12)
    # the textbook table: t_{0.975} at 1, 2 and 10 degrees of freedom
    assert student_t_quantile(0.975, 1) == pytest.approx(12.706204736, rel=1e-9)
    assert student_t_quantile(0.975, 2) == pytest.approx(4.302652730, rel=1e-9)
    assert student_t_quantile(0.975, 10) == pytest.approx(2.228138852, rel=1e-9)
    with pytest.raises(ValueError):
        student_t_quantile(1.0, df)


# -- the verdict rules of #27: each rule with a case where the verdict must change --------------------------------

def test_unmeasured_preconditions_make_a_check_not_reached_whatever_it_measures():
    table = rows(spread(0.9, (0, 0.01, 0.02), arm="a") + spread(0.1, (0.02, 0, 0.01), arm="b"))
    compare = {"kind": "ordering", "better": "lower", "a": {"arm": "a"}, "b": {"arm": "b"}, "unit": "model"}
    assert verdict(compare, table)["verdict"] == FAIL
    r = verdict({**compare, "preconditions_unmeasured": ["the baseline reaches its plateau"]}, table)
    assert r["verdict"] == NOT_REACHED and r["leans"] == FAIL and r["reason"] == "not_reached"
    assert "not measured: the baseline reaches its plateau" in r["note"]


def test_a_one_vs_one_tie_in_a_count_is_not_a_fail_and_a_sign_test_decides_counts():
    ties = rows([(arm, 10, s, 1.0) for arm in ("fbdm", "dfp") for s in range(3)])
    check = {"kind": "ordering", "better": "higher", "a": {"arm": "fbdm"}, "b": {"arm": "dfp"}, "unit": "model",
             "test": "sign"}
    r = verdict(check, ties)
    assert r["verdict"] == INCONCLUSIVE and r["reason"] == "underpowered" and "3 tied" in r["stat"]
    assert verdict({**check, "exact": True}, ties)["verdict"] == FAIL  # what the old engine did with it
    three = rows([("fbdm", 10, s, 2.0) for s in range(3)] + [("dfp", 10, s, 1.0) for s in range(3)])
    assert verdict(check, three)["verdict"] == INCONCLUSIVE  # 3 of 3: p = 0.25
    six = rows([("fbdm", 10, s, 2.0) for s in range(6)] + [("dfp", 10, s, 1.0) for s in range(6)])
    assert verdict(check, six)["verdict"] == PASS  # 6 of 6: p = 0.031
    assert verdict({**check, "better": "lower"}, six)["verdict"] == FAIL
    # unpaired arms with no spread: complete separation, p = 2 / C(na + nb, na)
    apart = rows([("fbdm", 10, s, 2.0) for s in range(4)] + [("dfp", 10, s + 10, 1.0) for s in range(4)])
    r = verdict({**check, "test": "t"}, apart)
    assert r["verdict"] == PASS and "rank-sum" in r["stat"]  # 2/70 = 0.029
    assert verdict({**check, "test": "t"}, apart[:3] + apart[4:7])["verdict"] == INCONCLUSIVE  # 2/20 = 0.1


@pytest.mark.parametrize("wins,losses", [(0, 0), (3, 0), (5, 1), (6, 0), (2, 7), (10, 10), (12, 3)])
def test_the_sign_test_is_the_exact_binomial(wins, losses):
    from kexue_runs.claims.engine import sign_p

    expected = 1.0 if wins + losses == 0 else stats.binomtest(wins, wins + losses, 0.5).pvalue
    assert sign_p(wins, losses) == pytest.approx(expected, rel=1e-12)


def test_one_trained_model_over_four_shards_does_not_decide_a_training_claim():
    def with_shards(spec):
        out = rows([(arm, 1, s, v) for arm, _, s, v in spec])
        for row, (_, k, _, _) in zip(out, spec):
            row["shard"] = k
        return out

    def arms(seeds):
        return [(arm, k, s, v + 0.01 * k + jitter(arm, k, s)) for s in seeds for k in range(4)
                for arm, v in (("ddim", 1.0), ("ddpm", 2.0))]

    one_model = with_shards(arms([0]))
    check = {"kind": "ordering", "better": "lower", "a": {"arm": "ddim"}, "b": {"arm": "ddpm"}, "unit": "model"}
    r = verdict(check, one_model)
    assert r["verdict"] == INCONCLUSIVE and r["reason"] == "underpowered"
    assert "needs >= 3 trained models per cell, has 1" in r["needs"] and r["units"] == 1
    # the same rows, read as 4 independent test sets of one given model, do decide a claim about that model
    assert verdict({**check, "unit": "data"}, one_model)["verdict"] == PASS
    # three trained models, each averaged over its 4 shards: n = 3 units
    r = verdict(check, with_shards(arms(range(3))))
    assert r["verdict"] == PASS and "n=3" in r["stat"] and "mean of 4" in r["stat"] and r["units"] == 3


def null_cells(rng, cells=12, seeds=5):
    """One claim over `cells` cells where the two arms are equal in distribution (a null)."""
    return rows([(arm, k, s, rng.gauss(0.0, 1.0)) for k in range(cells) for s in range(seeds) for arm in ("a", "b")])


def test_every_cell_claims_do_not_fail_by_chance_more_than_the_nominal_rate():
    """1000 seeded null claims over 12 cells: with Bonferroni a claim FAILs at most alpha of the time; tested at 5%
    per cell, it would fail about 1 - 0.975^12 = 26% of the time."""
    import random

    from kexue_runs.claims.engine import check_ordering

    rng = random.Random(20261207)
    check = {"id": "c", "metric": "m", "basis": "empirical", "source": "t", "kind": "ordering", "better": "lower",
             "a": {"arm": "a"}, "b": {"arm": "b"}, "for_each": "K", "unit": "model"}
    uncorrected = {**check, "_alpha_fail": 0.05}
    fails = naive = 0
    for _ in range(1000):
        table = null_cells(rng)
        fails += check_ordering(table, check).verdict == FAIL
        # the same claim with each cell failing at 5% (the old rule), on the same table
        naive += any(v == FAIL for v in per_cell_verdicts(table, uncorrected))
    assert fails / 1000 <= 0.05
    assert naive / 1000 > 0.15  # the rule matters: without it, a true claim fails a fifth of the time


def per_cell_verdicts(table, check):
    from kexue_runs.claims.engine import arm_cells, two_sample

    a, b = arm_cells(table, check, "K")
    return [two_sample(a[k], b[k], "lower", check).verdict() for k in a]


def test_at_least_one_cell_claims_pass_by_chance_at_most_alpha():
    import random

    from kexue_runs.claims.engine import check_ordering

    rng = random.Random(7)
    check = {"id": "c", "metric": "m", "basis": "empirical", "source": "t", "kind": "ordering", "better": "lower",
             "a": {"arm": "a"}, "b": {"arm": "b"}, "for_each": "K", "unit": "model", "quantifier": "any"}
    passes = sum(check_ordering(null_cells(rng), check).verdict == PASS for _ in range(400))
    assert passes / 400 <= 0.05
    # one clearly winning cell among nulls is enough for "at least one"; not for "every cell"
    table = null_cells(rng)
    for row in table:
        if row["K"] == 3 and row["arm"] == "a":
            row["m"] -= 10
    assert check_ordering(table, check).verdict == PASS
    assert check_ordering(table, {**check, "quantifier": "all"}).verdict != PASS


def test_halves_too_small_to_re_check_say_so_and_keep_the_verdict():
    table = rows(spread(1.0, (0.0, 0.01, 0.03, 0.02)) + spread(2.0, (0.01, 0.0, 0.02, 0.03), arm="b"))
    check = {"id": "c", "metric": "m", "basis": "empirical", "source": "t", "kind": "ordering", "better": "lower",
             "a": {"arm": "a"}, "b": {"arm": "b"}, "unit": "model", "no_precondition": "test"}
    (r,) = evaluate_checks([check], table)
    assert r["verdict"] == PASS and r["stability"].startswith("halves too small")


def test_reasons_and_the_overall_line():
    from kexue_runs.claims.engine import overall_reason

    slip = [{"id": "l2_over_l1", "verdict": FAIL, "basis": "derivation"}] + \
        [{"id": f"e{i}", "verdict": PASS, "basis": "empirical"} for i in range(6)]
    out = overall_reason(slip, "cpu")
    assert out["verdict"] == FAIL and out["reason"] == "slip"
    assert out["text"] == "FAIL: slip in one remark (l2_over_l1); 6 of 6 empirical checks PASS; 0 of 1 derivation " \
                          "check PASS"
    refuted = slip + [{"id": "x", "verdict": FAIL, "basis": "empirical"}]
    assert overall_reason(refuted, "cpu")["text"].startswith("FAIL: refuted at scale=cpu (x)")
    not_reached = [{"id": "a", "verdict": NOT_REACHED, "basis": "empirical"}, {"id": "b", "verdict": PASS,
                                                                                "basis": "derivation"}]
    assert overall(not_reached) == NOT_REACHED and overall_reason(not_reached)["reason"] == "not_reached"
    mixed = not_reached + [{"id": "c", "verdict": INCONCLUSIVE, "basis": "empirical", "reason": "underpowered"}]
    assert overall(mixed) == INCONCLUSIVE
    # an ours check never decides, a precondition never decides
    gates = [{"id": "p", "verdict": FAIL, "basis": "precondition"}, {"id": "o", "verdict": FAIL, "basis": "ours"},
             {"id": "e", "verdict": PASS, "basis": "empirical"}]
    assert overall(gates) == PASS


def test_the_rules_fields_are_required_and_a_threshold_of_ours_cannot_decide_the_post():
    base = {"id": "x", "kind": "threshold", "metric": "m", "op": ">", "value": 2, "source": "s"}
    good = {**base, "basis": "empirical", "unit": "model", "value_from": "post: 'more than 2'",
            "no_precondition": "nothing trained"}
    assert validate_checks([good]) == []
    assert any("unit" in p for p in validate_checks([{k: v for k, v in good.items() if k != "unit"}]))
    assert any("preconditions" in p for p in validate_checks([{k: v for k, v in good.items()
                                                                if k != "no_precondition"}]))
    assert any("value_from" in p for p in validate_checks([{k: v for k, v in good.items() if k != "value_from"}]))
    assert any("cannot decide the post" in p for p in validate_checks([{**good, "value_from": "ours: a ratio of 2"}]))
    assert validate_checks([{**good, "basis": "ours", "value_from": "ours: a ratio of 2"}]) == []
    assert any("exact_why" in p for p in validate_checks([{**good, "exact": True}]))
    assert validate_checks([{**good, "exact": True, "exact_why": "a byte count"}]) == []
    assert any("numerical" in p for p in validate_checks([{**good, "value_from": "numerical: float64"}]))
    assert any("quantifier" in p for p in validate_checks([{**good, "quantifier": "most"}]))


def test_a_held_out_half_that_does_not_decide_makes_a_verdict_unstable():
    """Decided on all 6 seeds, decided on seeds 0-2, undecided on the held-out 3-5: not PASS, unstable."""
    diffs = (1.0, 1.01, 0.99, 0.03, -0.02, 0.01)
    table = rows([("a", 1, s, 1.0) for s in range(6)] + [("b", 1, s, 1.0 + d) for s, d in enumerate(diffs)])
    check = {"id": "c", "metric": "m", "basis": "empirical", "source": "t", "kind": "ordering", "better": "lower",
             "a": {"arm": "a"}, "b": {"arm": "b"}, "unit": "model", "no_precondition": "test", "alpha": 0.5}
    (r,) = evaluate_checks([check], table)
    assert r["verdict"] == INCONCLUSIVE and r["reason"] == "unstable" and r["leans"] == PASS
    assert "PASS on units" in r["stability"] and "INCONCLUSIVE on the held-out" in r["stability"]


def test_a_half_whose_units_agree_exactly_is_too_small_to_re_check_not_unstable():
    """Six units, each of the three in a half equal: the half falls back to a sign test, which cannot decide at
    n = 3 (p >= 0.25): that says nothing about stability."""
    table = rows([("a", 1, s, 0.001) for s in range(6)])
    check = {"id": "c", "metric": "m", "basis": "precondition", "source": "t", "kind": "threshold", "op": "<",
             "value": 0.01, "unit": "model", "value_from": "ours: test"}
    table[0]["m"] = 0.002  # the full cell has spread: a t test decides PASS
    (r,) = evaluate_checks([check], table)
    assert r["verdict"] == PASS and r["stability"].startswith("halves too small")
