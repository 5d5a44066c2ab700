"""Transformer升级之路：12、无限外推的ReRoPE？ https://kexue.fm/archives/9708

RoPE and the inference-time position schemes the post compares, on tensors shaped (B, H, T, D):

    rope          θ_m = base^(-2m/d), m = 0 .. d/2-1; position n rotates pair m by n·θ_m
    pi            positions / s (Position Interpolation)
    ntk_old       θ_m · s^(-2m/d)       (the base grows; https://kexue.fm/archives/9675)
    ntk_fixed     θ_m · s^(-2(m+1)/d)   (the lowest frequency shrinks by exactly s; 9706)
    ntk_mixed     θ_m · exp(-a (m+1)^b), a = ln s / (d/2)^b, b = 0.625 (9706)
    yarn          per-pair blend of interpolation and extrapolation by wavelength, and logits
                  scaled by (1 + 0.1 ln s)^2 (as reviewed in https://kexue.fm/archives/9948)
    rerope        relative position min(i - j, w): local positions exact, far ones clipped to w
    leaky_rerope  w + (i - j - w)/k beyond the window

s = (eval length) / (training length), so every scheme is plain RoPE at the training length.
log n† (https://kexue.fm/archives/8823) multiplies the query at position n (1-based) by
max(1, log n / log L). Rotations follow rotate(x, p) = R_p x, so rotate(q, i)·rotate(k, j) depends on
j - i only; ReRoPE needs two score matrices in prefill (a¹ = RoPE, a² = R_w q against unrotated k)
and, with a cache of unrotated keys, one matrix per decoded token.
"""

from __future__ import annotations

import math

import torch

SCHEMES = ("rope", "pi", "ntk_old", "ntk_fixed", "ntk_mixed", "yarn", "rerope", "leaky_rerope")


def inv_freq(dim: int, base: float, scheme: str = "rope", s: float = 1.0, mixed_b: float = 0.625,
             train_length: int = 512, yarn_alpha: float = 1.0, yarn_beta: float = 32.0) -> torch.Tensor:
    """θ_m for m = 0 .. dim/2 - 1 under a scheme and scale s (s = 1: plain RoPE for every scheme)."""
    m = torch.arange(dim // 2, dtype=torch.float64)
    theta = base ** (-2 * m / dim)
    if s == 1.0 or scheme in ("rope", "rerope", "leaky_rerope"):
        return theta.float()
    if scheme == "pi":
        theta = theta / s
    elif scheme == "ntk_old":
        theta = theta * s ** (-2 * m / dim)
    elif scheme == "ntk_fixed":
        theta = theta * s ** (-2 * (m + 1) / dim)
    elif scheme == "ntk_mixed":
        a = math.log(s) / (dim / 2) ** mixed_b
        theta = theta * torch.exp(-a * (m + 1) ** mixed_b)
    elif scheme == "yarn":
        rotations = train_length * theta / (2 * math.pi)  # turns a pair makes within the training length
        keep = ((rotations - yarn_alpha) / (yarn_beta - yarn_alpha)).clamp(0, 1)  # 1: extrapolate as is
        theta = keep * theta + (1 - keep) * theta / s
    else:
        raise ValueError(f"unknown position scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
    return theta.float()


def yarn_logit_scale(s: float) -> float:
    return (1 + 0.1 * math.log(s)) ** 2 if s > 1 else 1.0


def rotate(x: torch.Tensor, positions: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """R_p x for x (..., T, D) at positions (T,) (or broadcastable (..., T)); pairs are (x_m, x_{m+D/2})."""
    angles = positions.to(theta.dtype)[..., None] * theta.to(x.device)  # (..., T, D/2)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def logn_scale(length: int, train_length: int, clip: bool, device=None) -> torch.Tensor:
    """Per-position query factor log n / log L (n = position + 1); clip=True gives log n† = max(1, .)."""
    n = torch.arange(1, length + 1, dtype=torch.float32, device=device).clamp(min=2)
    scale = n.log() / math.log(train_length)
    return scale.clamp(min=1.0) if clip else scale


def relative_positions(length: int, device=None) -> torch.Tensor:
    i = torch.arange(length, device=device)
    return i[:, None] - i[None, :]  # (T, T): i - j


def rerope_logits(q: torch.Tensor, k: torch.Tensor, theta: torch.Tensor, window: int,
                  leaky_k: float | None = None) -> torch.Tensor:
    """Prefill logits q_i·k_j (unscaled, unmasked) with ReRoPE (or Leaky ReRoPE when leaky_k is set).

    a¹_ij = (R_i q_i)·(R_j k_j) carries the exact relative position i - j; a²_ij carries w for ReRoPE,
    or w + (i - j - w)/k for Leaky ReRoPE; a¹ is used where i - j < w.
    """
    length = q.shape[-2]
    pos = torch.arange(length, device=q.device)
    a1 = rotate(q, pos, theta) @ rotate(k, pos, theta).transpose(-1, -2)
    if leaky_k is None:
        a2 = rotate(q, torch.full_like(pos, window), theta) @ k.transpose(-1, -2)
    else:
        # R_{(i-w)/k + w} q_i against R_{j/k} k_j: relative position w + (i - j - w)/k
        q_pos = (pos.float() - window) / leaky_k + window
        a2 = rotate(q, q_pos, theta) @ rotate(k, pos.float() / leaky_k, theta).transpose(-1, -2)
    return torch.where(relative_positions(length, q.device) < window, a1, a2)


def rerope_decode_logits(q_t: torch.Tensor, k_cache: torch.Tensor, t: int, theta: torch.Tensor, window: int,
                         leaky_k: float | None = None) -> torch.Tensor:
    """Logits of the query at position t (B, H, 1, D) against a cache of unrotated keys (B, H, t+1, D):
    one matrix, each key rotated by R_{-r(t - j)} with r the rectified relative position."""
    rel = (t - torch.arange(t + 1, device=q_t.device)).float()
    if leaky_k is None:
        rectified = rel.clamp(max=window)
    else:
        rectified = torch.where(rel < window, rel, window + (rel - window) / leaky_k)
    return q_t @ rotate(k_cache, -rectified, theta).transpose(-1, -2)
