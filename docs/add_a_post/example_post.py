"""example_post: E[U²] = 1/3, by quadrature and by Monte Carlo (the template of a numeric post).

Post: an example (https://kexue.fm). A real one opens with the post's title and link, and keeps the
method (here: nothing beyond numpy) in kexue_runs/methods/<idea>.py when there is one.
"""

from __future__ import annotations

import numpy as np


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    u = np.linspace(0.0, 1.0, 1001)
    weights = np.where(np.arange(len(u)) % 2 == 1, 4.0, 2.0)  # Simpson's rule: exact for cubics
    weights[[0, -1]] = 1.0
    simpson = float((weights * u ** 2).sum() * (u[1] - u[0]) / 3)
    results = {"quadrature_minus_third": abs(simpson - 1 / 3)}
    rng = np.random.default_rng(int(cfg.seed))
    zs = []
    for r in range(int(sim.replicates)):
        x = rng.random(int(sim.samples)) ** 2
        z = abs(x.mean() - 1 / 3) / (x.std(ddof=1) / np.sqrt(len(x)))
        zs.append(z)
        ctx.log(r, "mc", mean=float(x.mean()), z=float(z))
    results |= {"z": float(max(zs)), "replicates": int(sim.replicates)}
    return results
