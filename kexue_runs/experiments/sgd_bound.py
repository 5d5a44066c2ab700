"""让炼丹更科学一些（一）：SGD的平均损失收敛 (average-loss convergence of SGD)
https://kexue.fm/archives/9902

Projected online SGD on convex losses in a set of diameter D with gradients bounded by G:
average regret <= D^2 / (2 T eta_T) + (G^2 / 2T) sum_t eta_t. Constant eta = D / (G sqrt(T)) gives
DG / sqrt(T); eta_t = alpha / sqrt(t) gives < D^2 / (2 alpha sqrt(T)) + G^2 alpha / sqrt(T).
Here: online least squares l_t(theta) = (x_t . theta - y_t)^2 / 2 in the unit ball (D = 2, G = 2).
"""

from __future__ import annotations

import math

import numpy as np

from .numeric import figure, pyplot


def project(theta: np.ndarray, radius: float = 1.0) -> np.ndarray:
    norm = np.linalg.norm(theta)
    return theta if norm <= radius else theta * (radius / norm)


def best_in_ball(x: np.ndarray, y: np.ndarray, radius: float = 1.0) -> np.ndarray:
    """argmin over |theta| <= radius of sum (x theta - y)^2: ridge with the multiplier found by bisection."""
    a, b = x.T @ x, x.T @ y
    solve = lambda lam: np.linalg.solve(a + lam * np.eye(len(b)), b)  # noqa: E731
    theta = np.linalg.lstsq(x, y, rcond=None)[0]
    if np.linalg.norm(theta) <= radius:
        return theta
    lo, hi = 0.0, 1.0
    while np.linalg.norm(solve(hi)) > radius:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.linalg.norm(solve(mid)) > radius else (lo, mid)
    return solve(hi)


def stream(T: int, dim: int, rng: np.random.Generator):
    x = rng.standard_normal((T, dim))
    x /= np.maximum(1.0, np.linalg.norm(x, axis=1, keepdims=True))  # |x| <= 1
    theta_true = project(rng.standard_normal(dim))
    y = np.clip(x @ theta_true + 0.3 * rng.standard_normal(T), -1, 1)  # |y| <= 1, so |grad| <= 2
    return x, y


def online_sgd(x, y, etas):
    theta = np.zeros(x.shape[1])
    losses = np.empty(len(y))
    for t in range(len(y)):
        r = x[t] @ theta - y[t]
        losses[t] = 0.5 * r * r
        theta = project(theta - etas[t] * r * x[t])
    return losses


def replicate(T: int, dim: int, alpha: float, horizons: np.ndarray, rng: np.random.Generator, D: float, G: float):
    """One data stream: per schedule, the average regret and the bound at every horizon."""
    x, y = stream(T, dim, rng)
    schedules = {"constant": lambda h: np.full(h, D / (G * math.sqrt(h))),
                 "inv_sqrt": lambda h: alpha / np.sqrt(np.arange(1, h + 1))}
    curves = {name: ([], []) for name in schedules}
    for h in horizons:
        best = best_in_ball(x[:h], y[:h])
        best_loss = 0.5 * (x[:h] @ best - y[:h]) ** 2
        for name, make in schedules.items():
            etas = make(h)
            curves[name][0].append((online_sgd(x[:h], y[:h], etas).sum() - best_loss.sum()) / h)
            curves[name][1].append(D ** 2 / (2 * h * etas[-1]) + G ** 2 / (2 * h) * etas.sum())
    return curves


def loglog_slope(horizons, regrets) -> float:
    positive = [(h, r) for h, r in zip(horizons, regrets) if r > 0]
    return float(np.polyfit(np.log([h for h, _ in positive]), np.log([r for _, r in positive]), 1)[0])


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    rng = np.random.default_rng(int(cfg.seed))
    T, dim, D, G = int(sim.T), int(sim.dim), 2.0, 2.0
    horizons = np.unique(np.logspace(2, math.log10(T), int(sim.horizons)).astype(int))
    results, violations, looseness = {}, 0, np.inf
    all_curves = []
    for r in ctx.track(range(int(sim.replicates)), "data streams", total=int(sim.replicates)):
        curves = replicate(T, dim, float(sim.alpha), horizons, rng, D, G)
        all_curves.append(curves)
        for name, (regrets, bounds) in curves.items():
            violations += sum(reg > b for reg, b in zip(regrets, bounds))
            looseness = min(looseness, min(b / max(reg, 1e-300) for reg, b in zip(regrets, bounds)))
            ctx.claim_rows.append({"replicate": r, "schedule": name, "final_regret": float(regrets[-1]),
                                   "loglog_slope": loglog_slope(horizons, regrets)})
            if r == 0:
                for h, reg, b in zip(horizons, regrets, bounds):
                    ctx.log(int(h), name, regret=reg, bound=b)
    results["bound_violations"] = float(violations)
    results["min_looseness"] = float(looseness)
    for name in ("constant", "inv_sqrt"):
        mine = [row for row in ctx.claim_rows if row["schedule"] == name]
        results[f"mean_{name}_regret"] = float(np.mean([row["final_regret"] for row in mine]))
        results[f"mean_{name}_loglog_slope"] = float(np.mean([row["loglog_slope"] for row in mine]))
    results["sum_inv_sqrt_1e6"] = float(np.sum(1 / np.sqrt(np.arange(1, 10**6 + 1))))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, colour in (("constant", "C0"), ("inv_sqrt", "C1")):
        regrets = np.array([c[name][0] for c in all_curves])
        bounds = all_curves[0][name][1]
        mean, sd = regrets.mean(0), regrets.std(0, ddof=1) if len(regrets) > 1 else 0 * regrets.mean(0)
        ax.plot(horizons, np.maximum(mean, 1e-8), "o-", ms=3, color=colour,
                label=f"{name}: average regret (mean of {len(regrets)} streams, band: std)")
        ax.fill_between(horizons, np.maximum(mean - sd, 1e-8), mean + sd, color=colour, alpha=0.2)
        ax.plot(horizons, bounds, "--", color=colour, label=f"{name}: the post's bound")
    ax.set(xscale="log", yscale="log", xlabel="horizon T", ylabel="average regret",
           title=f"online least squares, d={dim}, D={D:g}, G={G:g}")
    ax.legend(fontsize=7)
    figure(ctx, "regret_vs_bound", fig)
    return results
