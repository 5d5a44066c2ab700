"""生成扩散模型漫谈（一）：DDPM = 拆楼 + 建楼 (DDPM = demolish + rebuild)
https://kexue.fm/archives/9119

Su's notation: x_t = alpha_t x_{t-1} + beta_t eps, alpha^2 + beta^2 = 1, so x_t = abar_t x_0 + bbar_t eps
with abar_t = prod alpha, bbar_t = sqrt(1 - abar_t^2). Schedule alpha_t = sqrt(1 - 0.02 t / T).
The variance-reduction identity merges two noises into one:
E||eps_t - f(abar_t x0 + alpha_t bbar_{t-1} e1 + beta_t eps_t)||^2
  = (beta_t^2 / bbar_t^2) E||eps - (bbar_t / beta_t) f(abar_t x0 + bbar_t eps)||^2
    + d alpha_t^2 bbar_{t-1}^2 / bbar_t^2.
"""

from __future__ import annotations

import math

import numpy as np

from .numeric import figure, pyplot, z_score


def alphas(T: int) -> np.ndarray:
    t = np.arange(1, T + 1)
    return np.sqrt(1 - 0.02 * t / T)


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    T, d, samples, t = int(sim.T), int(sim.dim), int(sim.samples), int(sim.t)
    a = alphas(T)
    abar = np.cumprod(a)
    results = {"abar_T": float(abar[-1]), "log_abar_T": float(np.log(abar[-1])),
               "bound_holds": float(np.log(abar[-1]) < -0.005 * (T + 1)), "bound": -0.005 * (T + 1)}
    rng = np.random.default_rng(int(cfg.seed))
    w = rng.standard_normal((d, d)) / math.sqrt(d)

    def f(x):  # an arbitrary fixed "eps_theta"
        return np.tanh(x @ w) + 0.1 * x

    alpha, beta = a[t - 1], math.sqrt(1 - a[t - 1] ** 2)
    ab, bb, bb_prev = abar[t - 1], math.sqrt(1 - abar[t - 1] ** 2), math.sqrt(1 - abar[t - 2] ** 2)
    lhs, rhs = [], []
    chunks = range(0, samples, 100_000)
    for start in ctx.track(chunks, "monte carlo", total=len(chunks)):
        m = min(100_000, samples - start)
        x0 = rng.standard_normal((m, d)) * 0.5 + 1.0
        e1, e2, e = rng.standard_normal((3, m, d))
        lhs.append(((e2 - f(ab * x0 + alpha * bb_prev * e1 + beta * e2)) ** 2).sum(1))
        rhs.append((beta ** 2 / bb ** 2) * ((e - (bb / beta) * f(ab * x0 + bb * e)) ** 2).sum(1))
    lhs, rhs = np.concatenate(lhs), np.concatenate(rhs)
    const = d * alpha ** 2 * bb_prev ** 2 / bb ** 2
    se = math.sqrt(lhs.var(ddof=1) / len(lhs) + rhs.var(ddof=1) / len(rhs))
    results.update(identity_lhs=float(lhs.mean()), identity_rhs=float(rhs.mean() + const), identity_const=const,
                   identity_z=z_score(lhs.mean(), rhs.mean() + const, se))
    ctx.log(0, "result", **results)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.3))
    ax.plot(np.arange(1, T + 1), np.log(abar), label="log abar_t")
    ax.plot(np.arange(1, T + 1), -0.005 * (np.arange(1, T + 1) + 1) * np.arange(1, T + 1) / T, "--",
            label="-0.005 (t+1) t / T")
    ax.set(xlabel="t", title=f"abar_T = {abar[-1]:.6f} (e^-5 = {math.exp(-5):.6f})")
    ax.legend(fontsize=8)
    figure(ctx, "schedule", fig)
    return results
