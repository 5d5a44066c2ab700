"""从动力学角度看优化算法（六）：为什么SimSiam不退化？ (why SimSiam doesn't collapse)
https://kexue.fm/archives/7980

Scalar toy: encoder theta, predictor phi, loss l = 1/2 (phi theta - theta)^2, phi(0) = 0.6,
theta(0) = 0.1, gradient flow. With stop-gradient on the target theta, phi^2 - theta^2 is conserved,
phi -> 1 and theta settles at sqrt(1 - 0.35) = 0.8062; with the full gradient theta -> 0.
"""

from __future__ import annotations

import math

import numpy as np

from .numeric import figure, pyplot


def velocity(mode: str, phi: float, theta: float) -> tuple[float, float]:
    r = phi * theta - theta  # the residual; l = r^2 / 2
    d_phi = -r * theta
    if mode == "stop_gradient":  # target sg[theta]: theta only moves through the prediction
        d_theta = -r * phi
    elif mode == "full_gradient":
        d_theta = -r * (phi - 1)
    elif mode == "target_only":  # the gradient through the target alone
        d_theta = r
    else:
        raise ValueError(mode)
    return d_phi, d_theta


def integrate(mode: str, phi0: float, theta0: float, dt: float, t_end: float) -> np.ndarray:
    """Classical RK4; returns (steps + 1, 3) rows of (t, phi, theta)."""
    steps = int(round(t_end / dt))
    out = np.empty((steps + 1, 3))
    phi, theta = phi0, theta0
    out[0] = (0.0, phi, theta)
    for i in range(1, steps + 1):
        k1 = velocity(mode, phi, theta)
        k2 = velocity(mode, phi + dt / 2 * k1[0], theta + dt / 2 * k1[1])
        k3 = velocity(mode, phi + dt / 2 * k2[0], theta + dt / 2 * k2[1])
        k4 = velocity(mode, phi + dt * k3[0], theta + dt * k3[1])
        phi += dt / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        theta += dt / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        out[i] = (i * dt, phi, theta)
    return out


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    phi0, theta0, dt, t_end = float(sim.phi0), float(sim.theta0), float(sim.dt), float(sim.t_end)
    results, paths = {}, {}
    for mode in ctx.track(["stop_gradient", "full_gradient", "target_only"], "integrate", total=3):
        path = integrate(mode, phi0, theta0, dt, t_end)
        paths[mode] = path
        conserved = path[:, 1] ** 2 - path[:, 2] ** 2
        results[f"{mode}_phi_final"] = float(path[-1, 1])
        results[f"{mode}_theta_final"] = float(path[-1, 2])
        results[f"{mode}_invariant_drift"] = float(np.abs(conserved - conserved[0]).max())
        for t in sim.checkpoints:  # theta along the trajectory, for the trend checks
            i = min(len(path) - 1, int(round(float(t) / dt)))
            ctx.claim_rows.append({"mode": mode, "t": float(t), "theta": float(path[i, 2]), "phi": float(path[i, 1])})
        ctx.log(0, mode, phi=path[-1, 1], theta=path[-1, 2])
    results["theta_limit_closed_form"] = math.sqrt(1 - (phi0 ** 2 - theta0 ** 2))
    results["stop_gradient_theta_error"] = abs(results["stop_gradient_theta_final"]
                                               - results["theta_limit_closed_form"])
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    for mode, path in paths.items():
        axes[0].plot(path[:, 0], path[:, 1], label=mode)
        axes[1].plot(path[:, 0], path[:, 2], label=mode)
    axes[1].axhline(results["theta_limit_closed_form"], color="0.4", ls="--", lw=1, label="sqrt(1 - 0.35)")
    for ax, name in zip(axes, ("predictor phi", "encoder theta")):
        ax.set(xlabel="t", title=name, xscale="symlog")
        ax.legend(fontsize=7)
    figure(ctx, "trajectories", fig)
    return results
