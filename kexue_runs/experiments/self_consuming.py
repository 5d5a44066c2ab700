"""当生成模型肆虐：互联网将有“疯牛病”之忧？ (self-consuming generative models go MAD)
https://kexue.fm/archives/9687

A Gaussian "generative model" refit each generation on n samples of the previous one (sample mean,
unbiased variance). Sampling with truncation lambda < 1 shrinks the variance like lambda^t; without
truncation the mean random-walks, Var(mu_t) = t sigma0^2 / n, and log-variance drifts down.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma

from .numeric import figure, pyplot, z_score


def simulate(n: int, lam: float, generations: int, runs: int, rng: np.random.Generator):
    """(generations + 1, runs) arrays of the fitted mean and variance, 1-D, starting at N(0, 1)."""
    mu = np.zeros((generations + 1, runs))
    var = np.ones((generations + 1, runs))
    for t in range(1, generations + 1):
        x = mu[t - 1] + np.sqrt(lam * var[t - 1]) * rng.standard_normal((n, runs))
        mu[t] = x.mean(axis=0)
        var[t] = x.var(axis=0, ddof=1)
    return mu, var


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    rng = np.random.default_rng(int(cfg.seed))
    n, gens, runs = int(sim.n), int(sim.generations), int(sim.runs)
    results, curves = {}, {}
    for lam in ctx.track(list(sim.lambdas), "generations", total=len(sim.lambdas)):
        mu, var = simulate(n, float(lam), gens, runs, rng)
        curves[lam] = var.mean(axis=1)
        expected = float(lam) ** gens
        ratio = var[-1].mean()
        se = var[-1].std(ddof=1) / math.sqrt(runs)
        results[f"lambda{lam}_var_ratio"] = float(ratio / expected)
        results[f"lambda{lam}_var_z"] = z_score(ratio, expected, se)
        ctx.log(gens, f"lambda{lam}", mean_var=ratio, expected_var=expected)
        if float(lam) == 1.0:
            # Var(mu_T) = T / n; the sample variance of runs values has standard error ~ v sqrt(2 / (runs - 1))
            v = mu[-1].var(ddof=1)
            results["mean_walk_var"] = float(v)
            results["mean_walk_expected"] = gens / n
            results["mean_walk_z"] = z_score(v, gens / n, (gens / n) * math.sqrt(2 / (runs - 1)))
            # E[log var_t] drops by E[log chi2_{n-1}/(n-1)] = psi((n-1)/2) + log(2/(n-1)) per generation
            per_gen = np.diff(np.log(var), axis=0)  # (gens, runs)
            step = float(digamma((n - 1) / 2) + math.log(2 / (n - 1)))
            results["log_var_step"] = float(per_gen.mean())
            results["log_var_step_expected"] = step
            se = per_gen.mean(axis=0).std(ddof=1) / math.sqrt(runs)
            results["log_var_step_z"] = z_score(per_gen.mean(), step, se)
            results["median_var_final"] = float(np.median(var[-1]))
            for r, runs_r in enumerate(np.array_split(np.arange(runs), int(sim.batches))):  # independent batches
                ctx.claim_rows.append({"replicate": r, "median_var_final": float(np.median(var[-1, runs_r])),
                                       "log_var_step": float(per_gen[:, runs_r].mean())})
    results["max_var_z"] = max(v for k, v in results.items() if k.endswith("_var_z"))
    results["var_comparisons"] = float(len(sim.lambdas))
    results["mean_log_var_step"] = results.pop("log_var_step")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    t = np.arange(gens + 1)
    for lam, curve in curves.items():
        line, = ax.plot(t, curve, label=f"lambda={lam}: mean of fitted variance")
        ax.plot(t, float(lam) ** t, ls="--", color=line.get_color(), lw=1)
    ax.set(yscale="log", xlabel="generation t", ylabel="variance", title=f"n={n}, {runs} runs (dashed: lambda^t)")
    ax.legend(fontsize=7)
    figure(ctx, "variance_decay", fig)
    return results
