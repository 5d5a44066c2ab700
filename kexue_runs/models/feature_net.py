"""The image-quality yardstick shared by the image experiments (ddim_cifar, gan_qp at the image scale): a small
classifier the run trains on the data's own labels, and the Fréchet distance between two sets of images in its
feature space. Labelled "FID-<data>-classifier", never "FID": Inception FID needs weights this project cannot
download. Data without labels falls back to a fixed random conv net ("FD-randconv"), a much weaker proxy.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..methods.diffusion import frechet_distance


class FeatureNet(nn.Module):
    def __init__(self, channels: int, classes: int = 10, dim: int = 32):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, dim))
        self.head = nn.Linear(dim, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.body(x)))

    @torch.no_grad()
    def features_of(self, x: torch.Tensor, device, batch: int = 512) -> torch.Tensor:
        """Features of many images, in batches on `device`, returned on the CPU."""
        return torch.cat([self.features(x[i:i + batch].to(device)) for i in range(0, len(x), batch)]).cpu()


def train_feature_net(train, y_train, ref, y_ref, data_name: str, steps: int, seed: int, device,
                      track) -> tuple[FeatureNet, str, float]:
    """(net, metric name, held-out accuracy): Adam 2e-3, batch 128, `steps` steps on (train, y_train), images in
    [-1, 1]; without labels a fixed random net and accuracy nan. `track` is the run's progress (ctx.track)."""
    torch.manual_seed(seed)
    net = FeatureNet(train.shape[1]).to(device)
    if y_train is None:
        return net.eval(), "FD-randconv", math.nan
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in track(range(steps), "classifier", total=steps):
        idx = torch.randint(0, train.shape[0], (128,), generator=g)
        loss = F.cross_entropy(net(train[idx].to(device)), y_train[idx].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(ref.to(device)).argmax(-1).cpu() == y_ref).float().mean().item()
    return net, f"FID-{data_name}-classifier", acc


def classifier_fid(net: FeatureNet, images: torch.Tensor, ref_features: torch.Tensor, device) -> float:
    """The Fréchet distance between `images` and the reference set (its features precomputed)."""
    return frechet_distance(net.features_of(images, device), ref_features)


@torch.no_grad()
def classes_covered(net: FeatureNet, images: torch.Tensor, device, classes: int = 10) -> int:
    """Mode coverage on images: the classes the classifier assigns at least 10% of their fair share (n / classes)
    of the samples, as the 2-D toys count a mode."""
    predicted = torch.cat([net(images[i:i + 512].to(device)).argmax(-1).cpu() for i in range(0, len(images), 512)])
    counts = torch.bincount(predicted, minlength=classes)
    return int((counts >= max(1.0, 0.1 * len(images) / classes)).sum())
