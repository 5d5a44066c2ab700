"""ddim_cifar: one trained DDPM, the whole DDPM/DDIM sampler family, quality against steps.

Posts: DDPM https://kexue.fm/archives/9119 and https://kexue.fm/archives/9164, DDIM
https://kexue.fm/archives/9181, SDE https://kexue.fm/archives/9209, ODE https://kexue.fm/archives/9280.
The reference is the DDIM paper's CIFAR-10 table (arXiv 2010.02502, Table 1).

One run:
  1. the analytic arm: a 2-D Gaussian mixture whose optimal ε is known in closed form, so every
     sampler of the grid is measured against the true distribution (MMD, mode weights) with no
     training at all;
  2. trains an ε-prediction DDPM (U-Net, EMA weights) on images: scikit-learn's 8x8 digits by
     default (real, embedded), data=cifar10 at scale=gpu;
  3. samples the same x_T with every sampler (η = 0, 0.2, 0.5, 1, σ̂, and the probability-flow ODE
     with Euler and Heun) at S = 10, 20, 50, 100, 1000 steps;
  4. scores samples by the Fréchet distance in the feature space of a classifier this run trains on
     the same data's labels ("FID-digits-classifier", "FID-cifar10-classifier"; for data without
     labels, a fixed random conv net: "FD-randconv").
     Inception FID needs weights this project cannot download; it is not computed.
The generated samples are split into eval.shards groups; their spread is the noise the checks use.
"""

from __future__ import annotations

import copy
import math

import torch
from torch.nn import functional as F

from ..common.errors import ConfigError
from ..common.progress import say
from ..data.images import load_images
from ..methods.diffusion import (
    SCHEDULES,
    SOLVERS,
    SPACINGS,
    STRIDES,
    GaussianMixture,
    Sampler,
    Schedule,
    frechet_distance,
    mmd,
    sample,
)
from ..methods.optim import make_optimizer
from ..models.feature_net import FeatureNet, train_feature_net
from ..models.unet import UNet

HIGHER_IS_BETTER = ("classifier_acc",)


def validate(cfg) -> None:
    d = cfg.diffusion
    if d.schedule not in SCHEDULES:
        raise ConfigError(f"diffusion.schedule={d.schedule}: allowed: {', '.join(SCHEDULES)}")
    if d.stride not in STRIDES:
        raise ConfigError(f"diffusion.stride={d.stride}: allowed: {', '.join(STRIDES)}")
    if d.spacing not in SPACINGS:
        raise ConfigError(f"diffusion.spacing={d.spacing}: allowed: {', '.join(SPACINGS)}")
    bad = [s for s in cfg.eval.solvers if s not in SOLVERS]
    if bad:
        raise ConfigError(f"eval.solvers: unknown {bad[0]!r}; allowed: {', '.join(SOLVERS)}")
    too_many = [s for s in cfg.eval.steps if not 1 <= int(s) <= int(d.T)]
    if too_many:
        raise ConfigError(f"eval.steps: {too_many[0]} is outside 1..diffusion.T={d.T}")
    if int(cfg.eval.samples) % int(cfg.eval.shards) or int(cfg.eval.samples) // int(cfg.eval.shards) < 8:
        raise ConfigError(f"eval.samples={cfg.eval.samples} must split into eval.shards={cfg.eval.shards} "
                          f"groups of at least 8")


def samplers(cfg) -> list[Sampler]:
    out = []
    for solver in cfg.eval.solvers:
        etas = [float(e) for e in cfg.eval.etas] if solver == "eta" else [0.0]
        for eta in etas:
            for steps in cfg.eval.steps:
                out.append(Sampler(int(steps), solver, eta, stride=cfg.diffusion.stride,
                                   spacing=cfg.diffusion.spacing, clip_x0=bool(cfg.diffusion.clip_x0)))
    return out


# -- data and the feature network (models/feature_net.py) ---------------------------------------------
def load_data(cfg) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None, str]:
    """(train, reference, train labels, reference labels, name) with images in [-1, 1]."""
    data = load_images(cfg.data)
    return data.train * 2 - 1, data.val * 2 - 1, data.train_labels, data.val_labels, data.name


def feature_net(cfg, train, y_train, ref, y_ref, ctx) -> tuple[FeatureNet, str, float]:
    """A classifier trained on the same data (FID-<data>-classifier), or a fixed random one without labels."""
    return train_feature_net(train, y_train, ref, y_ref, cfg.data.name, int(cfg.eval.classifier_steps),
                             int(cfg.seed) + 7, ctx.device, ctx.track)


# -- the analytic arm -----------------------------------------------------------------------------------
def gmm_means(rows: list[dict]) -> dict:
    """(sampler, S) -> mean MMD² over shards, from the analytic arm's rows."""
    cells: dict = {}
    for r in rows:
        if r["arm"] == "gmm":
            cells.setdefault((r["sampler"], r["steps"]), []).append(r["mmd"])
    return {k: sum(v) / len(v) for k, v in cells.items()}


def gmm_grid(cfg, ctx) -> list[dict]:
    """Every sampler on the Gaussian mixture with the exact ε: MMD² to fresh true samples, per shard."""
    g = cfg.gmm
    mix = GaussianMixture(torch.tensor(g.means, dtype=torch.float64), torch.tensor(g.stds, dtype=torch.float64),
                          torch.tensor(g.weights, dtype=torch.float64))
    schedule = Schedule(int(cfg.diffusion.T), cfg.diffusion.schedule)
    eps = mix.eps(schedule)
    n, shards = int(g.samples), int(cfg.eval.shards)
    gen = torch.Generator().manual_seed(int(cfg.eval.seed))
    truth = mix.sample(n, gen)
    x_T = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    rows, grid = [], samplers(cfg)
    for sampler in ctx.track(grid, "analytic grid", total=len(grid)):
        noise = torch.Generator().manual_seed(int(cfg.eval.seed) + 1)
        x0 = sample(eps, x_T, schedule, sampler, noise)
        weights = torch.bincount(mix.mode_of(x0), minlength=len(mix.weights)).double() / n
        for k, idx in enumerate(torch.arange(n).chunk(shards)):
            rows.append({"arm": "gmm", "sampler": sampler.label, "steps": sampler.steps, "shard": k,
                         "mmd": mmd(x0[idx].float(), truth[idx].float()),
                         "mode_error": (weights - mix.weights).abs().sum().item()})
    return rows


# -- the run ------------------------------------------------------------------------------------------------
def ema_decay(decay: float, step: int, warmup: bool) -> float:
    """The EMA's decay at `step`. With warm-up (the usual schedule, as in TensorFlow's
    ExponentialMovingAverage with num_updates): min(decay, (1 + step) / (10 + step)), so the average
    forgets the random init within the first hundreds of steps instead of keeping decay^steps of it."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


def run(cfg, ctx) -> dict:
    rows, grid = gmm_grid(cfg, ctx), samplers(cfg)
    train, ref, y_train, y_ref, name = load_data(cfg)
    device = ctx.device
    schedule = Schedule(int(cfg.diffusion.T), cfg.diffusion.schedule)
    model = UNet(train.shape[1], int(cfg.model.width), tuple(cfg.model.mults), int(cfg.model.blocks)).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = make_optimizer(cfg.optimizer, model.parameters())
    steps, batch, decay = int(cfg.trainer.steps), int(cfg.trainer.batch_size), float(cfg.diffusion.ema)
    say(f"data {name}: train {tuple(train.shape)} reference {tuple(ref.shape)} | U-Net "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params | T={schedule.T} ({schedule.kind}, "
          f"ᾱ_T={float(schedule.abar[-1]):.2e}) | {steps} steps x batch {batch} | {len(grid)} samplers "
          f"({cfg.diffusion.stride} {cfg.diffusion.spacing} sub-sequences)")
    ctx.samples_per_step = batch
    for step in ctx.steps(steps, {"model": model, "ema": ema, "optimizer": optimizer}):
        g = torch.Generator().manual_seed(int(cfg.seed) * 1_000_003 + step)
        x0 = train[torch.randint(0, train.shape[0], (batch,), generator=g)].to(device)
        t = torch.randint(1, schedule.T + 1, (batch,), generator=g).to(device)
        noise = torch.randn(x0.shape, generator=g).to(device)
        loss = F.mse_loss(model(schedule.q_sample(x0, t, noise), t), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            rate = ema_decay(decay, step, bool(cfg.diffusion.ema_warmup))
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.lerp_(p, 1 - rate)
        if ctx.is_log_step(step):
            ctx.log(step, "train", loss=loss.item())
    ema.eval()
    model.eval()
    net, metric_name, classifier_acc = feature_net(cfg, train, y_train, ref, y_ref, ctx)
    with torch.no_grad():
        ref_features = net.features(ref.to(device)).cpu()
        floor = frechet_distance(net.features(train[:ref.shape[0]].to(device)).cpu(), ref_features)

    def eps_fn(x, t):
        return ema(x.float(), t).to(x.dtype)

    n, shards = int(cfg.eval.samples), int(cfg.eval.shards)
    gen = torch.Generator().manual_seed(int(cfg.eval.seed))
    x_T = torch.randn((n,) + tuple(train.shape[1:]), generator=gen).to(device)
    grids, fids = {}, {}
    for sampler in ctx.track(grid, "sampler grid", total=len(grid)):
        noise = torch.Generator().manual_seed(int(cfg.eval.seed) + 1)
        out = torch.nan_to_num(sample(eps_fn, x_T, schedule, sampler, noise), 0.0).clamp(-1, 1)
        with torch.no_grad():
            feats = torch.cat([net.features(out[i:i + 512]) for i in range(0, n, 512)]).cpu()
        per_shard = [frechet_distance(feats[idx], ref_features) for idx in torch.arange(n).chunk(shards)]
        fids[(sampler.label, sampler.steps)] = per_shard
        grids[(sampler.label, sampler.steps)] = out[:16].cpu()
        for k, value in enumerate(per_shard):
            rows.append({"arm": "images", "sampler": sampler.label, "steps": sampler.steps, "shard": k, "fid": value})
        if all(math.isfinite(v) for v in per_shard):
            ctx.log(sampler.steps, f"fid_{sampler.label}", fid=sum(per_shard) / shards)
    for (label, steps_), values in list(fids.items()):  # the η=1 minus η=0 gap, per shard (same x_T)
        if label == "eta1" and ("eta0", steps_) in fids:
            for k, (a, b) in enumerate(zip(values, fids[("eta0", steps_)])):
                rows.append({"arm": "images", "sampler": "gap_eta1_minus_eta0", "steps": steps_, "shard": k,
                             "fid": a - b})
                # the paper's "wide margin": the gap exceeds η = 0's own FID (27.7 > 13.4 at S = 10)
                rows.append({"arm": "images", "sampler": "gap_minus_eta0_fid", "steps": steps_, "shard": k,
                             "fid": a - 2 * b})
    # diagnostic: the raw (non-EMA) weights with η = 0 and η = 1 at the fewest steps, on the same x_T
    few = min(int(s) for s in cfg.eval.steps)
    for sampler in [s for s in grid if s.steps == few and s.label in ("eta0", "eta1")]:
        noise = torch.Generator().manual_seed(int(cfg.eval.seed) + 1)
        out = torch.nan_to_num(sample(lambda x, t: model(x.float(), t).to(x.dtype), x_T, schedule, sampler, noise),
                               0.0).clamp(-1, 1)
        with torch.no_grad():
            feats = torch.cat([net.features(out[i:i + 512]) for i in range(0, n, 512)]).cpu()
        for k, idx in enumerate(torch.arange(n).chunk(shards)):
            rows.append({"arm": "raw_weights", "sampler": sampler.label, "steps": sampler.steps, "shard": k,
                         "fid": frechet_distance(feats[idx], ref_features)})
    ctx.claim_rows = rows
    ctx.details["metric"] = metric_name
    ctx.details["fid_table"] = {f"{label}@{s}": sum(v) / len(v) for (label, s), v in fids.items()}
    write_tables(ctx, cfg, fids, rows, metric_name, floor)
    plot(ctx, cfg, fids, rows, grids, ref, metric_name)
    mean = {k: sum(v) / len(v) for k, v in fids.items()}
    few, many = min(int(s) for s in cfg.eval.steps), max(int(s) for s in cfg.eval.steps)
    return {"classifier_acc": classifier_acc, "fid_floor": floor} | {
        f"fid_{label}_S{s}": mean.get((label, s), math.nan) for label in ("eta0", "eta1") for s in (few, many)}


def write_tables(ctx, cfg, fids, rows, metric_name, floor) -> None:
    steps = [int(s) for s in cfg.eval.steps]
    labels = list(dict.fromkeys(label for label, _ in fids))
    paper = {str(k): v for k, v in (cfg.get("paper_table") or {}).items()}
    lines = [f"# ddim_cifar: {metric_name} (lower is better), mean over {cfg.eval.shards} shards of "
             f"{int(cfg.eval.samples) // int(cfg.eval.shards)} samples; the DDIM paper's CIFAR-10 FID in brackets", "",
             f"Real-vs-real floor (train subset against the reference): {floor:.3f}.", "",
             "| sampler | " + " | ".join(f"S={s}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
    for label in labels:
        theirs = paper.get(label) or []
        cells = []
        for i, s in enumerate(steps):
            v = fids.get((label, s))
            cell = "" if v is None else f"{sum(v) / len(v):.3f}"
            if i < len(theirs) and len(steps) == len(theirs):
                cell += f" [{theirs[i]}]"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Analytic arm: 2-D Gaussian mixture with the exact ε, MMD² to the truth (x1000)", "",
              "| sampler | " + " | ".join(f"S={s}" for s in steps) + " |", "|---|" + "---|" * len(steps)]
    gmm = gmm_means(rows)
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(f"{1000 * gmm[(label, s)]:.2f}" if (label, s) in gmm else ""
                                                for s in steps) + " |")
    (ctx.run_dir / "tables.md").write_text("\n".join(lines) + "\n")


def plot(ctx, cfg, fids, rows, grids, ref, metric_name) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    steps = [int(s) for s in cfg.eval.steps]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    labels = list(dict.fromkeys(label for label, _ in fids))
    gmm = gmm_means(rows)
    for label in labels:
        axes[0].plot(steps, [sum(fids[(label, s)]) / len(fids[(label, s)]) for s in steps], marker="o", label=label)
        axes[1].plot(steps, [gmm[(label, s)] for s in steps], marker="o", label=label)
    axes[0].set(xscale="log", yscale="log", xlabel="sampling steps S", ylabel=metric_name,
                title=f"{cfg.data.name}: quality against steps")
    axes[1].set(xscale="log", yscale="symlog", xlabel="sampling steps S", ylabel="MMD² to the true mixture",
                title="analytic ε on a Gaussian mixture")
    axes[0].legend(fontsize=7)
    save_figure(ctx, "quality_vs_steps", fig)

    show = [(label, s) for s in (steps[0], steps[len(steps) // 2]) for label in ("eta0", "eta1", "ode_heun")
            if (label, s) in grids]
    fig, axes = plt.subplots(len(show) + 1, 16, figsize=(12, 0.85 * (len(show) + 1)))
    for row, key in enumerate(show + [("real", 0)]):
        images = ref[:16] if key[0] == "real" else grids[key]
        for i in range(16):
            img = ((images[i].float() + 1) / 2).clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy()
            axes[row, i].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
            axes[row, i].axis("off")
        axes[row, 0].set_title(key[0] if key[0] == "real" else f"{key[0]} S={key[1]}", fontsize=7, loc="left")
    save_figure(ctx, "samples", fig)
