"""gan_qp: GAN-QP against SGAN and WGAN-GP on the 2-D toys (method: methods/gan_qp.py; harness: models/toy2d.py).

Post: 不用L约束又不会梯度消失的GAN https://kexue.fm/archives/6163 (arXiv 1811.07296)
  1. the point-mass divergences by optimising each dual: SGAN's stays at log 2 whatever the distance
     (its gradient vanishes), WGAN's is the distance under a Lipschitz constraint, QP's is λd/2 with none;
  2. the post's comparison on a 2-D target instead of CelebA-HQ: SGAN (non-saturating), WGAN-GP, GAN-QP-L1
     and -L2 with Su's settings (the quadratic term only in the critic's loss, 2 critic steps per generator
     step, Adam 2e-4 with β1 = 0.5), every arm from the same seeds: W1, MMD, energy distance, modes and
     high-quality fraction on held-out draws; time per iteration and autograd's saved bytes; GAN-QP-L2 at
     λ in {1, 10, 100} (sim.qp_lambdas), with its W1 ratio to sim.lam's at every evaluation (across budgets);
     WGAN-GP at each of its own penalty weights (sim.wgan_gp_lambdas; its rows' `lam` is that weight, not
     GAN-QP's λ);
  3. at the image scale (sim.target=images, the default at scale=gpu), the same four arms as DCGAN-style
     networks on the data group's images (digits offline, data=cifar10 for the post's kind of data), scored by
     the Fréchet distance in a classifier's features that the run trains on the same data
     (FID-<data>-classifier; models/dcgan.py, models/feature_net.py): the post's table is an FID table.
"""

from __future__ import annotations

import numpy as np
import torch

from ..common.progress import say
from ..methods.gan_qp import point_mass_duals, qp_critic_loss, qp_generator_loss
from ..models.dcgan import Arena, arena, batches, sample_panel, train_in, train_in_batched, validate_arena
from ..models.toy2d import gradient_penalty, gradient_penalty_weights


def validate(cfg) -> None:
    validate_arena(cfg.sim, cfg.get("data"))
    gradient_penalty_weights(cfg.sim)


def losses(arm: str, lam: float):
    """(critic loss, generator loss) of an arm; the critic minimises its loss. lam is the arm's own weight:
    GAN-QP's λ, or WGAN-GP's penalty weight."""
    softplus = torch.nn.functional.softplus
    if arm == "sgan":
        return (lambda d, r, f: softplus(-d(r)).mean() + softplus(d(f)).mean(),
                lambda d, r, f: softplus(-d(f)).mean())
    if arm == "wgan_gp":
        return (lambda d, r, f: d(f).mean() - d(r).mean() + gradient_penalty(d, r, f, lam),
                lambda d, r, f: -d(f).mean())
    norm = "l1" if arm == "qp_l1" else "l2"
    return (lambda d, r, f: qp_critic_loss(d, r, f, lam=lam, norm=norm), qp_generator_loss)


def train_arm(arm: str, lam: float, seed: int, sim, a: Arena) -> dict:
    d_loss, g_loss = losses(arm, lam)
    return train_in(a, d_loss, g_loss, sim, seed)


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    results = {}
    for d in (float(x) for x in sim.point_mass_distances):
        duals = point_mass_duals(d, lam=float(sim.lam), steps=int(sim.dual_steps))
        half_lambda_d = float(sim.lam) * d / 2
        ctx.claim_rows.append({"distance": d, "js_minus_log2": abs(duals["js"] - np.log(2)),
                               "wgan_minus_d": abs(duals["wgan"] - d),
                               "qp_minus_half_lambda_d": abs(duals["qp"] - half_lambda_d) / half_lambda_d})
        results[f"js_d{d:g}"], results[f"wgan_d{d:g}"], results[f"qp_d{d:g}"] = duals["js"], duals["wgan"], duals["qp"]
    ds = [float(x) for x in sim.point_mass_distances]
    results["qp_slope_over_d"] = float(np.polyfit(ds, [results[f"qp_d{d:g}"] for d in ds], 1)[0])
    results["js_spread_over_d"] = float(np.ptp([results[f"js_d{d:g}"] for d in ds]))
    say(f"point masses: JS dual {results[f'js_d{ds[0]:g}']:.5f} at every d (log 2 = {np.log(2):.5f}); "
        f"QP slope in d {results['qp_slope_over_d']:.3f} (λ/2 = {float(sim.lam) / 2:g})")
    a = arena(sim, cfg.data, int(cfg.seed) + 7, ctx.device, ctx.track)
    t, distance, domain = a.target, a.distance, a.domain  # distance: what every comparison reads
    if "metric" in a.extra:
        ctx.details["metric"] = a.extra["metric"]
        results |= {k: a.extra[k] for k in ("classifier_acc", "fid_floor")}
    gp_lam, gp_lams = gradient_penalty_weights(sim)
    primary = {arm: gp_lam if arm == "wgan_gp" else float(sim.lam) for arm in sim.arms}  # the λ each arm is named at
    arms = [(arm, lam) for arm in sim.arms for lam in (gp_lams if arm == "wgan_gp" else [float(sim.lam)])]
    arms += [("qp_l2", float(x)) for x in sim.qp_lambdas if float(x) != float(sim.lam)]
    primary.setdefault("qp_l2", float(sim.lam))
    jobs = [(a, lam, r) for r in range(int(sim.replicates)) for a, lam in arms]
    runs = {}
    if batches(a, sim):  # each arm's seeds as one batched computation; rows below in the plain loop's order
        seeds = [1000 * int(cfg.seed) + r for r in range(int(sim.replicates))]
        for arm, lam in ctx.track(arms, f"{len(arms)} arms x {len(seeds)} seeds batched on {t.name}", total=len(arms)):
            runs |= {(arm, lam, r): out for r, out in enumerate(train_in_batched(a, *losses(arm, lam), sim, seeds))}
    title = f"{len(arms)} arms x {int(sim.replicates)} seeds on {t.name}"
    for arm, lam, r in (jobs if runs else ctx.track(jobs, title, total=len(jobs))):
        out = runs.get((arm, lam, r)) or train_arm(arm, lam, 1000 * int(cfg.seed) + r, sim, a)
        runs[(arm, lam, r)] = out
        name = arm if lam == primary[arm] else f"{arm}_lambda{lam:g}"
        ctx.log(r, name, **{k: v for k, v in out["final"].items() if k != "iteration"}, **out["cost"])
        ctx.claim_rows.append({"arm": arm, "lam": lam, "primary_lam": lam == primary[arm], "replicate": r,
                               "domain": domain} | out["final"] | out["cost"]
                              | second_half_fall(out["trace"], distance, int(sim.iterations)))
    for r in range(int(sim.replicates)):  # λ robustness: each λ's distance over λ = sim.lam's, paired by seed
        base = runs[("qp_l2", float(sim.lam), r)]["final"][distance]
        for lam in sorted({lam for arm, lam in arms if arm == "qp_l2"}):
            if lam != float(sim.lam):
                ratio = runs[("qp_l2", lam, r)]["final"][distance] / base
                ctx.claim_rows.append({"arm": "qp_l2_lambda_ratio", "lam": lam, "replicate": r, "domain": domain,
                                       f"{distance}_over_default_lambda": ratio})
    across_budgets(ctx, results, runs, arms, sim, distance, domain)
    for arm, lam in arms:
        name = arm if lam == primary[arm] else f"{arm}_lambda{lam:g}"
        for key in ("w1", "mmd", "energy", "modes", "quality", "fid", "ms_per_iteration",
                    "saved_kib_per_iteration"):
            per_seed = [runs[(arm, lam, r)]["final"] | runs[(arm, lam, r)]["cost"] for r in range(int(sim.replicates))]
            vals = [m[key] for m in per_seed if key in m]
            if vals:
                results[f"{name}_{key}"] = float(np.mean(vals))
    if "wgan_gp_ms_per_iteration" in results and "qp_l2_ms_per_iteration" in results:
        results["wgan_gp_time_over_qp"] = results["wgan_gp_ms_per_iteration"] / results["qp_l2_ms_per_iteration"]
    plot(ctx, runs, arms, primary, a, sim, a.extra.get("metric", "W1"))
    return results


def second_half_fall(trace: list[dict], distance: str, total: int) -> dict:
    """How much the second half of training still lowered the distance, relative to its value at half the
    iterations: (half - end) / half. An arm still falling fast is compared mid-descent, not at its end (#28)."""
    half = next((row[distance] for row in trace if 2 * int(row["iteration"]) == total), None)
    end = next((row[distance] for row in trace if int(row["iteration"]) == total), None)
    if half is None or end is None or not half > 0:
        return {}
    return {f"{distance}_fall_second_half": (half - end) / half}


def across_budgets(ctx, results, runs, arms, sim, distance, domain) -> None:
    """GAN-QP-L2's distance at each λ over sim.lam's at every evaluation, paired by seed (a fixed budget can read
    slow convergence as a worse end point, #28): rows `qp_l2_lambda_ratio_by_budget` with their iteration and
    `budget` ("half" at half the iterations, "end" at the last; "" between), and the seeds' mean per λ and
    iteration in results."""
    lams = sorted({lam for arm, lam in arms if arm == "qp_l2" and lam != float(sim.lam)})
    total = int(sim.iterations)
    for lam in lams:
        by_iteration: dict = {}
        for r in range(int(sim.replicates)):
            base = runs[("qp_l2", float(sim.lam), r)]["trace"]
            for row, ref in zip(runs[("qp_l2", lam, r)]["trace"], base):
                it, ratio = int(row["iteration"]), row[distance] / ref[distance]
                by_iteration.setdefault(it, []).append(ratio)
                budget = "end" if it == total else "half" if 2 * it == total else ""
                ctx.claim_rows.append({"arm": "qp_l2_lambda_ratio_by_budget", "lam": lam, "replicate": r,
                                       "domain": domain, "iteration": it, "budget": budget,
                                       f"{distance}_over_default_lambda": ratio})
        for it, ratios in by_iteration.items():
            results[f"qp_l2_lambda{lam:g}_{distance}_ratio_at_{it}"] = float(np.mean(ratios))


def plot(ctx, runs, arms, primary, a: Arena, sim, metric_name: str) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    main = [(a, lam) for a, lam in arms if lam == primary[a]]
    fig, axes = plt.subplots(1, len(main) + 1, figsize=(3.2 * (len(main) + 1), 3.6))
    fig.subplots_adjust(top=0.84, bottom=0.14, left=0.04, right=0.98, wspace=0.3)
    for ax, (arm, lam) in zip(axes, main):
        sample_panel(ax, runs[(arm, lam, 0)], a, f"{arm} (seed 0)")
    if a.scorer is None:
        axes[0].legend(fontsize=6, loc="lower left")
    ax = axes[-1]
    for i, (arm, lam) in enumerate(arms):
        traces = np.array([[row[a.distance] for row in runs[(arm, lam, r)]["trace"]]
                           for r in range(int(sim.replicates))])
        its = [row["iteration"] for row in runs[(arm, lam, 0)]["trace"]]
        label = arm if lam == primary[arm] else f"{arm}, λ={lam:g}"
        ax.plot(its, traces.mean(0), color=f"C{i}", label=label, ls="-" if lam == primary[arm] else "--")
    ax.set(xlabel="iteration", ylabel=f"{metric_name} to held-out data", yscale="log",
           title=f"mean of {int(sim.replicates)} seeds")
    ax.legend(fontsize=6)
    save_figure(ctx, "gan_qp", fig)
