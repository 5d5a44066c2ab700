"""The claim engine on hand-made tables: verdicts, ties, missing cells, too few seeds, failed jobs."""

import pytest

from kexue_runs.claims import FAIL, INCONCLUSIVE, PASS, evaluate_checks, table_from_runs


def rows(spec):
    """spec: list of (arm, K, seed, value[, status])."""
    out = []
    for item in spec:
        arm, k, seed, value, *status = item
        out.append({"arm": arm, "K": k, "seed": seed, "m": value, "status": status[0] if status else "ok"})
    return out


def verdict(check, table):
    (result,) = evaluate_checks([{"id": "c", "metric": "m", **check}], table)
    return result


GRID = [(arm, k, s, v + 0.01 * s) for arm, base in (("a", 1.0), ("b", 2.0)) for k, v in ((1, base), (2, base * 2))
        for s in range(3)]


def test_threshold_pass_fail_and_too_few_seeds():
    table = rows(GRID)
    assert verdict({"kind": "threshold", "where": {"arm": "a"}, "for_each": "K", "op": ">=", "value": 0.9},
                   table)["verdict"] == PASS
    r = verdict({"kind": "threshold", "where": {"arm": "a"}, "for_each": "K", "op": ">=", "value": 1.5}, table)
    assert r["verdict"] == FAIL and "1.01 @ 1" in r["observed"]
    r = verdict({"kind": "threshold", "where": {"arm": "a"}, "op": ">=", "value": 0, "min_seeds": 7}, table)
    assert r["verdict"] == INCONCLUSIVE and "need 7" in r["note"]


def test_ordering_for_each_and_missing_cell():
    table = rows(GRID)
    check = {"kind": "ordering", "better": "lower", "a": {"arm": "a"}, "b": {"arm": "b"}, "for_each": "K"}
    assert verdict(check, table)["verdict"] == PASS
    assert verdict({**check, "better": "higher"}, table)["verdict"] == FAIL
    missing = [r for r in table if not (r["arm"] == "b" and r["K"] == 2)]
    r = verdict(check, missing)
    assert r["verdict"] == INCONCLUSIVE and "missing cell K=2" in r["note"]
    r = verdict({**check, "values": [1, 2, 4]}, table)
    assert r["verdict"] == INCONCLUSIVE and "K=4" in r["note"]


def test_ties_and_noise():
    exact_tie = rows([("a", 1, 0, 1.0), ("b", 1, 0, 1.0)])
    check = {"kind": "ordering", "better": "lower", "a": {"arm": "a"}, "b": {"arm": "b"}, "min_seeds": 1}
    assert verdict(check, exact_tie)["verdict"] == FAIL  # a tie is not a win
    noisy = rows([("a", 1, s, v) for s, v in enumerate((1.0, 1.4, 0.8))]
                 + [("b", 1, s, v) for s, v in enumerate((1.1, 0.9, 1.3))])
    assert verdict(check, noisy)["verdict"] == INCONCLUSIVE  # inside 2 standard errors


def test_a_failed_job_makes_the_check_inconclusive():
    table = rows(GRID + [("a", 1, 3, float("nan"), "failed")])
    r = verdict({"kind": "threshold", "where": {"arm": "a"}, "op": ">=", "value": 0}, table)
    assert r["verdict"] == INCONCLUSIVE and "failed" in r["note"]
    # a check that does not touch the failed arm still decides
    assert verdict({"kind": "threshold", "where": {"arm": "b"}, "op": ">=", "value": 0}, table)["verdict"] == PASS


def test_monotone():
    up = rows([("a", k, s, k + 0.01 * s) for k in (1, 2, 4, 8) for s in range(2)])
    check = {"kind": "monotone", "where": {"arm": "a"}, "along": "K"}
    assert verdict({**check, "direction": "increasing"}, up)["verdict"] == PASS
    assert verdict({**check, "direction": "decreasing"}, up)["verdict"] == FAIL
    bump = rows([("a", k, s, v + 0.01 * s) for k, v in ((1, 1), (2, 5), (4, 3), (8, 9)) for s in range(2)])
    assert verdict({**check, "direction": "increasing"}, bump)["verdict"] == FAIL


def test_crossover_reports_where_the_sign_changes():
    # a is worse (higher) at small K, better at large K: the crossover lies between K=4 and K=8
    table = rows([(arm, k, s, v + 0.001 * s) for k, va, vb in ((1, 3, 1), (4, 3, 2), (8, 2, 3), (16, 1, 3))
                  for arm, v in (("a", va), ("b", vb)) for s in range(2)])
    check = {"kind": "crossover", "better": "lower", "a": {"arm": "a"}, "b": {"arm": "b"}, "along": "K"}
    r = verdict(check, table)
    assert r["verdict"] == PASS and "between K=4 and 8" in r["observed"]
    never = rows([(arm, k, s, v + 0.001 * s) for k in (1, 2) for arm, v in (("a", 3), ("b", 1)) for s in range(2)])
    r = verdict(check, never)
    assert r["verdict"] == FAIL and "never better" in r["observed"]


def test_approx_and_identity():
    table = rows([("a", 1, 0, 0.8061)])
    assert verdict({"kind": "approx", "value": 0.806, "atol": 1e-3, "min_seeds": 1}, table)["verdict"] == PASS
    assert verdict({"kind": "approx", "value": 0.9, "rtol": 0.01, "min_seeds": 1}, table)["verdict"] == FAIL
    r = verdict({"kind": "identity", "value": 0.8061, "test": "tests/test_x.py::test_y"}, table)
    assert r["verdict"] == PASS and "tests/test_x.py" in r["note"]


def test_table_from_runs_flattens_config_and_keeps_status():
    (row,) = table_from_runs([{"status": "failed", "config": {"quantizer": {"name": "fsq", "levels": [8, 5]}},
                               "final": {"val/mse": 0.5}}])
    assert row["quantizer.name"] == "fsq" and row["quantizer.levels"] == (8, 5)
    assert row["status"] == "failed" and row["val/mse"] == 0.5


@pytest.mark.parametrize("bad", [{"kind": "nope"}, {"kind": "threshold", "metric": "m", "op": "=>", "value": 1}])
def test_malformed_checks_are_reported(bad):
    from kexue_runs.claims import validate_checks

    assert validate_checks([{"id": "x", **bad}])


def test_claim_rows_expand_a_run_into_one_row_per_arm_and_shard():
    from kexue_runs.claims import evaluate_checks, table_from_runs

    run = {"status": "ok", "config": {"arch": {"name": "baseline"}}, "final": {"acc_run": 0.5},
           "claim_rows": [{"arm": arm, "shard": s, "acc": acc + 0.001 * s}
                          for arm, acc in (("rope", 0.5), ("pi", 0.3)) for s in range(4)]}
    rows = table_from_runs([run])
    assert len(rows) == 9 and all(r["arch.name"] == "baseline" for r in rows)
    assert [r.get("acc_run") for r in rows] == [0.5] + [None] * 8  # the run's own row, once
    check = {"id": "x", "kind": "ordering", "metric": "acc", "better": "higher",
             "a": {"arm": "rope"}, "b": {"arm": "pi"}}
    assert evaluate_checks([check], rows)[0]["verdict"] == "PASS"
    assert evaluate_checks([check | {"a": {"arm": "pi"}, "b": {"arm": "rope"}}], rows)[0]["verdict"] == "FAIL"
    assert len(table_from_runs([run | {"claim_rows": []}])) == 1
    threshold = {"id": "t", "kind": "threshold", "metric": "acc_run", "op": ">=", "value": 0.4}
    assert "1 seed(s)" in evaluate_checks([threshold], rows)[0]["note"]  # final metric: one run, one value
