"""基于Amos优化器思想推导出来的一些“炼丹策略” (training recipes derived from the Amos optimizer)
https://kexue.fm/archives/9344

With the update θ_{t+1} = θ_t - (α_t u_t + ρ_t θ_t), balancing weight decay against the update's square
(α_t²‖u_t‖² = 2ρ_t θ_t·ε_t, ε_t = θ_t - θ*) and assuming cos(u_t, ε_t) ≈ p gives
    α_t ≈ α0 ‖ε0‖ / ‖u_t‖ · D_t,      ρ_t ≈ α0² / (2q) · D_t,      D_t = exp(-2 S_t)
    S_{t+1} - S_t ≈ α0 p exp(-S_t)               ->  D_t ≈ 1 / (α0 p t + 1)²      (constant p)
    p_t = p0 exp(-S_t): S_{t+1} - S_t ≈ α0 p0 exp(-2 S_t)  ->  D_t ≈ 1 / (2 α0 p0 t + 1)  (slowing p)
Halving the rate at step T (constant p): α0 p = (√2 - 1)/T. The scale prior: ‖ε0‖² ≈ 2kσ² for a weight
matrix of k entries initialised with std σ (‖θ0‖² ≈ ‖θ*‖² ≈ kσ², θ0·θ* ≈ 0); kσ² with σ = 0.5 for biases.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def decay_by_recurrence(rate: float, steps: int, slowing: bool = False) -> np.ndarray:
    """D_t = exp(-2 S_t) for t = 0..steps from the post's difference equation, S_0 = 0.
    rate is α0 p (constant p) or α0 p0 (slowing: p_t = p0 exp(-S_t))."""
    s = np.zeros(steps + 1)
    for t in range(steps):
        s[t + 1] = s[t] + rate * math.exp(-(2 if slowing else 1) * s[t])
    return np.exp(-2 * s)


def decay_closed_form(rate: float, t: np.ndarray, slowing: bool = False) -> np.ndarray:
    """The post's solutions of dS/dt = α0 p e^{-S} and α0 p0 e^{-2S}: inverse-square and inverse-time decay."""
    t = np.asarray(t, dtype=float)
    return 1 / (2 * rate * t + 1) if slowing else 1 / (rate * t + 1) ** 2


def halving_rate(T: float) -> float:
    """α0 p that halves the constant-p schedule at step T: (α0 p T + 1)² = 2."""
    return (math.sqrt(2) - 1) / T


def scale_prior(numel: int, sigma: float, matrix: bool = True) -> float:
    """‖ε0‖²: 2kσ² for a randomly initialised matrix, kσ² for a vector that starts at 0 or 1."""
    return (2 if matrix else 1) * numel * sigma ** 2


class AmosStyleAdamW(torch.optim.Optimizer):
    """Adam's direction u_t with the post's step sizes, per tensor: the update has norm α0 ‖ε0‖ D_t and
    weight decay is ρ_t = α0²/(2q) D_t, D_t = 1/(2 α0 p0 t + 1) (the slowing-p schedule).
    `eps0` is each tensor's ‖ε0‖ from the scale prior."""

    def __init__(self, params, alpha0: float, rate: float, q: float = 1.0, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"alpha0": alpha0, "rate": rate, "q": q, "betas": betas, "eps": eps})
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        for group in self.param_groups:
            (b1, b2), eps, a0 = group["betas"], group["eps"], group["alpha0"]
            decay = float(decay_closed_form(group["rate"], self.t - 1, slowing=True))
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                m = state.setdefault("m", torch.zeros_like(p))
                v = state.setdefault("v", torch.zeros_like(p))
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).add_(p.grad ** 2, alpha=1 - b2)
                u = (m / (1 - b1 ** self.t)) / ((v / (1 - b2 ** self.t)).sqrt() + eps)
                rho = a0 ** 2 / (2 * group["q"]) * decay
                p.mul_(1 - rho).sub_(u * (a0 * state["eps0"] * decay / (u.norm() + 1e-30)))

    def set_scale(self, prior_sigma_bias: float = 0.5) -> None:
        """‖ε0‖ per tensor from the scale prior: matrices by their own initial std, vectors by σ = 0.5."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() >= 2:
                    sigma = float(p.detach().std())
                    self.state[p]["eps0"] = math.sqrt(scale_prior(p.numel(), sigma))
                else:
                    self.state[p]["eps0"] = math.sqrt(scale_prior(p.numel(), prior_sigma_bias, matrix=False))
