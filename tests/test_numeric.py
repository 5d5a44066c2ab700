"""The numerical-claims family runs through the same runner: config, run folder, checks, figure, list."""

import pytest
from conftest import run_dirs, summary

from kexue_runs.catalog import experiment_files

NUMERIC = ["reparam_argmax", "simsiam_dynamics", "self_consuming", "ddpm_schedule", "lossless_bound",
           "local_global_cosine", "linear_attention_cost", "sgd_bound", "quanta_scaling", "unargmaxable",
           "attention_sparsity", "bert_init"]


def test_every_numeric_experiment_is_in_the_catalog():
    names = {p.stem for p in experiment_files()}
    assert set(NUMERIC) <= names


@pytest.mark.parametrize("name", NUMERIC)
def test_smoke_run_gives_verdicts_and_a_figure(kexue, tmp_path, name):
    code, out = kexue(f"experiment={name}", "scale=smoke", "trainer.progress=false")
    assert code == 0, out
    (run,) = run_dirs(tmp_path / "outputs", name)
    s = summary(run)
    assert s["status"] == "ok", s["error"]
    assert s["checks"] and all(c["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE") for c in s["checks"])
    assert s["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE")
    assert list((run / "figures").glob("*.png"))
    assert "## Checks on this run alone" in (run / "report.md").read_text()


def test_exact_numbers_the_posts_state(kexue, tmp_path):
    """Golden numbers: each is the post's (or the independent check's) value, computed by our code."""
    from kexue_runs.experiments import ddpm_schedule, linear_attention_cost, simsiam_dynamics

    assert linear_attention_cost.crossovers(12, 64) == {"sa_exceeds_ffn_from_n": 1537,
                                                        "quadratic_dominates_layer_from_n": 4609,
                                                        "linear_4d_pays_from_n": 1025}
    abar = ddpm_schedule.alphas(1000).prod()
    assert abs(abar - 0.006482) < 5e-7
    path = simsiam_dynamics.integrate("stop_gradient", 0.6, 0.1, 1e-2, 100.0)
    assert abs(path[-1, 2] - 0.65 ** 0.5) < 1e-4 and abs(path[-1, 1] - 1) < 1e-3


def test_frank_wolfe_agrees_with_the_lp_on_the_post_example():
    import numpy as np

    from kexue_runs.experiments.unargmaxable import argmaxable_frank_wolfe, argmaxable_lp

    w = np.array([[1, 2], [2, 1], [1, 0], [0, 1], [1, 1]], dtype=float)
    assert [argmaxable_lp(w, k) for k in range(5)] == [True, True, True, True, False]
    assert [argmaxable_frank_wolfe(w, k, 2000, 1e-3) for k in range(5)] == [True, True, True, True, False]
