"""retry: the post's retry form, by Monte Carlo with a seeded failure process and a stubbed sleep
(method: methods/retry.py, which every download of the package uses).

Post: 旁门左道之如何让Python的重试代码更加优雅 https://kexue.fm/archives/9938
  1. for each failure probability p and max_tries n: the success rate against 1 - p^n and the mean number
     of attempts against (1 - p^n)/(1 - p), as z-scores; sleeps = attempts - 1 in every trial (no sleep after
     the last try, none after a success);
  2. a body that raises KeyboardInterrupt: the post's __exit__ (it swallows every exception) runs it n
     times; ours lets it through after the first.
"""

from __future__ import annotations

import math

import numpy as np

from ..common.progress import say
from ..methods.retry import Retry


class Flaky(Exception):
    pass


def trial(p_fail: float, max_tries: int, rng: np.random.Generator) -> tuple[bool, int, int, bool]:
    """(succeeded, attempts, sleeps, slept after the last failure) for one retried body."""
    slept: list[int] = []
    tries = Retry(max_tries, delay=2.0, sleep=lambda s: slept.append(tries.attempt))
    attempts = 0
    for retry in tries:
        with retry:
            attempts += 1
            if rng.random() < p_fail:
                raise Flaky("the body failed")
    return tries.ok, attempts, len(slept), (not tries.ok and bool(slept) and slept[-1] == max_tries)


def interrupt_attempts(catch, max_tries: int) -> int:
    """How many times a body that raises KeyboardInterrupt runs before the loop gives up or lets it out."""
    runs = 0
    try:
        for retry in Retry(max_tries, catch=catch, sleep=lambda s: None):
            with retry:
                runs += 1
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    return runs


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    results = {}
    rng = np.random.default_rng(int(cfg.seed))
    settings = [(float(p), int(n)) for p in sim.p_fail for n in sim.max_tries]
    comparisons = 2 * len(settings)
    violations = 0
    for p, n in ctx.track(settings, f"{int(sim.trials)} trials per (p, n)", total=len(settings)):
        outcomes = [trial(p, n, rng) for _ in range(int(sim.trials))]
        ok = np.array([o[0] for o in outcomes], dtype=float)
        attempts = np.array([o[1] for o in outcomes], dtype=float)
        sleeps = np.array([o[2] for o in outcomes], dtype=float)
        violations += int((sleeps != attempts - 1).sum()) + sum(o[3] for o in outcomes)
        expected_ok = 1 - p ** n
        expected_attempts = (1 - p ** n) / (1 - p) if p < 1 else n
        se_ok = math.sqrt(expected_ok * (1 - expected_ok) / len(ok)) or math.inf
        se_attempts = attempts.std(ddof=1) / math.sqrt(len(attempts)) or math.inf
        z_ok = abs(ok.mean() - expected_ok) / se_ok if se_ok != math.inf else float(ok.mean() != expected_ok) * 1e9
        z_attempts = abs(attempts.mean() - expected_attempts) / se_attempts if se_attempts != math.inf \
            else float(attempts.mean() != expected_attempts) * 1e9
        ctx.claim_rows.append({"p_fail": p, "max_tries": n, "success_z": z_ok, "attempts_z": z_attempts,
                               "success_rate": float(ok.mean()), "mean_attempts": float(attempts.mean())})
        results[f"p{p:g}_n{n}_success_rate"] = float(ok.mean())
        results[f"p{p:g}_n{n}_expected_success"] = expected_ok
        results[f"p{p:g}_n{n}_mean_attempts"] = float(attempts.mean())
        results[f"p{p:g}_n{n}_expected_attempts"] = expected_attempts
    zs = [max(r["success_z"], r["attempts_z"]) for r in ctx.claim_rows]
    results["max_z"] = float(max(zs))
    results["z_comparisons"] = comparisons
    results["sleep_violations"] = violations
    n = int(max(sim.max_tries))
    results["interrupt_runs_post"] = interrupt_attempts(BaseException, n)
    results["interrupt_runs_ours"] = interrupt_attempts(Exception, n)
    results["interrupt_max_tries"] = n
    say(f"max |z| {results['max_z']:.2f} over {comparisons} comparisons; sleep violations {violations}; a "
        f"KeyboardInterrupt body runs {results['interrupt_runs_post']} times under the post's __exit__, "
        f"{results['interrupt_runs_ours']} under ours")
    plot(ctx, [r for r in ctx.claim_rows if "success_rate" in r], sim)
    return results


def plot(ctx, rows, sim) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    ns = np.arange(1, int(max(sim.max_tries)) + 1)
    for i, p in enumerate(float(x) for x in sim.p_fail):
        ax_rows = [r for r in rows if r["p_fail"] == p]
        axes[0].plot(ns, 1 - p ** ns, color=f"C{i}", lw=0.8, label=f"1 - p^n, p = {p:g}")
        axes[0].plot([r["max_tries"] for r in ax_rows], [r["success_rate"] for r in ax_rows], "o", color=f"C{i}")
        axes[1].plot(ns, (1 - p ** ns) / (1 - p), color=f"C{i}", lw=0.8, label=f"(1 - p^n)/(1 - p), p = {p:g}")
        axes[1].plot([r["max_tries"] for r in ax_rows], [r["mean_attempts"] for r in ax_rows], "o", color=f"C{i}")
    axes[0].set(xlabel="max_tries n", ylabel="success rate", title=f"{int(sim.trials)} trials each (dots)")
    axes[1].set(xlabel="max_tries n", ylabel="mean attempts", title="closed forms (lines)")
    for ax in axes:
        ax.legend(fontsize=7)
    save_figure(ctx, "retry", fig)
