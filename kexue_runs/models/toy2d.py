"""The 2-D generative toys shared by the GAN-family experiments (gan_qp, wgan_gn, ign, monoflow, next_patch):
named targets, MLP generators and critics, an alternating training loop, the cost of an iteration, and
sample metrics on held-out draws.

Metrics (all between a model sample and a fresh target sample of the same size):
  mmd        unbiased MMD² with a Gaussian kernel exp(-|x - y|² / (2 h²)), h = `bandwidth` (stated per run)
  energy     the energy distance 2E|X - Y| - E|X - X'| - E|Y - Y'|
  w1         the exact 1-Wasserstein distance between the two empirical measures (optimal assignment)
  modes      modes covered: a mode counts when at least 10% of its fair share (n / K) of samples lie within
             3 std of its centre
  quality    the fraction of samples within 3 std of some mode
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..common.costs import CostMeter  # noqa: F401  (re-exported: the GAN experiments time their iterations)
from ..common.errors import ConfigError
from .batched import BatchedMLP, continue_global_stream

TARGETS = ("ring8", "grid25", "moons")


@dataclass
class Target:
    name: str
    centres: np.ndarray | None  # (K, 2) mode centres, None for a target without isolated modes
    std: float

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.name == "moons":  # two interleaved half circles, Gaussian noise std
            t = torch.rand(n, generator=generator) * math.pi
            upper = torch.rand(n, generator=generator) < 0.5
            x = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
            y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
            return torch.stack([x, y], 1) + self.std * torch.randn(n, 2, generator=generator)
        centres = torch.from_numpy(self.centres).float()
        which = torch.randint(0, len(centres), (n,), generator=generator)
        return centres[which] + self.std * torch.randn(n, 2, generator=generator)


def target(name: str) -> Target:
    if name == "ring8":  # eight Gaussians on a circle of radius 2
        angles = np.arange(8) * 2 * np.pi / 8
        return Target(name, 2 * np.stack([np.cos(angles), np.sin(angles)], 1), 0.05)
    if name == "grid25":  # a 5 x 5 grid with spacing 1
        g = np.arange(-2, 3, dtype=float)
        return Target(name, np.stack(np.meshgrid(g, g), -1).reshape(-1, 2), 0.05)
    if name == "moons":
        return Target(name, None, 0.05)
    raise ValueError(f"target={name}: allowed: {', '.join(TARGETS)}")


def mlp(inputs: int, outputs: int, hidden: int, layers: int, activation: str = "relu") -> torch.nn.Sequential:
    act = {"relu": torch.nn.ReLU, "leaky_relu": lambda: torch.nn.LeakyReLU(0.2), "tanh": torch.nn.Tanh}[activation]
    parts, width = [], inputs
    for _ in range(layers):
        parts += [torch.nn.Linear(width, hidden), act()]
        width = hidden
    parts.append(torch.nn.Linear(width, outputs))
    return torch.nn.Sequential(*parts)


# -- metrics -------------------------------------------------------------------------------------------

def mmd(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    def kernel(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * bandwidth ** 2))

    n, m = len(x), len(y)
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    return float((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
                 - 2 * kxy.mean())


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


def wasserstein(x: torch.Tensor, y: torch.Tensor, p: int = 1) -> float:
    """Exact W_p between two equal-size empirical measures: an optimal assignment (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    cost = torch.cdist(x.double(), y.double()).numpy() ** p
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean() ** (1 / p))


def mode_stats(x: torch.Tensor, t: Target) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples) for a target with isolated modes."""
    centres = torch.from_numpy(t.centres).float()
    dist = torch.cdist(x.float(), centres)
    nearest, which = dist.min(1)
    good = nearest <= 3 * t.std
    counts = torch.bincount(which[good], minlength=len(centres))
    covered = int((counts >= max(1.0, 0.1 * len(x) / len(centres))).sum())
    return covered, float(good.float().mean())


def sample_metrics(x: torch.Tensor, t: Target, generator: torch.Generator, bandwidth: float) -> dict:
    """Every metric of a model sample x against a fresh target sample of the same size."""
    y = t.sample(len(x), generator)
    x = x.detach().float()
    out = {"mmd": mmd(x, y, bandwidth), "energy": energy_distance(x, y), "w1": wasserstein(x, y)}
    if t.centres is not None:
        out["modes"], out["quality"] = mode_stats(x, t)
    return out


# -- shared losses ----------------------------------------------------------------------------------------------

def gradient_penalty(critic, real, fake, weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP's weight (|∇D(x̂)| - 1)² at random interpolates x̂ (Gulrajani et al. 2017)."""
    shape = (len(real),) + (1,) * (real.dim() - 1)  # one mix per sample (points or images)
    per_replicate = getattr(critic, "rand_rows", None)  # a BatchedMLP: each replicate's rows from its own stream
    mix = (per_replicate(shape) if per_replicate is not None else torch.rand(shape)).to(real.device)
    x = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return weight * (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def gradient_penalty_weights(sim) -> tuple[float, list[float]]:
    """WGAN-GP's λ in a run: (the λ the post's comparisons read, every λ trained as an arm, that one first). The
    penalty's scale is the data's: on the 2-D targets sim.wgan_gp_lambda and the arms sim.wgan_gp_lambdas, on
    images (sim.target=images) the WGAN-GP paper's image value sim.wgan_gp_lambda_on_images alone."""
    if sim.target == "images":
        return float(sim.wgan_gp_lambda_on_images), [float(sim.wgan_gp_lambda_on_images)]
    primary, arms = float(sim.wgan_gp_lambda), [float(x) for x in sim.wgan_gp_lambdas]
    if primary not in arms:
        raise ConfigError(f"sim.wgan_gp_lambda={primary:g} must be one of sim.wgan_gp_lambdas "
                          f"{[float(x) for x in arms]} (the λ the post's comparisons read is trained as an arm)")
    return primary, [primary] + [x for x in dict.fromkeys(arms) if x != primary]


# -- the alternating loop -----------------------------------------------------------------------------------

def train_adversarial(generator, critic, d_loss, g_loss, t, sim, seed: int, meter: CostMeter | None = None,
                      evaluate_every: int | None = None, on_eval=None, device="cpu") -> list[dict]:
    """`sim.d_steps` critic steps per generator step, Adam(sim.lr, betas (sim.beta1, sim.beta2 or 0.999)),
    batch sim.batch. `t` is anything with `sample(n, generator)`: a 2-D Target or models/dcgan's ImageTarget.
    d_loss(critic, real, fake) and g_loss(critic, real, fake) return scalars; fake is detached for the critic.
    Draws come from one CPU generator (the same numbers on every device), then move to `device`.
    Returns the evaluation trace (iteration, metrics) when evaluate_every is given."""
    gen = torch.Generator().manual_seed(seed)
    betas = (float(sim.beta1), float(sim.get("beta2", 0.999)))
    opt_d = torch.optim.Adam(critic.parameters(), lr=float(sim.lr), betas=betas)
    opt_g = torch.optim.Adam(generator.parameters(), lr=float(sim.lr), betas=betas)
    batch, z_dim = int(sim.batch), int(sim.z_dim)
    trace = []
    for it in range(1, int(sim.iterations) + 1):
        with (meter if meter is not None else _null()):
            for _ in range(int(sim.d_steps)):
                real = t.sample(batch, gen).to(device)
                with torch.no_grad():  # no graph for a forward nobody backpropagates (see CostMeter)
                    fake = generator(torch.randn(batch, z_dim, generator=gen).to(device))
                loss = d_loss(critic, real, fake)
                opt_d.zero_grad(set_to_none=True)
                loss.backward()
                opt_d.step()
            real = t.sample(batch, gen).to(device)
            fake = generator(torch.randn(batch, z_dim, generator=gen).to(device))
            loss = g_loss(critic, real, fake)
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
        if evaluate_every and (it % evaluate_every == 0 or it == int(sim.iterations)):
            trace.append({"iteration": it} | (on_eval(it) if on_eval else {}))
    return trace


def train_gan(d_loss, g_loss, t: Target, sim, seed: int, critic_activation: str = "relu") -> dict:
    """A generator and a critic (MLPs of sim.hidden x sim.layers) trained by train_adversarial with the given
    losses, evaluated sim.evaluations times on held-out draws; the trace, the cost per iteration and 1000
    samples for the scatter figure."""
    torch.manual_seed(seed)
    generator = mlp(int(sim.z_dim), 2, int(sim.hidden), int(sim.layers))
    critic = mlp(2, 1, int(sim.hidden), int(sim.layers), critic_activation)
    meter = CostMeter()
    eval_gen = torch.Generator().manual_seed(10_000 + seed)

    def evaluate(_it):
        with torch.no_grad():
            x = generator(torch.randn(int(sim.eval_samples), int(sim.z_dim), generator=eval_gen))
        return sample_metrics(x, t, eval_gen, float(sim.bandwidth))

    trace = train_adversarial(generator, critic, d_loss, g_loss, t, sim, seed, meter,
                              evaluate_every=int(sim.iterations) // int(sim.evaluations), on_eval=evaluate)
    with torch.no_grad():
        samples = generator(torch.randn(1000, int(sim.z_dim), generator=torch.Generator().manual_seed(seed)))
    return {"final": trace[-1], "trace": trace, "cost": meter.summary(), "samples": samples.numpy()}


# -- the same, R seeds as one batched computation ------------------------------------------------------------

def train_adversarial_batched(generator: BatchedMLP, critic: BatchedMLP, d_loss, g_loss, t, sim, seeds: list[int],
                              meter: CostMeter | None = None, evaluate_every: int | None = None,
                              on_eval=None) -> list[list[dict]]:
    """train_adversarial for len(seeds) replicates at once, on CPU: generator and critic are BatchedMLPs and see
    rows folded as (R * batch, features); replicate r draws its batches from Generator(seeds[r]) in the lone
    loop's order. The losses must be means over rows of per-row terms (every GAN loss here is): R times such a
    mean is the sum of the replicates' own means, so each replicate's gradient is its lone gradient, and Adam's
    state on the stacked tensors is elementwise, so each replicate's too. on_eval(it) returns one dict per
    replicate; the result is one evaluation trace per replicate."""
    replicates = len(seeds)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    betas = (float(sim.beta1), float(sim.get("beta2", 0.999)))
    opt_d = torch.optim.Adam(critic.parameters(), lr=float(sim.lr), betas=betas)
    opt_g = torch.optim.Adam(generator.parameters(), lr=float(sim.lr), betas=betas)
    batch, z_dim = int(sim.batch), int(sim.z_dim)

    def draw():
        real, z = [], []
        for g in gens:  # per replicate: its target draw, then its noise, as the lone loop draws them
            real.append(t.sample(batch, g))
            z.append(torch.randn(batch, z_dim, generator=g))
        return torch.cat(real), torch.cat(z)

    traces = [[] for _ in seeds]
    for it in range(1, int(sim.iterations) + 1):
        with (meter if meter is not None else _null()):
            for _ in range(int(sim.d_steps)):
                real, z = draw()
                with torch.no_grad():
                    fake = generator(z)
                loss = replicates * d_loss(critic, real, fake)
                opt_d.zero_grad(set_to_none=True)
                loss.backward()
                opt_d.step()
            real, z = draw()
            loss = replicates * g_loss(critic, real, generator(z))
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
        if evaluate_every and (it % evaluate_every == 0 or it == int(sim.iterations)):
            for trace, m in zip(traces, on_eval(it) if on_eval else [{}] * replicates):
                trace.append({"iteration": it} | m)
    return traces


def train_adversarial_replicates(build, d_loss, g_loss, t, sim, seeds: list[int]) -> list[tuple]:
    """train_adversarial for every seed as one batched computation, with networks of the caller's: build() makes a
    lone run's (generator, critic) and is called under torch.manual_seed(seed), as the lone run calls it. Returns
    each seed's (generator, critic), its trained weights copied back in."""
    nets, streams = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        nets.append(build())
        streams.append(continue_global_stream())
    generators, critics = [g for g, _ in nets], [c for _, c in nets]
    generator, critic = BatchedMLP(generators), BatchedMLP(critics, streams)
    train_adversarial_batched(generator, critic, d_loss, g_loss, t, sim, seeds)
    generator.copy_into(generators)
    critic.copy_into(critics)
    return nets


def train_gan_batched(d_loss, g_loss, t: Target, sim, seeds: list[int], critic_activation: str = "relu") -> list[dict]:
    """train_gan for every seed as one batched computation: [train_gan(..., seed) for seed in seeds] up to float
    rounding. Each replicate's networks are built as its lone run builds them (torch.manual_seed(seed)), and the
    global stream a lone run goes on to draw from (the gradient penalty's mixing weights) is kept per replicate.
    The cost is the batched iteration's share per replicate (its time and saved bytes over R)."""
    generators, critics, streams = [], [], []
    for seed in seeds:
        torch.manual_seed(seed)
        generators.append(mlp(int(sim.z_dim), 2, int(sim.hidden), int(sim.layers)))
        critics.append(mlp(2, 1, int(sim.hidden), int(sim.layers), critic_activation))
        streams.append(continue_global_stream())
    generator, critic = BatchedMLP(generators), BatchedMLP(critics, streams)
    meter = CostMeter()
    eval_gens = [torch.Generator().manual_seed(10_000 + seed) for seed in seeds]
    z_dim, n = int(sim.z_dim), int(sim.eval_samples)

    def evaluate(_it):
        with torch.no_grad():
            x = generator(torch.stack([torch.randn(n, z_dim, generator=g) for g in eval_gens]))
        return [sample_metrics(x[r], t, g, float(sim.bandwidth)) for r, g in enumerate(eval_gens)]

    traces = train_adversarial_batched(generator, critic, d_loss, g_loss, t, sim, seeds, meter,
                                       evaluate_every=int(sim.iterations) // int(sim.evaluations), on_eval=evaluate)
    with torch.no_grad():
        samples = generator(torch.stack([torch.randn(1000, z_dim, generator=torch.Generator().manual_seed(seed))
                                         for seed in seeds]))
    cost = {key: value / len(seeds) for key, value in meter.summary().items()}
    return [{"final": trace[-1], "trace": trace, "cost": dict(cost), "samples": samples[r].numpy()}
            for r, trace in enumerate(traces)]


def scatter_panel(ax, samples, t: Target, title: str) -> None:
    """One arm's samples over the target's modes, on the toys' fixed square."""
    ax.scatter(*samples.T, s=2, alpha=0.4, color="C0")
    if t.centres is not None:
        ax.scatter(*t.centres.T, marker="x", color="C3", s=30, label="target modes")
    ax.set(title=title, xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
    ax.tick_params(labelsize=6)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
