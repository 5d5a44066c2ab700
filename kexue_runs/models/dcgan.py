"""The image scale of the GAN-family experiments: DCGAN-style networks for small images (8x8 digits, 28x28
Fashion-MNIST, 32x32 CIFAR-10), an image "target" with the 2-D toys' `sample(n, generator)`, so the same
alternating loop (models/toy2d.train_adversarial) trains both, and a training run scored by the Fréchet distance
in a project-trained classifier's features (models/feature_net.py: "FID-<data>-classifier", not Inception FID).

Networks (Radford et al. 2016's pattern, two resolution steps): the generator maps z through a linear layer to
a (2w, s/4, s/4) map, then two stride-2 transposed convolutions with BatchNorm and ReLU, and a 3x3 convolution
to the image's channels with tanh; the critic mirrors it with two stride-2 convolutions and LeakyReLU(0.2) and
no normalisation (a gradient penalty is per sample, which batch statistics would break), then a linear output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..common.costs import CostMeter
from ..common.errors import ConfigError
from ..common.progress import say
from ..methods.diffusion import frechet_distance
from .feature_net import FeatureNet, classes_covered, classifier_fid, train_feature_net
from .toy2d import mlp, sample_metrics, scatter_panel, target, train_adversarial, train_gan, train_gan_batched

GRAY_LEVELS = {"digits": 17}  # intensity levels of a data set's pixels (scikit-learn's digits: 0..16); else 8 bit


class ImageTarget:
    """Training images in [-1, 1] drawn with replacement, as a 2-D Target draws points."""

    def __init__(self, name: str, images: torch.Tensor):
        self.name, self.images, self.centres = name, images, None

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.images[torch.randint(0, len(self.images), (n,), generator=generator)]


def image_target(data_cfg, classifier_steps: int, seed: int, device, track):
    """The data group's images (in [-1, 1]) as a target, and its scorer: (net, held-out features, device) for a
    classifier trained on the images' labels; plus {classifier_acc, fid_floor (train against held-out images),
    metric (its name), gray_step, held_out (the held-out images themselves)}."""
    from ..data.images import load_images

    data = load_images(data_cfg)
    train, ref = data.train * 2 - 1, data.val * 2 - 1
    net, metric_name, acc = train_feature_net(train, data.train_labels, ref, data.val_labels, data.name,
                                              classifier_steps, seed, device, track)
    ref_features = net.features_of(ref, device)
    floor = frechet_distance(net.features_of(train[:len(ref)], device), ref_features)
    say(f"images: {data.name} train {tuple(train.shape)} held out {len(ref)} | {metric_name}: classifier "
        f"accuracy {acc:.3f}, real-vs-real floor {floor:.3f}")
    levels = GRAY_LEVELS.get(data.name, 256)
    return ImageTarget(data.name, train), (net, ref_features, device), {"classifier_acc": acc, "fid_floor": floor,
                                                                        "metric": metric_name,
                                                                        "gray_step": 2 / (levels - 1),
                                                                        "held_out": ref}


def image_grid(ax, samples: np.ndarray, title: str) -> None:
    """Up to 64 generated images (in [-1, 1]) as a square mosaic on a matplotlib axis."""
    x = (np.clip(samples[:64], -1, 1) + 1) / 2
    n, c, h, w = x.shape
    side = int(np.ceil(np.sqrt(n)))
    mosaic = np.ones((c, side * (h + 1), side * (w + 1)))
    for k in range(n):
        i, j = divmod(k, side)
        mosaic[:, i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = x[k]
    ax.imshow(mosaic[0] if c == 1 else mosaic.transpose(1, 2, 0), cmap="gray" if c == 1 else None,
              interpolation="nearest")
    ax.set(title=title, xticks=[], yticks=[])


def check_shape(shape) -> None:
    channels, height, width = shape
    if height != width or height % 4:
        raise ValueError(f"DCGAN nets need square images with a side divisible by 4; got {height}x{width}")


def generator(z_dim: int, shape, width: int) -> nn.Sequential:
    check_shape(shape)
    channels, side, _ = shape
    s0 = side // 4
    return nn.Sequential(
        nn.Linear(z_dim, 2 * width * s0 * s0), nn.Unflatten(1, (2 * width, s0, s0)), nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, channels, 3, padding=1), nn.Tanh())


def autoencoder(shape, width: int, z_dim: int) -> nn.Sequential:
    """An image-to-image map for IGN's f: the critic's convolutions down to a z_dim code, then the generator."""
    channels, side, _ = shape
    s0 = side // 4
    encoder = critic(shape, width)[:-1]  # everything but the critic's linear output
    return nn.Sequential(encoder, nn.Linear(2 * width * s0 * s0, z_dim), generator(z_dim, shape, width))


def critic(shape, width: int) -> nn.Sequential:
    check_shape(shape)
    channels, side, _ = shape
    s0 = side // 4
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(2 * width * s0 * s0, 1))


def train_image_gan(d_loss, g_loss, t: ImageTarget, sim, seed: int, net: FeatureNet, ref_features: torch.Tensor,
                    device) -> dict:
    """A DCGAN pair (width sim.width) trained by train_adversarial with the given losses, scored sim.evaluations
    times by the classifier FID of sim.eval_samples samples against the held-out images; the trace, the cost
    per iteration and 64 samples for the figure. Samples are drawn in training mode (batch statistics), as the
    generator is trained."""
    torch.manual_seed(seed)
    shape = tuple(t.images.shape[1:])
    g = generator(int(sim.z_dim), shape, int(sim.width)).to(device)
    d = critic(shape, int(sim.width)).to(device)
    meter = CostMeter(device)
    eval_gen = torch.Generator().manual_seed(10_000 + seed)

    def draw(n: int, gen: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            z = torch.randn(n, int(sim.z_dim), generator=gen)
            return torch.cat([g(z[i:i + 512].to(device)) for i in range(0, n, 512)]).cpu()

    def evaluate(_it):
        x = draw(int(sim.eval_samples), eval_gen)
        return {"fid": classifier_fid(net, x, ref_features, device), "modes": classes_covered(net, x, device)}

    trace = train_adversarial(g, d, d_loss, g_loss, t, sim, seed, meter,
                              evaluate_every=max(1, int(sim.iterations) // int(sim.evaluations)), on_eval=evaluate,
                              device=device)
    samples = draw(64, torch.Generator().manual_seed(seed))
    return {"final": trace[-1], "trace": trace, "cost": meter.summary(), "samples": samples.numpy()}


# -- one entry for the GAN experiments: a 2-D target or images ---------------------------------------------------

@dataclass
class Arena:
    """Where a GAN experiment's arms are trained and compared: a 2-D target (MLPs, W1) or the data group's
    images (DCGAN nets, classifier FID)."""
    target: object
    scorer: tuple | None = None      # (feature net, held-out features, device) on images
    distance: str = "w1"             # the final metric every comparison reads
    domain: str = "toy2d"            # the claim rows' `domain`, which the checks' regimes select
    extra: dict = field(default_factory=dict)  # classifier_acc, fid_floor, metric (its name) on images

    @property
    def device(self):
        return self.scorer[2] if self.scorer else "cpu"

    @property
    def shape(self) -> tuple:
        """One sample's shape: (2,) on a 2-D target, (channels, side, side) on images."""
        return (2,) if self.scorer is None else tuple(self.target.images.shape[1:])

    def networks(self, sim, critic_activation: str = "relu") -> tuple[nn.Module, nn.Module]:
        """A fresh (generator from sim.z_dim, critic): MLPs of sim.hidden x sim.layers on a 2-D target (the critic's
        activation named), the DCGAN pair of sim.width on images; on the arena's device."""
        if self.scorer is None:
            g = mlp(int(sim.z_dim), 2, int(sim.hidden), int(sim.layers))
        else:
            g = generator(int(sim.z_dim), self.shape, int(sim.width)).to(self.device)
        return g, self.critic(sim, critic_activation)

    def critic(self, sim, activation: str = "relu") -> nn.Module:
        """A fresh critic alone (the particle flow has no generator)."""
        if self.scorer is None:
            return mlp(2, 1, int(sim.hidden), int(sim.layers), activation)
        return critic(self.shape, int(sim.width)).to(self.device)

    def score(self, x: torch.Tensor, gen: torch.Generator, sim) -> dict:
        """A model sample's distances to held-out data: the toys' sample_metrics (a fresh target draw of the same
        size), or on images the classifier FID and the classes covered."""
        if self.scorer is None:
            return sample_metrics(x.cpu(), self.target, gen, float(sim.bandwidth))
        net, ref_features, device = self.scorer
        return {"fid": classifier_fid(net, x, ref_features, device), "modes": classes_covered(net, x, device)}


def validate_arena(sim, data_cfg) -> None:
    """sim.target=images needs an image data group whose side the two stride-2 layers divide."""
    if sim.target != "images":
        return
    if not data_cfg or not data_cfg.get("name"):
        raise ConfigError("sim.target=images needs an image data set; allowed: data=digits, data=cifar10, "
                          "data=fashion_mnist")
    side = data_cfg.get("patch")
    if side and int(side) % 4:
        raise ConfigError(f"data={data_cfg.name}: {side}x{side} images; the DCGAN nets need a side divisible by 4")


def arena(sim, data_cfg, seed: int, device, track) -> Arena:
    """sim.target names a 2-D target (models/toy2d.py) or is "images" (the data group's, scored by a classifier
    trained with `seed` for sim.classifier_steps steps)."""
    if sim.target != "images":
        return Arena(target(str(sim.target)))
    t, scorer, extra = image_target(data_cfg, int(sim.classifier_steps), seed, device, track)
    return Arena(t, scorer, "fid", "images", extra)


def train_in(a: Arena, d_loss, g_loss, sim, seed: int, critic_activation: str = "relu") -> dict:
    """One arm: MLPs on the 2-D target, or the DCGAN pair on images; the same return either way."""
    if a.scorer is None:
        return train_gan(d_loss, g_loss, a.target, sim, seed, critic_activation)
    return train_image_gan(d_loss, g_loss, a.target, sim, seed, *a.scorer)


def batches(a: Arena, sim) -> bool:
    """Whether an arm's seeds train as one batched computation: sim.batched on a 2-D target. The DCGAN nets on
    images keep the plain loop (convolutions and BatchNorm, not stacked MLPs)."""
    return bool(sim.get("batched", False)) and a.scorer is None


def train_in_batched(a: Arena, d_loss, g_loss, sim, seeds: list[int], critic_activation: str = "relu") -> list[dict]:
    """train_in for every seed at once on a 2-D target (toy2d.train_gan_batched): one result per seed."""
    return train_gan_batched(d_loss, g_loss, a.target, sim, seeds, critic_activation)


def sample_panel(ax, out: dict, a: Arena, label: str) -> None:
    """One arm's samples: a scatter over the target's modes, or an image mosaic; its final distance in the title."""
    title = f"{label}\n{'FID' if a.distance == 'fid' else 'W1'} {out['final'][a.distance]:.3f}"
    if a.scorer is None:
        scatter_panel(ax, out["samples"], a.target, title)
    else:
        image_grid(ax, out["samples"], title)
