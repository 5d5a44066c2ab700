"""monoflow: GAN training as a discretised Wasserstein gradient flow (method: methods/monoflow.py;
harness: models/toy2d.py, models/dcgan.py).

Post: 生成扩散模型漫谈（十九）：作为扩散ODE的GAN https://kexue.fm/archives/9662
  1. the matching loss's gradient at θ_t against 2ε times -D(g(z))'s, by autograd in float64;
  2. particles moved by x <- x + ε∇D(x) with a logistic discriminator re-fitted (warm) between steps:
     the distance to the target at checkpoints;
  3. generators trained with -h(D) for several increasing h (and a decreasing control) against the
     same logistic discriminator: the distance at the end against the distance at the start;
  4. k in {1, 5, 20} generator steps per discriminator step, with -D and with the matching loss.
On a 2-D target (MLPs, W1) or, with sim.target=images, on the data group's images: particles are images, the
networks the DCGAN pair (models/dcgan.py) and the distance the classifier FID (FID-<data>-classifier).
"""

from __future__ import annotations

import numpy as np
import torch

from ..common.progress import say
from ..methods.ign import frozen
from ..methods.monoflow import DECREASING, INCREASING, matching_loss, particle_step
from ..models import dcgan
from ..models.batched import BatchedMLP
from ..models.toy2d import mlp, scatter_panel, wasserstein


def validate(cfg) -> None:
    dcgan.validate_arena(cfg.sim, cfg.get("data"))


def gradient_identity(seed: int, eps: float, shape: tuple = (2,)) -> float:
    """Max |∇ matching - 2ε ∇(-D)| over the generator's parameters at θ_t, float64: small MLPs for points, small
    DCGAN nets (BatchNorm in training mode, as trained) for images of `shape`."""
    torch.manual_seed(seed)
    if len(shape) == 1:
        generator, critic = mlp(3, 2, 16, 2).double(), mlp(2, 1, 16, 2).double()
    else:
        generator, critic = dcgan.generator(3, shape, 4).double(), dcgan.critic(shape, 4).double()
    z = torch.randn(64, 3, dtype=torch.float64)
    params = list(generator.parameters())
    matching = torch.autograd.grad(matching_loss(generator, frozen(generator), critic, z, eps), params)
    minus_d = torch.autograd.grad(-critic(generator(z)).sum(-1).mean(), params)
    return max(float((a - 2 * eps * b).abs().max()) for a, b in zip(matching, minus_d))


def bce_step(critic, opt, real, fake, scale: float = 1.0) -> None:
    """The logistic discriminator's step: its optimum is D = log(p/q). scale: R for R replicates folded into one
    batch (R times the folded mean is the sum of their own means)."""
    softplus = torch.nn.functional.softplus
    loss = scale * (softplus(-critic(real)).mean() + softplus(critic(fake)).mean())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def flow_checkpoints(sim) -> list[int]:
    """sim.checkpoints evenly spaced flow steps, rounded down: distinct, so fewer where flow_steps is short."""
    return sorted(set(np.linspace(0, int(sim.flow_steps), int(sim.checkpoints)).astype(int).tolist()))


def particle_flow(seed: int, sim, a: dcgan.Arena) -> tuple[list[float], torch.Tensor]:
    """Particles from N(0, I) in the data's space, moved by ε∇D with a warm-started logistic discriminator; the
    arena's distance to held-out data at sim.checkpoints evenly spaced steps, and the particles at the end."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n, device = int(sim.particles), a.device
    x = torch.randn((n,) + a.shape, generator=gen).to(device)
    critic = a.critic(sim)
    opt = torch.optim.Adam(critic.parameters(), lr=float(sim.lr), betas=(float(sim.beta1), 0.999))
    held_out = a.target.sample(n, gen) if a.scorer is None else None  # images: the scorer's held-out features
    checkpoints = set(flow_checkpoints(sim))
    distances = []
    for step in range(int(sim.flow_steps) + 1):
        if step in checkpoints:
            distances.append(wasserstein(x, held_out) if held_out is not None else
                             a.score(x.cpu(), None, sim)["fid"])
        if step == int(sim.flow_steps):
            break
        for _ in range(int(sim.critic_steps)):
            picked = x[torch.randint(0, n, (int(sim.batch),), generator=gen).to(device)]
            bce_step(critic, opt, a.target.sample(int(sim.batch), gen).to(device), picked)
        x = particle_step(x, critic, float(sim.flow_eps))
    return distances, x.cpu()


def generator_lr(sim, a: dcgan.Arena) -> float:
    """The generator runs' Adam lr (both nets): DCGAN's sim.lr on images, the one measured to train the MLP pair on
    a 2-D target (sim.gan_lr_2d). The particle flow's critic keeps sim.lr."""
    return float(sim.lr if a.scorer is not None else sim.get("gan_lr_2d", sim.lr))


def adversarial_training(generator, critic, opt_d, opt_g, noise, real, loss: str, k: int, iterations: int,
                         flow_eps: float, scale: float = 1) -> None:
    """Per iteration: one logistic-discriminator step on real() against the generator's samples of noise(), then
    k generator steps on -h(D) or the matching loss. scale: R for R replicates folded into one batch (R times
    the folded mean is the sum of their own means)."""
    h = (INCREASING | DECREASING).get(loss)
    for _ in range(iterations):
        with torch.no_grad():
            fake = generator(noise())
        bce_step(critic, opt_d, real(), fake, scale=scale)
        anchor = frozen(generator) if loss == "matching" else None
        for _ in range(k):
            z = noise()
            if loss == "matching":
                g_loss = matching_loss(generator, anchor, critic, z, flow_eps)
            else:
                g_loss = -h(critic(generator(z))).mean()
            opt_g.zero_grad(set_to_none=True)
            (scale * g_loss).backward()
            opt_g.step()


def train_generator(loss: str, k: int, seed: int, sim, a: dcgan.Arena, iterations: int) -> dict:
    """Logistic discriminator, one step per iteration; k generator steps on -h(D) or the matching loss. The
    arena's distance of sim.eval_samples samples at the start and at the end."""
    torch.manual_seed(seed)
    generator, critic = a.networks(sim)
    betas = (float(sim.beta1), 0.999)
    opt_d = torch.optim.Adam(critic.parameters(), lr=generator_lr(sim, a), betas=betas)
    opt_g = torch.optim.Adam(generator.parameters(), lr=generator_lr(sim, a), betas=betas)
    gen = torch.Generator().manual_seed(seed)
    eval_gen = torch.Generator().manual_seed(10_000 + seed)
    batch, z_dim, device, d = int(sim.batch), int(sim.z_dim), a.device, a.distance

    def noise(n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randn(n, z_dim, generator=g).to(device)

    def evaluate():
        with torch.no_grad():
            z = noise(int(sim.eval_samples), eval_gen)
            chunks = [z] if a.scorer is None else z.split(512)  # images: batch statistics over 512 at most
            x = torch.cat([generator(c) for c in chunks])
        return a.score(x.cpu(), eval_gen, sim)

    start = evaluate()
    adversarial_training(generator, critic, opt_d, opt_g, lambda: noise(batch, gen),
                         lambda: a.target.sample(batch, gen).to(device), loss, k, iterations, float(sim.flow_eps))
    end = evaluate()
    with torch.no_grad():  # for the figure: 1000 points or 64 images from a fixed draw
        shown = generator(noise(1000 if a.scorer is None else 64, torch.Generator().manual_seed(seed))).cpu()
    out = {"samples": shown.numpy(), f"{d}_start": start[d], d: end[d], f"{d}_over_start": end[d] / start[d],
           "modes": end.get("modes", 0)}
    return out | ({"quality": end.get("quality", 0.0), "mmd": end["mmd"]} if d == "w1" else {})


def train_generators_batched(loss: str, k: int, seeds: list[int], sim, a: dcgan.Arena, iterations: int) -> list[dict]:
    """train_generator for every seed at once on a 2-D target: each seed's MLPs built as its lone run builds them,
    stacked into BatchedMLPs (models/batched.py) that see rows folded as (R * batch, features). Each replicate
    draws from its own generators in the lone loop's order, and every loss here is a mean over rows of per-row
    terms, so R times the folded mean is the sum of the replicates' own losses: each replicate's gradient and
    Adam state are its lone run's (up to float rounding)."""
    lone = []
    for seed in seeds:
        torch.manual_seed(seed)
        lone.append(a.networks(sim))
    generator, critic = BatchedMLP([g for g, _ in lone]), BatchedMLP([c for _, c in lone])
    replicates = len(seeds)
    betas = (float(sim.beta1), 0.999)
    opt_d = torch.optim.Adam(critic.parameters(), lr=generator_lr(sim, a), betas=betas)
    opt_g = torch.optim.Adam(generator.parameters(), lr=generator_lr(sim, a), betas=betas)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    eval_gens = [torch.Generator().manual_seed(10_000 + seed) for seed in seeds]
    batch, z_dim, d = int(sim.batch), int(sim.z_dim), a.distance

    def noise(n: int, streams) -> torch.Tensor:
        return torch.cat([torch.randn(n, z_dim, generator=g) for g in streams])

    def evaluate() -> list[dict]:
        n = int(sim.eval_samples)
        with torch.no_grad():
            x = generator(noise(n, eval_gens)).view(replicates, n, -1)
        return [a.score(x[r], g, sim) for r, g in enumerate(eval_gens)]

    start = evaluate()
    adversarial_training(generator, critic, opt_d, opt_g, lambda: noise(batch, gens),
                         lambda: torch.cat([a.target.sample(batch, g) for g in gens]), loss, k, iterations,
                         float(sim.flow_eps), scale=replicates)
    end = evaluate()
    with torch.no_grad():  # for the figure: 1000 points from a fixed draw per seed
        fixed = [torch.Generator().manual_seed(seed) for seed in seeds]
        shown = generator(noise(1000, fixed)).view(replicates, 1000, -1)
    return [{"samples": shown[r].numpy(), f"{d}_start": s0[d], d: s1[d], f"{d}_over_start": s1[d] / s0[d],
             "modes": s1.get("modes", 0), "quality": s1.get("quality", 0.0), "mmd": s1["mmd"]}
            for r, (s0, s1) in enumerate(zip(start, end))]


def generator_runs(loss: str, k: int, seeds: list[int], sim, a: dcgan.Arena, iterations: int) -> list[dict]:
    """Every seed's train_generator: batched on a 2-D target when sim.batched, one by one otherwise."""
    if dcgan.batches(a, sim):
        return train_generators_batched(loss, k, seeds, sim, a, iterations)
    return [train_generator(loss, k, seed, sim, a, iterations) for seed in seeds]


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    a = dcgan.arena(sim, cfg.data, int(cfg.seed) + 7, ctx.device, ctx.track)
    d, domain = a.distance, a.domain  # d: the distance every check reads (w1 on 2-D targets, fid on images)
    results = {"matching_gradient_error": gradient_identity(int(cfg.seed), float(sim.flow_eps), a.shape)}
    if "metric" in a.extra:
        ctx.details["metric"] = a.extra["metric"]
        results |= {k: a.extra[k] for k in ("classifier_acc", "fid_floor")}
    seeds = [1000 * int(cfg.seed) + r for r in range(int(sim.replicates))]
    flows, shown = [], {}
    for r, seed in enumerate(ctx.track(seeds, "particle flows", total=len(seeds))):
        distances, particles = particle_flow(seed, sim, a)
        flows.append(distances)
        shown.setdefault("particle flow", particles.numpy()[:1000 if a.scorer is None else 64])
        for i, value in enumerate(distances):
            ctx.claim_rows.append({"part": "flow", "checkpoint": i, "replicate": r, "domain": domain,
                                   f"flow_{d}": value})
    results[f"flow_{d}_start"] = float(np.mean([f[0] for f in flows]))
    results[f"flow_{d}_end"] = float(np.mean([f[-1] for f in flows]))
    say(f"matching-loss gradient = 2ε x -D's: max error {results['matching_gradient_error']:.1e}; particle flow "
        f"{d} {results[f'flow_{d}_start']:.3f} -> {results[f'flow_{d}_end']:.3f}")
    # each loss's seeds together (batched on a 2-D target); rows in seed-major order, as the lone loop logs them
    h_rows = {}
    losses = list(INCREASING) + list(DECREASING)
    for h in ctx.track(losses, "generator losses -h(D)", total=len(losses)):
        h_rows[h] = generator_runs(h, 1, seeds, sim, a, int(sim.iterations))
    for r in range(len(seeds)):
        for h, runs in h_rows.items():
            m = dict(runs[r])
            samples = m.pop("samples")
            if r == 0 and h == "identity":
                shown["-D, k = 1"] = samples
            ctx.log(r, f"h_{h}", **m)
            ctx.claim_rows.append({"part": "h", "h": h, "replicate": r, "domain": domain} | m)
            results.setdefault(f"h_{h}_{d}", []).append(m[d])
            results.setdefault(f"h_{h}_{d}_over_start", []).append(m[f"{d}_over_start"])
    k_jobs = [(loss, k) for k in sim.k_values for loss in ("identity", "matching")]
    k_max = max(int(k) for k in sim.k_values)
    k_rows = {}
    for loss, k in ctx.track(k_jobs, "k generator steps per discriminator step", total=len(k_jobs)):
        k_rows[(loss, k)] = generator_runs(loss, int(k), seeds, sim, a, int(sim.k_iterations))
    for r in range(len(seeds)):
        for (loss, k), runs in k_rows.items():
            m = dict(runs[r])
            samples = m.pop("samples")
            name = "minus_d" if loss == "identity" else "matching"
            if r == 0 and int(k) == k_max:
                shown[f"{'-D' if loss == 'identity' else 'matching loss'}, k = {k_max}"] = samples
            ctx.log(r, f"{name}_k{k}", **m)
            ctx.claim_rows.append({"part": "k", "loss": name, "k": int(k), "replicate": r, "domain": domain} | m)
            results.setdefault(f"{name}_k{k}_{d}", []).append(m[d])
    for key in [k for k, v in results.items() if isinstance(v, list)]:
        results[key] = float(np.mean(results[key]))
    plot(ctx, flows, shown, results, sim, a)
    return results


def plot(ctx, flows, shown, results, sim, a: dcgan.Arena) -> None:
    """Top: the distance along the flow, each h's end over start, the distance against k. Bottom: samples
    (seed 0) of the flow's particles and of the generators, over the target's modes or as image mosaics."""
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    d = a.distance
    name = "W1" if d == "w1" else a.extra["metric"]
    fig, axes = plt.subplots(2, 4, figsize=(13, 6.6))
    fig.subplots_adjust(hspace=0.45, wspace=0.35, left=0.06, right=0.98, top=0.93, bottom=0.06)
    steps = flow_checkpoints(sim)  # the steps the flow measured (fewer than sim.checkpoints when they round together)
    for values in flows:
        axes[0][0].plot(steps, values, color="C0", alpha=0.6)
    axes[0][0].set(xlabel="flow step", ylabel=f"{name} to held-out data", yscale="log",
                   title=f"particles: x <- x + {float(sim.flow_eps):g}∇D(x)")
    names = list(INCREASING) + list(DECREASING)
    axes[0][1].bar(range(len(names)), [results[f"h_{h}_{d}_over_start"] for h in names],
                   color=["C0"] * len(INCREASING) + ["C3"] * len(DECREASING))
    axes[0][1].axhline(1, color="k", lw=0.8)
    axes[0][1].set_xticks(range(len(names)), [f"-h = -{h}" for h in names], rotation=20, fontsize=7)
    axes[0][1].set(ylabel=f"{name} end / start", yscale="log", title="generator losses (red: decreasing h)")
    ks = [int(k) for k in sim.k_values]
    for loss, colour in (("minus_d", "C1"), ("matching", "C2")):
        axes[0][2].plot(ks, [results[f"{loss}_k{k}_{d}"] for k in ks], "o-", color=colour,
                        label="-D" if loss == "minus_d" else "matching loss")
    axes[0][2].set(xlabel="generator steps per discriminator step", ylabel=f"{name} at the end", xscale="log",
                   title=f"mean of {int(sim.replicates)} seeds")
    axes[0][2].set_xticks(ks, [str(k) for k in ks])
    axes[0][2].minorticks_off()
    axes[0][2].legend(fontsize=7)
    axes[0][3].axis("off")
    panels = list(shown.items())[:4]
    for ax, (label, samples) in zip(axes[1], panels):
        if a.scorer is None:
            scatter_panel(ax, samples, a.target, f"{label} (seed 0)")
        else:
            dcgan.image_grid(ax, samples, f"{label} (seed 0)")
    for ax in axes[1][len(panels):]:
        ax.axis("off")
    save_figure(ctx, "monoflow", fig)
