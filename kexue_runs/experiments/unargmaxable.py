"""你的语言模型有没有“无法预测的词”？ (does your LM have unpredictable words?)
https://kexue.fm/archives/9046

Class k can never be the argmax of W z (no bias: Su's large-r reduction) iff no z has
(w_k - w_i) . z > 0 for every i != k, iff 0 lies in the convex hull of {w_k - w_i}. Su's criterion:
k is argmaxable iff min over the simplex of |sum_i alpha_i (w_k - w_i)| > 0, which he solves with
Frank-Wolfe. Here the criterion is computed exactly (non-negative least squares on the simplex) and
checked against an exact LP feasibility test; Frank-Wolfe (with away steps) is Su's solver, run with an
iteration cap, and reported with the classes it leaves undecided. Equal norms make every class argmaxable.
"""

from __future__ import annotations

import numpy as np

from .numeric import figure, pyplot

SEPARATION = 1e-9  # min-norm below this (relative to the vectors' scale) means 0 is in the hull


def differences(w: np.ndarray, k: int) -> np.ndarray:
    return np.delete(w[k] - w, k, axis=0)


def argmaxable_lp(w: np.ndarray, k: int) -> bool:
    """Exact: is there z with (w_k - w_i) . z >= 1 for all i != k? (scale-free version of > 0)"""
    from scipy.optimize import linprog  # here, not at import: preflight imports the module (start-up, #19)

    diff = differences(w, k)
    res = linprog(np.zeros(w.shape[1]), A_ub=-diff, b_ub=-np.ones(len(diff)), bounds=[(None, None)] * w.shape[1],
                  method="highs")
    return res.status == 0


def min_norm(diff: np.ndarray, weight: float = 1e3) -> float:
    """Su's criterion solved exactly: min over the simplex of |alpha . diff| (Lawson-Hanson NNLS, the sum
    constraint as a heavily weighted extra row)."""
    from scipy.optimize import nnls

    a = np.vstack([diff.T, weight * np.ones((1, len(diff)))])
    b = np.zeros(a.shape[0])
    b[-1] = weight
    alpha, _ = nnls(a, b, maxiter=50 * len(diff))
    return float(np.linalg.norm(alpha @ diff))


def argmaxable_criterion(w: np.ndarray, k: int) -> bool:
    diff = differences(w, k)
    return min_norm(diff) > SEPARATION * np.abs(diff).max()


def argmaxable_frank_wolfe(w: np.ndarray, k: int, iters: int, tol: float = SEPARATION) -> bool | None:
    """Su's solver: Frank-Wolfe (with away steps) on min_{alpha in simplex} |alpha . diff|^2. Returns True once
    an iterate x certifies k ((w_k - w_i) . x > 0 for every i), False once |x| falls below tol (0 is in the
    hull), None if neither happens within `iters`."""
    diff = differences(w, k)
    alpha = np.full(len(diff), 1.0 / len(diff))
    x = alpha @ diff
    scale = np.abs(diff).max()
    for _ in range(iters):
        scores = diff @ x
        if scores.min() > 0:
            return True
        xx = x @ x
        if np.sqrt(xx) < tol * scale:
            return False
        s = int(np.argmin(scores))  # the vertex minimising the linearisation
        active = np.flatnonzero(alpha > 0)
        v = active[np.argmax(scores[active])]  # the active vertex to move away from
        toward = xx - scores[s] >= scores[v] - xx
        u = diff[s] - x if toward else x - diff[v]
        cap = 1.0 if toward else (alpha[v] / (1 - alpha[v]) if alpha[v] < 1 else np.inf)
        uu = u @ u
        if uu == 0:
            return False
        step = min(max(-(x @ u) / uu, 0.0), cap)
        if toward:
            alpha *= 1 - step
            alpha[s] += step
        else:
            alpha *= 1 + step
            alpha[v] -= step
            alpha[alpha < 1e-15] = 0.0
        x = alpha @ diff
    return None


def random_classes(n: int, d: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """n Gaussian directions in d dimensions with log-normal norms (spread 0: equal norms)."""
    w = rng.standard_normal((n, d))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    return w * np.exp(spread * rng.standard_normal((n, 1)))


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    rng = np.random.default_rng(int(cfg.seed))
    example = np.array([[1, 2], [2, 1], [1, 0], [0, 1], [1, 1]], dtype=float)  # w1..w4, then w5
    results = {"example_class5_argmaxable": float(argmaxable_lp(example, 4)),
               "example_others_argmaxable": float(all(argmaxable_lp(example, k) for k in range(4))),
               "example_class5_criterion": float(argmaxable_criterion(example, 4))}
    agree = total = fw_agree = fw_undecided = 0
    n = int(sim.classes)
    fractions: dict = {}
    cells = [(int(d), float(spread)) for d in sim.dims for spread in sim.norm_spreads]
    for d, spread in ctx.track(cells, "random classes", total=len(cells)):
        for trial in range(int(sim.trials)):
            w = random_classes(n, d, spread, rng)
            unarg = 0
            for k in range(n):
                lp = argmaxable_lp(w, k)
                agree += argmaxable_criterion(w, k) == lp
                fw = argmaxable_frank_wolfe(w, k, int(sim.fw_iters))
                fw_undecided += fw is None
                fw_agree += fw == lp
                total += 1
                unarg += not lp
            ctx.claim_rows.append({"dim": d, "spread": spread, "replicate": trial, "unargmaxable_fraction": unarg / n})
            fractions.setdefault((d, spread), []).append(unarg / n)
        ctx.log(0, f"d{d}_spread{spread}", unargmaxable_fraction=float(np.mean(fractions[(d, spread)])))
    results["criterion_lp_agreement"] = agree / total
    results["frank_wolfe_agreement_when_decided"] = fw_agree / max(1, total - fw_undecided)
    results["frank_wolfe_undecided_fraction"] = fw_undecided / total
    results["equal_norm_unargmaxable_fraction"] = max(float(np.mean(v)) for (d, s), v in fractions.items() if s == 0)
    # the post's regime: d = 200, n = 40,000 ("not far more"), norms kept close; a random sample of classes
    d, big_n, spread = int(sim.post_dim), int(sim.post_classes), float(sim.post_spread)
    w = random_classes(big_n, d, spread, rng)
    sample = rng.choice(big_n, int(sim.post_sample), replace=False)
    found = 0
    for k in ctx.track(sample, "post's regime", total=len(sample)):
        fw = argmaxable_frank_wolfe(w, int(k), int(sim.fw_iters))
        found += not (fw if fw is not None else argmaxable_criterion(w, int(k)))
    results["post_regime_unargmaxable_in_sample"] = float(found)
    results["post_regime_sample"] = float(len(sample))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    dims = [int(d) for d in sim.dims]
    for spread in sim.norm_spreads:
        means = [np.mean(fractions[(d, float(spread))]) for d in dims]
        sds = [np.std(fractions[(d, float(spread))], ddof=1) if len(fractions[(d, float(spread))]) > 1 else 0
               for d in dims]
        ax.errorbar(dims, means, yerr=sds, marker="o", ms=4, capsize=2, label=f"log-norm spread {spread}")
    ax.set(xscale="log", xlabel="dimension d", ylabel="unargmaxable fraction",
           title=f"{n} random Gaussian classes ({sim.trials} draws; bars: std)")
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.legend(fontsize=7)
    figure(ctx, "unargmaxable_fraction", fig)
    return results


def validate(cfg) -> None:
    from ..common.errors import ConfigError

    if int(cfg.sim.classes) <= max(int(d) for d in cfg.sim.dims):
        raise ConfigError(f"sim.classes={cfg.sim.classes}: needs more classes than the largest dimension "
                          f"({max(int(d) for d in cfg.sim.dims)}) for any class to be unargmaxable")
    if int(cfg.sim.post_sample) > int(cfg.sim.post_classes):
        raise ConfigError(f"sim.post_sample={cfg.sim.post_sample}: at most sim.post_classes={cfg.sim.post_classes}")
