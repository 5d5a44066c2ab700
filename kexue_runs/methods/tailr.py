"""缓解交叉熵过度自信的一个简明方案 (a simple remedy for cross-entropy's over-confidence: TaiLr)
https://kexue.fm/archives/9526

Cross-entropy's gradient is that of accuracy p divided by p; TaiLr divides by γ + (1-γ)p instead:
    gradient  -∇p / (γ + (1-γ) p),     loss  -log(γ + (1-γ) p) / (1-γ)
γ = 0 is cross-entropy, γ -> 1 is -p (a smooth accuracy). The paper (arXiv 2302.13344) trains with the
weighted form -sg[max(b, p / (γ + (1-γ) p))] ∇log p, which is the same gradient when b = 0.
"""

from __future__ import annotations

import torch


def tailr_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean -log(γ + (1-γ) p_y) / (1-γ) over the batch (γ = 0: cross-entropy)."""
    if gamma == 0:
        return torch.nn.functional.cross_entropy(logits, target)
    p = torch.softmax(logits, -1).gather(-1, target[:, None]).squeeze(-1)
    return (-torch.log(gamma + (1 - gamma) * p) / (1 - gamma)).mean()


def tailr_weighted_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float, floor: float = 0.0):
    """The paper's form: -sg[max(b, p / (γ + (1-γ) p))] log p_y, its gradient TaiLr's when b = 0."""
    log_p = torch.log_softmax(logits, -1).gather(-1, target[:, None]).squeeze(-1)
    p = log_p.exp()
    weight = torch.clamp(p / (gamma + (1 - gamma) * p), min=floor).detach()
    return -(weight * log_p).mean()
