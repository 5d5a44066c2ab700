"""基于量子化假设推导模型的尺度定律（Scaling Law） (scaling laws from the quantization hypothesis)
https://kexue.fm/archives/9607

Quanta k = 1, 2, ... have Zipf frequencies p_k = k^-(gamma+1) / Z. A model that has learned the n most
frequent quanta has loss L = sum_{k > n} p_k ~ n^-gamma, so L ~ N^-gamma in parameters. Trained on D
samples it learns quantum k once it has seen it tau times, so n ~ D^(1/(gamma+1)) and
L ~ D^-(gamma/(gamma+1)); steps S at batch B behave like data, L ~ S^-(gamma/(gamma+1)).

The derivation reads "seen tau times" on expected counts (D p_n = tau: `rule_loss`); the simulation draws the
counts (`data_loss`), whose mean curve follows the law at every D, so only the rule has a bias to shrink.
"""

from __future__ import annotations

import numpy as np
from scipy.special import zeta

from .numeric import figure, pyplot


def zipf(gamma: float, quanta: int) -> tuple[np.ndarray, float]:
    """Frequencies of the first `quanta` quanta of the infinite Zipf law, and the mass of all the rest."""
    z = zeta(gamma + 1)
    p = np.arange(1, quanta + 1, dtype=float) ** -(gamma + 1) / z
    return p, float(zeta(gamma + 1, quanta + 1) / z)


def tail(gamma: float, n: np.ndarray) -> np.ndarray:
    """sum_{k > n} p_k of the infinite law, exactly (Hurwitz zeta)."""
    return zeta(gamma + 1, n + 1) / zeta(gamma + 1)


def fit_slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def rule_loss(gamma: float, ds: np.ndarray, tau: int) -> np.ndarray:
    """L(D) under the post's rule on expected counts: quantum k is learned once D p_k >= tau, so D p_n = tau gives
    n(D) = (D / (tau Z))^(1/(gamma+1)) learned quanta, taken as continuous as the derivation takes it (floor(n)
    adds steps of order 1/n that shift the exponent of a window by as much as the convergence measured), and
    L = sum_{k > n} p_k = zeta(gamma+1, n+1) / Z (the Hurwitz tail, exact at integer n)."""
    n = (np.asarray(ds, dtype=float) / (tau * zeta(gamma + 1))) ** (1 / (gamma + 1))
    return tail(gamma, n)


def error_fall(gamma: float, ds: np.ndarray, tau: int, exponent: float) -> float:
    """How far the local exponent of the rule's L(D) closes on `exponent` across the grid: its relative error in
    the last window over that in the first (-> 0 for the true exponent, whose error falls like 1/n; an exponent
    off by a fraction f leaves an error of about f that does not fall)."""
    loss = rule_loss(gamma, ds, tau)
    local = np.diff(np.log(loss)) / np.diff(np.log(ds))
    errors = np.abs(local / exponent - 1)
    return float(errors[-1] / errors[0])


def data_loss(gamma: float, ds: np.ndarray, quanta: int, tau: int, rng: np.random.Generator) -> np.ndarray:
    """L(D): D multinomial draws; quantum k is learned once seen tau times. Quanta past `quanta` (mass
    `rest`) are drawn as one bucket and never learned."""
    p, rest = zipf(gamma, quanta)
    out = []
    for d in ds:
        counts = rng.multinomial(int(d), np.append(p, rest))[:-1]
        out.append(float(p[counts < tau].sum() + rest))
    return np.array(out)


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    rng = np.random.default_rng(int(cfg.seed))
    quanta, tau = int(sim.quanta), int(sim.tau)
    ns = np.unique(np.logspace(1, np.log10(sim.n_max), 12).astype(int))
    ds = np.unique(np.logspace(np.log10(sim.d_min), np.log10(sim.d_max), 12).astype(int))
    half = len(ds) // 2
    results, curves = {}, {}
    window_errors = np.zeros(len(ns) - 1)
    for gamma in ctx.track([float(g) for g in sim.gammas], "gammas", total=len(sim.gammas)):
        loss_n = tail(gamma, ns)  # a = 0, b = 1: a learned quantum costs nothing
        local = np.diff(np.log(loss_n)) / np.diff(np.log(ns))  # the local exponent between grid points
        window_errors = np.maximum(window_errors, np.abs(local / -gamma - 1))
        slope_n = fit_slope(ns, loss_n)
        predicted = -gamma / (gamma + 1)
        ctx.claim_rows.append({"gamma": gamma, "d_rule_error_fall": error_fall(gamma, ds, tau, predicted)})
        losses_d = []
        for r in range(int(sim.replicates)):
            loss_d = data_loss(gamma, ds, quanta, tau, rng)
            losses_d.append(loss_d)
            slope_d = fit_slope(ds, loss_d)
            ctx.claim_rows += [
                {"gamma": gamma, "replicate": r, "law": "parameters", "slope": slope_n},
                {"gamma": gamma, "replicate": r, "law": "data", "slope": slope_d},
                {"gamma": gamma, "replicate": r, "window": "low D",
                 "d_rel_err": abs(fit_slope(ds[:half + 1], loss_d[:half + 1]) / predicted - 1)},
                {"gamma": gamma, "replicate": r, "window": "high D",
                 "d_rel_err": abs(fit_slope(ds[half:], loss_d[half:]) / predicted - 1)}]
        loss_d = np.mean(losses_d, axis=0)
        curves[gamma] = (loss_n, loss_d)
        results[f"gamma{gamma}_slope_n"] = slope_n
        results[f"gamma{gamma}_slope_d"] = fit_slope(ds, loss_d)
        results[f"gamma{gamma}_predicted_n"] = -gamma
        results[f"gamma{gamma}_predicted_d"] = -gamma / (gamma + 1)
        results[f"gamma{gamma}_rel_err_n"] = abs(slope_n / -gamma - 1)
        results[f"gamma{gamma}_rel_err_d"] = abs(results[f"gamma{gamma}_slope_d"] / (-gamma / (gamma + 1)) - 1)
        ctx.log(0, f"gamma{gamma}", slope_n=slope_n, slope_d=results[f"gamma{gamma}_slope_d"])
    for i, err in enumerate(window_errors):
        ctx.claim_rows.append({"n_window": int(ns[i]), "n_local_exponent_rel_err": float(err)})
    results["max_rel_err_n"] = max(v for k, v in results.items() if k.endswith("_rel_err_n"))
    results["max_rel_err_d"] = max(v for k, v in results.items() if k.endswith("_rel_err_d"))
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for gamma, (loss_n, loss_d) in curves.items():
        line, = axes[0].plot(ns, loss_n, "o", ms=3, label=f"gamma={gamma}")
        axes[0].plot(ns, loss_n[0] * (ns / ns[0]) ** -gamma, "--", color=line.get_color(), lw=1)
        line, = axes[1].plot(ds, loss_d, "o", ms=3, label=f"gamma={gamma}")
        axes[1].plot(ds, loss_d[0] * (ds / ds[0]) ** (-gamma / (gamma + 1)), "--", color=line.get_color(), lw=1)
    axes[0].set(xscale="log", yscale="log", xlabel="quanta learned n (~ parameters)", ylabel="loss",
                title="L(n) (dashed: n^-gamma)")
    axes[1].set(xscale="log", yscale="log", xlabel="samples D", title="L(D) (dashed: D^-gamma/(gamma+1))")
    for ax in axes:
        ax.legend(fontsize=7)
    figure(ctx, "scaling_laws", fig)
    return results
