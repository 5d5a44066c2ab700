"""Optimizers from config: each file in configs/optimizer/ names its class with `_target_`, so a new
optimizer is a config file. `make_optimizer(cfg, params)` builds it (the `name` key is a label).

AdamLayerAdapted is Adam with layer adaptation as in Su's bert4keras (`extend_with_layer_adaptation`, the
optimizer his FSQ and VQ-VAE code use with lr 2e-3): each weight matrix moves by lr x |w| per step along
Adam's direction, so the step is relative to the weight's norm; 1-D parameters (norm gains, biases) take
plain Adam steps.
"""

from __future__ import annotations

import torch
from omegaconf import OmegaConf


def make_optimizer(cfg, params) -> torch.optim.Optimizer:
    from hydra.utils import instantiate

    spec = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    spec.pop("name", None)
    if "betas" in spec:
        spec["betas"] = tuple(spec["betas"])
    return instantiate(spec, params=params, _convert_="all")


class AdamLayerAdapted(torch.optim.Adam):
    """Adam whose update of every tensor with 2+ dims is rescaled to lr * |w| (bert4keras' layer adaptation)."""

    @torch.no_grad()
    def step(self, closure=None):
        adapted = [(p, p.detach().clone()) for group in self.param_groups for p in group["params"]
                   if p.grad is not None and p.ndim > 1]
        loss = super().step(closure)
        lrs = {id(p): group["lr"] for group in self.param_groups for p in group["params"]}
        for p, before in adapted:
            delta = p - before
            lr = lrs[id(p)]
            w_norm, g_norm = before.norm(), (delta / lr).norm()
            if w_norm > 0 and g_norm > 1e-12:
                p.copy_(before + delta * (w_norm / g_norm))
        return loss
