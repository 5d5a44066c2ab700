"""简单得令人尴尬的FSQ："四舍五入"超越了VQ-VAE (FSQ: rounding beats VQ-VAE)
https://kexue.fm/archives/9826

Finite scalar quantization: bound each of d dimensions to [0, L_i - 1], round, and pass the
gradient straight through the rounding. The codebook is implicit, the grid of prod(L_i) points:
no codebook parameters, no auxiliary loss, nothing to collapse.

Two bounds, as named options:
  `tanh`    (the FSQ paper): floor(L/2)-centred, u = tanh(z + shift) * half_l - offset
  `sigmoid` (Su's version):  u = (L - 1) * sigmoid(z)
"""

from __future__ import annotations

import math

import torch
from torch import nn

# The FSQ paper's recommended levels per (approximate) codebook size, Table 1 and the text.
PAPER_LEVELS: dict[int, list[int]] = {
    2**4: [5, 3],
    2**6: [8, 8],
    2**8: [8, 6, 5],
    2**9: [8, 8, 8],
    2**10: [8, 5, 5, 5],
    2**11: [8, 8, 6, 5],
    2**12: [7, 5, 5, 5, 5],
    2**14: [8, 8, 8, 6, 5],
    2**16: [8, 8, 8, 5, 5, 5],
}
BOUNDS = ("tanh", "sigmoid")


def levels_for(codebook_size: int) -> list[int]:
    if codebook_size not in PAPER_LEVELS:
        sizes = ", ".join(str(k) for k in PAPER_LEVELS)
        raise ValueError(f"no FSQ level table entry for codebook_size={codebook_size}; table sizes: {sizes} "
                         f"(or give quantizer.levels explicitly)")
    return list(PAPER_LEVELS[codebook_size])


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass."""
    return x + (torch.round(x) - x).detach()


class FSQ(nn.Module):
    """z (..., d) -> codes (..., d) on the grid, and integer indices in [0, prod(levels))."""

    def __init__(self, levels: list[int], bound: str = "tanh", eps: float = 1e-3):
        super().__init__()
        if any(level < 2 for level in levels):
            raise ValueError(f"FSQ levels must all be >= 2, got {levels}")
        if bound not in BOUNDS:
            raise ValueError(f"FSQ bound must be one of {BOUNDS}, got {bound!r}")
        self.levels = list(levels)
        self.bound = bound
        self.eps = eps
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.long), persistent=False)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.long), 0)
        self.register_buffer("_basis", basis, persistent=False)

    @property
    def dim(self) -> int:
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def to_unit_interval(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous u in [0, L-1] per dimension; rounding u gives the digit."""
        levels = self._levels.to(z.dtype)
        if self.bound == "sigmoid":
            return (levels - 1) * torch.sigmoid(z)
        half_l = (levels - 1) * (1 + self.eps) / 2
        offset = (self._levels % 2 == 0).to(z.dtype) * 0.5
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset + (self._levels // 2).to(z.dtype)

    def digits_to_codes(self, digits: torch.Tensor) -> torch.Tensor:
        levels = self._levels.to(digits.dtype)
        if self.bound == "sigmoid":
            return 2 * digits / (levels - 1) - 1
        half = (self._levels // 2).to(digits.dtype)
        return (digits - half) / half

    def codes_to_digits(self, codes: torch.Tensor) -> torch.Tensor:
        levels = self._levels.to(codes.dtype)
        if self.bound == "sigmoid":
            digits = (codes + 1) * (levels - 1) / 2
        else:
            half = (self._levels // 2).to(codes.dtype)
            digits = codes * half + half
        return torch.round(digits).long()

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        return (self.codes_to_digits(codes) * self._basis).sum(-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        digits = (indices.unsqueeze(-1) // self._basis) % self._levels
        return self.digits_to_codes(digits.float())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (codes with straight-through gradient, indices, ||sg[codes] - bounded z||^2)."""
        u = self.to_unit_interval(z.float())  # quantization always in float32
        digits = round_ste(u)
        codes = self.digits_to_codes(digits)
        indices = (digits.detach().long() * self._basis).sum(-1)
        quantization_error = (codes.detach() - self.digits_to_codes(u)).pow(2).mean()
        return codes, indices, quantization_error
