"""Small tabular sets that ship inside scikit-learn (no download): a fixed train / test split of digits."""

from __future__ import annotations

import torch


def digits_split(n_train: int = 1400, split_seed: int = 1234):
    """scikit-learn's 8x8 digits as (x_train, y_train, x_test, y_test), pixels scaled to [0, 1].
    The split is fixed (split_seed), so every experiment and seed sees the same test set."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    train, test = order[:n_train], order[n_train:]
    return x[train], y[train], x[test], y[test]
