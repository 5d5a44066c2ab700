"""The project's small pretrained causal LM: one byte-level transformer pretrained on Python's standard
library, cached under <output_root>/cache/pretrained/ by the hash of what made it (model, data, length,
pretraining settings), so every experiment and every job of a sweep that asks for the same base reuses one
file. lora_plus fine-tunes it; analytic_logreg reads frozen features from it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..common import runfiles
from ..common.progress import say
from ..data.text import load_text, random_windows
from .transformer import ArchConfig, CausalLM, next_token_loss


def arch(model_cfg, length: int) -> ArchConfig:
    m = model_cfg
    return ArchConfig(width=int(m.width), layers=int(m.layers), heads=int(m.heads), mlp_ratio=int(m.mlp_ratio),
                      rope_base=float(m.rope_base), train_length=int(length))


def cache_path(output_root, model_cfg, data_cfg, pretrain_cfg, length: int) -> Path:
    spec = {"model": runfiles.to_jsonable(dict(model_cfg)), "data": data_cfg.name, "length": int(length),
            "pretrain": runfiles.to_jsonable(dict(pretrain_cfg))}
    return Path(output_root) / "cache" / "pretrained" / f"lm-{runfiles.config_hash(spec)}.pt"


def pretrained_lm(output_root, model_cfg, data_cfg, pretrain_cfg, length: int, device, track) -> CausalLM:
    """The pretrained base: from the cache, or trained now (AdamW, warm-up then cosine) and cached atomically.
    `track(iterable, description, total)` is the run's progress (ctx.track)."""
    path = cache_path(output_root, model_cfg, data_cfg, pretrain_cfg, length)
    torch.manual_seed(int(pretrain_cfg.seed))
    model = CausalLM(arch(model_cfg, length)).to(device)
    if path.exists():
        model.load_state_dict(torch.load(path, map_location=device))
        say(f"pretrained base: {path} (cached)")
        return model
    corpus = load_text(data_cfg)
    p = pretrain_cfg
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(p.lr), weight_decay=0.1)
    steps = int(p.steps)
    loss = torch.tensor(math.nan)
    for step in track(range(steps), f"pretrain n={model_cfg.width}", total=steps):
        lr_scale = min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for group in optimizer.param_groups:
            group["lr"] = float(p.lr) * lr_scale
        tokens = random_windows(corpus.train, int(length), int(p.batch_size), int(p.seed), step)
        loss = next_token_loss(model, tokens.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    runfiles.atomic_save(path, model.state_dict())
    say(f"pretrained base: {path} ({steps} steps, final train loss {loss.item():.3f})")
    return model
