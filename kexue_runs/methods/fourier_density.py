"""用傅里叶级数拟合一维概率密度函数 (fitting a 1-D density with a Fourier series: FBDM)
https://kexue.fm/archives/10007   (paper: De la Fuente, Singh, Ballé, arXiv 2402.15345)

On [-1, 1], with autocorrelation coefficients c_n = Σ_{k=0}^{N-n} a_k a*_{k+n} of free complex a_0..a_N,
    p(x) = Re[1/2 + Σ_{n=1}^{N} (c_n / c_0) e^{iπnx}]
is non-negative (the Toeplitz matrix of an autocorrelation is positive semi-definite) and integrates to 1
(∫ f = 2 c_0 for f = Σ_{-N}^{N} c_n e^{iπnx}). Its CDF is
    Φ(x) = (x + 1)/2 + Re Σ_{n=1}^{N} (c_n / c_0) (e^{iπnx} - (-1)^n) / (iπn)
(the scraped post prints (x² - 1)/2 for the first term: a typo; `scraped_cdf` keeps it for the test that
shows it is wrong). The smoothness penalty ∫|f'|² = 2π² Σ_{-N}^{N} n² |c_n|². On ℝ: x = tanh((y - μ)/σ),
with Jacobian sech²((y - μ)/σ)/σ. Every function takes a leading batch of coefficient vectors (independent
fits trained together); x then carries the same batch dimensions.
"""

from __future__ import annotations

import math

import torch


def autocorrelation(a: torch.Tensor) -> torch.Tensor:
    """c_n = Σ_{k=0}^{N-n} a_k conj(a_{k+n}) for n = 0..N (complex a of length N + 1)."""
    n_terms = a.shape[-1]
    return torch.stack([(a[..., : n_terms - n] * a[..., n:].conj()).sum(-1) for n in range(n_terms)], -1)


def _ratios(a: torch.Tensor):
    c = autocorrelation(a)
    n = torch.arange(1, c.shape[-1], dtype=a.real.dtype)
    return c[..., 1:] / c[..., :1].real, n


def density_unit(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """p(x) on [-1, 1]. Re[r e^{iπnx}] = Re r cos(πnx) - Im r sin(πnx): real arithmetic, a matrix product."""
    ratio, n = _ratios(a)
    phase = math.pi * x[..., None] * n
    return 0.5 + (torch.cos(phase) @ ratio.real[..., None] - torch.sin(phase) @ ratio.imag[..., None]).squeeze(-1)


def cdf_unit(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Φ(x) = ∫_{-1}^{x} p: the corrected form."""
    ratio, n = _ratios(a)
    waves = (torch.exp(1j * math.pi * x[..., None] * n) - (-1.0) ** n) / (1j * math.pi * n)
    return (x + 1) / 2 + (ratio[..., None, :] * waves).real.sum(-1)


def scraped_cdf(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The CDF as the scraped post prints it, (x² - 1)/2 + ½ Σ ...: kept only to show it is not ∫p."""
    ratio, n = _ratios(a)
    waves = (torch.exp(1j * math.pi * x[..., None] * n) - (-1.0) ** n) / (1j * math.pi * n)
    return (x ** 2 - 1) / 2 + 0.5 * (ratio * waves).real.sum(-1)


def smoothness_penalty(a: torch.Tensor) -> torch.Tensor:
    """∫_{-1}^{1} |f'(x)|² dx for f = Σ_{-N}^{N} c_n e^{iπnx}, c_{-n} = conj(c_n): 2π² Σ n²|c_n|²."""
    c = autocorrelation(a)
    n = torch.arange(c.shape[-1], dtype=a.real.dtype)
    return 2 * math.pi ** 2 * 2 * (n ** 2 * c.abs() ** 2).sum(-1)  # n and -n contribute equally


def density_roughness(a: torch.Tensor) -> torch.Tensor:
    """The post's penalty ∫|f'|² on the normalised density: p = f / 2c_0, so ∫|p'|² = ∫|f'|² / 4c_0².
    (On f itself the penalty would shrink every a_k without changing p.)"""
    return smoothness_penalty(a) / (2 * autocorrelation(a)[..., 0].real) ** 2


def sample_unit(a: torch.Tensor, count: int, generator: torch.Generator, iterations: int = 60) -> torch.Tensor:
    """Draws by inverting Φ (bisection: Φ is non-decreasing)."""
    u = torch.rand(count, generator=generator, dtype=a.real.dtype)
    lo, hi = -torch.ones_like(u), torch.ones_like(u)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        below = cdf_unit(mid, a) < u
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


def log_sech2(z: torch.Tensor) -> torch.Tensor:
    """log sech²(z), stable for large |z|: 2 (log 2 - |z| - log(1 + e^{-2|z|}))."""
    return 2 * (math.log(2) - z.abs() - torch.log1p(torch.exp(-2 * z.abs())))


class FourierDensity(torch.nn.Module):
    """The FBDM density on ℝ: N + 1 complex coefficients, and μ, σ of the tanh squashing (trainable).
    μ and σ may be tensors: one independent density per entry (log_prob then takes y of shape (*batch, n))."""

    def __init__(self, terms: int, mu=0.0, sigma=1.0, generator: torch.Generator | None = None):
        super().__init__()
        mu, sigma = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(sigma, dtype=torch.float64)
        init = 0.01 * torch.randn(*mu.shape, terms + 1, 2, generator=generator, dtype=torch.float64)
        init[..., 0, 0] = 1.0  # a_0 = 1: the uniform density on [-1, 1]
        self.a = torch.nn.Parameter(init)
        self.mu = torch.nn.Parameter(mu.clone())
        self.log_sigma = torch.nn.Parameter(sigma.log())

    def coefficients(self) -> torch.Tensor:
        return torch.complex(self.a[..., 0], self.a[..., 1])

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        z = (y - self.mu[..., None]) / self.log_sigma.exp()[..., None]
        p = density_unit(torch.tanh(z), self.coefficients())
        return torch.log(p.clamp_min(1e-300)) + log_sech2(z) - self.log_sigma[..., None]
