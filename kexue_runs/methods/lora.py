"""配置不同的学习率，LoRA还能再涨一点？ https://kexue.fm/archives/10001

LoRA: a frozen weight W0 plus a low-rank update, y = x W0 + (α/r)·x A B with A ∈ R^{n×r} random and
B ∈ R^{r×m} zero, so training starts from the pretrained function. LoRA+ gives B a larger learning
rate than A: η_B = λ·η_A. Su argues λ should grow like √n with the width n (the LoRA+ paper: like n;
its recommendation λ ≈ 16). Everything that is not A or B (biases, norms, embeddings) stays frozen
with the base weights, so the optimizer sees exactly two groups.

With B0 = 0 and Adam without ε, weight decay or clipping, LoRA+ at ratio λ follows the same
trajectory as plain LoRA with scale α·λ: B' = B/λ gives the same product, its gradient is λ times
larger, and Adam's update does not depend on the gradient's scale.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TARGETS = ("qkv", "out", "mlp")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus (alpha/r)·x A B."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator | None = None):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        n, m = base.in_features, base.out_features
        # A ~ N(0, 1/n): x A is O(1) when x is (Su's assumption 1); B = 0
        self.lora_A = nn.Parameter(torch.randn(n, rank, generator=generator) / math.sqrt(n))
        self.lora_B = nn.Parameter(torch.zeros(rank, m))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.lora_A) @ self.lora_B


def add_lora(model: nn.Module, targets: list[str], rank: int, alpha: float, seed: int) -> list[str]:
    """Freeze every parameter, then wrap the targeted nn.Linear layers (by attribute name:
    qkv / out = attention projections, mlp = the feed-forward layers). Returns the wrapped names."""
    for p in model.parameters():
        p.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    wrapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            kind = "mlp" if ".mlp." in f".{full}." else child_name
            if isinstance(child, nn.Linear) and kind in targets:
                setattr(module, child_name, LoRALinear(child, rank, alpha, generator))
                wrapped.append(full)
    return wrapped


def lora_plus_groups(model: nn.Module, lr: float, ratio: float) -> list[dict]:
    """The two optimizer groups of LoRA+: every A at lr, every B at lr·ratio (ratio 1 = plain LoRA)."""
    a = [p for n, p in model.named_parameters() if n.endswith("lora_A")]
    b = [p for n, p in model.named_parameters() if n.endswith("lora_B")]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if len(a) + len(b) != len(trainable):
        raise ValueError(f"trainable parameters other than LoRA's A and B: {trainable}")
    return [{"params": a, "lr": lr, "name": "A"}, {"params": b, "lr": lr * ratio, "name": "B"}]
