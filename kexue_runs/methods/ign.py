"""幂等生成网络IGN：试图将判别和生成合二为一的GAN (IGN: a GAN that merges discriminator and generator)
https://kexue.fm/archives/9969   (paper: arXiv 2311.01462)

Any GAN is one loss if frozen copies (primes: no gradient) are allowed, with the critic D as an energy that
is low on data:
    min_{θ,φ}  D_θ(x) - D_θ(G_φ'(z)) + D_θ'(G_φ(z))
and, without copies, with a stop-gradient (archive 6387):  D_θ(x) - 2 D_θ(sg(G_φ(z))) + D_θ(G_φ(z)).
Both have exactly the gradients of alternating training. IGN takes G = f (input and output the same size)
and D = the reconstruction error δ_f(x) = |f(x) - x| (L1): its three terms
    L_rec = δ_f(x),   L_idem = δ_f'(f(z)) = |f'(f(z)) - f(z)|,   L_tight = -δ_f(f'(z)) = -|f(f'(z)) - f'(z)|
are the frozen-copy GAN loss term by term: IGN is a GAN. The paper weights them 20, 20, 2.5 and clamps the
tightness term smoothly at 1.5 times the reconstruction loss (a tanh).
"""

from __future__ import annotations

import copy

import torch


def frozen(module: torch.nn.Module) -> torch.nn.Module:
    """A copy whose parameters receive no gradient (the post's primes)."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def gan_single_loss(critic, generator, critic_frozen, generator_frozen, x, z, weights=(1.0, 1.0, 1.0)):
    """w_r D_θ(x) - w_t D_θ(G_φ'(z)) + w_i D_θ'(G_φ(z)), means over the batch."""
    w_real, w_idem, w_tight = weights
    return (w_real * critic(x).mean() - w_tight * critic(generator_frozen(z)).mean()
            + w_idem * critic_frozen(generator(z)).mean())


def gan_stop_gradient_loss(critic, generator, x, z):
    """D_θ(x) - 2 D_θ(sg(G_φ(z))) + D_θ(G_φ(z)): one loss, no copies."""
    fake = generator(z)
    return critic(x).mean() - 2 * critic(fake.detach()).mean() + critic(fake).mean()


def reconstruction_error(f):
    """δ_f(x) = |f(x) - x|_1 per sample: IGN's discriminator."""
    return lambda x: (f(x) - x).flatten(1).abs().sum(1)  # over every coordinate: points or images


def ign_terms(f, f_frozen, x, z) -> dict[str, torch.Tensor]:
    """The paper's three losses (before weights and clamp)."""
    fz = f(z)
    f_frozen_z = f_frozen(z)
    def l1(a, b):
        return (a - b).flatten(1).abs().sum(1).mean()

    return {"rec": l1(f(x), x), "idem": l1(f_frozen(fz), fz), "tight": -l1(f(f_frozen_z), f_frozen_z)}


def ign_loss(f, f_frozen, x, z, rec_weight=20.0, idem_weight=20.0, tight_weight=2.5, clamp: float | None = 1.5):
    """The paper's objective; the tightness term clamped smoothly at clamp x L_rec (tanh), when clamp is set."""
    terms = ign_terms(f, f_frozen, x, z)
    tight = terms["tight"]
    if clamp is not None:
        scale = clamp * terms["rec"].detach()
        tight = -scale * torch.tanh(-tight / scale)
    return rec_weight * terms["rec"] + idem_weight * terms["idem"] + tight_weight * tight, terms
