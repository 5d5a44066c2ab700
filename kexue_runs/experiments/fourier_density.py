"""fourier_density: the Fourier basis density model against a mixture and a monotone network
(method: methods/fourier_density.py).

Post: 用傅里叶级数拟合一维概率密度函数 https://kexue.fm/archives/10007 (paper arXiv 2402.15345)
  1. the post's derivation recomputed: p >= 0 on a dense grid for random complex coefficients, ∫p = 1, the
     smoothness identity ∫|f'|² = 2π² Σ n²|c_n|², the CDF (the corrected form: its derivative is p and it
     runs from 0 to 1; the scraped form shown wrong), and inverse-CDF sampling by a Kolmogorov-Smirnov test;
  2. the paper's comparison: maximum-likelihood fits (Adam, full batch, float64) of sharp mixtures (of
     Gaussians, and of Laplaces: multimodal but not itself a Gaussian mixture), a Laplace, a skewed and a
     heavy-tailed target by FBDM with N terms and the post's smoothness penalty γ∫|p'|², a Gaussian mixture
     trained by gradient with the same parameter count (from a generic init, and from data points: the
     favourable init that sidesteps the vanishing gradients the post invokes), and a monotone network (the
     paper's DFP, Ballé et al. 2018) of about the same count: KL(truth || fit) by numerical integration
     against the parameter count, and the true modes recovered. The seeds of one (target, N, model) are
     trained together as one batch of independent models (Adam is elementwise: the same as one at a time).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..common.progress import say
from ..methods.fourier_density import (
    FourierDensity,
    autocorrelation,
    cdf_unit,
    density_roughness,
    density_unit,
    sample_unit,
    scraped_cdf,
    smoothness_penalty,
)

MODELS = ("fbdm", "gmm_generic", "gmm", "dfp")  # gmm: started on data points


# -- the targets (scipy's distributions: exact densities) --------------------------------------------------

def target(name: str):
    """(frozen scipy distribution or mixture, [(mode, its component's std)])."""
    from scipy import stats

    weights, means, stds = [0.3, 0.45, 0.25], [-2.0, 0.0, 1.5], [0.08, 0.3, 0.05]
    if name == "sharp_mixture":
        return Mixture(weights, means, stds), list(zip(means, stds))
    if name == "laplace_mixture":  # the same peaks with Laplace components of the same std (scale std/√2)
        return Mixture(weights, means, stds, family="laplace"), list(zip(means, stds))
    if name == "laplace":
        return stats.laplace(0, 1), [(0.0, 1.0)]
    if name == "skewed":
        dist = stats.skewnorm(5.0)
        grid = np.linspace(-1, 3, 40001)
        return dist, [(float(grid[np.argmax(dist.pdf(grid))]), float(dist.std()))]
    if name == "heavy_tailed":
        return stats.t(3), [(0.0, 1.0)]
    raise ValueError(name)


class Mixture:
    def __init__(self, weights, means, stds, family: str = "norm"):
        from scipy import stats

        part = {"norm": lambda m, s: stats.norm(m, s),
                "laplace": lambda m, s: stats.laplace(m, s / math.sqrt(2))}[family]
        self.weights, self.parts = np.array(weights), [part(m, s) for m, s in zip(means, stds)]

    def pdf(self, y):
        return sum(w * p.pdf(y) for w, p in zip(self.weights, self.parts))

    def ppf(self, q):  # only the range is needed: the widest component's
        return np.array([min(p.ppf(q) for p in self.parts), max(p.ppf(q) for p in self.parts)])[int(q > 0.5)]

    def rvs(self, size, random_state):
        counts = random_state.multinomial(size, self.weights)
        draws = np.concatenate([p.rvs(size=int(c), random_state=random_state) for p, c in zip(self.parts, counts)])
        return random_state.permutation(draws)


# -- the baselines ----------------------------------------------------------------------------------

class GaussianMixture(torch.nn.Module):
    """K components trained by gradient (the post: Gaussian tails make gradients vanish; EM is usual).
    data: (*batch, n), one independent mixture per batch entry. Init "data": means on K data points (the
    favourable start); "generic": means drawn from N(mean, std²) of the data, as a generic init would."""

    def __init__(self, k: int, data: torch.Tensor, generator: torch.Generator, init: str = "data"):
        super().__init__()
        mean, std = data.mean(-1, keepdim=True), data.std(-1, keepdim=True)
        if init == "data":
            start = torch.gather(data, -1, torch.randint(0, data.shape[-1], (*data.shape[:-1], k), generator=generator))
        else:
            start = mean + std * torch.randn(*data.shape[:-1], k, generator=generator, dtype=torch.float64)
        self.logits = torch.nn.Parameter(torch.zeros_like(start))
        self.means = torch.nn.Parameter(start.clone())
        self.log_stds = torch.nn.Parameter(std.log().expand_as(start).clone())

    def log_prob(self, y):
        z = (y[..., None] - self.means[..., None, :]) / self.log_stds.exp()[..., None, :]
        parts = (-0.5 * z ** 2 - self.log_stds[..., None, :] - 0.5 * math.log(2 * math.pi)
                 + torch.log_softmax(self.logits, -1)[..., None, :])
        return torch.logsumexp(parts, -1)


class MonotoneDensity(torch.nn.Module):
    """Ballé et al.'s factorized density (the paper's DFP): a CDF sigmoid(f(y)) with f monotone (positive
    weights through softplus, gates x + tanh(a) tanh(x)); the density is its derivative, by autograd."""

    def __init__(self, width: int, mu, sigma, generator: torch.Generator):
        super().__init__()
        mu, sigma = torch.as_tensor(mu, dtype=torch.float64), torch.as_tensor(sigma, dtype=torch.float64)
        batch = tuple(mu.shape)  # one independent network per entry of mu
        shapes = [(width, 1), (width, width), (1, width)]
        first = torch.log(torch.expm1(1 / sigma))[..., None, None]  # softplus⁻¹(1/σ): unit slope on y's scale
        self.weights = torch.nn.ParameterList(
            [torch.nn.Parameter(0.1 * torch.randn(*batch, *s, generator=generator, dtype=torch.float64)
                                + (first if i == 0 else math.log(math.expm1(1.0 / s[1]))))
             for i, s in enumerate(shapes)])
        self.biases = torch.nn.ParameterList(
            [torch.nn.Parameter(0.1 * torch.randn(*batch, s[0], generator=generator, dtype=torch.float64))
             for s in shapes])
        with torch.no_grad():
            self.biases[0].add_((-mu / sigma)[..., None])
        self.gates = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(*batch, s[0], dtype=torch.float64)) for s in shapes[:-1]])

    def logit_cdf(self, y):
        h = y[..., None]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ torch.nn.functional.softplus(w).transpose(-1, -2) + b[..., None, :]
            if i < len(self.gates):
                h = h + torch.tanh(self.gates[i])[..., None, :] * torch.tanh(h)
        return h[..., 0]

    def log_prob(self, y):
        y = y.detach().requires_grad_(True)
        logit = self.logit_cdf(y)
        (slope,) = torch.autograd.grad(logit.sum(), y, create_graph=True)
        # d sigmoid(l)/dy = sigmoid(l) sigmoid(-l) dl/dy
        log_sigmoid = torch.nn.functional.logsigmoid
        return log_sigmoid(logit) + log_sigmoid(-logit) + torch.log(slope.clamp_min(1e-300))

    def count(self):
        return sum(p.numel() for p in self.parameters())


def matched_sizes(terms: int) -> tuple[int, int, int]:
    """(FBDM's parameter count, GMM components, DFP width) at about the same count."""
    budget = 2 * (terms + 1) + 2  # complex a_0..a_N, and μ, σ
    k = max(1, round((budget + 1) / 3))  # 3K - 1 free: weights, means, stds
    width = min(range(1, 64), key=lambda h: abs(h * h + 6 * h + 1 - budget))
    return budget, k, width


def fit(model_name: str, terms: int, data: torch.Tensor, seed: int, sim) -> tuple[torch.nn.Module, np.ndarray]:
    """Fit one model per row of data (replicates, samples) by maximum likelihood. Returns the models and,
    per replicate, how much the training NLL still fell over the last tenth of the steps (the plateau)."""
    g = torch.Generator().manual_seed(seed)
    _, k, width = matched_sizes(terms)
    mu, sigma = data.mean(-1), data.std(-1)
    model = {"fbdm": lambda: FourierDensity(terms, mu, sigma, generator=g),
             "gmm": lambda: GaussianMixture(k, data, g, init="data"),
             "gmm_generic": lambda: GaussianMixture(k, data, g, init="generic"),
             "dfp": lambda: MonotoneDensity(width, mu, sigma, g)}[model_name]()
    opt = torch.optim.Adam(model.parameters(), lr=float(sim.lr))
    steps, late = int(sim.steps), int(sim.steps) - max(1, int(sim.steps) // 10)
    for step in range(steps):
        nll = -model.log_prob(data).mean(-1)
        if step == late:
            nll_late = nll.detach().clone()
        # the replicates' losses add: each one's gradient is its own
        loss = nll.sum()
        if model_name == "fbdm":
            loss = loss + float(sim.smoothness) * density_roughness(model.coefficients()).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    nll_end = -model.log_prob(data).mean(-1).detach()
    return model, (nll_late - nll_end).numpy()



def evaluation_grid(dist, sim) -> np.ndarray:
    return np.linspace(float(dist.ppf(1e-6)), float(dist.ppf(1 - 1e-6)), int(sim.grid))


def evaluate(log_q: np.ndarray, grid: np.ndarray, dist, modes) -> dict:
    """KL(truth || fit) by the trapezoid rule, the true modes recovered, and the fit's spurious peaks."""
    truth = dist.pdf(grid)
    inside = truth > 0
    kl = float(np.trapezoid(np.where(inside, truth * (np.log(np.where(inside, truth, 1)) - log_q), 0.0), grid))
    q = np.exp(log_q)
    peaks = np.flatnonzero((q[1:-1] > q[:-2]) & (q[1:-1] >= q[2:])) + 1
    recovered, near_a_mode = 0, np.zeros(len(peaks), dtype=bool)
    for mode, width in modes:
        near = np.abs(grid[peaks] - mode) <= width
        near_a_mode |= near
        # recovered: a local maximum within one component std, at least half the true peak's height
        if near.any() and q[peaks[near]].max() >= 0.5 * float(dist.pdf(np.array([mode]))[0]):
            recovered += 1
    # spurious: a local maximum away from every true mode, at least 1% of the fit's highest value (a ripple
    # in the far tail, many decades down, changes no mode count)
    spurious = int((~near_a_mode & (q[peaks] >= 0.01 * q.max())).sum())
    return {"kl": kl, "modes_recovered": recovered, "modes_true": len(modes), "peaks": len(peaks),
            "spurious_peaks": spurious}


# -- the derivation checks ---------------------------------------------------------------------------

def cdf_error(cdf, x: torch.Tensor, a: torch.Tensor) -> float:
    """How far `cdf` is from ∫_{-1}^{x} p: its derivative against p (autograd, exact) and its end values."""
    xr = x.clone().requires_grad_(True)
    values = cdf(xr, a)
    (slope,) = torch.autograd.grad(values.sum(), xr)
    ends = cdf(torch.tensor([-1.0, 1.0], dtype=x.dtype), a)
    return max(float((slope - density_unit(x, a)).abs().max()), abs(float(ends[0])), abs(float(ends[1]) - 1))


def derivations(seed: int, sim) -> dict:
    from scipy import stats

    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-1, 1, int(sim.grid), dtype=torch.float64)
    worst = {"min_density": math.inf, "normalisation_error": 0.0, "penalty_relative_error": 0.0,
             "cdf_error": 0.0, "scraped_cdf_error": 0.0}
    ks_rows = []
    for draw in range(int(sim.random_draws)):
        terms = [3, 10, 50][draw % 3]
        a = torch.complex(torch.randn(terms + 1, generator=g, dtype=torch.float64),
                          torch.randn(terms + 1, generator=g, dtype=torch.float64))
        p = density_unit(x, a)
        worst["min_density"] = min(worst["min_density"], float(p.min()))
        # ∫p by the trapezoid rule: exact for a trigonometric polynomial of degree < the grid size
        worst["normalisation_error"] = max(worst["normalisation_error"], abs(float(torch.trapezoid(p, x)) - 1))
        c = autocorrelation(a)
        n = torch.arange(-terms, terms + 1, dtype=torch.float64)
        c_full = torch.cat([c.flip(0)[:-1].conj(), c])  # c_{-n} = conj(c_n)
        f_prime = (c_full * 1j * math.pi * n * torch.exp(1j * math.pi * x[:, None] * n)).sum(-1)
        numeric, closed = float(torch.trapezoid(f_prime.abs() ** 2, x)), float(smoothness_penalty(a))
        worst["penalty_relative_error"] = max(worst["penalty_relative_error"], abs(numeric - closed) / closed)
        worst["cdf_error"] = max(worst["cdf_error"], cdf_error(cdf_unit, x, a))
        worst["scraped_cdf_error"] = max(worst["scraped_cdf_error"], cdf_error(scraped_cdf, x, a))
        samples = sample_unit(a, int(sim.ks_samples), g).numpy()
        cdf = lambda v, a=a: cdf_unit(torch.tensor(v), a).numpy()  # noqa: E731
        p_value = float(stats.kstest(samples, cdf).pvalue)
        ks_rows.append({"draw": draw, "terms": terms, "ks_pvalue": p_value,
                        "ks_z": float(stats.norm.isf(max(p_value, 1e-300) / 2))})
    return worst | {"ks_rows": ks_rows}


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    checks = derivations(int(cfg.seed), sim)
    ks_rows = checks.pop("ks_rows")
    results = dict(checks)
    ctx.claim_rows.extend(ks_rows)
    results["ks_min_pvalue"] = min(r["ks_pvalue"] for r in ks_rows)
    say(f"derivation: min p {checks['min_density']:.2e}, |∫p - 1| {checks['normalisation_error']:.1e}, penalty "
        f"error {checks['penalty_relative_error']:.1e}, CDF error {checks['cdf_error']:.1e} (scraped form "
        f"{checks['scraped_cdf_error']:.2f}), KS min p {results['ks_min_pvalue']:.3f}")
    replicates = range(int(sim.replicates))
    jobs = [(t, n, m) for t in sim.targets for n in sim.terms for m in MODELS]
    fits = {}
    for name, terms, model_name in ctx.track(jobs, "maximum-likelihood fits", total=len(jobs)):
        dist, modes = target(name)
        # the sample of replicate r is the same for every model and N (the comparison is paired)
        draws = [dist.rvs(size=int(sim.samples), random_state=np.random.default_rng(1000 * int(cfg.seed) + r))
                 for r in replicates]
        data = torch.tensor(np.stack(draws), dtype=torch.float64)
        model, still_falling = fit(model_name, int(terms), data, 1000 * int(cfg.seed) + int(terms), sim)
        params = sum(p.numel() for p in model.parameters()) // len(replicates)
        grid = evaluation_grid(dist, sim)
        log_q = model.log_prob(torch.tensor(grid).expand(len(replicates), -1)).detach().numpy()
        for r in replicates:
            m = evaluate(log_q[r], grid, dist, modes) | {"nll_fall_last_tenth": float(still_falling[r])}
            fits[(name, int(terms), model_name, r)] = (log_q[r], grid, m)
            ctx.log(r, f"{model_name}_{name}_N{terms}", kl=m["kl"], modes_recovered=m["modes_recovered"])
            ctx.claim_rows.append({"target": name, "N": int(terms), "setting": f"{name}/N={terms}",
                                   "model": model_name, "replicate": r, "params": params} | m)
    for name in sim.targets:
        for terms in sim.terms:
            for model_name in MODELS:
                vals = [fits[(name, int(terms), model_name, r)][2] for r in range(int(sim.replicates))]
                results[f"{model_name}_{name}_N{terms}_kl"] = float(np.mean([v["kl"] for v in vals]))
                results[f"{model_name}_{name}_N{terms}_modes"] = float(np.mean([v["modes_recovered"] for v in vals]))
    plot(ctx, fits, sim)
    kl_against_parameters(ctx, fits, sim)
    return results


def kl_against_parameters(ctx, fits, sim) -> None:
    """The paper's figure: mean KL (over seeds) against each model's parameter count, one panel per target."""
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    targets = list(sim.targets)
    fig, axes = plt.subplots(1, len(targets), figsize=(3.2 * len(targets), 3.0), squeeze=False)
    rows = ctx.claim_rows
    for ax, name in zip(axes[0], targets):
        for i, model_name in enumerate(MODELS):
            points = sorted({(r["params"], int(r["N"])) for r in rows if r.get("target") == name
                             and r.get("model") == model_name})
            kls = [np.mean([r["kl"] for r in rows if r.get("target") == name and r.get("model") == model_name
                            and r.get("N") == terms]) for _, terms in points]
            ax.loglog([p for p, _ in points], kls, "o-", color=f"C{i}", lw=1, ms=3, label=model_name)
        ax.set(title=name.replace("_", " "), xlabel="parameters")
    axes[0][0].set_ylabel("KL(truth || fit)")
    axes[0][0].legend(fontsize=6)
    save_figure(ctx, "kl_against_parameters", fig)


def plot(ctx, fits, sim) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    targets, terms = list(sim.targets), int(max(sim.terms))
    fig, axes = plt.subplots(1, len(targets), figsize=(3.6 * len(targets), 3.4), squeeze=False)
    for ax, name in zip(axes[0], targets):
        dist, _ = target(name)
        lo, hi = float(dist.ppf(1e-3)), float(dist.ppf(1 - 1e-3))
        for i, model_name in enumerate(MODELS):
            log_q, grid, m = fits[(name, terms, model_name, 0)]
            shown = (grid >= lo) & (grid <= hi)
            if i == 0:
                ax.fill_between(grid[shown], dist.pdf(grid[shown]), color="0.85", label="truth")
            ax.plot(grid[shown], np.exp(log_q[shown]), color=f"C{i}", lw=1,
                    label=f"{model_name.upper()} (KL {m['kl']:.3f})")
        ax.set(title=f"{name.replace('_', ' ')}, N = {terms}", xlabel="y")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("density")
    fig.suptitle(f"maximum-likelihood fits, {int(sim.samples)} samples, {matched_sizes(terms)[0]} parameters each "
                 "(seed 0)", fontsize=9)
    save_figure(ctx, "fourier_density", fig)
