"""从重参数的角度看离散概率分布的构建 (building discrete distributions from the reparameterization view)
https://kexue.fm/archives/9085

p_i = P[argmax_j(mu_j + eps_j) = i] with iid noise eps of CDF Phi. In closed form
p_i = int p(eps) prod_{j != i} Phi(mu_i - mu_j + eps) d eps, and with t = Phi(eps) the post's recipe
p_i ~ (1/K) sum_k prod_{j != i} Phi(mu_i - mu_j + Phi^-1(k / (K + 1))). Gumbel noise gives exactly softmax.
"""

from __future__ import annotations

import math

import numpy as np

from .numeric import figure, pyplot


def noises() -> dict:
    """The noise distributions by name (scipy.stats imported here, not at import: preflight imports the
    module, and scipy.stats is 0.45 s of start-up, #19)."""
    from scipy import stats

    return {"gumbel": stats.gumbel_r, "normal": stats.norm, "logistic": stats.logistic, "laplace": stats.laplace,
            "uniform": stats.uniform(loc=-0.5)}


def softmax(mu: np.ndarray) -> np.ndarray:
    e = np.exp(mu - mu.max())
    return e / e.sum()


def quadrature(mu: np.ndarray, noise, points: int) -> np.ndarray:
    """The post's quantile recipe: K quantiles of the noise, product of CDFs of the differences."""
    eps = noise.ppf(np.arange(1, points + 1) / (points + 1))  # (K,)
    diff = mu[:, None] - mu[None, :]  # (n, n): mu_i - mu_j
    cdf = noise.cdf(diff[:, :, None] + eps[None, None, :])  # (n, n, K)
    cdf[np.arange(len(mu)), np.arange(len(mu))] = 1.0  # j != i
    return cdf.prod(axis=1).mean(axis=1)


def monte_carlo(mu: np.ndarray, noise, samples: int, rng: np.random.Generator, ctx, chunk: int = 200_000):
    counts = np.zeros(len(mu))
    chunks = range(0, samples, chunk)
    for start in ctx.track(chunks, "monte carlo", total=len(chunks)):
        m = min(chunk, samples - start)
        eps = noise.rvs(size=(m, len(mu)), random_state=rng)
        counts += np.bincount(np.argmax(mu + eps, axis=1), minlength=len(mu))
    return counts / samples


def z_scores(estimate: np.ndarray, truth: np.ndarray, samples: int) -> np.ndarray:
    """|estimate - truth| in binomial standard errors, one per class."""
    se = np.sqrt(truth * (1 - truth) / samples)
    gap = np.abs(estimate - truth)
    # a probability of exactly 0 or 1 has no sampling error: any deviation is infinitely many errors off
    return np.where(se > 0, gap / np.where(se > 0, se, 1.0), np.where(gap > 0, np.inf, 0.0))


def order_as_stated(p: np.ndarray, mu: np.ndarray, tie: float = 1e-12) -> bool:
    """Property 3 as the post states it, for pairwise distinct mu: p_i >= p_j <=> mu_i >= mu_j for every pair."""
    n = len(mu)
    return all((p[i] >= p[j] - tie) == (mu[i] >= mu[j]) for i in range(n) for j in range(n) if i != j)


def order_weak(p: np.ndarray, mu: np.ndarray, tie: float = 1e-12) -> bool:
    """The one-way version: mu_i > mu_j => p_i >= p_j."""
    n = len(mu)
    return all(p[i] >= p[j] - tie for i in range(n) for j in range(n) if mu[i] > mu[j])


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    mu = np.array(sim.mu, dtype=float)
    rng = np.random.default_rng(int(cfg.seed))
    n, points = int(sim.samples), int(sim.quadrature_points)
    results, table = {}, {}
    distributions = noises()
    gumbel_mc = monte_carlo(mu, distributions["gumbel"], n, rng, ctx)
    results["gumbel_vs_softmax_max_z"] = float(z_scores(gumbel_mc, softmax(mu), n).max())
    results["gumbel_vs_softmax_comparisons"] = float(len(mu))
    gumbel_q = quadrature(mu, distributions["gumbel"], points)
    results["gumbel_quadrature_vs_softmax_max_abs"] = float(np.abs(gumbel_q / gumbel_q.sum() - softmax(mu)).max())
    worst_z = 0.0
    for name, noise in distributions.items():
        raw = quadrature(mu, noise, points)
        p = raw / raw.sum()  # the K-point rule misses a little mass at the tails: renormalise
        mc = gumbel_mc if name == "gumbel" else monte_carlo(mu, noise, n, rng, ctx)
        worst_z = max(worst_z, float(z_scores(mc, p, n).max()))
        shifted = quadrature(mu + float(sim.shift), noise, points)
        results[f"{name}_sum_before_renormalising"] = float(raw.sum())
        results[f"{name}_shift_invariance_err"] = float(np.abs(shifted - raw).max())
        results[f"{name}_order_as_stated"] = float(order_as_stated(p, mu))
        results[f"{name}_order_weak"] = float(order_weak(p, mu))
        results[f"{name}_max_p"] = float(p.max())
        ctx.claim_rows.append({"noise": name, "order_as_stated": results[f"{name}_order_as_stated"],
                               "order_weak": results[f"{name}_order_weak"]})
        table[name] = (p, mc)
        ctx.log(0, name, **{f"p{i + 1}": v for i, v in enumerate(p)}, **{f"mc{i + 1}": v for i, v in enumerate(mc)})
    results["quadrature_vs_mc_max_z"] = worst_z
    results["quadrature_vs_mc_comparisons"] = float(len(distributions) * len(mu))
    results["softmax_max_p"] = float(softmax(mu).max())
    for i, v in enumerate(table["normal"][0]):
        results[f"normal_p{i + 1}"] = float(v)
    results["max_shift_invariance_err"] = max(results[f"{k}_shift_invariance_err"] for k in distributions)
    ctx.log(0, "result", **results)

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / (len(distributions) + 1)
    x = np.arange(len(mu))
    ax.bar(x - 0.4 + width / 2, softmax(mu), width, label="softmax", color="0.3")
    for k, (name, (p, mc)) in enumerate(table.items(), start=1):
        ax.bar(x - 0.4 + width * (k + 0.5), p, width, label=f"{name} (quadrature)")
        ax.plot(x - 0.4 + width * (k + 0.5), mc, "k.", ms=4)
    ax.set_xticks(x, [f"mu={m:g}" for m in mu])
    ax.set_ylabel("P[argmax = i]")
    ax.set_title(f"argmax(mu + noise): quadrature (bars) vs Monte Carlo (dots, N={n:,})", fontsize=9)
    ax.legend(fontsize=7)
    figure(ctx, "argmax_distributions", fig)
    return results


def validate(cfg) -> None:
    from ..common.errors import ConfigError

    if int(cfg.sim.samples) < 100 or int(cfg.sim.quadrature_points) < 10:
        raise ConfigError("sim.samples must be >= 100 and sim.quadrature_points >= 10")
    if len(cfg.sim.mu) < 2:
        raise ConfigError(f"sim.mu={list(cfg.sim.mu)}: needs at least 2 classes")
    if not all(math.isfinite(float(m)) for m in cfg.sim.mu):
        raise ConfigError("sim.mu: every entry must be finite")
