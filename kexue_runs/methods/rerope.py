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

`rerope_attention` computes prefill attention without either full matrix: the near band (i - j < w)
explicitly in query chunks, and the far part as one ordinary causal fused-attention call on queries and
keys shifted by w (query i sees keys j <= i - w), the two merged by their log-sum-exps. Memory is
linear in T beyond the window; time is that of one fused causal attention plus the band.
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


def causal_attention_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                         block: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal attention with the top-left convention (query i sees keys j <= i) and its log-sum-exp per
    query, (B, H, T, D) and (B, H, T). The fused kernels return the log-sum-exp through aten ops that
    scaled_dot_product_attention does not expose: the CPU flash kernel, CUDA's memory-efficient kernel;
    elsewhere (or if those ops go away) an online softmax over key blocks in plain PyTorch, memory
    O(T x block) instead of O(T^2)."""
    if q.shape[-2] == 0:
        return q.new_zeros(q.shape[:-1] + v.shape[-1:]), q.new_zeros(q.shape[:-1])
    try:
        if q.device.type == "cpu":
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, True, scale=scale)
            return out, lse
        if q.device.type == "cuda":
            out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(
                q, k, v, None, True, 0.0, True, scale=scale)[:2]
            return out, lse[..., : q.shape[-2]]
    except (AttributeError, RuntimeError, NotImplementedError):
        pass
    return blockwise_attention_lse(q, k, v, scale, block)


def blockwise_attention_lse(q, k, v, scale: float, block: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """The public-API fallback: causal attention (top-left) and its log-sum-exp, by an online softmax over
    key blocks (running max, running sum), never holding more than a T x block score matrix."""
    tq = q.shape[-2]
    m = q.new_full(q.shape[:-1], float("-inf"))
    total = q.new_zeros(q.shape[:-1])
    acc = q.new_zeros(q.shape[:-1] + v.shape[-1:])
    rows = torch.arange(tq, device=q.device)[:, None]
    for start in range(0, min(k.shape[-2], tq), block):
        kb, vb = k[..., start:start + block, :], v[..., start:start + block, :]
        s = (q @ kb.transpose(-1, -2)) * scale
        cols = torch.arange(start, start + kb.shape[-2], device=q.device)[None, :]
        s = s.masked_fill(cols > rows, float("-inf"))
        m_new = torch.maximum(m, s.amax(-1))
        safe = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))
        p = torch.exp(s - safe[..., None])
        correction = torch.exp(torch.where(torch.isfinite(m), m - safe, torch.full_like(m, float("-inf"))))
        total = total * correction + p.sum(-1)
        acc = acc * correction[..., None] + p @ vb
        m = m_new
    out = acc / total.clamp_min(torch.finfo(total.dtype).tiny)[..., None]
    return out, torch.where(total > 0, m + total.log(), torch.full_like(m, float("-inf")))


def rerope_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, theta: torch.Tensor, window: int,
                     scale: float, leaky_k: float | None = None, chunk: int = 64) -> torch.Tensor:
    """Causal (Leaky) ReRoPE attention for prefill, q, k, v (B, H, T, D) with q and k unrotated, equal to
    softmax(rerope_logits * scale, causal) @ v without either T x T matrix:

      near band, i - w < j <= i:  RoPE logits (R_i q_i)·(R_j k_j), in query chunks of `chunk` rows against
                                  the chunk + w keys they can see
      far part,  j <= i - w:      ReRoPE (R_w q_i)·k_j, or Leaky (R_{(i-w)/k+w} q_i)·(R_{j/k} k_j), as one
                                  causal attention of queries w.. against keys ..T-w (shifted by w)
    merged per query by their log-sum-exps."""
    t = q.shape[-2]
    pos = torch.arange(t, device=q.device)
    out = torch.empty(q.shape[:-1] + v.shape[-1:], dtype=v.dtype, device=v.device)
    lse = torch.empty(q.shape[:-1], dtype=q.dtype, device=q.device)
    for c0 in range(0, t, chunk):  # the near band, rotated chunk by chunk (no full rotated copies)
        c1 = min(t, c0 + chunk)
        k0 = max(0, c0 - window + 1)
        q1 = rotate(q[..., c0:c1, :], pos[c0:c1], theta)
        k1 = rotate(k[..., k0:c1, :], pos[k0:c1], theta)
        s = (q1 @ k1.transpose(-1, -2)) * scale
        rel = pos[c0:c1, None] - pos[None, k0:c1]
        s = s.masked_fill((rel < 0) | (rel >= window), float("-inf"))
        m = s.amax(-1, keepdim=True)  # finite: every query sees itself
        p = torch.exp(s - m)  # one exponential for both the softmax and its log-sum-exp
        total = p.sum(-1, keepdim=True)
        lse[..., c0:c1] = (m + total.log()).squeeze(-1)
        out[..., c0:c1, :] = (p @ v[..., k0:c1, :]).div_(total)
    if t <= window:
        return out
    if leaky_k is None:
        q2, k2 = rotate(q[..., window:, :], torch.full_like(pos[window:], window), theta), k[..., : t - window, :]
    else:
        q2 = rotate(q[..., window:, :], (pos[window:].float() - window) / leaky_k + window, theta)
        k2 = rotate(k[..., : t - window, :], pos[: t - window].float() / leaky_k, theta)
    far, far_lse = causal_attention_lse(q2, k2, v[..., : t - window, :], scale)
    del q2, k2
    # merge: out = w_near * near + (1 - w_near) * far, w_near = e^lse_near / (e^lse_near + e^lse_far)
    w_near = torch.sigmoid(lse[..., window:] - far_lse)[..., None]
    near = out[..., window:, :]
    near.mul_(w_near).add_(far.mul_(1 - w_near))
    return out


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
