"""注意力机制真的可以“集中注意力”吗？ (can attention really concentrate?)
https://kexue.fm/archives/9889

Sparsity index S(a) = E|a| / sqrt(E a^2) (smaller is sparser). With a_j ~ f(beta + gamma eps), eps ~ N(0,1):
  exp:       S = exp(-gamma^2 / 2)                                   -> 0: softmax can concentrate
  identity:  S = [sqrt(2/pi) gamma e^(-beta^2/2gamma^2) + beta erf(beta / sqrt2 gamma)] / sqrt(beta^2 + gamma^2)
  relu^2:    moments of the truncated normal (erf terms)
  decay:     a = (lambda^(n-1), ..., 1): S = sqrt[(1 - lambda^n)/(n(1 - lambda)) (1 + lambda)/(1 + lambda^n)]
Non-negative linear attention with iid key features: S = 1/sqrt(1 + (sigma/mu)^2 (|q|_2/|q|_1)^2), and
|q|_2/|q|_1 lies in [1/sqrt(d), 1] (the post says its maximum is sqrt(d): checked here).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, ndtr

from .numeric import figure, pyplot, z_score


def s_exp(beta, gamma):
    return math.exp(-gamma ** 2 / 2)


def s_identity(beta, gamma):
    num = (math.sqrt(2 / math.pi) * gamma * math.exp(-beta ** 2 / (2 * gamma ** 2))
           + beta * erf(beta / (math.sqrt(2) * gamma)))
    return num / math.sqrt(beta ** 2 + gamma ** 2)


def s_relu2(beta, gamma):
    m = beta / gamma
    phi, cdf = math.exp(-m * m / 2) / math.sqrt(2 * math.pi), float(ndtr(m))  # the standard normal's pdf, cdf
    second = (beta ** 2 + gamma ** 2) * cdf + beta * gamma * phi  # E[relu(X)^2]
    fourth = ((beta ** 4 + 6 * beta ** 2 * gamma ** 2 + 3 * gamma ** 4) * cdf
              + (beta ** 3 * gamma + 5 * beta * gamma ** 3) * phi)
    return second / math.sqrt(fourth)


def s_decay(lam, n):
    return math.sqrt((1 - lam ** n) / (n * (1 - lam)) * (1 + lam) / (1 + lam ** n))


def sparsity(a: np.ndarray) -> float:
    return float(np.abs(a).mean() / np.sqrt((a ** 2).mean()))


F = {"exp": (np.exp, s_exp), "identity": (lambda x: x, s_identity), "relu2": (lambda x: np.maximum(x, 0) ** 2, s_relu2)}


def batch_sparsity(a: np.ndarray, batches: int) -> list[float]:
    """S on independent batches: replicates whose spread is honest even for exp's heavy (lognormal) tails."""
    return [sparsity(b) for b in np.array_split(a, batches)]


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    rng = np.random.default_rng(int(cfg.seed))
    samples, batches = int(sim.samples), int(sim.batches)
    results, worst, worst_z, rows = {}, 0.0, 0.0, []
    cases = [(name, float(b), float(g)) for name in F for b in sim.betas for g in sim.gammas]
    for name, beta, gamma in ctx.track(cases, "closed forms vs Monte Carlo", total=len(cases)):
        f, closed = F[name]
        a = f(beta + gamma * rng.standard_normal(samples))
        mc, exact = sparsity(a), closed(beta, gamma)
        per_batch = batch_sparsity(a, batches)
        z = z_score(mc, exact, float(np.std(per_batch, ddof=1)) / math.sqrt(batches))
        worst, worst_z = max(worst, abs(mc - exact) / exact), max(worst_z, z)
        rows.append((name, beta, gamma, mc, exact))
        ctx.claim_rows += [{"f": name, "beta": beta, "gamma": gamma, "replicate": r, "S": v}
                           for r, v in enumerate(per_batch)]
        ctx.log(0, f"{name}_b{beta}_g{gamma}", monte_carlo=mc, closed_form=exact, z=z)
    results["max_rel_err_closed_forms"] = worst
    results["max_z_closed_forms"] = worst_z
    results["closed_form_comparisons"] = float(len(cases))
    for lam, n in ((0.9, 10), (0.9, 100), (0.9, 1000)):
        a = lam ** np.arange(n)[::-1]
        results[f"decay_rel_err_l{lam}_n{n}"] = abs(sparsity(a) - s_decay(lam, n)) / s_decay(lam, n)
        results[f"decay_S_l{lam}_n{n}"] = s_decay(lam, n)
    results["max_rel_err_decay"] = max(v for k, v in results.items() if k.startswith("decay_rel_err"))
    results["identity_min_over_beta"] = min(s_identity(b, 1.0) for b in np.linspace(-5, 5, 2001))
    # non-negative linear attention with iid key features: S = 1/sqrt(1 + (sigma/mu)^2 (|q|_2/|q|_1)^2)
    ratios, onehot_s, dense_s = [], [], []
    for d in sim.dims:
        d = int(d)
        q = np.vstack([np.eye(d), rng.exponential(size=(2000, d))])  # the simplex's vertices and random points
        ratios.append(float((np.linalg.norm(q, axis=1) / q.sum(axis=1)).max()))
        keys = rng.exponential(size=(samples // 10, d))  # sigma/mu = 1
        onehot_s.append(sparsity(keys[:, 0]))
        dense_s.append(sparsity(keys @ np.ones(d)))
        results[f"linear_onehot_S_d{d}"] = onehot_s[-1]
        results[f"linear_dense_S_d{d}"] = dense_s[-1]
    results["l2_over_l1_max"] = max(ratios)
    results["sqrt_d_max"] = math.sqrt(max(int(d) for d in sim.dims))
    results["l2_over_l1_max_over_sqrt_d"] = results["l2_over_l1_max"] / results["sqrt_d_max"]
    results["linear_best_S_at_largest_d"] = onehot_s[-1]
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    gammas = np.linspace(0.05, 4, 80)
    for beta in (-1.0, 0.0, 1.0):
        axes[0].plot(gammas, [s_relu2(beta, g) for g in gammas], label=f"relu^2, beta={beta:g}")
        axes[0].plot(gammas, [s_identity(beta, g) for g in gammas], "--", label=f"identity, beta={beta:g}")
    axes[0].plot(gammas, [s_exp(0, g) for g in gammas], "k", label="exp")
    for _, _, gamma, mc, _ in rows:
        axes[0].plot(gamma, mc, "k.", ms=4)
    axes[0].set(xlabel="gamma = sigma |q|", ylabel="S (smaller = sparser)", title="closed forms (dots: Monte Carlo)")
    axes[0].legend(fontsize=6)
    axes[1].plot(list(sim.dims), onehot_s, "o-", label="one-hot q")
    axes[1].plot(list(sim.dims), dense_s, "s-", label="dense q")
    axes[1].set(xscale="log", xlabel="feature dimension d", ylabel="S",
                title="linear attention, iid keys: d does not help")
    axes[1].legend(fontsize=7)
    figure(ctx, "sparsity", fig)
    return results
