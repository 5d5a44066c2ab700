"""Datasets as tensors in memory, and batches that are a function of the step.

Embedded (offline, no download): `photo_patches` (scikit-learn's two bundled photos) and `digits`
(scikit-learn's 8x8 digits). Downloadable: `cifar10`, `fashion_mnist` from data.root or through
`datasets` when the network allows, with retries and one clear line when it does not.
"""

from __future__ import annotations

import torch


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Indices of the batch at `step`: a pure function of (seed, step), so resumes are exact."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randint(0, n, (batch_size,), generator=gen)
