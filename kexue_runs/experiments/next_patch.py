"""next_patch: a squared-error next-patch head against a small diffusion head on a bimodal toy
(method: methods/next_patch.py).

Post: “闭门造车”之多模态思路浅谈（二）：自回归 https://kexue.fm/archives/10197 (no experiment of its own)
  1. the post's arithmetic: 32 tokens from a 4096-entry codebook name at most 2^384 images;
  2. a toy where the next patch given its context is bimodal: x = f(c) ± s·u(c) + σn (a hidden coin), with
     c uniform in [-1, 1]², f and the direction u smooth in c. An MSE head and a diffusion head conditioned
     on c (MAR's design: an MLP denoiser, ε-prediction), on held-out contexts: where the samples fall relative
     to the two modes (the offset along u(c)), the fraction near a mode, the balance between the modes, W1
     to the true conditional's offsets;
  3. the diffusion head with x0-prediction against next-step prediction (a draw of x_{t-1} as the target):
     the gradient's noise-to-signal ratio a quarter of the way through training, and W1 at the end;
  4. at the image scale (sim.target=images, the default at scale=gpu) the same four heads on the data group's
     images: the context is an image's top half, the next patch its bottom half (digits: a 3 and a 9 can share a
     top), both flattened; on held-out images, the completed images' Fréchet distance in a classifier the run
     trains (FID-<data>-classifier, models/dcgan.py) and the completions' total variance over the true bottoms'
     (the conditional mean varies less than the data: Var E[x|c] <= Var x).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..common.errors import ConfigError
from ..common.progress import say
from ..methods.next_patch import Schedule, codebook_capacity_log2, noised, sample, training_target
from ..models import dcgan
from ..models.toy2d import mlp, wasserstein

ARMS = ("mse", "eps", "x0", "next_step")
TARGETS = ("bimodal", "images")


def validate(cfg) -> None:
    if cfg.sim.target not in TARGETS:
        raise ConfigError(f"sim.target={cfg.sim.target!r}: allowed: {', '.join(TARGETS)}")
    dcgan.validate_arena(cfg.sim, cfg.get("data"))


def conditional_frame(c: torch.Tensor, spread: float):
    """f(c), the conditional mean, and u(c), the unit direction of the two modes."""
    mean = spread * torch.stack([torch.sin(2 * c[:, 0]), torch.cos(2 * c[:, 1])], 1)
    angle = math.pi * c[:, 0]
    return mean, torch.stack([torch.cos(angle), torch.sin(angle)], 1)


def draw(n: int, gen: torch.Generator, sim):
    c = 2 * torch.rand(n, 2, generator=gen) - 1
    mean, u = conditional_frame(c, float(sim.spread))
    coin = torch.randint(0, 2, (n, 1), generator=gen).float() * 2 - 1
    x = mean + coin * float(sim.offset) * u + float(sim.noise) * torch.randn(n, 2, generator=gen)
    return c, x


class Head(torch.nn.Module):
    """The denoiser: an MLP on (x_t, t/T with sin/cos features, context)."""

    def __init__(self, hidden: int, layers: int, steps: int, dim: int = 2, context: int = 2):
        super().__init__()
        self.steps = steps
        self.net = mlp(dim + 5 + context, dim, hidden, layers)

    def forward(self, x, t, c):
        s = t.float()[:, None] / self.steps
        features = torch.cat([s, torch.sin(math.pi * s), torch.cos(math.pi * s), torch.sin(2 * math.pi * s),
                              torch.cos(2 * math.pi * s)], 1)
        return self.net(torch.cat([x, features, c], 1))


def diffusion_loss(head, schedule, parametrisation, c, x0, gen):
    t = torch.randint(0, schedule.steps, (len(x0),), generator=gen).to(x0.device)
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    xt = noised(schedule, x0, t, noise)
    target = training_target(schedule, parametrisation, x0, xt, t, noise, gen)
    return (head(xt, t, c) - target).pow(2).sum(-1).mean()


def gradient_noise_ratio(model, loss_fn, batches: int) -> float:
    """tr Cov(g) / |E g|² over independent minibatches at the current parameters."""
    grads = []
    for _ in range(batches):
        model.zero_grad(set_to_none=True)
        loss_fn().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    g = torch.stack(grads)
    return float(g.var(0, unbiased=True).sum() / g.mean(0).pow(2).sum())


def offsets(c, x, sim) -> torch.Tensor:
    """(along u(c), across it) coordinates of x - f(c): the true conditional puts them at (±s, 0)."""
    mean, u = conditional_frame(c, float(sim.spread))
    r = x - mean
    perp = torch.stack([-u[:, 1], u[:, 0]], 1)
    return torch.stack([(r * u).sum(1), (r * perp).sum(1)], 1)


def evaluate(c, x, true_x, sim) -> dict:
    o, o_true = offsets(c, x, sim), offsets(c, true_x, sim)
    s, tol = float(sim.offset), 3 * float(sim.noise)
    near_plus = ((o[:, 0] - s).abs() <= tol) & (o[:, 1].abs() <= tol)
    near_minus = ((o[:, 0] + s).abs() <= tol) & (o[:, 1].abs() <= tol)
    plus, minus = float(near_plus.float().mean()), float(near_minus.float().mean())
    return {"near_mode": plus + minus, "mode_balance": 2 * min(plus, minus) / max(plus + minus, 1e-12),
            "mean_abs_offset": float(o[:, 0].abs().mean()), "offset_w1": wasserstein(o, o_true)}


class ToyTask:
    """The bimodal 2-D toy: contexts c in [-1, 1]², the next patch a point; scored in the frame of its modes."""
    domain, device, c_dim, x_dim = "toy2d", "cpu", 2, 2

    def __init__(self, sim):
        self.sim = sim
        self.eval_c, self.eval_x = draw(int(sim.eval_contexts), torch.Generator().manual_seed(777), sim)

    def draw(self, n: int, gen: torch.Generator):
        return draw(n, gen, self.sim)

    def evaluate(self, x: torch.Tensor) -> dict:
        return evaluate(self.eval_c, x, self.eval_x, self.sim)


class ImageTask:
    """The data group's images: the context is the top half (flattened), the next patch the bottom half; held-out
    images give the evaluation contexts; completions are scored by the classifier FID and their spread."""
    domain = "images"

    def __init__(self, a: dcgan.Arena):
        self.a, self.device = a, a.device
        held_out = a.extra["held_out"]
        self.rows = held_out.shape[2] // 2
        self.eval_c, self.eval_x = (v.to(self.device) for v in self.split(held_out))
        self.c_dim, self.x_dim = self.eval_c.shape[1], self.eval_x.shape[1]

    def split(self, images: torch.Tensor):
        return images[:, :, :self.rows].flatten(1), images[:, :, self.rows:].flatten(1)

    def draw(self, n: int, gen: torch.Generator):
        return tuple(v.to(self.device) for v in self.split(self.a.target.sample(n, gen)))

    def complete(self, c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Context rows over predicted rows: whole images in [-1, 1] (predictions clipped to the data's range)."""
        channels, side = self.a.shape[0], self.a.shape[2]
        top = c.view(len(c), channels, self.rows, side)
        bottom = x.clamp(-1, 1).view(len(x), channels, side - self.rows, side)
        return torch.cat([top, bottom], 2).cpu()

    def evaluate(self, x: torch.Tensor) -> dict:
        images = self.complete(self.eval_c, x)
        spread = float(x.clamp(-1, 1).var(0).sum() / self.eval_x.var(0).sum())  # the completions FID scores
        return {"fid": self.a.score(images, None, None)["fid"], "variance_over_data": spread}


def train_arm(arm: str, seed: int, sim, task) -> dict:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    schedule = Schedule(int(sim.diffusion_steps)).to(task.device)
    model = mlp(task.c_dim, task.x_dim, int(sim.hidden), int(sim.layers)) if arm == "mse" else \
        Head(int(sim.hidden), int(sim.layers), int(sim.diffusion_steps), task.x_dim, task.c_dim)
    model = model.to(task.device)
    opt = torch.optim.Adam(model.parameters(), lr=float(sim.lr))
    batch, steps = int(sim.batch), int(sim.train_steps)

    def loss_fn():
        c, x = task.draw(batch, gen)
        if arm == "mse":
            return (model(c) - x).pow(2).sum(-1).mean()
        return diffusion_loss(model, schedule, arm, c, x, gen)

    ratio = math.nan
    for step in range(steps):
        if step == steps // 4:
            ratio = gradient_noise_ratio(model, loss_fn, int(sim.noise_batches))
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sample_gen = torch.Generator().manual_seed(20_000 + seed)
    with torch.no_grad():
        x = model(task.eval_c) if arm == "mse" else sample(model, schedule, arm, task.eval_c, task.x_dim, sample_gen)
    return task.evaluate(x) | {"gradient_noise_ratio": ratio, "samples": x.cpu()}


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    results = {"capacity_log2": codebook_capacity_log2(int(sim.codebook), int(sim.tokens)),
               "capacity_exact": float(int(sim.codebook) ** int(sim.tokens) == 2 ** 384)}
    ctx.claim_rows.append({"part": "capacity", "capacity_log2_minus_384": results["capacity_log2"] - 384})
    if sim.target == "images":
        a = dcgan.arena(sim, cfg.data, int(cfg.seed) + 7, ctx.device, ctx.track)
        task = ImageTask(a)
        ctx.details["metric"] = a.extra["metric"]
        results |= {k: a.extra[k] for k in ("classifier_acc", "fid_floor")}
        keys = ("fid", "variance_over_data", "gradient_noise_ratio")
    else:
        task = ToyTask(sim)
        keys = ("near_mode", "mode_balance", "mean_abs_offset", "offset_w1", "gradient_noise_ratio")
    jobs = [(arm, r) for r in range(int(sim.replicates)) for arm in ARMS]
    per = {}
    for arm, r in ctx.track(jobs, f"{len(ARMS)} heads x {int(sim.replicates)} seeds", total=len(jobs)):
        out = train_arm(arm, 1000 * int(cfg.seed) + r, sim, task)
        per[(arm, r)] = out
        m = {k: v for k, v in out.items() if k != "samples"}
        ctx.log(r, arm, **{k: v for k, v in m.items() if not (isinstance(v, float) and math.isnan(v))})
        ctx.claim_rows.append({"part": "heads", "arm": arm, "replicate": r, "domain": task.domain} | m)
    for arm in ARMS:
        for key in keys:
            results[f"{arm}_{key}"] = float(np.mean([per[(arm, r)][key] for r in range(int(sim.replicates))]))
    quality = "near a mode" if task.domain == "toy2d" else a.extra["metric"]
    key = "near_mode" if task.domain == "toy2d" else "fid"
    say(f"{quality}: MSE {results[f'mse_{key}']:.3g}, diffusion (ε) {results[f'eps_{key}']:.3g}; gradient "
        f"noise/signal x0 {results['x0_gradient_noise_ratio']:.3g} vs next step "
        f"{results['next_step_gradient_noise_ratio']:.3g}")
    if task.domain == "toy2d":
        plot(ctx, per, task.eval_c, task.eval_x, sim)
    else:
        plot_images(ctx, per, task, results)
    return results


def plot_images(ctx, per, task: ImageTask, results) -> None:
    """16 held-out images and each head's completions of their top halves (seed 0)."""
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(ARMS) + 1, figsize=(3.0 * (len(ARMS) + 1), 3.8))
    fig.subplots_adjust(top=0.78, bottom=0.02, left=0.02, right=0.98, wspace=0.1)
    names = {"mse": "MSE head", "eps": "diffusion head (ε)", "x0": "diffusion head (x0)",
             "next_step": "diffusion head (next step)"}
    c = task.eval_c[:16]
    dcgan.image_grid(axes[0], task.complete(c, task.eval_x[:16]).numpy(), "held out (true bottoms)")
    for ax, arm in zip(axes[1:], ARMS):
        images = task.complete(c, per[(arm, 0)]["samples"][:16].to(c.device)).numpy()
        dcgan.image_grid(ax, images, f"{names[arm]}\nFID {results[f'{arm}_fid']:.2f}")
    fig.suptitle(f"next patch = the bottom {task.a.shape[2] - task.rows} rows given the top {task.rows} "
                 f"({task.a.extra['metric']}, mean of the seeds)", fontsize=9)
    save_figure(ctx, "next_patch", fig)


def plot(ctx, per, eval_c, eval_x, sim) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(ARMS) + 1, figsize=(3.2 * (len(ARMS) + 1), 3.4))
    truth = offsets(eval_c, eval_x, sim).numpy()
    s = float(sim.offset)
    for ax, name, pts in zip(axes, ["true conditional"] + list(ARMS),
                             [truth] + [offsets(eval_c, per[(a, 0)]["samples"], sim).numpy() for a in ARMS]):
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5)
        ax.axvline(s, color="C3", lw=0.6)
        ax.axvline(-s, color="C3", lw=0.6)
        ax.set(title=name if name == "true conditional" else
               {"mse": "MSE head", "eps": "diffusion head (ε)", "x0": "diffusion head (x0)",
                "next_step": "diffusion head (next step)"}[name],
               xlim=(-2 * s, 2 * s), ylim=(-s, s), xlabel="offset along u(c)")
        ax.tick_params(labelsize=6)
    axes[0].set_ylabel("offset across u(c)")
    fig.suptitle("next patch given its context, in the frame of the two modes (red: the modes at ±s; seed 0)",
                 fontsize=9)
    save_figure(ctx, "next_patch", fig)
