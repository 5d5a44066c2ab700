"""monoflow: GAN training as a discretised Wasserstein gradient flow (method: methods/monoflow.py;
harness: models/toy2d.py).

Post: 生成扩散模型漫谈（十九）：作为扩散ODE的GAN https://kexue.fm/archives/9662
  1. the matching loss's gradient at θ_t against 2ε times -D(g(z))'s, by autograd in float64;
  2. particles moved by x <- x + ε∇D(x) with a logistic discriminator re-fitted (warm) between steps:
     W1 to the target at checkpoints;
  3. generators trained with -h(D) for several increasing h (and a decreasing control) against the
     same logistic discriminator: W1 at the end against W1 at the start;
  4. k in {1, 5, 20} generator steps per discriminator step, with -D and with the matching loss.
"""

from __future__ import annotations

import numpy as np
import torch

from ..methods.ign import frozen
from ..methods.monoflow import DECREASING, INCREASING, matching_loss, particle_step
from ..models.toy2d import mlp, sample_metrics, target, wasserstein
from ..progress import say


def gradient_identity(seed: int, eps: float) -> float:
    torch.manual_seed(seed)
    generator, critic = mlp(3, 2, 16, 2).double(), mlp(2, 1, 16, 2).double()
    z = torch.randn(64, 3, dtype=torch.float64)
    params = list(generator.parameters())
    matching = torch.autograd.grad(matching_loss(generator, frozen(generator), critic, z, eps), params)
    minus_d = torch.autograd.grad(-critic(generator(z)).sum(-1).mean(), params)
    return max(float((a - 2 * eps * b).abs().max()) for a, b in zip(matching, minus_d))


def bce_step(critic, opt, real, fake) -> None:
    """The logistic discriminator's step: its optimum is D = log(p/q)."""
    softplus = torch.nn.functional.softplus
    loss = softplus(-critic(real)).mean() + softplus(critic(fake)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def particle_flow(seed: int, sim, t) -> list[float]:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(int(sim.particles), 2, generator=gen)
    critic = mlp(2, 1, int(sim.hidden), int(sim.layers))
    opt = torch.optim.Adam(critic.parameters(), lr=float(sim.lr), betas=(float(sim.beta1), 0.999))
    held_out = t.sample(int(sim.particles), gen)
    checkpoints = set(np.linspace(0, int(sim.flow_steps), int(sim.checkpoints)).astype(int).tolist())
    w1 = []
    for step in range(int(sim.flow_steps) + 1):
        if step in checkpoints:
            w1.append(wasserstein(x, held_out))
        if step == int(sim.flow_steps):
            break
        for _ in range(int(sim.critic_steps)):
            picked = x[torch.randint(0, len(x), (int(sim.batch),), generator=gen)]
            bce_step(critic, opt, t.sample(int(sim.batch), gen), picked)
        x = particle_step(x, critic, float(sim.flow_eps))
    return w1


def train_generator(loss: str, k: int, seed: int, sim, t, iterations: int) -> dict:
    """Logistic discriminator, one step per iteration; k generator steps on -h(D) or the matching loss."""
    torch.manual_seed(seed)
    generator = mlp(int(sim.z_dim), 2, int(sim.hidden), int(sim.layers))
    critic = mlp(2, 1, int(sim.hidden), int(sim.layers))
    betas = (float(sim.beta1), 0.999)
    opt_d = torch.optim.Adam(critic.parameters(), lr=float(sim.lr), betas=betas)
    opt_g = torch.optim.Adam(generator.parameters(), lr=float(sim.lr), betas=betas)
    gen = torch.Generator().manual_seed(seed)
    eval_gen = torch.Generator().manual_seed(10_000 + seed)
    batch, z_dim = int(sim.batch), int(sim.z_dim)

    def evaluate():
        with torch.no_grad():
            x = generator(torch.randn(int(sim.eval_samples), z_dim, generator=eval_gen))
        return sample_metrics(x, t, eval_gen, float(sim.bandwidth))

    start = evaluate()
    h = (INCREASING | DECREASING).get(loss)
    for _ in range(iterations):
        with torch.no_grad():
            fake = generator(torch.randn(batch, z_dim, generator=gen))
        bce_step(critic, opt_d, t.sample(batch, gen), fake)
        anchor = frozen(generator) if loss == "matching" else None
        for _ in range(k):
            z = torch.randn(batch, z_dim, generator=gen)
            if loss == "matching":
                g_loss = matching_loss(generator, anchor, critic, z, float(sim.flow_eps))
            else:
                g_loss = -h(critic(generator(z))).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
    end = evaluate()
    return {"w1_start": start["w1"], "w1": end["w1"], "w1_over_start": end["w1"] / start["w1"],
            "modes": end.get("modes", 0), "quality": end.get("quality", 0.0), "mmd": end["mmd"]}


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    t = target(str(sim.target))
    results = {"matching_gradient_error": gradient_identity(int(cfg.seed), float(sim.flow_eps))}
    seeds = [1000 * int(cfg.seed) + r for r in range(int(sim.replicates))]
    flows = []
    for r, seed in enumerate(ctx.track(seeds, "particle flows", total=len(seeds))):
        w1 = particle_flow(seed, sim, t)
        flows.append(w1)
        for i, value in enumerate(w1):
            ctx.claim_rows.append({"part": "flow", "checkpoint": i, "replicate": r, "flow_w1": value})
    results["flow_w1_start"] = float(np.mean([f[0] for f in flows]))
    results["flow_w1_end"] = float(np.mean([f[-1] for f in flows]))
    say(f"matching-loss gradient = 2ε x -D's: max error {results['matching_gradient_error']:.1e}; particle flow W1 "
        f"{results['flow_w1_start']:.3f} -> {results['flow_w1_end']:.3f}")
    h_jobs = [(h, r) for r in range(len(seeds)) for h in list(INCREASING) + list(DECREASING)]
    for h, r in ctx.track(h_jobs, "generator losses -h(D)", total=len(h_jobs)):
        m = train_generator(h, 1, seeds[r], sim, t, int(sim.iterations))
        ctx.log(r, f"h_{h}", **m)
        ctx.claim_rows.append({"part": "h", "h": h, "replicate": r} | m)
        results.setdefault(f"h_{h}_w1", []).append(m["w1"])
        results.setdefault(f"h_{h}_w1_over_start", []).append(m["w1_over_start"])
    k_jobs = [(loss, k, r) for r in range(len(seeds)) for k in sim.k_values for loss in ("identity", "matching")]
    for loss, k, r in ctx.track(k_jobs, "k generator steps per discriminator step", total=len(k_jobs)):
        m = train_generator(loss, int(k), seeds[r], sim, t, int(sim.k_iterations))
        name = "minus_d" if loss == "identity" else "matching"
        ctx.log(r, f"{name}_k{k}", **m)
        ctx.claim_rows.append({"part": "k", "loss": name, "k": int(k), "replicate": r} | m)
        results.setdefault(f"{name}_k{k}_w1", []).append(m["w1"])
    for key in [k for k, v in results.items() if isinstance(v, list)]:
        results[key] = float(np.mean(results[key]))
    plot(ctx, flows, results, sim)
    return results


def plot(ctx, flows, results, sim) -> None:
    from ..report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    steps = np.linspace(0, int(sim.flow_steps), int(sim.checkpoints))
    for w1 in flows:
        axes[0].plot(steps, w1, color="C0", alpha=0.6)
    axes[0].set(xlabel="flow step", ylabel="W1 to the target", yscale="log",
                title=f"particles: x <- x + {float(sim.flow_eps):g}∇D(x)")
    names = list(INCREASING) + list(DECREASING)
    axes[1].bar(range(len(names)), [results[f"h_{h}_w1_over_start"] for h in names],
                color=["C0"] * len(INCREASING) + ["C3"] * len(DECREASING))
    axes[1].axhline(1, color="k", lw=0.8)
    axes[1].set_xticks(range(len(names)), [f"-h = -{h}" for h in names], rotation=20, fontsize=7)
    axes[1].set(ylabel="W1 end / W1 start", yscale="log", title="generator losses (red: decreasing h)")
    ks = [int(k) for k in sim.k_values]
    for name, colour in (("minus_d", "C1"), ("matching", "C2")):
        axes[2].plot(ks, [results[f"{name}_k{k}_w1"] for k in ks], "o-", color=colour,
                     label="-D" if name == "minus_d" else "matching loss")
    axes[2].set(xlabel="generator steps per discriminator step", ylabel="W1 at the end", xscale="log",
                title=f"mean of {int(sim.replicates)} seeds")
    axes[2].legend(fontsize=7)
    save_figure(ctx, "monoflow", fig)
