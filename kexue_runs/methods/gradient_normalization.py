"""WGAN新方案：通过梯度归一化来实现L约束 (a new WGAN: the Lipschitz constraint by gradient normalization)
https://kexue.fm/archives/8757   (GN-GAN, arXiv 2109.02235; GraN-GAN, arXiv 2111.03162)

Normalise the critic by its own input gradient g = ∇_x D:
    iccv        D̂ = D / (|g| + |D|)              (GN-GAN; D̂ in [-1, 1])
    wacv        D̂ = D |g| / (|g|² + ε)           (GraN-GAN)
    plain       D̂ = D / |g|                      (the form both are built around)
    direction   D̂ = <g / |g|, x>                 (Su's variant: equivalent if D were linear; "very bad")
For a piecewise-linear D (ReLU-type nets) the Hessian vanishes inside each linear region, so there
|∇D̂| = |g|² / (|g| + |D|)² <= 1 (iccv) and |g|² / (|g|² + ε) <= 1 (wacv). But g jumps between regions, and
a continuous function over a discontinuous one is discontinuous (Su's point): the bound holds region by
region, not across them. Both the critic's and the generator's steps need second-order terms.
"""

from __future__ import annotations

import torch

FORMS = ("iccv", "wacv", "plain", "direction")


def normalized_critic(critic, x: torch.Tensor, form: str, eps: float = 1e-3) -> torch.Tensor:
    """D̂(x) for one of FORMS; differentiable in x and in the critic's parameters (create_graph)."""
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    d = critic(x).squeeze(-1)
    (g,) = torch.autograd.grad(d.sum(), x, create_graph=True)
    norm = g.flatten(1).norm(dim=1)
    if form == "iccv":
        return d / (norm + d.abs())
    if form == "wacv":
        return d * norm / (norm ** 2 + eps)
    if form == "plain":
        return d / norm
    if form == "direction":
        return (g.flatten(1) / norm[:, None] * x.flatten(1)).sum(1)  # points or images alike
    raise ValueError(f"form={form}: allowed: {', '.join(FORMS)}")


def input_gradient_norm(f, x: torch.Tensor) -> torch.Tensor:
    """|∇_x f(x)| per row, f returning one value per row."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(x).sum(), x)
    return g.flatten(1).norm(dim=1)
