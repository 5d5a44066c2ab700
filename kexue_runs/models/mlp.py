"""The one-hidden-layer ReLU MLP that the classical experiments train on scikit-learn's digits."""

from __future__ import annotations

import torch


def mlp(inputs: int, hidden: int, outputs: int, seed: int | None = None) -> torch.nn.Sequential:
    """inputs -> hidden (ReLU) -> outputs, initialised under torch.manual_seed(seed) when a seed is given."""
    if seed is not None:
        torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(inputs, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, outputs))
