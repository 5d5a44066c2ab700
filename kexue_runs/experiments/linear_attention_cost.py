"""线性Transformer应该不是你要等的那个模型 (linear Transformers are probably not what you're waiting for)
https://kexue.fm/archives/8610

Multiplications per layer, sequence length n, h heads of size d:
  self-attention 4 n h^2 d^2 + 2 n^2 h d,  FFN 8 n h^2 d^2.
SA exceeds the FFN iff n > 2hd; the quadratic term dominates the whole layer iff n > 6hd; linear
attention (2 n d^2 per head) with 4x the head size only pays off for n > 16 d.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.nn import functional as F

from .numeric import figure, pyplot


def sa_mults(n: int, h: int, d: int) -> int:
    return 4 * n * h * h * d * d + 2 * n * n * h * d


def ffn_mults(n: int, h: int, d: int) -> int:
    return 8 * n * h * h * d * d


def first_n(predicate, limit: int = 10**6) -> int:
    """The smallest n with predicate(n) true (all these predicates are monotone in n)."""
    lo, hi = 1, limit
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if predicate(mid) else (mid + 1, hi)
    return lo


def crossovers(h: int, d: int) -> dict:
    return {
        "sa_exceeds_ffn_from_n": first_n(lambda n: sa_mults(n, h, d) > ffn_mults(n, h, d)),
        "quadratic_dominates_layer_from_n": first_n(lambda n: 2 * n * n * h * d > 12 * n * h * h * d * d),
        # linear attention with head size 4d: 2 n (4d)^2 per head against softmax's 2 n^2 d
        "linear_4d_pays_from_n": first_n(lambda n: 2 * n * n * d > 2 * n * (4 * d) ** 2),
    }


def layer(n: int, h: int, d: int, device: str = "cpu"):
    """One BERT-style layer's attention (projections + softmax attention, written as plain matmuls) and FFN."""
    width = h * d
    x = torch.randn(1, n, width, device=device)
    w_qkv, w_o = torch.randn(width, 3 * width, device=device), torch.randn(width, width, device=device)
    w_1, w_2 = torch.randn(width, 4 * width, device=device), torch.randn(4 * width, width, device=device)

    def attention():
        q, k, v = (x @ w_qkv).view(1, n, 3, h, d).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
        return (a @ v).transpose(1, 2).reshape(1, n, width) @ w_o

    def ffn():
        return F.gelu(x @ w_1) @ w_2

    return attention, ffn


def counted_crossover(h: int, d: int, limit: int = 1 << 15) -> int:
    """The smallest n where torch's FLOP counter finds more work in the attention than in the FFN
    (run on the meta device: shapes only, no arithmetic)."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(fn) -> int:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    def sa_heavier(n: int) -> bool:
        attention, ffn = layer(n, h, d, "meta")
        return flops(attention) > flops(ffn)

    return first_n(sa_heavier, limit)


@torch.no_grad()
def timings(n: int, h: int, d: int, repeats: int) -> list[tuple[float, float]]:
    """(attention seconds, FFN seconds) per round; the two are timed back to back in each round."""
    attention, ffn = layer(n, h, d)
    attention(), ffn()  # warm-up
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        attention()
        mid = time.perf_counter()
        ffn()
        out.append((mid - start, time.perf_counter() - mid))
    return out


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    h, d = int(sim.heads), int(sim.head_dim)
    results = {k: float(v) for k, v in crossovers(h, d).items()}
    results.update(formula_2hd=2 * h * d, formula_6hd=6 * h * d, formula_16d=16 * d)
    results["counted_sa_exceeds_ffn_from_n"] = float(counted_crossover(h, d))
    ctx.log(0, "counts", **results)
    lengths = [int(n) for n in sim.lengths]
    medians = []
    for n in ctx.track(lengths, "timing", total=len(lengths)):
        rounds = timings(n, h, d, int(sim.repeats))
        for r, (t_sa, t_ffn) in enumerate(rounds):
            ctx.claim_rows += [{"part": "attention", "n": n, "replicate": r, "seconds": t_sa},
                               {"part": "ffn", "n": n, "replicate": r, "seconds": t_ffn}]
        ratio = float(np.median([a / b for a, b in rounds]))
        medians.append(ratio)
        ctx.log(n, "timing", attention_s=float(np.median([a for a, _ in rounds])),
                ffn_s=float(np.median([b for _, b in rounds])), ratio=ratio,
                flop_ratio=sa_mults(n, h, d) / ffn_mults(n, h, d))
    ratios = medians
    results["measured_ratio_at_longest"] = ratios[-1]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ns = torch.logspace(6, 14, 60, base=2).tolist()
    ax.plot(ns, [sa_mults(int(n), h, d) / ffn_mults(int(n), h, d) for n in ns], label="multiplications SA / FFN")
    ax.plot(lengths, ratios, "o-", label="measured time SA / FFN (median of rounds, this machine)")
    ax.axhline(1, color="0.5", lw=1)
    ax.axvline(2 * h * d, color="0.5", ls="--", lw=1, label=f"post: n = 2hd = {2 * h * d}")
    ax.set(xscale="log", yscale="log", xlabel="sequence length n", title=f"BERT-base layer (h={h}, d={d})")
    ax.legend(fontsize=7)
    figure(ctx, "attention_vs_ffn", fig)
    return results
