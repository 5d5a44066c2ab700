"""生成扩散模型漫谈（十九）：作为扩散ODE的GAN (GAN as a diffusion ODE: MonoFlow)
https://kexue.fm/archives/9662   (MonoFlow, arXiv 2302.01075)

The Wasserstein gradient flow of KL(q || p) moves samples along dx/dt = ∇ log(p/q)(x), and an optimal
logistic discriminator is D = log(p/q). One Euler step x_{t+1} = x_t + ε ∇D(x_t), moved into a generator
by regressing g_θ(z) onto it (the matching loss |g_θ(z) - sg(g_θt(z) + ε∇D(g_θt(z)))|²), has gradient
-2ε ∇_θ D(g_θ(z)) at θ = θ_t: one optimizer step on the matching loss is one step on -D(g(z)). Any
increasing h gives the same flow direction, so -h(D) works as a generator loss ("MonoFlow"). Many generator
steps per discriminator update should use the matching loss, which keeps g near its previous version.
"""

from __future__ import annotations

import torch

# increasing h: the generator minimises -h(D(g(z)))
INCREASING = {
    "identity": lambda d: d,
    "log_sigmoid": torch.nn.functional.logsigmoid,  # -h = softplus(-D): the non-saturating GAN
    "tanh": torch.tanh,
    "neg_exp": lambda d: -torch.exp(-d),
}
DECREASING = {"negative": lambda d: -d}  # a control: the flow reversed


def flow_targets(generator_frozen, critic, z: torch.Tensor, eps: float) -> torch.Tensor:
    """x + ε∇D(x) at x = g_θt(z), no gradient into either network."""
    x = generator_frozen(z).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return (x + eps * grad).detach()


def matching_loss(generator, generator_frozen, critic, z: torch.Tensor, eps: float) -> torch.Tensor:
    """mean |g_θ(z) - sg(g_θt(z) + ε∇D(g_θt(z)))|², the square summed over every coordinate of a sample (a
    point's two, an image's pixels): the identity with -D's gradient needs the whole squared norm."""
    return (generator(z) - flow_targets(generator_frozen, critic, z, eps)).pow(2).flatten(1).sum(1).mean()


def particle_step(x: torch.Tensor, critic, eps: float) -> torch.Tensor:
    """One step of the flow on particles: x + ε∇D(x)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    return (x + eps * grad).detach()
