"""你的语言模型有没有“无法预测的词”？ (does your LM have unpredictable words?)
https://kexue.fm/archives/9046

Class k can never be the argmax of W z (no bias, Su's large-r reduction) iff there is no z with
(w_k - w_i) . z > 0 for every i != k, iff 0 lies in the convex hull of {w_k - w_i}. Su's detector:
Frank-Wolfe on min over the simplex of |sum_i alpha_i (w_k - w_i)|^2; checked here against an exact
LP feasibility test. Equal norms make every class argmaxable.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from .numeric import figure, pyplot


def argmaxable_lp(w: np.ndarray, k: int) -> bool:
    """Exact: is there z with (w_k - w_i) . z >= 1 for all i != k? (scale-free version of > 0)"""
    diff = np.delete(w[k] - w, k, axis=0)
    res = linprog(np.zeros(w.shape[1]), A_ub=-diff, b_ub=-np.ones(len(diff)), bounds=[(None, None)] * w.shape[1],
                  method="highs")
    return res.status == 0


def argmaxable_frank_wolfe(w: np.ndarray, k: int, iters: int, tol: float) -> bool:
    """Su's detector: Frank-Wolfe on min_{alpha in simplex} |sum alpha_i (w_k - w_i)|. Its iterate x is
    itself a certificate once (w_k - w_i) . x > 0 for every i (then z = x makes k the argmax); a
    minimum norm that falls below tol means 0 is in the hull: unargmaxable."""
    diff = np.delete(w[k] - w, k, axis=0)
    x = diff.mean(axis=0)
    for _ in range(iters):
        scores = diff @ x
        if scores.min() > 0:
            return True
        s = diff[np.argmin(scores)]  # the vertex minimising the linearisation
        direction = s - x
        denom = direction @ direction
        if denom == 0 or np.linalg.norm(x) < tol:
            return False
        x = x + np.clip(-(x @ direction) / denom, 0.0, 1.0) * direction
    return False


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    rng = np.random.default_rng(int(cfg.seed))
    example = np.array([[1, 2], [2, 1], [1, 0], [0, 1], [1, 1]], dtype=float)  # w1..w4, then w5
    results = {"example_class5_argmaxable": float(argmaxable_lp(example, 4)),
               "example_others_argmaxable": float(all(argmaxable_lp(example, k) for k in range(4))),
               "example_class5_frank_wolfe": float(argmaxable_frank_wolfe(example, 4, int(sim.fw_iters),
                                                                           float(sim.fw_tol)))}
    agree = total = 0
    fractions = {}
    cells = [(d, n, spread) for d in sim.dims for n in sim.classes for spread in sim.norm_spreads]
    for d, n, spread in ctx.track(cells, "random classes", total=len(cells)):
        unarg = 0
        for _ in range(int(sim.trials)):
            w = rng.standard_normal((int(n), int(d)))
            w /= np.linalg.norm(w, axis=1, keepdims=True)
            w *= np.exp(float(spread) * rng.standard_normal((int(n), 1)))  # spread 0: equal norms
            for k in range(int(n)):
                lp = argmaxable_lp(w, k)
                fw = argmaxable_frank_wolfe(w, k, int(sim.fw_iters), float(sim.fw_tol))
                agree += lp == fw
                total += 1
                unarg += not lp
        fractions[(d, n, spread)] = unarg / (int(sim.trials) * int(n))
        ctx.log(0, f"d{d}_n{n}_spread{spread}", unargmaxable_fraction=fractions[(d, n, spread)])
    results["frank_wolfe_lp_agreement"] = agree / total
    results["equal_norm_unargmaxable_fraction"] = max(v for (d, n, s), v in fractions.items() if float(s) == 0)
    low_d = [v for (d, n, s), v in fractions.items()
             if int(d) == min(sim.dims) and int(n) == max(sim.classes) and s > 0]
    high_d = [v for (d, n, s), v in fractions.items() if int(d) == max(sim.dims) and s > 0]
    results["low_dim_many_classes_fraction"] = max(low_d)
    results["high_dim_fraction"] = max(high_d)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for d in sim.dims:
        for spread in sim.norm_spreads:
            if float(spread) == 0:
                continue
            ys = [fractions[(d, n, spread)] for n in sim.classes]
            ax.plot(list(sim.classes), ys, "o-", label=f"d={d}, log-norm spread {spread}")
    ax.set(xscale="log", xlabel="classes n", ylabel="unargmaxable fraction", title="random Gaussian class vectors")
    ax.legend(fontsize=7)
    figure(ctx, "unargmaxable_fraction", fig)
    return results
