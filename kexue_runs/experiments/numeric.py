"""Helpers for experiments a computation settles (simulation, quadrature, Monte Carlo, ODE, LP).

They run through the same runner as training experiments: `run(cfg, ctx)` logs its results with
ctx.log(0, "result", ...), writes figures, and returns the final metrics the checks read. Monte
Carlo tolerances are z-scores (deviation / standard error), so a check's bound follows from the
sampling error, not from the result.
"""

from __future__ import annotations

import math


def z_score(estimate: float, expected: float, standard_error: float) -> float:
    if standard_error <= 0:
        return 0.0 if estimate == expected else math.inf
    return abs(estimate - expected) / standard_error


def figure(ctx, name: str, fig) -> None:
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(ctx.figures_dir / f"{name}.png", dpi=130)
    import matplotlib.pyplot as plt

    plt.close(fig)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
