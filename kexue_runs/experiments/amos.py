"""amos: training recipes derived from the Amos optimizer (method: methods/amos.py).

Post: 基于Amos优化器思想推导出来的一些“炼丹策略” https://kexue.fm/archives/9344 (no experiment of its own)
  1. the post's derivation recomputed: its difference equations for S_t iterated to long horizons against
     the closed forms D_t = 1/(α0 p t + 1)² and 1/(2 α0 p0 t + 1), and the halving step α0 p = (√2 - 1)/T;
  2. the scale prior tested: ‖θ0 - θ*‖² against 2kσ² for every weight matrix of the project's pretrained
     byte-level LM (θ0 rebuilt from the pretraining seed), with the two assumptions behind it
     (‖θ*‖² ≈ kσ², θ0·θ* ≈ 0) reported;
  3. ours (the post makes no quantitative claim): a digits MLP trained by AdamW with a constant rate, with
     cosine decay, and with the post's recipe (per-tensor update norm α0‖ε0‖ D_t, ρ_t = α0²/2 D_t).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..common.progress import say
from ..data.tabular import digits_split
from ..methods.amos import AmosStyleAdamW, decay_by_recurrence, decay_closed_form, halving_rate, scale_prior
from ..models.mlp import mlp
from ..models.pretrained import arch, pretrained_lm
from ..models.transformer import CausalLM

SCHEDULES = ("constant_p", "slowing_p")


def closed_forms(sim, ctx, results: dict) -> dict:
    curves = {}
    for schedule in SCHEDULES:
        slowing = schedule == "slowing_p"
        for rate in (float(r) for r in sim.rates):
            recurrence = decay_by_recurrence(rate, int(sim.horizon), slowing)
            t = np.arange(len(recurrence))
            closed = decay_closed_form(rate, t, slowing)
            relative = np.abs(recurrence - closed) / closed
            curves[(schedule, rate)] = (recurrence, closed)
            # the derivative replaces the difference: a first-order step, so the error is of order α0 p
            ctx.claim_rows.append({"schedule": schedule, "rate": rate, "closed_form_error": float(relative.max()),
                                   "closed_form_error_over_rate": float(relative.max() / rate)})
            results[f"{schedule}_rate{rate:g}_max_relative_error"] = float(relative.max())
    # the notes' spot values: α0 p = 5e-4 at t = 10^4
    for schedule in SCHEDULES:
        d = decay_by_recurrence(5e-4, 10_000, schedule == "slowing_p")[-1]
        results[f"{schedule}_D_at_1e4_rate5e-4"] = float(d)
    for T in (int(x) for x in sim.halving_steps):
        rate = halving_rate(T)
        d = decay_by_recurrence(rate, 3 * T)
        after = int(np.argmax(d <= 0.5))  # the step is an integer: interpolate log D between the two sides
        lo, hi = math.log(d[after - 1]), math.log(d[after])
        t_half = after - 1 + (lo - math.log(0.5)) / (lo - hi)
        ctx.claim_rows.append({"halving_T": T, "halving_step_error_over_rate": abs(t_half / T - 1) / rate})
        results[f"halving_T{T}_step"] = t_half
    return curves


def scale_prior_on_lm(cfg, ctx) -> list[dict]:
    """Per weight matrix of the pretrained base: ‖θ0 - θ*‖² / 2kσ², with σ the matrix's initial std."""
    model = pretrained_lm(cfg.output_root, cfg.model, cfg.data, cfg.pretrain, int(cfg.data.length), "cpu", ctx.track)
    torch.manual_seed(int(cfg.pretrain.seed))  # the initialisation pretrained_lm started from
    init = CausalLM(arch(cfg.model, int(cfg.data.length)))
    rows = []
    start = dict(init.named_parameters())
    for name, trained in model.named_parameters():
        theta0, theta = start[name].detach().double(), trained.detach().double()
        k = theta.numel()
        if theta.dim() >= 2:
            sigma = float(theta0.std())
            cosine = float(theta0.flatten() @ theta.flatten() / (theta0.norm() * theta.norm()))
            ratio = float((theta - theta0).pow(2).sum()) / scale_prior(k, sigma)
            rows.append({"tensor": name, "kind": "matrix", "k": k, "sigma": sigma, "prior_ratio": ratio,
                         "log10_prior_ratio": math.log10(ratio), "abs_log10_prior_ratio": abs(math.log10(ratio)),
                         "trained_norm_ratio": float(theta.pow(2).sum()) / (k * sigma ** 2),
                         "init_trained_cosine": cosine,
                         # the post's "reasonable init" has variance 1/fan_in: σ√fan_in = 1 (fan_in: the last axis)
                         "init_std_sqrt_fan_in": sigma * math.sqrt(theta.shape[-1])})
        else:  # biases start at 0, norm gains at 1: the post takes σ = 0.5 for both (from the Amos paper)
            ratio = float((theta - theta0).pow(2).sum()) / scale_prior(k, float(cfg.sim.vector_sigma), matrix=False)
            rows.append({"tensor": name, "kind": "vector", "k": k, "prior_ratio": ratio,
                         "log10_prior_ratio": math.log10(max(ratio, 1e-300)),
                         "abs_log10_prior_ratio": abs(math.log10(max(ratio, 1e-300)))})
    return rows


def train_arm(arm: str, seed: int, sim) -> dict:
    """A digits MLP for sim.epochs at batch sim.batch: AdamW constant or cosine, or the post's recipe."""
    x, y, x_test, y_test = digits_split()
    model = mlp(64, int(sim.hidden), 10, seed)
    batch = int(sim.batch)
    steps = int(sim.epochs) * (len(y) // batch)
    a0 = float(sim.alpha0)
    if arm == "amos_recipe":
        # inverse-time decay (the slowing-p schedule) halving at a quarter of training: 2 α0 p0 T = 1
        opt = AmosStyleAdamW(model.parameters(), alpha0=a0, rate=1 / (2 * steps / 4))
        opt.set_scale(float(sim.vector_sigma))
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=a0, weight_decay=float(sim.weight_decay))
    gen = torch.Generator().manual_seed(seed)
    t = 0
    for _ in range(int(sim.epochs)):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y) - batch + 1, batch):
            if arm == "adamw_cosine":
                for g in opt.param_groups:
                    g["lr"] = a0 * 0.5 * (1 + math.cos(math.pi * t / steps))
            idx = order[i:i + batch]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            t += 1
    with torch.no_grad():
        logits = model(x_test)
    return {"val_loss": float(torch.nn.functional.cross_entropy(logits, y_test)),
            "val_accuracy": float((logits.argmax(1) == y_test).float().mean())}


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    results: dict = {}
    curves = closed_forms(sim, ctx, results)
    worst = max(r["closed_form_error_over_rate"] for r in ctx.claim_rows if "closed_form_error_over_rate" in r)
    say(f"closed forms: worst relative error / α0 p = {worst:.3f} over rates {list(sim.rates)}, "
        f"horizon {int(sim.horizon)}")
    prior = scale_prior_on_lm(cfg, ctx)
    for row in prior:
        ctx.claim_rows.append(row)
    matrices = [r for r in prior if r["kind"] == "matrix"]
    results["prior_ratio_median_matrices"] = float(np.median([r["prior_ratio"] for r in matrices]))
    results["init_trained_cosine_median"] = float(np.median([r["init_trained_cosine"] for r in matrices]))
    results["trained_norm_ratio_median"] = float(np.median([r["trained_norm_ratio"] for r in matrices]))
    say(f"scale prior on the pretrained LM: ‖θ0-θ*‖²/2kσ² median {results['prior_ratio_median_matrices']:.3g} "
        f"over {len(matrices)} matrices; cos(θ0, θ*) median {results['init_trained_cosine_median']:.3f}")
    arms = ("adamw_constant", "adamw_cosine", "amos_recipe")
    per = {}
    jobs = [(a, r) for r in range(int(sim.replicates)) for a in arms]
    for arm, r in ctx.track(jobs, f"{len(arms)} schedules x {int(sim.replicates)} seeds", total=len(jobs)):
        per[(arm, r)] = train_arm(arm, 1000 * int(cfg.seed) + r, sim)
        ctx.log(r, arm, **per[(arm, r)])
        ctx.claim_rows.append({"arm": arm, "replicate": r} | per[(arm, r)])
    for arm in arms:
        for key in ("val_loss", "val_accuracy"):
            results[f"{arm}_{key}"] = float(np.mean([per[(arm, r)][key] for r in range(int(sim.replicates))]))
    plot(ctx, curves, prior, per, arms, int(sim.replicates))
    return results


def plot(ctx, curves, prior, per, arms, replicates) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for i, ((schedule, rate), (recurrence, closed)) in enumerate(curves.items()):
        t = np.arange(len(recurrence))
        colour = f"C{i}"
        axes[0].loglog(t[1:], recurrence[1:], color=colour, lw=2, alpha=0.5,
                       label=f"{schedule.replace('_', ' ')}, α0p={rate:g}: recurrence")
        axes[0].loglog(t[1:], closed[1:], color=colour, lw=0.8, ls="--")
    axes[0].set(xlabel="step t", ylabel="D_t = exp(-2 S_t)", title="recurrence (thick) vs closed form (dashed)")
    axes[0].legend(fontsize=6)
    matrices = [r for r in prior if r["kind"] == "matrix"]
    names = [r["tensor"].replace(".weight", "") for r in matrices]
    axes[1].barh(np.arange(len(matrices)), [r["prior_ratio"] for r in matrices], color="C0")
    axes[1].axvline(1, color="k", lw=0.8, label="the prior: ‖θ0-θ*‖² = 2kσ²")
    axes[1].axvspan(10 ** -0.5, 10 ** 0.5, color="0.9", label="same order of magnitude")
    axes[1].set_xscale("log")
    axes[1].set_yticks(np.arange(len(matrices)), names, fontsize=6)
    axes[1].set(xlabel="‖θ0 - θ*‖² / 2kσ²", title="scale prior, pretrained LM matrices")
    axes[1].legend(fontsize=6)
    values = np.array([[per[(a, r)]["val_loss"] for r in range(replicates)] for a in arms])
    sem = values.std(1, ddof=1) / math.sqrt(replicates) if replicates > 1 else np.zeros(len(arms))
    axes[2].errorbar(np.arange(len(arms)), values.mean(1), yerr=1.96 * sem, fmt="o", capsize=4,
                     label=f"mean ± 95% CI, {replicates} seeds")
    axes[2].set_xticks(np.arange(len(arms)), [a.replace("_", " ") for a in arms], fontsize=7)
    axes[2].set(ylabel="test cross-entropy", title="digits MLP (ours: the post has no experiment)")
    axes[2].legend(fontsize=7)
    save_figure(ctx, "amos", fig)
