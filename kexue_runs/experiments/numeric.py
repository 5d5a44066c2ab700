"""Helpers for experiments a computation settles (simulation, quadrature, Monte Carlo, ODE, LP).

They run through the same runner as training experiments: `run(cfg, ctx)` logs its results with
ctx.log(0, "result", ...), writes figures, and returns the final metrics the checks read. Monte
Carlo tolerances are z-scores (deviation / standard error), so a check's bound follows from the
sampling error, not from the result.
"""

from __future__ import annotations

import math

from ..claims.report import pyplot, save_figure  # noqa: F401  (re-exported)


def z_score(estimate: float, expected: float, standard_error: float) -> float:
    if standard_error <= 0:
        return 0.0 if estimate == expected else math.inf
    return abs(estimate - expected) / standard_error


# One figure writer and one matplotlib import for every experiment.
figure = save_figure
