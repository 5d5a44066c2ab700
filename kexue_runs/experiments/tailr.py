"""tailr: TaiLr against cross-entropy's over-confidence (method: methods/tailr.py).

Post: 缓解交叉熵过度自信的一个简明方案 https://kexue.fm/archives/9526 (paper arXiv 2302.13344).
  1. the post's derivation recomputed by autograd: the gradient of -log(γ + (1-γ)p)/(1-γ) is
     -∇p/(γ + (1-γ)p); the paper's thresholded weight gives the same gradient at b = 0; γ = 0 is
     cross-entropy and γ -> 1 is 1 - p;
  2. the paper's toy: one discretized Gaussian fitted to a mixture with an outlier mode, by cross-entropy
     (maximum likelihood) and by TaiLr;
  3. label noise: an MLP on scikit-learn's digits with 30% of the training labels replaced at random,
     cross-entropy against TaiLr at several γ: clean test accuracy, expected calibration error, mean
     max-probability, over replicate seeds; beside the post's loss (b = 0), the paper's own arms: the
     weighted form with its weight floor b at the (γ, b) pairs of the official scripts (sim.floor_arms).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data.tabular import digits_split
from ..methods.tailr import tailr_loss, tailr_weighted_loss
from ..models.mlp import mlp

HIGHER_IS_BETTER = ("accuracy",)


def gradient_identity(gamma: float, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(64, 10, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 10, (64,), generator=g)
    (grad,) = torch.autograd.grad(tailr_loss(logits, target, gamma), logits)
    p = torch.softmax(logits, -1).gather(-1, target[:, None]).squeeze(-1)
    (dp,) = torch.autograd.grad(p.sum(), logits)  # ∇p per row
    expected = (-dp / (gamma + (1 - gamma) * p)[:, None] / 64).detach()
    (weighted,) = torch.autograd.grad(tailr_weighted_loss(logits, target, gamma), logits)
    return {"loss_gradient": float((grad - expected).abs().max()),
            "weighted_gradient": float((weighted - expected).abs().max()) if gamma > 0 else 0.0}


def limits(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    logits, target = torch.randn(64, 10, generator=g, dtype=torch.float64), torch.randint(0, 10, (64,), generator=g)
    p = torch.softmax(logits, -1).gather(-1, target[:, None]).squeeze(-1)
    ce = torch.nn.functional.cross_entropy(logits, target)
    p_gamma0 = tailr_loss(logits, target, 1e-12)  # through the general formula, not the γ = 0 shortcut
    near_one = tailr_loss(logits, target, 1 - 1e-7)
    return {"gamma0_minus_ce": float((p_gamma0 - ce).abs()),
            "gamma1_minus_one_minus_p": float((near_one - (1 - p).mean()).abs())}


def outlier_toy(gamma: float, sim) -> tuple[float, float]:
    """Fit mean and log-std of one discretized Gaussian over bins to 0.9 N(0,1) + 0.1 N(6, 0.5^2)."""
    edges = torch.linspace(-6.0, 10.0, int(sim.toy_bins) + 1, dtype=torch.float64)
    centers = (edges[1:] + edges[:-1]) / 2
    normal = torch.distributions.Normal
    truth = 0.9 * normal(0.0, 1.0).log_prob(centers).exp() + 0.1 * normal(6.0, 0.5).log_prob(centers).exp()
    truth = truth / truth.sum()
    mu = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([mu, log_sigma], lr=0.05)
    for _ in range(int(sim.toy_steps)):
        logits = normal(mu, log_sigma.exp()).log_prob(centers)
        p = torch.softmax(logits, 0)
        per_bin = -torch.log(gamma + (1 - gamma) * p) / (1 - gamma) if gamma > 0 else -torch.log(p)
        loss = (truth * per_bin).sum()  # expected loss under the data distribution
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(mu.detach()), float(log_sigma.detach().exp())


def noisy_digits(noise: float, seed: int):
    x, y, x_test, y_test = digits_split()
    rng = torch.Generator().manual_seed(seed)
    noisy = y.clone()
    flip = torch.rand(len(y), generator=rng) < noise
    noisy[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=rng)  # symmetric: any class, itself included
    return x, noisy, x_test, y_test


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> float:
    conf, pred = probs.max(1)
    correct = (pred == y).float()
    edges = torch.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.float().mean().item() * abs(conf[inside].mean().item() - correct[inside].mean().item())
    return ece


def train_classifier(gamma: float, seed: int, sim, floor: float = 0.0) -> dict:
    """floor = 0: the post's loss; floor b > 0: the paper's -sg[max(b, p / (γ + (1-γ) p))] log p."""
    x, y, x_test, y_test = noisy_digits(float(sim.label_noise), seed)
    model = mlp(64, int(sim.hidden), 10, seed)
    opt = torch.optim.Adam(model.parameters(), lr=float(sim.lr))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(int(sim.epochs)):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), int(sim.batch)):
            idx = order[i:i + int(sim.batch)]
            logits = model(x[idx])
            loss = tailr_weighted_loss(logits, y[idx], gamma, floor) if floor > 0 else tailr_loss(logits, y[idx], gamma)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        probs = torch.softmax(model(x_test), -1)
    return {"accuracy": float((probs.argmax(1) == y_test).float().mean()),
            "ece": expected_calibration_error(probs, y_test), "confidence": float(probs.max(1).values.mean())}


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    gammas = [float(g) for g in sim.gammas]
    results = {}
    worst_grad = max(max(gradient_identity(g, 1000 * int(cfg.seed) + k).values())
                     for k, g in enumerate([x for x in gammas if x > 0] + [0.999]))
    results["max_gradient_error"] = worst_grad
    results |= limits(int(cfg.seed))
    mu_ce, sigma_ce = outlier_toy(0.0, sim)
    results |= {"toy_mean_ce": mu_ce, "toy_std_ce": sigma_ce}
    for g in (float(x) for x in sim.toy_gammas):
        mu, sigma = outlier_toy(g, sim)
        results[f"toy_mean_gamma{g:g}"], results[f"toy_std_gamma{g:g}"] = mu, sigma
        ctx.claim_rows.append({"toy_gamma": g, "toy_mean_shift_vs_ce": abs(mu) - abs(mu_ce)})
    floor_arms = [(float(g), float(b)) for g, b in sim.floor_arms]
    arms = [(g, 0.0) for g in [0.0] + gammas] + floor_arms
    runs = [(g, b, r) for r in range(int(sim.replicates)) for g, b in arms]
    per = {}
    for g, b, r in ctx.track(runs, "label-noise classifiers", total=len(runs)):
        per[(g, b, r)] = train_classifier(g, 1000 * int(cfg.seed) + r, sim, floor=b)
        ctx.log(r, f"gamma{g:g}" + (f"_floor{b:g}" if b else ""), **per[(g, b, r)])
    for r in range(int(sim.replicates)):
        ce = per[(0.0, 0.0, r)]
        # the post's premise, measured: cross-entropy's mean confidence above its clean accuracy
        overconfidence = ce["confidence"] - ce["accuracy"]
        ctx.claim_rows.append({"gamma": 0.0, "floor": 0.0, "replicate": r} | ce | {"overconfidence": overconfidence})
        for g, b in arms[1:]:
            m = per[(g, b, r)]
            ctx.claim_rows.append({"gamma": g, "floor": b, "replicate": r} | m
                                  | {f"{k}_minus_ce": m[k] - ce[k] for k in m})
    for g, b in arms:
        for k in ("accuracy", "ece", "confidence"):
            name = f"gamma{g:g}" + (f"_floor{b:g}" if b else "")
            results[f"{name}_{k}"] = float(np.mean([per[(g, b, r)][k] for r in range(int(sim.replicates))]))
    plot(ctx, per, arms, int(sim.replicates), results, sim)
    return results


def plot(ctx, per, arms, replicates, results, sim) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, colour in (("accuracy", "C0"), ("confidence", "C1"), ("ece", "C2")):
        values = np.array([[per[(g, b, r)][k] for r in range(replicates)] for g, b in arms])
        xs = np.arange(len(arms))
        axes[0].errorbar(xs, values.mean(1), yerr=values.std(1, ddof=1) if replicates > 1 else None, marker="o",
                         capsize=3, color=colour, label=f"{k} (mean ± std, {replicates} seeds)")
    axes[0].set_xticks(np.arange(len(arms)), ["CE"] + [f"γ={g:g}" + (f"\nb={b:g}" if b else "") for g, b in arms[1:]],
                       fontsize=7)
    axes[0].set(ylabel="clean test set", title=f"digits, {float(sim.label_noise):.0%} symmetric label noise")
    axes[0].legend(fontsize=7)
    edges = np.linspace(-6, 10, int(sim.toy_bins) + 1)
    centers = (edges[1:] + edges[:-1]) / 2
    pdf = lambda m, s: np.exp(-0.5 * ((centers - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    axes[1].fill_between(centers, 0.9 * pdf(0, 1) + 0.1 * pdf(6, 0.5), color="0.85", label="data (outlier mode at 6)")
    axes[1].plot(centers, pdf(results["toy_mean_ce"], results["toy_std_ce"]), label="cross-entropy (MLE) fit")
    for g in sim.toy_gammas:
        axes[1].plot(centers, pdf(results[f"toy_mean_gamma{float(g):g}"], results[f"toy_std_gamma{float(g):g}"]),
                     label=f"TaiLr γ={float(g):g} fit")
    axes[1].set(xlabel="x", ylabel="density", title="one Gaussian fitted to a mixture (the paper's toy)")
    axes[1].legend(fontsize=7)
    save_figure(ctx, "tailr", fig)
