"""模型优化漫谈：BERT的初始标准差为什么是0.02？ (why is BERT's init std 0.02?)
https://kexue.fm/archives/8747

BERT's truncated normal (std 0.02, cut at 2 std) has an actual std of 0.02 x 0.87963 = 0.0176, about
half of Xavier's 1/sqrt(768) = 0.0361, so each block starts close to the identity. In Post-Norm,
x_{l+1} = LN(x_l + F(x_l)) acts like a division by sqrt(2) per block when F is as large as x, so the
weight of x_0 in x_l decays like 2^(-l/2) (x_l = x_0 / 2^(l/2) + ...), the post's reason for vanishing
gradients toward the input. Pre-Norm keeps an identity path; BERT's small init keeps blocks near it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .numeric import figure, pyplot, z_score


class Block(nn.Module):
    def __init__(self, width: int, post_norm: bool, std_in: float, std_out: float):
        super().__init__()
        self.post_norm = post_norm
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        for layer, std in ((self.ffn[0], std_in), (self.ffn[2], std_out)):
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        if self.post_norm:
            return self.norm(x + self.ffn(x))
        return x + self.ffn(self.norm(x))


def identity_path(post_norm: bool, layers: int, width: int, std_in: float, std_out: float, seed: int):
    """Per block l: the coefficient of x_0 in x_l, <x_l, x_0> / <x_0, x_0> (the post's residual path),
    and the blocks' mean gain |F(x_l)|^2 / |x_l|^2 on the input each one sees (the post's premise:
    "blocks as large as their input" is a gain of 1; BERT's small init, a gain near 0)."""
    torch.manual_seed(seed)
    blocks = [Block(width, post_norm, std_in, std_out) for _ in range(layers)]
    x0 = torch.randn(256, width)
    h, coefficients, gains = x0, [], []
    with torch.no_grad():
        for block in blocks:
            seen = block.norm(h) if not post_norm else h  # what the FFN reads (no random draw)
            gains.append(float(block.ffn(seen).pow(2).sum() / seen.pow(2).sum()))
            h = block(h)
            coefficients.append(float((h * x0).sum() / (x0 * x0).sum()))
    return coefficients, float(np.mean(gains))


def layer_grad_norms(post_norm: bool, layers: int, width: int, std_in: float, std_out: float, seed: int):
    """|dLoss/dW1| per block at init for a regression loss on the last block's (normed) output."""
    torch.manual_seed(seed)
    blocks = nn.ModuleList(Block(width, post_norm, std_in, std_out) for _ in range(layers))
    h, target = torch.randn(64, width), torch.randn(64, width)
    for block in blocks:
        h = block(h)
    out = h if post_norm else nn.functional.layer_norm(h, (width,))  # Pre-Norm ends with a final LN
    (out - target).pow(2).mean().backward()
    return [float(b.ffn[0].weight.grad.norm()) for b in blocks]


def run(cfg, ctx) -> dict:
    from scipy.stats import truncnorm  # here, not at import: preflight imports the module (start-up, #19)

    sim = cfg.sim
    factor = float(truncnorm(-2, 2).std())
    results = {"truncation_std_factor": factor, "bert_actual_std": 0.02 * factor,
               "xavier_std_768": 1 / math.sqrt(768), "bert_over_xavier": 0.02 * factor * math.sqrt(768)}
    w = torch.empty(int(sim.samples))
    torch.manual_seed(int(cfg.seed))
    nn.init.trunc_normal_(w, std=0.02, a=-0.04, b=0.04)
    se = 0.02 * factor / math.sqrt(2 * len(w))  # standard error of a sample std (normal approximation)
    results["sampled_std"] = float(w.std())
    results["sampled_std_z"] = z_score(float(w.std()), 0.02 * factor, se)
    layers, width = int(sim.layers), int(sim.width)
    # "as large as its input": W2 scaled so the FFN output has unit variance on unit-variance inputs
    gelu_sq = float(nn.functional.gelu(torch.randn(10**6)).pow(2).mean())
    unit = (1 / math.sqrt(width), 1 / math.sqrt(4 * width * gelu_sq))
    bert = (0.02 * factor, 0.02 * factor)
    curves = {}
    arms = [("post_norm_unit", True, unit), ("pre_norm_unit", False, unit), ("post_norm_bert", True, bert)]
    steps = np.arange(1, layers + 1)
    for name, post, (std_in, std_out) in ctx.track(arms, "residual path", total=len(arms)):
        paths, slopes = [], []
        for s in range(int(sim.seeds)):  # independent random blocks: the replicates
            coefficients, block_gain = identity_path(post, layers, width, std_in, std_out, 1000 * int(cfg.seed) + s)
            grads = layer_grad_norms(post, layers, width, std_in, std_out, 1000 * int(cfg.seed) + s)
            path_slope = float(np.polyfit(steps, np.log2(np.abs(coefficients)), 1)[0])
            grad_slope = float(np.polyfit(steps, np.log2(grads), 1)[0])
            ctx.claim_rows.append({"arm": name, "replicate": s, "log2_path_slope": path_slope,
                                   "path_at_last": float(coefficients[-1]), "log2_grad_slope": grad_slope,
                                   "block_gain": block_gain})
            paths.append(coefficients)
            slopes.append((path_slope, grad_slope))
        curves[name] = np.mean(paths, axis=0)
        results[f"{name}_log2_path_slope"] = float(np.mean([a for a, _ in slopes]))
        results[f"{name}_path_at_last"] = float(curves[name][-1])
        results[f"{name}_log2_grad_slope"] = float(np.mean([b for _, b in slopes]))
        ctx.log(0, name, log2_slope=results[f"{name}_log2_path_slope"], path_at_last=curves[name][-1],
                log2_grad_slope=results[f"{name}_log2_grad_slope"])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, coefficients in curves.items():
        ax.plot(range(1, layers + 1), np.abs(coefficients), "o-", ms=3, label=name)
    ax.plot(range(1, layers + 1), 2.0 ** (-np.arange(1, layers + 1) / 2), "k--", lw=1, label="2^(-l/2)")
    ax.set(yscale="log", xlabel="block l", ylabel="coefficient of x_0 in x_l (log scale)",
           title=f"residual path at init: {layers} blocks, width {width}, mean of {sim.seeds} draws")
    ax.legend(fontsize=7)
    figure(ctx, "residual_path", fig)
    return results
