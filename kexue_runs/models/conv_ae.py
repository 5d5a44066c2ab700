"""A small convolutional autoencoder with a latent grid and a pluggable quantizer in the middle."""

from __future__ import annotations

from torch import nn


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, plus the input (the VQGAN-style block)."""

    def __init__(self, channels: int):
        super().__init__()
        groups = 8 if channels % 8 == 0 else 1
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


def stage_widths(width: int, downsample: int) -> list[int]:
    return [width] + [2 * width] * downsample


LATENT_NORMS = ("groupnorm", "batchnorm", "none")


class Encoder(nn.Module):
    """(B, C, H, W) -> (B, code_dim, H / 2^downsample, W / 2^downsample).

    latent_norm: what keeps the pre-quantization z at a fixed scale (a quantizer's levels or codebook are
      `groupnorm`  GroupNorm on the features that the last 1x1 conv projects to z (Su's fsqae.py / vqvae.py)
      `batchnorm`  BatchNorm without affine on z itself (unit scale per code dimension)
      `none`       nothing: z's scale follows the projection's weights
    """

    def __init__(self, in_channels: int, code_dim: int, width: int, downsample: int, res_blocks: int,
                 latent_norm: str = "groupnorm"):
        super().__init__()
        if latent_norm not in LATENT_NORMS:
            raise ValueError(f"latent_norm must be one of {LATENT_NORMS}, got {latent_norm!r}")
        widths = stage_widths(width, downsample)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.SiLU(), nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)]
        layers += [ResBlock(widths[-1]) for _ in range(res_blocks)]
        if latent_norm == "groupnorm":
            layers.append(nn.GroupNorm(8 if widths[-1] % 8 == 0 else 1, widths[-1]))
        layers += [nn.SiLU(), nn.Conv2d(widths[-1], code_dim, 1)]
        if latent_norm == "batchnorm":
            layers.append(nn.BatchNorm2d(code_dim, affine=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, out_channels: int, code_dim: int, width: int, downsample: int, res_blocks: int):
        super().__init__()
        widths = stage_widths(width, downsample)[::-1]
        layers: list[nn.Module] = [nn.Conv2d(code_dim, widths[0], 1)]
        layers += [ResBlock(widths[0]) for _ in range(res_blocks)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.SiLU(), nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
        layers += [nn.SiLU(), nn.Conv2d(widths[-1], out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)
