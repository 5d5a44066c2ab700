"""“闭门造车”之多模态思路浅谈（二）：自回归 (multimodal musings 2: autoregression, next-patch prediction)
https://kexue.fm/archives/10197

A next patch regressed by squared error is a Gaussian likelihood with a fixed σ: its prediction is the
conditional mean, which, when the next patch is multimodal, lies between the modes. The post's remedy is a
diffusion model inside the autoregression, e.g. a small diffusion head conditioned on the context (MAR,
Li et al. 2024). Predicting the clean x0 trains with less variance than predicting the next noisy step
x_{t-1} (a random target). A tokenizer with 32 tokens from a 4096-entry codebook can name at most
4096^32 = 2^384 images.

The head here is a DDPM in the patch's coordinates, conditioned by concatenating the context, with three
parametrisations: ε (MAR's), x0, and the next step x_{t-1} drawn from q(x_{t-1} | x_t, x0).
"""

from __future__ import annotations

import math

import torch

PARAMETRISATIONS = ("eps", "x0", "next_step")


def codebook_capacity_log2(codebook: int, tokens: int) -> float:
    """log2 of the number of distinct token sequences: tokens x log2(codebook)."""
    return tokens * math.log2(codebook)


class Schedule:
    """A DDPM noise schedule (linear β from 1e-4 to 0.02 scaled to T steps, as in DDPM)."""

    def __init__(self, steps: int):
        self.steps = steps
        self.beta = torch.linspace(1e-4 * 1000 / steps, 0.02 * 1000 / steps, steps).clamp(max=0.999)
        self.alpha = 1 - self.beta
        self.abar = torch.cumprod(self.alpha, 0)
        self.abar_prev = torch.cat([torch.ones(1), self.abar[:-1]])
        # the posterior q(x_{t-1} | x_t, x0) = N(c0 x0 + ct x_t, var)
        self.c0 = self.beta * self.abar_prev.sqrt() / (1 - self.abar)
        self.ct = self.alpha.sqrt() * (1 - self.abar_prev) / (1 - self.abar)
        self.var = self.beta * (1 - self.abar_prev) / (1 - self.abar)

    def to(self, device) -> Schedule:
        for name in ("beta", "alpha", "abar", "abar_prev", "c0", "ct", "var"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def noised(schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    ab = schedule.abar[t][:, None]
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def training_target(schedule: Schedule, parametrisation: str, x0, xt, t, noise, generator=None) -> torch.Tensor:
    """What the head regresses onto: ε, x0, or a draw of x_{t-1} from q(x_{t-1} | x_t, x0)."""
    if parametrisation == "eps":
        return noise
    if parametrisation == "x0":
        return x0
    mean = schedule.c0[t][:, None] * x0 + schedule.ct[t][:, None] * xt
    return mean + schedule.var[t][:, None].sqrt() * torch.randn(xt.shape, generator=generator).to(xt.device)


def posterior_mean(schedule: Schedule, parametrisation: str, output, xt, t) -> torch.Tensor:
    """The mean of p(x_{t-1} | x_t) implied by the head's output."""
    if parametrisation == "next_step":
        return output
    ab = schedule.abar[t][:, None]
    x0 = output if parametrisation == "x0" else (xt - (1 - ab).sqrt() * output) / ab.sqrt()
    return schedule.c0[t][:, None] * x0 + schedule.ct[t][:, None] * xt


@torch.no_grad()
def sample(head, schedule: Schedule, parametrisation: str, context: torch.Tensor, dim: int,
           generator: torch.Generator) -> torch.Tensor:
    """Ancestral sampling from x_T ~ N(0, I), conditioned on the context (draws from a CPU generator, moved to
    the context's device; the schedule must be there too)."""
    device = context.device
    x = torch.randn(len(context), dim, generator=generator).to(device)
    for step in reversed(range(schedule.steps)):
        t = torch.full((len(x),), step, dtype=torch.long, device=device)
        mean = posterior_mean(schedule, parametrisation, head(x, t, context), x, t)
        x = mean + (schedule.var[step].sqrt() * torch.randn(x.shape, generator=generator).to(device) if step > 0
                    else 0)
    return x
