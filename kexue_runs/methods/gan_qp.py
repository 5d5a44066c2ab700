"""不用L约束又不会梯度消失的GAN (GAN-QP: a GAN with neither a Lipschitz constraint nor vanishing gradients)
https://kexue.fm/archives/6163   (arXiv 1811.07296)

The quadratic-potential divergence, in its dual:
    max_T  E[ΔT - ΔT² / (2 λ d(x_r, x_f))],      ΔT = T(x_r) - T(x_f)
and the generator minimises E[ΔT] (the quadratic term stays out of the generator's loss). On two point
masses the SGAN (JS) dual saturates at a constant, log 2, whatever their distance; the WGAN dual gives the
distance d but only under a Lipschitz constraint; QP gives λ d / 2 with no constraint (its optimum
automatically has |ΔT| = λ d), linear in d, so its gradient never vanishes. Su's code uses the unary
T(x_r) - T(x_f) and d = λ · RMS(x_r - x_f) with λ = 10 (L2) or the mean |x_r - x_f| (L1).
"""

from __future__ import annotations

import math

import torch


def distance(real: torch.Tensor, fake: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-pair distance d(x_r, x_f): the root-mean-square (L2) or mean absolute (L1) coordinate difference."""
    diff = (real - fake).flatten(1)
    return diff.pow(2).mean(1).sqrt() if norm == "l2" else diff.abs().mean(1)


def qp_critic_loss(critic, real, fake, lam: float = 10.0, norm: str = "l2") -> torch.Tensor:
    delta = (critic(real) - critic(fake)).squeeze(-1)
    return (-delta + delta ** 2 / (2 * lam * distance(real, fake, norm))).mean()


def qp_generator_loss(critic, real, fake) -> torch.Tensor:
    return (critic(real) - critic(fake)).mean()


# -- the point-mass divergences, by optimising the dual ----------------------------------------------------

def point_mass_duals(d: float, lam: float = 10.0, steps: int = 4000, lr: float = 0.05) -> dict[str, float]:
    """Suprema of the three duals for p = δ(x - α), q = δ(x - β), |α - β| = d, found by gradient ascent:
    SGAN's JS (log 2 + ½ max E_p log σ(T) + E_q log(1 - σ(T))), WGAN's (max ΔT, |ΔT| <= d: T linear with
    a unit-norm slope), QP's (max ΔT - ΔT²/(2λd), T unconstrained)."""
    alpha, beta = torch.tensor([0.0, 0.0]), torch.tensor([d, 0.0])
    t_js = torch.zeros(2, requires_grad=True)  # T(α), T(β): free values at the two points
    w = torch.tensor([0.3, 0.4], requires_grad=True)  # WGAN's T(x) = w·x with |w| <= 1
    t_qp = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([t_js, w, t_qp], lr=lr)
    for _ in range(steps):
        js = torch.nn.functional.logsigmoid(t_js[0]) + torch.nn.functional.logsigmoid(-t_js[1])
        unit = w / w.norm().clamp_min(1.0)  # the constraint as a projection
        wgan = unit @ alpha - unit @ beta
        delta = t_qp[0] - t_qp[1]
        qp = delta - delta ** 2 / (2 * lam * d)
        opt.zero_grad()
        (-(js + wgan + qp)).backward()
        opt.step()
    with torch.no_grad():
        log_sigmoid = torch.nn.functional.logsigmoid
        js = float(math.log(2) + 0.5 * (log_sigmoid(t_js[0]) + log_sigmoid(-t_js[1])))
        unit = w / w.norm().clamp_min(1.0)
        delta = float(t_qp[0] - t_qp[1])
    return {"js": js, "wgan": abs(float(unit @ (alpha - beta))), "qp": delta - delta ** 2 / (2 * lam * d),
            "qp_delta": delta}
