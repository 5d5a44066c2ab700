"""wgan_gn: gradient-normalised critics against the gradient penalty on the 2-D toys
(method: methods/gradient_normalization.py; harness: models/toy2d.py).

Post: WGAN新方案：通过梯度归一化来实现L约束 https://kexue.fm/archives/8757
  1. the bound, measured on a random piecewise-linear (LeakyReLU) critic in float64: |∇D̂| at random points
     against 1 and against |g|²/(|g| + |D|)²; D̂ along random lines on a fine grid, where a jump between
     linear regions shows as a finite-difference slope far above 1;
  2. Su's three findings on a 2-D target, every arm with the WGAN loss on its critic and the same seeds:
     WGAN-GP, GN (ICCV), GN (WACV), and the direction variant <∇D/|∇D|, x>: W1, MMD, modes and quality on
     held-out draws, time per iteration and autograd's saved bytes; WGAN-GP at each penalty weight λ of
     sim.wgan_gp_lambdas (its rows carry `lam`; the post's comparisons read sim.wgan_gp_lambda);
  3. at the image scale (sim.target=images, the default at scale=gpu), the same critics as DCGAN-style
     networks on the data group's images, scored by a trained classifier's FID (models/dcgan.py).
"""

from __future__ import annotations

import numpy as np
import torch

from ..common.progress import say
from ..methods.gradient_normalization import input_gradient_norm, normalized_critic
from ..models.dcgan import Arena, arena, batches, sample_panel, train_in, train_in_batched, validate_arena
from ..models.toy2d import gradient_penalty, gradient_penalty_weights, mlp


def validate(cfg) -> None:
    validate_arena(cfg.sim, cfg.get("data"))
    gradient_penalty_weights(cfg.sim)


def bound_measurements(seed: int, sim) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    critic = mlp(2, 1, int(sim.hidden), int(sim.layers), "leaky_relu").double()
    gen = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(int(sim.bound_points), 2, generator=gen, dtype=torch.float64)
    out = {}
    for form in ("iccv", "wacv"):
        norms = input_gradient_norm(lambda z, f=form: normalized_critic(critic, z, f, float(sim.eps)), x)
        out[f"{form}_max_gradient_norm"] = float(norms.max())
    d = critic(x).squeeze(-1).detach()
    g = input_gradient_norm(lambda z: critic(z).squeeze(-1), x)
    iccv = input_gradient_norm(lambda z: normalized_critic(critic, z, "iccv"), x)
    out["iccv_formula_error"] = float((iccv - g ** 2 / (g + d.abs()) ** 2).abs().max())
    # along random lines: the largest finite-difference slope of D̂ (|D̂(s + h) - D̂(s)| / h)
    steps = torch.linspace(0, float(sim.line_length), int(sim.line_points), dtype=torch.float64)
    h = float(steps[1] - steps[0])
    lines = {}
    for form in ("plain", "iccv", "wacv"):
        worst = 0.0
        for k in range(int(sim.lines)):
            start = 2 * torch.randn(2, generator=gen, dtype=torch.float64)
            u = torch.randn(2, generator=gen, dtype=torch.float64)
            u = u / u.norm()
            pts = start + steps[:, None] * u
            values = normalized_critic(critic, pts, form, float(sim.eps)).detach()
            worst = max(worst, float((values[1:] - values[:-1]).abs().max() / h))
            if k == 0:
                lines[form] = (steps.numpy(), values.numpy())
        out[f"{form}_max_line_slope"] = worst
    return out, lines


def losses(arm: str, eps: float, lam: float | None = None):
    """(critic loss, generator loss); lam is WGAN-GP's penalty weight (the other arms have none)."""
    if arm == "wgan_gp":
        return (lambda d, r, f: d(f).mean() - d(r).mean() + gradient_penalty(d, r, f, lam),
                lambda d, r, f: -d(f).mean())
    form = {"gn_iccv": "iccv", "gn_wacv": "wacv", "direction": "direction"}[arm]
    return (lambda d, r, f: normalized_critic(d, f, form, eps).mean() - normalized_critic(d, r, form, eps).mean(),
            lambda d, r, f: -normalized_critic(d, f, form, eps).mean())


def train_arm(arm: str, lam: float | None, seed: int, sim, a: Arena) -> dict:
    d_loss, g_loss = losses(arm, float(sim.eps), lam)
    return train_in(a, d_loss, g_loss, sim, seed, critic_activation="leaky_relu")


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    results, lines = bound_measurements(int(cfg.seed), sim)
    say(f"bound: max |∇D̂| {results['iccv_max_gradient_norm']:.6f} (ICCV), {results['wacv_max_gradient_norm']:.6f} "
        f"(WACV); along lines the largest slope {results['plain_max_line_slope']:.3g} (D/|∇D|), "
        f"{results['iccv_max_line_slope']:.3g} (ICCV)")
    a = arena(sim, cfg.data, int(cfg.seed) + 7, ctx.device, ctx.track)
    t, domain = a.target, a.domain
    if "metric" in a.extra:
        ctx.details["metric"] = a.extra["metric"]
        results |= {k: a.extra[k] for k in ("classifier_acc", "fid_floor")}
    primary_lam, lams = gradient_penalty_weights(sim)
    # (arm, WGAN-GP's λ or None): one WGAN-GP arm per λ, the primary λ first; named wgan_gp at the primary λ
    arms = [(arm, lam) for arm in sim.arms for lam in (lams if arm == "wgan_gp" else [None])]
    names = {(arm, lam): arm if lam in (None, primary_lam) else f"{arm}_lambda{lam:g}" for arm, lam in arms}
    jobs = [(arm, lam, r) for r in range(int(sim.replicates)) for arm, lam in arms]
    runs = {}
    if batches(a, sim):  # each arm's seeds as one batched computation; rows below in the plain loop's order
        seeds = [1000 * int(cfg.seed) + r for r in range(int(sim.replicates))]
        for arm, lam in ctx.track(arms, f"{len(arms)} critics x {len(seeds)} seeds batched on {t.name}",
                                  total=len(arms)):
            outs = train_in_batched(a, *losses(arm, float(sim.eps), lam), sim, seeds, critic_activation="leaky_relu")
            runs |= {(arm, lam, r): out for r, out in enumerate(outs)}
    for arm, lam, r in (jobs if runs else ctx.track(jobs, f"{len(arms)} critics x {int(sim.replicates)} seeds on "
                                                          f"{t.name}", total=len(jobs))):
        out = runs.get((arm, lam, r)) or train_arm(arm, lam, 1000 * int(cfg.seed) + r, sim, a)
        runs[(arm, lam, r)] = out
        ctx.log(r, names[(arm, lam)], **{k: v for k, v in out["final"].items() if k != "iteration"}, **out["cost"])
        penalty = {"lam": lam, "primary_lam": lam == primary_lam} if lam else {}  # primary: what the post's checks read
        ctx.claim_rows.append({"arm": arm, "replicate": r, "domain": domain} | penalty | out["final"] | out["cost"])
    for arm, lam in arms:
        for key in ("w1", "mmd", "energy", "modes", "quality", "fid", "ms_per_iteration",
                    "saved_kib_per_iteration"):
            vals = [(runs[(arm, lam, r)]["final"] | runs[(arm, lam, r)]["cost"]).get(key)
                    for r in range(int(sim.replicates))]
            if all(v is not None for v in vals):
                results[f"{names[(arm, lam)]}_{key}"] = float(np.mean(vals))
    plot(ctx, {(arm, r): out for (arm, lam, r), out in runs.items() if lam in (None, primary_lam)},
           list(sim.arms), lines, a)
    return results


def plot(ctx, runs, arms, lines, a: Arena) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(arms) + 1, figsize=(3.2 * (len(arms) + 1), 3.6))
    fig.subplots_adjust(top=0.84, bottom=0.14, left=0.04, right=0.98, wspace=0.3)
    for ax, arm in zip(axes, arms):
        sample_panel(ax, runs[(arm, 0)], a, f"{arm} (seed 0)")
    if a.scorer is None:
        axes[0].legend(fontsize=6, loc="lower left")
    ax = axes[-1]
    for i, (form, (s, v)) in enumerate(lines.items()):
        ax.plot(s, v, color=f"C{i}", lw=0.8, label={"plain": "D/|∇D|", "iccv": "D/(|∇D| + |D|)",
                                                      "wacv": "D|∇D|/(|∇D|² + ε)"}[form])
    ax.set(xlabel="position along a random line", ylabel="D̂", title="a random LeakyReLU critic: jumps between regions")
    ax.legend(fontsize=6)
    save_figure(ctx, "wgan_gn", fig)
