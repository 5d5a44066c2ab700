"""生成扩散模型漫谈（四）：DDIM = 高观点DDPM https://kexue.fm/archives/9181
(with DDPM https://kexue.fm/archives/9119, 9164, the SDE view 9209 and the ODE view 9280)

Su's notation: x_t = ᾱ_t x_0 + β̄_t ε with ᾱ_t = ∏ α_i and β̄_t = √(1 - ᾱ_t²). A model trained only
for p(x_t | x_0) (ε-prediction) supports a family of samplers. Along a sub-sequence τ of timesteps,
from t to the previous s in τ (s = 0: ᾱ_0 = 1, β̄_0 = 0):

    x̂_0 = (x_t - β̄_t ε_θ) / ᾱ_t
    x_s = ᾱ_s x̂_0 + √(β̄_s² - σ²) ε_θ + σ z,    σ = η (β̄_s / β̄_t) √(1 - ᾱ_t² / ᾱ_s²)

η = 1 is DDPM (the posterior's own variance), η = 0 is DDIM (deterministic). σ̂ ("sigma_hat", the
DDIM paper's σ̂, 9181's σ_t = β_t) keeps DDPM's mean and uses the larger noise √(1 - ᾱ_t²/ᾱ_s²).
The probability-flow ODE d(x/ᾱ) = ε_θ d(β̄/ᾱ) is solved with Euler (which is DDIM) or Heun.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

SCHEDULES = ("su", "linear")
STRIDES = ("uniform", "quadratic")
SPACINGS = ("leading", "trailing")
SOLVERS = ("eta", "sigma_hat", "ode_euler", "ode_heun")

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t as a (B,) long tensor) -> ε


class Schedule:
    """ᾱ_t and β̄_t for t = 0..T (index 0 is the clean data)."""

    def __init__(self, T: int, kind: str = "su"):
        t = torch.arange(1, T + 1, dtype=torch.float64)
        if kind == "su":  # α_t = √(1 - 0.02 t/T) (9119)
            alpha_sq = 1 - 0.02 * t / T
        elif kind == "linear":  # DDPM's β_t from 1e-4 to 0.02, α_t² = 1 - β_t
            alpha_sq = 1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
        else:
            raise ValueError(f"unknown schedule {kind!r}; allowed: {', '.join(SCHEDULES)}")
        self.T, self.kind = T, kind
        self.abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(alpha_sq, 0).sqrt()])
        self.bbar = (1 - self.abar ** 2).sqrt()

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x0.dim() - 1)
        a, b = self.abar[t].to(x0.dtype).view(shape), self.bbar[t].to(x0.dtype).view(shape)
        return a * x0 + b * noise


def timesteps(T: int, steps: int, stride: str = "uniform", spacing: str = "leading") -> list[int]:
    """The sub-sequence τ (ascending); the previous step is always read from this list.

    leading: the DDIM code's {1, 1 + T/S, ..., 1 + (S-1)T/S} (quadratic: 1 + ⌊(i√(0.8T)/(S-1))²⌋), which
    ends at t = 1, so the last jump to x_0 is tiny and x_T enters at the top entry; trailing: {T/S, ..., T},
    which starts at T and ends with a jump of T/S straight to x_0. At S = T both are 1..T."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; allowed: {', '.join(SPACINGS)}")
    if stride not in STRIDES:
        raise ValueError(f"unknown stride {stride!r}; allowed: {', '.join(STRIDES)}")
    if spacing == "leading":
        if stride == "uniform":
            return [1 + k * (T // steps) for k in range(steps)]
        top = math.sqrt(0.8 * T)
        return sorted({1 + int((top * k / max(steps - 1, 1)) ** 2) for k in range(steps)})
    if stride == "uniform":
        seq = torch.linspace(0, T, steps + 1)[1:]
    else:
        seq = torch.linspace(0, math.sqrt(T), steps + 1)[1:] ** 2
    taus = sorted({max(1, min(T, int(round(float(s))))) for s in seq})
    taus[-1] = T
    return taus


@dataclass(frozen=True)
class Sampler:
    """One member of the family, with every option named and recorded."""

    steps: int = 50
    solver: str = "eta"           # eta | sigma_hat | ode_euler | ode_heun
    eta: float = 0.0              # for solver=eta: 0 = DDIM, 1 = DDPM
    stride: str = "uniform"       # uniform | quadratic
    spacing: str = "leading"      # leading (the DDIM code's, ends at t = 1) | trailing (starts at T)
    clip_x0: bool = False         # clamp x̂_0 to [-1, 1] (images)

    @property
    def label(self) -> str:
        return {"eta": f"eta{self.eta:g}", "sigma_hat": "sigma_hat"}.get(self.solver, self.solver)


@torch.no_grad()
def sample(eps_fn: EpsFn, x_T: torch.Tensor, schedule: Schedule, sampler: Sampler,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """x_0 from x_T along the sampler's sub-sequence; each step goes from t to the previous entry s."""
    taus = timesteps(schedule.T, sampler.steps, sampler.stride, sampler.spacing)
    x = x_T
    for t, s in zip(taus[::-1], taus[:-1][::-1] + [0]):
        x = step(eps_fn, x, t, s, schedule, sampler, generator)
    return x


def step(eps_fn: EpsFn, x: torch.Tensor, t: int, s: int, schedule: Schedule, sampler: Sampler,
         generator: torch.Generator | None = None) -> torch.Tensor:
    if sampler.solver in ("ode_euler", "ode_heun"):
        return ode_step(eps_fn, x, t, s, schedule, heun=sampler.solver == "ode_heun")
    a_t, b_t, a_s, b_s = (float(v) for v in (schedule.abar[t], schedule.bbar[t], schedule.abar[s], schedule.bbar[s]))
    eps = eps_fn(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
    x0 = (x - b_t * eps) / a_t
    if sampler.clip_x0:
        x0 = x0.clamp(-1, 1)
        eps = (x - a_t * x0) / b_t
    step_var = 1 - (a_t / a_s) ** 2  # the sub-step's own β²
    ddpm_sigma = (b_s / b_t) * math.sqrt(step_var)
    if sampler.solver == "sigma_hat":
        sigma, mean_sigma = math.sqrt(step_var), ddpm_sigma  # DDPM's mean, the larger noise
    else:
        sigma = mean_sigma = sampler.eta * ddpm_sigma
    x = a_s * x0 + math.sqrt(max(b_s ** 2 - mean_sigma ** 2, 0.0)) * eps
    if s > 0 and sigma > 0:
        x = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    return x


def ode_step(eps_fn: EpsFn, x: torch.Tensor, t: int, s: int, schedule: Schedule, heun: bool) -> torch.Tensor:
    """d(x/ᾱ) = ε d(β̄/ᾱ): Euler in y = x/ᾱ and ρ = β̄/ᾱ, or Heun (Euler's slope averaged with the end's)."""
    a_t, a_s = float(schedule.abar[t]), float(schedule.abar[s])
    rho_t, rho_s = float(schedule.bbar[t]) / a_t, float(schedule.bbar[s]) / a_s
    batch = (x.shape[0],)
    eps_t = eps_fn(x, torch.full(batch, t, dtype=torch.long, device=x.device))
    y = x / a_t + (rho_s - rho_t) * eps_t
    if heun and s > 0:
        eps_s = eps_fn(y * a_s, torch.full(batch, s, dtype=torch.long, device=x.device))
        y = x / a_t + (rho_s - rho_t) * 0.5 * (eps_t + eps_s)
    return y * a_s


class GaussianMixture:
    """A mixture of isotropic Gaussians whose optimal ε at every t is known in closed form:
    x_t ~ Σ_k w_k N(ᾱ μ_k, (ᾱ² s_k² + β̄²) I), and ε*(x_t, t) = -β̄ ∇ log p_t(x_t)."""

    def __init__(self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor):
        self.means, self.stds, self.weights = means.double(), stds.double(), weights.double() / weights.sum()

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[k] + self.stds[k, None] * torch.randn(n, self.means.shape[1], generator=generator,
                                                                  dtype=torch.float64)

    def eps(self, schedule: Schedule) -> EpsFn:
        def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            a, b = schedule.abar[t[0]], schedule.bbar[t[0]]
            var = a ** 2 * self.stds ** 2 + b ** 2                                   # (K,)
            diff = x[:, None, :] - a * self.means[None]                               # (N, K, d)
            logp = (self.weights.log() - 0.5 * x.shape[1] * var.log()
                    - 0.5 * (diff ** 2).sum(-1) / var)                                 # (N, K)
            resp = logp.softmax(-1)
            score = -(resp[..., None] * diff / var[None, :, None]).sum(1)
            return -b * score
        return fn

    def mode_of(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, self.means).argmin(-1)


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths=(0.1, 0.3, 1.0)) -> float:
    """Unbiased squared MMD with a sum of RBF kernels."""
    xx, yy, xy = torch.cdist(x, x) ** 2, torch.cdist(y, y) ** 2, torch.cdist(x, y) ** 2
    n, m = x.shape[0], y.shape[0]
    total = 0.0
    for h in bandwidths:
        kxx, kyy, kxy = (torch.exp(-d / (2 * h * h)) for d in (xx, yy, xy))
        total += ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum())
                  / (m * (m - 1)) - 2 * kxy.mean()).item()
    return total


def frechet_distance(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """||μ1 - μ2||² + tr(C1 + C2 - 2 (C1 C2)^½): FID's formula on any features."""
    f1, f2 = f1.double(), f2.double()
    mu1, mu2 = f1.mean(0), f2.mean(0)
    c1, c2 = torch.cov(f1.T), torch.cov(f2.T)
    # tr((C1 C2)^½) = Σ √eig(C1^½ C2 C1^½), symmetric and PSD, so eigvalsh is stable
    w, v = torch.linalg.eigh(c1)
    root1 = (v * w.clamp(min=0).sqrt()) @ v.T
    trace_root = torch.linalg.eigvalsh(root1 @ c2 @ root1).clamp(min=0).sqrt().sum()
    return ((mu1 - mu2) ** 2).sum().item() + (c1.trace() + c2.trace() - 2 * trace_root).item()
