"""ign: IGN as a GAN, and IGN against a GAN of matched capacity on the 2-D toys
(method: methods/ign.py; harness: models/toy2d.py).

Post: 幂等生成网络IGN：试图将判别和生成合二为一的GAN https://kexue.fm/archives/9969
  1. gradient identities by autograd in float64 on small MLPs: the frozen-copy and the stop-gradient single
     losses against alternating GAN gradients, and IGN's three weighted terms against the frozen-copy GAN
     loss with the reconstruction error as the critic;
  2. IGN (the paper's weights 20 / 20 / 2.5, tightness clamp 1.5, Adam 1e-4 with β1 = 0.5) against a
     non-saturating GAN whose generator and critic together have IGN's parameter count, same seeds:
     W1, modes, quality, the run-to-run spread, the idempotence gap |f(f(z)) - f(z)| and the reconstruction
     gap |f(x) - x| on held-out draws;
  3. at the image scale (sim.target=images, the default at scale=gpu), f is a DCGAN-style autoencoder on the
     data group's images and the GAN the DCGAN pair of the same width (models/dcgan.py): classifier FID, the
     classes covered (mode collapse), and the idempotence gap per pixel in gray levels of the data.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..common.progress import say
from ..methods.ign import frozen, gan_single_loss, gan_stop_gradient_loss, ign_loss, reconstruction_error
from ..models import dcgan
from ..models.feature_net import classes_covered, classifier_fid
from ..models.toy2d import mlp, sample_metrics, train_adversarial, train_adversarial_replicates


def gradients(loss, params) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, params, allow_unused=True))


def max_difference(a, b) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def identities(seed: int) -> dict:
    torch.manual_seed(seed)
    critic, generator = mlp(2, 1, 16, 2).double(), mlp(3, 2, 16, 2).double()
    x, z = torch.randn(32, 2, dtype=torch.float64), torch.randn(32, 3, dtype=torch.float64)
    theta, phi = list(critic.parameters()), list(generator.parameters())
    # alternating training: the critic's step on D(x) - D(G(z)), the generator's on D(G(z))
    d_step = gradients(critic(x).mean() - critic(generator(z).detach()).mean(), theta)
    g_step = gradients(critic(generator(z)).mean(), phi)
    single = gan_single_loss(critic, generator, frozen(critic), frozen(generator), x, z)
    both = gradients(single, theta + phi)
    sg = gradients(gan_stop_gradient_loss(critic, generator, x, z), theta + phi)
    out = {"frozen_copy_error": max_difference(both, d_step + g_step),
           "stop_gradient_error": max_difference(sg, d_step + g_step)}
    # IGN's loss (paper weights, no clamp) against the frozen-copy GAN loss with δ_f as the critic
    f = mlp(2, 2, 16, 2).double()
    f_frozen = frozen(f)
    z2 = torch.randn(32, 2, dtype=torch.float64)
    loss, _ = ign_loss(f, f_frozen, x, z2, clamp=None)
    as_gan = gan_single_loss(reconstruction_error(f), f, reconstruction_error(f_frozen), f_frozen, x, z2,
                             weights=(20.0, 20.0, 2.5))
    out["ign_as_gan_error"] = max_difference(gradients(loss, list(f.parameters())),
                                             gradients(as_gan, list(f.parameters())))
    return out


def validate(cfg) -> None:
    dcgan.validate_arena(cfg.sim, cfg.get("data"))


def train_ign(seed: int, sim, a: dcgan.Arena) -> dict:
    torch.manual_seed(seed)
    t, device = a.target, (a.scorer[2] if a.scorer else "cpu")
    if a.scorer is None:
        f = mlp(2, 2, int(sim.hidden), int(sim.layers))
    else:
        f = dcgan.autoencoder(tuple(t.images.shape[1:]), int(sim.width), int(sim.z_dim)).to(device)
    opt = torch.optim.Adam(f.parameters(), lr=float(sim.ign_lr), betas=(float(sim.beta1), 0.999))
    gen = torch.Generator().manual_seed(seed)
    batch = int(sim.batch)
    for _ in range(int(sim.iterations)):
        f_frozen = frozen(f)
        x = t.sample(batch, gen)
        x, z = x.to(device), torch.randn(x.shape, generator=gen).to(device)  # f's input: noise shaped like data
        loss, _ = ign_loss(f, f_frozen, x, z, float(sim.rec_weight), float(sim.idem_weight),
                           float(sim.tight_weight), float(sim.tight_clamp))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {"model": f, "params": sum(p.numel() for p in f.parameters())}


def train_gan(seed: int, sim, a: dcgan.Arena) -> dict:
    """A non-saturating GAN with G: 2 -> 2 and D: 2 -> 1 at width hidden/√2 (together about IGN's count); on
    images the DCGAN pair at f's width (the critic is f's encoder with a 1-unit output, the generator its
    decoder: about f's count)."""
    torch.manual_seed(seed)
    t, device = a.target, (a.scorer[2] if a.scorer else "cpu")
    if a.scorer is None:
        width = round(int(sim.hidden) / math.sqrt(2))
        generator, critic = mlp(2, 2, width, int(sim.layers)), mlp(2, 1, width, int(sim.layers))
        z_dim = 2
    else:
        shape = tuple(t.images.shape[1:])
        generator = dcgan.generator(int(sim.z_dim), shape, int(sim.width)).to(device)
        critic = dcgan.critic(shape, int(sim.width)).to(device)
        z_dim = int(sim.z_dim)
    softplus = torch.nn.functional.softplus
    gan_sim = {"beta1": float(sim.beta1), "lr": gan_lr(sim, a), "batch": int(sim.batch), "z_dim": z_dim,
               "d_steps": 1, "iterations": int(sim.iterations)}
    train_adversarial(generator, critic, lambda d, r, f: softplus(-d(r)).mean() + softplus(d(f)).mean(),
                      lambda d, r, f: softplus(-d(f)).mean(), t, _Cfg(gan_sim), seed, device=device)
    return {"model": generator, "params": sum(p.numel() for p in generator.parameters())
            + sum(p.numel() for p in critic.parameters())}


def gan_lr(sim, a: dcgan.Arena) -> float:
    """The GAN's learning rate: DCGAN's on images, the one measured to train the MLP pair on a 2-D target."""
    return float(sim.gan_lr if a.scorer is not None else sim.get("gan_lr_2d", sim.gan_lr))


def train_gans_batched(seeds: list[int], sim, a: dcgan.Arena) -> list[dict]:
    """train_gan for every seed at once on a 2-D target (toy2d.train_adversarial_replicates)."""
    width, softplus = round(int(sim.hidden) / math.sqrt(2)), torch.nn.functional.softplus
    gan_sim = {"beta1": float(sim.beta1), "lr": gan_lr(sim, a), "batch": int(sim.batch), "z_dim": 2,
               "d_steps": 1, "iterations": int(sim.iterations)}
    nets = train_adversarial_replicates(lambda: (mlp(2, 2, width, int(sim.layers)), mlp(2, 1, width, int(sim.layers))),
                                        lambda d, r, f: softplus(-d(r)).mean() + softplus(d(f)).mean(),
                                        lambda d, r, f: softplus(-d(f)).mean(), a.target, _Cfg(gan_sim), seeds)
    return [{"model": g, "params": sum(p.numel() for p in g.parameters()) + sum(p.numel() for p in c.parameters())}
            for g, c in nets]


class _Cfg(dict):
    """Attribute access and .get on a plain dict, for the harness's loop."""
    __getattr__ = dict.__getitem__


def evaluate(arm: str, model, seed: int, sim, a: dcgan.Arena) -> dict:
    gen = torch.Generator().manual_seed(10_000 + seed)
    t = a.target
    if a.scorer is not None:
        return evaluate_images(arm, model, gen, sim, a)
    with torch.no_grad():
        z = torch.randn(int(sim.eval_samples), 2, generator=gen)
        x = model(z)
        out = sample_metrics(x, t, gen, float(sim.bandwidth))
        if arm == "ign":
            out["idempotence_gap"] = float((model(x) - x).norm(dim=1).mean())
            data = t.sample(int(sim.eval_samples), gen)
            out["reconstruction_gap"] = float((model(data) - data).norm(dim=1).mean())
    return out


@torch.no_grad()
def evaluate_images(arm: str, model, gen, sim, a: dcgan.Arena) -> dict:
    """Classifier FID and classes covered of model samples; for IGN the per-pixel RMS of f(f(z)) - f(z) and of
    f(x) - x on held-out images, in the data's gray levels (one level = the step between pixel values)."""
    net, ref_features, device = a.scorer
    n = int(sim.eval_samples)
    shape = tuple(a.target.images.shape[1:])
    z = torch.randn((n,) + shape if arm == "ign" else (n, int(sim.z_dim)), generator=gen)
    x = torch.cat([model(z[i:i + 512].to(device)) for i in range(0, n, 512)]).cpu()
    out = {"fid": classifier_fid(net, x, ref_features, device), "modes": classes_covered(net, x, device)}
    if arm == "ign":
        def rms_levels(u, v):
            return float((u - v).pow(2).mean().sqrt()) / a.extra["gray_step"]

        again = torch.cat([model(x[i:i + 512].to(device)) for i in range(0, n, 512)]).cpu()
        data = a.target.sample(n, gen)
        rebuilt = torch.cat([model(data[i:i + 512].to(device)) for i in range(0, n, 512)]).cpu()
        out["idempotence_gap_levels"] = rms_levels(again, x)
        out["reconstruction_gap_levels"] = rms_levels(rebuilt, data)
    return out


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    results = identities(int(cfg.seed))
    say(f"identities (float64): frozen copies {results['frozen_copy_error']:.1e}, stop-gradient "
        f"{results['stop_gradient_error']:.1e}, IGN as a GAN {results['ign_as_gan_error']:.1e}")
    a = dcgan.arena(sim, cfg.data, int(cfg.seed) + 7, ctx.device, ctx.track)
    t, domain = a.target, a.domain
    if "metric" in a.extra:
        ctx.details["metric"] = a.extra["metric"]
        results |= {k: a.extra[k] for k in ("classifier_acc", "fid_floor")}
    jobs = [(a, r) for r in range(int(sim.replicates)) for a in ("ign", "gan")]
    samples = {}
    seeds = [1000 * int(cfg.seed) + r for r in range(int(sim.replicates))]
    gans = train_gans_batched(seeds, sim, a) if dcgan.batches(a, sim) else None  # the GAN arm's seeds at once
    for arm, r in ctx.track(jobs, f"IGN and a GAN x {int(sim.replicates)} seeds on {t.name}", total=len(jobs)):
        seed = seeds[r]
        trained = gans[r] if arm == "gan" and gans else (train_ign if arm == "ign" else train_gan)(seed, sim, a)
        m = evaluate(arm, trained["model"], seed, sim, a) | {"params": trained["params"]}
        ctx.log(r, arm, **m)
        ctx.claim_rows.append({"arm": arm, "replicate": r, "domain": domain} | m)
        with torch.no_grad():
            if a.scorer is None:
                z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(seed))
            else:
                shape = tuple(t.images.shape[1:])
                z = torch.randn((64,) + shape if arm == "ign" else (64, int(sim.z_dim)),
                                generator=torch.Generator().manual_seed(seed))
            samples[(arm, r)] = trained["model"](z.to(a.scorer[2] if a.scorer else "cpu")).cpu().numpy()
        for k, v in m.items():
            results.setdefault(f"{arm}_{k}", []).append(v)
    for key in [k for k, v in results.items() if isinstance(v, list)]:
        values = results[key]
        results[key] = float(np.mean(values))
        for distance in ("_w1", "_fid"):
            if key.endswith(distance):
                results[key.replace(distance, f"{distance}_seed_std")] = \
                    float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    plot(ctx, samples, results, a, sim)
    return results


def plot(ctx, samples, results, a: dcgan.Arena, sim) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    t, d = a.target, "w1" if a.scorer is None else "fid"
    seeds = min(3, int(sim.replicates))
    fig, axes = plt.subplots(2, seeds, figsize=(3.2 * seeds, 6.4), squeeze=False)
    for row, arm in enumerate(("ign", "gan")):
        for col in range(seeds):
            ax = axes[row][col]
            if a.scorer is not None:
                dcgan.image_grid(ax, samples[(arm, col)], f"{arm.upper()} seed {col}")
                continue
            ax.scatter(*samples[(arm, col)].T, s=2, alpha=0.4, color="C0" if arm == "ign" else "C1")
            if t.centres is not None:
                ax.scatter(*t.centres.T, marker="x", color="C3", s=30)
            ax.set(title=f"{arm.upper()} seed {col}", xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
            ax.tick_params(labelsize=6)
    name = d.upper() if d == "w1" else a.extra["metric"]
    fig.suptitle(f"{t.name}: IGN ({name} {results[f'ign_{d}']:.3f} ± {results[f'ign_{d}_seed_std']:.3f} over seeds) "
                 f"vs GAN ({name} {results[f'gan_{d}']:.3f} ± {results[f'gan_{d}_seed_std']:.3f})"
                 + ("; x: target modes" if a.scorer is None else ""), fontsize=8)
    save_figure(ctx, "ign", fig)
