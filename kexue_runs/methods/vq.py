"""VQ的旋转技巧：梯度直通估计的一般推广 (the VQ rotation trick: a generalization of straight-through)
https://kexue.fm/archives/10489

Vector quantization replaces z by its nearest codeword q. The forward value is always q; what
differs is the gradient the encoder sees, written as z_q = sg[G] z + sg[q - G z], i.e. dq/dz := G:

  `ste`       G = I                          (VQ-VAE's straight-through estimator)
  `rotation`  G = (|q| / |z|) R, with R the rotation taking z/|z| to q/|q|:
              R = I + 2 q~ z~^T - (q~ + z~)(q~ + z~)^T / (1 + cos theta)

The codebook learns from ||sg[z] - q||^2 and the encoder is held near it by the commitment term
beta ||z - sg[q]||^2. Su's finding: with a small-norm codebook init (|q| << |z|) the factor
|q|/|z| shrinks the reconstruction gradient, commitment wins, and the codebook collapses; the
official code initialises the codebook by k-means on encoder outputs, which avoids that.

Su's own VQ-VAE (bojone/FSQ vqvae.py, lecun_normal) and MaskGIT's VQ, the FSQ paper's baseline
(variance scaling, fan_in), both draw the (K, d) codebook with variance 1/K: `fan_in` here, so
|q| ~ |z| / sqrt(K) against a normalized z.
"""

from __future__ import annotations

import torch
from torch import nn

GRADIENTS = ("ste", "rotation")
INITS = ("fan_in", "normal", "small_norm", "uniform", "kmeans")


def straight_through(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward q, backward identity: z + sg[q - z]."""
    return z + (q - z).detach()


def rotation_trick(z: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Forward q, backward G = (|q|/|z|) R applied row-wise to z (..., d), without forming R."""
    z_norm = z.norm(dim=-1, keepdim=True).clamp_min(eps)
    q_norm = q.norm(dim=-1, keepdim=True).clamp_min(eps)
    z_hat = (z / z_norm).detach()
    q_hat = (q / q_norm).detach()
    w = z_hat + q_hat
    cos = (z_hat * q_hat).sum(-1, keepdim=True)
    rz = (z + 2 * q_hat * (z_hat * z).sum(-1, keepdim=True)
          - w * (w * z).sum(-1, keepdim=True) / (1 + cos).clamp_min(eps))
    gz = (q_norm / z_norm).detach() * rz
    return gz + (q - gz).detach()


def rotation_matrix(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The closed-form G = (|q|/|z|) R for single vectors z, q (d,): the reference for tests."""
    z_hat, q_hat = z / z.norm(), q / q.norm()
    w = z_hat + q_hat
    eye = torch.eye(z.numel(), dtype=z.dtype)
    r = eye + 2 * torch.outer(q_hat, z_hat) - torch.outer(w, w) / (1 + z_hat @ q_hat)
    return (q.norm() / z.norm()) * r


class VectorQuantizer(nn.Module):
    """z (N, d) -> (q with the chosen gradient, indices, codebook loss, commitment loss)."""

    def __init__(self, codebook_size: int, dim: int, gradient: str = "ste", init: str = "normal",
                 generator: torch.Generator | None = None):
        super().__init__()
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        self.codebook_size, self.dim, self.gradient, self.init = codebook_size, dim, gradient, init
        if init == "fan_in":  # variance 1/K (Keras/flax count K as the fan-in of a (K, d) codebook)
            weight = torch.randn(codebook_size, dim, generator=generator) / codebook_size ** 0.5
        elif init == "small_norm":  # U(-1/K, 1/K), the common PyTorch VQ-VAE init: |q| << |z|
            weight = (torch.rand(codebook_size, dim, generator=generator) * 2 - 1) / codebook_size
        elif init == "uniform":  # the VQ-VAE paper's code (uniform unit scaling): U(-sqrt(3/d), sqrt(3/d))
            weight = (torch.rand(codebook_size, dim, generator=generator) * 2 - 1) * (3 / dim) ** 0.5
        else:  # normal; kmeans starts here and is overwritten by kmeans_init()
            weight = torch.randn(codebook_size, dim, generator=generator)
        self.codebook = nn.Parameter(weight)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        distances = (z.pow(2).sum(-1, keepdim=True) - 2 * z @ self.codebook.t()
                     + self.codebook.pow(2).sum(-1))
        return distances.argmin(-1)

    def forward(self, z: torch.Tensor):
        z = z.float()  # quantization always in float32
        indices = self.nearest(z.detach())
        q = self.codebook[indices]
        codebook_loss = (q - z.detach()).pow(2).mean()
        commitment_loss = (z - q.detach()).pow(2).mean()
        out = straight_through(z, q) if self.gradient == "ste" else rotation_trick(z, q)
        return out, indices, codebook_loss, commitment_loss

    @torch.no_grad()
    def kmeans_init(self, z: torch.Tensor, iters: int = 10, seed: int = 0) -> None:
        """Lloyd's k-means on encoder outputs z (N, d); empty clusters keep a random data point."""
        gen = torch.Generator().manual_seed(seed)
        z = z.float().cpu()
        centers = z[torch.randint(0, z.shape[0], (self.codebook_size,), generator=gen)].clone()
        for _ in range(iters):
            assign = torch.cdist(z, centers).argmin(-1)
            sums = torch.zeros_like(centers).index_add_(0, assign, z)
            counts = torch.bincount(assign, minlength=self.codebook_size).unsqueeze(-1)
            centers = torch.where(counts > 0, sums / counts.clamp_min(1), centers)
        self.codebook.copy_(centers.to(self.codebook.device))
