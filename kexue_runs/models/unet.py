"""A small U-Net for ε-prediction: residual blocks with a sinusoidal time embedding, one skip per level."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sinusoidal embedding of integer timesteps (9181: fixed beats learned at small σ)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(temb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class UNet(nn.Module):
    def __init__(self, channels: int, width: int = 32, mults: tuple[int, ...] = (1, 2), blocks: int = 1):
        super().__init__()
        self.width, self.t_dim = width, 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, self.t_dim), nn.SiLU(), nn.Linear(self.t_dim, self.t_dim))
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        widths = [width * m for m in mults]
        self.down, self.downsample, self.up = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = width
        for i, w in enumerate(widths):
            self.down.append(nn.ModuleList(ResBlock(c if b == 0 else w, w, self.t_dim) for b in range(blocks)))
            last = i == len(widths) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(w, w, 3, stride=2, padding=1))
            c = w
        self.mid = ResBlock(c, c, self.t_dim)
        for w in reversed(widths):
            self.up.append(nn.ModuleList([ResBlock(c + w, w, self.t_dim)]
                                         + [ResBlock(w, w, self.t_dim) for _ in range(blocks - 1)]))
            c = w
        self.out = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(time_embedding(t, self.width))
        h = self.stem(x)
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, temb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, temb)
        for blocks in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest") if h.shape[-1] != skip.shape[-1] else h
            h = torch.cat([h, skip], dim=1)
            for block in blocks:
                h = block(h, temb)
        return self.out(h)
