"""fsq_vs_vq: FSQ against VQ-VAE (straight-through and rotation trick) across codebook sizes.

Posts: 简单得令人尴尬的FSQ https://kexue.fm/archives/9826 and VQ的旋转技巧
https://kexue.fm/archives/10489. One run trains one autoencoder with one quantizer and reports,
on a fixed validation set: reconstruction MSE, codebook utilization (fraction of codes used),
code perplexity and the codebook loss ||q - z||^2. Images enter the model in [-1, 1] (as in the FSQ
paper's setups), so `mse` is on that scale (4x the [0, 1] pixel MSE). The claim lives in
configs/experiment/fsq_vs_vq.yaml.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..common.errors import ConfigError
from ..common.progress import say
from ..common.runfiles import read_metrics
from ..data import batch_indices
from ..data.images import load_images
from ..methods.fsq import BOUNDS, FSQ, PAPER_LEVELS, levels_for
from ..methods.optim import make_optimizer
from ..methods.vq import INITS, VectorQuantizer
from ..models.conv_ae import Decoder, Encoder

QUANTIZERS = ("fsq", "vq_ste", "vq_rotation")
HIGHER_IS_BETTER = ("utilization", "perplexity", "codes_used", "train_utilization", "train_perplexity",
                    "train_codes_used")
DATA_PARALLEL = True  # runs under torchrun: each rank trains its shard of the global batch


def fsq_levels(q_cfg) -> list[int]:
    return levels_for(int(q_cfg.codebook_size)) if q_cfg.levels == "auto" else [int(v) for v in q_cfg.levels]


def validate(cfg) -> None:
    q = cfg.quantizer
    if q.name not in QUANTIZERS:
        raise ConfigError(f"quantizer={q.name}: unknown; allowed: {', '.join(QUANTIZERS)}")
    if int(q.codebook_size) < 1:
        raise ConfigError(f"quantizer.codebook_size={q.codebook_size}: the codebook is empty; it must be >= 1")
    if q.name == "fsq":
        if q.levels == "auto" and int(q.codebook_size) not in PAPER_LEVELS:
            raise ConfigError(f"quantizer.codebook_size={q.codebook_size}: no FSQ level table entry; allowed: "
                              f"{', '.join(map(str, PAPER_LEVELS))}, or set quantizer.levels=[L1,L2,...]")
        if q.levels != "auto" and (not isinstance(q.levels, (list, tuple)) and not hasattr(q.levels, "__iter__")):
            raise ConfigError(f"quantizer.levels={q.levels}: must be 'auto' or a list of integers >= 2")
        if q.levels != "auto" and not all(isinstance(v, int) and not isinstance(v, bool) for v in q.levels):
            raise ConfigError(f"quantizer.levels={list(q.levels)}: every FSQ level must be an integer >= 2; "
                              f"allowed: auto, or a list like [8,5,5,5]")
        levels = fsq_levels(q)
        if not levels or any(level < 2 for level in levels):
            raise ConfigError(f"quantizer.levels={levels}: every FSQ level must be >= 2 (the paper advises >= 5)")
        if q.bound not in BOUNDS:
            raise ConfigError(f"quantizer.bound={q.bound}: allowed: {', '.join(BOUNDS)}")
    else:
        if q.init not in INITS:
            raise ConfigError(f"quantizer.init={q.init}: allowed: {', '.join(INITS)}")
        if int(q.dim) < 1:
            raise ConfigError(f"quantizer.dim={q.dim}: must be >= 1")
    side = int(cfg.data.patch) // 2 ** int(cfg.model.downsample)
    if side < 1 or int(cfg.data.patch) % 2 ** int(cfg.model.downsample):
        raise ConfigError(f"model.downsample={cfg.model.downsample}: a {cfg.data.patch}px image must divide "
                          f"by 2^downsample; allowed: 1..{int(math.log2(int(cfg.data.patch) & -int(cfg.data.patch)))}")


class QuantizedAutoencoder(nn.Module):
    def __init__(self, channels: int, model_cfg, q_cfg, generator: torch.Generator):
        super().__init__()
        if q_cfg.name == "fsq":
            self.quantizer = FSQ(fsq_levels(q_cfg), bound=q_cfg.bound)
            code_dim = self.quantizer.dim
        else:
            gradient = "ste" if q_cfg.name == "vq_ste" else "rotation"
            self.quantizer = VectorQuantizer(int(q_cfg.codebook_size), int(q_cfg.dim), gradient,
                                             q_cfg.init, generator)
            code_dim = int(q_cfg.dim)
        args = (code_dim, int(model_cfg.width), int(model_cfg.downsample), int(model_cfg.res_blocks))
        self.encoder = Encoder(channels, *args, latent_norm=model_cfg.get("latent_norm", "none"))
        self.decoder = Decoder(channels, *args)

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> latent vectors (B*h*w, d)."""
        z = self.encoder(x)
        return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), z.shape

    def forward(self, x: torch.Tensor) -> dict:
        z, shape = self.encode(x)
        if isinstance(self.quantizer, FSQ):
            q, indices, codebook_loss = self.quantizer(z)
            commitment_loss = torch.zeros((), device=x.device)
        else:
            q, indices, codebook_loss, commitment_loss = self.quantizer(z)
        b, d, h, w = shape
        x_hat = self.decoder(q.reshape(b, h, w, d).permute(0, 3, 1, 2))
        return {"x_hat": x_hat, "indices": indices, "codebook_loss": codebook_loss,
                "commitment_loss": commitment_loss, "z": z}


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels -> [-1, 1]."""
    return x * 2 - 1


def loss_terms(out: dict, x: torch.Tensor, loss_cfg) -> tuple[torch.Tensor, torch.Tensor]:
    mse = F.mse_loss(out["x_hat"], x)
    total = mse + loss_cfg.codebook_weight * out["codebook_loss"] + loss_cfg.commitment_weight * out["commitment_loss"]
    return total, mse


@torch.no_grad()
def code_counts(model: QuantizedAutoencoder, images: torch.Tensor, batch_size: int, ctx, description: str):
    """Code counts, summed squared error, codebook loss and pre-quantization |z| over `images`."""
    counts = torch.zeros(model.codebook_size, dtype=torch.long)
    sq_err = codebook = z_abs = 0.0
    extreme = 0
    batches = range(0, images.shape[0], batch_size)
    for start in ctx.track(batches, description, total=len(batches)):
        x = to_model_range(images[start:start + batch_size].to(ctx.device))
        out = model(x)
        z = out["z"]
        sq_err += F.mse_loss(out["x_hat"], x, reduction="sum").item()
        codebook += out["codebook_loss"].item() * x.shape[0]
        counts += torch.bincount(out["indices"].cpu(), minlength=model.codebook_size)
        z_abs += z.abs().mean().item() * x.shape[0]
        if isinstance(model.quantizer, FSQ):  # digits at the lowest or highest level: a saturated bound
            digits = torch.round(model.quantizer.to_unit_interval(z))
            extreme += ((digits == 0) | (digits == model.quantizer._levels - 1)).float().mean().item() * x.shape[0]
    return counts, sq_err, codebook, z_abs, extreme


def usage(counts: torch.Tensor) -> dict:
    p = counts.float() / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    return {"utilization": (counts > 0).float().mean().item(), "perplexity": math.exp(entropy),
            "codes_used": float((counts > 0).sum().item())}


def latents_per_image(model_cfg, data) -> int:
    return (data.shape[1] // 2 ** int(model_cfg.downsample)) ** 2


@torch.no_grad()
def evaluate(model: QuantizedAutoencoder, val: torch.Tensor, train_probe: torch.Tensor, batch_size: int,
             ctx) -> tuple[dict, torch.Tensor]:
    """Validation metrics, and code usage on a fixed probe of training images (both with >= 20 latents per
    code when the sizes allow it); with the validation code counts (the usage figure's)."""
    model.eval()
    counts, sq_err, codebook, z_abs, extreme = code_counts(model, val, batch_size, ctx, "eval")
    train_counts = code_counts(model, train_probe, batch_size, ctx, "eval (train latents)")[0]
    model.train()
    n = val.shape[0]
    out = {"mse": sq_err / val.numel(), "codebook_loss": codebook / n, "z_abs_mean": z_abs / n} | usage(counts)
    out |= {f"train_{k}": v for k, v in usage(train_counts).items()}
    out["latents_per_code"] = float(counts.sum().item() / model.codebook_size)
    if isinstance(model.quantizer, FSQ):
        out["extreme_digit_fraction"] = extreme / n
    return out, counts


def probe_size(q_cfg, model_cfg, data) -> int:
    """Training images for the usage probe: as many as the validation set, and at least enough latents to
    give every code 20 chances (capped by the training set)."""
    codebook = math.prod(fsq_levels(q_cfg)) if q_cfg.name == "fsq" else int(q_cfg.codebook_size)
    needed = math.ceil(20 * codebook / latents_per_image(model_cfg, data))
    return min(data.train.shape[0], max(data.val.shape[0], needed))


def run(cfg, ctx) -> dict:
    data = load_images(cfg.data)
    device, steps, batch_size = ctx.device, int(cfg.trainer.steps), int(cfg.trainer.batch_size)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    model = QuantizedAutoencoder(data.shape[0], cfg.model, cfg.quantizer, generator).to(device)
    net = ctx.dist.wrap(model, device)  # DDP under torchrun (rank 0's weights everywhere); `model` otherwise
    optimizer = make_optimizer(cfg.optimizer, model.parameters())
    latents = data.train.shape[0] * latents_per_image(cfg.model, data)
    probe = data.train[:probe_size(cfg.quantizer, cfg.model, data)]
    val_per_code = data.val.shape[0] * latents_per_image(cfg.model, data) / model.codebook_size
    say(f"data {data.name}: train {tuple(data.train.shape)} val {tuple(data.val.shape)} | "
          f"params {sum(p.numel() for p in model.parameters()) / 1e6:.3f}M | codebook {model.codebook_size} "
          f"({cfg.quantizer.name}{', levels ' + str(model.quantizer.levels) if cfg.quantizer.name == 'fsq' else ''})"
          f" | train latents {latents} | val latents per code {val_per_code:.1f} | steps {steps} x batch {batch_size}"
          f" | latent norm {cfg.model.get('latent_norm', 'none')}")
    if cfg.quantizer.name != "fsq" and cfg.quantizer.init == "kmeans":
        with torch.no_grad():
            z, _ = model.encode(to_model_range(data.train[:4096].to(device)))
        model.quantizer.kmeans_init(z, iters=int(cfg.quantizer.kmeans_iters), seed=int(cfg.seed))
    ctx.samples_per_step = batch_size
    val_metrics: dict = {}
    for step in ctx.steps(steps, {"model": model, "optimizer": optimizer}):
        batch = ctx.dist.shard(batch_indices(data.train.shape[0], batch_size, int(cfg.seed), step))
        x = to_model_range(data.train[batch].to(device))
        out = net(x)
        loss, mse = loss_terms(out, x, cfg.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ctx.is_log_step(step):  # global-batch means (every rank takes part in the reduction)
            terms = {"loss": loss, "mse": mse, "codebook_loss": out["codebook_loss"]}
            ctx.log(step, "train", **{k: ctx.dist.mean(v).item() for k, v in terms.items()})
        if ctx.is_eval_step(step, steps) and ctx.is_main:
            val_metrics, val_counts = evaluate(model, data.val, probe, 512, ctx)
            ctx.log(step + 1, "val", **val_metrics)
    if not ctx.is_main:
        return {}
    if not val_metrics:  # resumed after the last step: evaluate the restored model once
        val_metrics, val_counts = evaluate(model, data.val, probe, 512, ctx)
    plot_run(model, data.val, val_counts, ctx)  # the last step always evaluates: these are the final model's
    final = {"val/" + k: v for k, v in val_metrics.items()} | {"codebook_size_actual": float(model.codebook_size)}
    return final | half_budget(read_metrics(ctx.run_dir), steps, val_metrics, model.codebook_size)


def half_budget(rows: list[dict], steps: int, end: dict, codebook_size: int) -> dict:
    """Usage against training length (#28): the validation readings at half the budget (the last evaluation at
    or before steps / 2, read back from metrics.jsonl so a resumed run has them too), and how far the second
    half moved utilization against the shortfall still left: rise / (1 - utilization at the end). Below 0.5,
    one more budget (two halves) at the second half's rate would not bring the codebook to full use (a rise
    that slows, as usage curves do, gets there later still); a falling utilization gives a negative ratio."""
    evals = [r for r in rows if r.get("split") == "val" and r["step"] <= steps / 2 and "utilization" in r]
    if not evals:
        return {}
    half = evals[-1]
    rise = end["utilization"] - half["utilization"]
    shortfall = max(1.0 - end["utilization"], 1.0 / codebook_size)  # full use: one code short at most
    return {"val/half_step": float(half["step"]), "val/utilization_half": half["utilization"],
            "val/codes_used_half": half["codes_used"], "val/mse_half": half["mse"],
            "val/usage_rise_over_shortfall": rise / shortfall}


@torch.no_grad()
def plot_run(model: QuantizedAutoencoder, val: torch.Tensor, counts: torch.Tensor, ctx) -> None:
    """Reconstructions beside originals, and the sorted code-usage histogram."""
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    model.eval()
    x = val[:16].to(ctx.device)
    x_hat = ((model(to_model_range(x))["x_hat"] + 1) / 2).clamp(0, 1).cpu()
    # one image of two rows of 16 tiles (a 1-pixel white gap): one axis draws in a fraction of 32 axes' time
    tiles = torch.nn.functional.pad(torch.stack([x.cpu().float(), x_hat.float()]), (0, 1, 0, 1), value=1.0)
    rows, n, c, h, w = tiles.shape
    grid = tiles.permute(0, 3, 1, 4, 2).reshape(rows * h, n * w, c)
    fig, ax = plt.subplots(figsize=(12, 1.8))
    ax.imshow(grid.squeeze(-1).numpy(), cmap="gray" if c == 1 else None, interpolation="nearest")
    ax.set_yticks([h / 2, h * 1.5], ["val", "reconstruction"], fontsize=8)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    save_figure(ctx, "reconstructions", fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    ranked = counts.sort(descending=True).values.numpy()
    ax.fill_between(range(1, len(ranked) + 1), ranked, step="mid", lw=0)  # one polygon, not a bar per code
    ax.set(xlabel="code (sorted by use)", ylabel="count on val", yscale="symlog", xlim=(0.5, len(ranked) + 0.5),
           title=f"code usage: {(counts > 0).float().mean():.1%} of {model.codebook_size}")
    save_figure(ctx, "code_usage", fig)
    model.train()
