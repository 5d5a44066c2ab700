"""A small causal transformer LM (pre-norm, byte-level) whose attention form is a named option.

Training-time options (`arch`, each its own trained model):
    score       dot (q·k/√d) | keynorm (q·k/|k|, KNA) | querynorm (q/|q|·k, QNA) | cosine (λ cos(q, k), CosA)
                (https://kexue.fm/archives/9859)
    position    rope | nope
    logn        train with the query scaled by log n / log L (https://kexue.fm/archives/8823)
    window      > 0: every layer but the last attends to the last `window` tokens only, and the last
                layer is full attention without RoPE and with log n: HWFA (https://kexue.fm/archives/9603)

Inference-time options (`InferenceArm`): the position scheme of methods/rerope.py, log n†, and a
sliding-window mask with or without the first tokens kept (the sinks at the Λ-mask's capped distance,
or at their true one). Attention runs through
scaled_dot_product_attention; ReRoPE through methods.rerope.rerope_attention (a band plus one fused
causal call on shifted positions, merged by log-sum-exp).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..methods import rerope as rp

SCORES = ("dot", "keynorm", "querynorm", "cosine")
POSITIONS = ("rope", "nope")


@dataclass(frozen=True)
class InferenceArm:
    """How a trained model is run at test time. The default is the model as trained."""

    name: str = "as_trained"
    scheme: str = "rope"              # methods.rerope.SCHEMES
    window: int = 0                   # ReRoPE's w
    leaky_k: float | None = None      # Leaky ReRoPE's k
    logn_dagger: bool = False         # log n†: queries times max(1, log n / log L)
    mask_window: int = 0              # > 0: sliding-window mask of this width
    sinks: int = 0                    # with mask_window: the first `sinks` tokens stay visible
    sink_positions: str = "capped"    # capped: distances beyond the window read as L - 1 (the Λ-mask's
                                      # ceiling, LM-Infinite); original: the sinks keep their true distance
    mixed_b: float | None = None      # NTK-mixed's b for this arm (None: the model's ArchConfig.mixed_b)


AS_TRAINED = InferenceArm()


@dataclass(frozen=True)
class ArchConfig:
    vocab_size: int = 256
    width: int = 128
    layers: int = 4
    heads: int = 2
    mlp_ratio: int = 4
    rope_base: float = 10000.0
    train_length: int = 64
    score: str = "dot"
    position: str = "rope"
    logn: bool = False
    window: int = 0                   # HWFA's window for the first layers-1 layers; 0 = full attention
    cosine_scale: float = 0.0         # CosA's λ; 0 = 4 log(L/2)
    mixed_b: float = 0.625
    yarn_alpha: float = 1.0
    yarn_beta: float = 32.0


class Attention(nn.Module):
    def __init__(self, cfg: ArchConfig, is_last: bool):
        super().__init__()
        self.cfg, self.head_dim = cfg, cfg.width // cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=False)
        self.out = nn.Linear(cfg.width, cfg.width, bias=False)
        hwfa = cfg.window > 0
        self.full_layer_of_hwfa = hwfa and is_last
        self.uses_rope = cfg.position == "rope" and not self.full_layer_of_hwfa
        self.layer_window = cfg.window if hwfa and not is_last else 0
        self.trained_logn = cfg.logn or self.full_layer_of_hwfa

    def logit_scale(self) -> float:
        if self.cfg.score == "dot":
            return 1 / math.sqrt(self.head_dim)
        if self.cfg.score == "cosine":
            return self.cfg.cosine_scale or 4 * math.log(self.cfg.train_length / 2)
        return 1.0  # keynorm / querynorm: the unnormalized side keeps a learnable scale

    def mask(self, length: int, arm: InferenceArm, device) -> torch.Tensor | None:
        """Boolean (T, T) mask, True = visible; None = plain causal."""
        width = self.layer_window or arm.mask_window
        if not width:
            return None
        rel = rp.relative_positions(length, device)
        visible = (rel >= 0) & (rel < width)
        if arm.sinks and not self.layer_window:
            visible |= (rel >= 0) & (torch.arange(length, device=device)[None, :] < arm.sinks)
        return visible

    def forward(self, x: torch.Tensor, arm: InferenceArm) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.cfg.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.cfg.score in ("keynorm", "cosine"):
            k = F.normalize(k, dim=-1)
        if self.cfg.score in ("querynorm", "cosine"):
            q = F.normalize(q, dim=-1)
        scale = self.logit_scale()
        L = self.cfg.train_length
        if self.trained_logn:
            q = q * rp.logn_scale(t, L, clip=False, device=x.device)[:, None]
        elif arm.logn_dagger:
            q = q * rp.logn_scale(t, L, clip=True, device=x.device)[:, None]
        mask = self.mask(t, arm, x.device)
        s = max(1.0, t / L)
        # the Λ-mask's sinks: every distance >= L - 1 is read as L - 1, so the sinks sit at the farthest distance
        # training saw instead of up to 8L away: ReRoPE's two logits with w = L - 1
        capped_sinks = bool(arm.sinks) and arm.sink_positions == "capped" and mask is not None
        if self.uses_rope and (capped_sinks or arm.scheme in ("rerope", "leaky_rerope")):
            theta = rp.inv_freq(self.head_dim, self.cfg.rope_base)
            window, leaky_k = (L - 1, None) if capped_sinks else (arm.window, arm.leaky_k)
            if mask is None:  # blockwise: linear memory beyond the window (methods/rerope.py)
                y = rp.rerope_attention(q, k, v, theta, window, scale, leaky_k)
            else:
                logits = rp.rerope_logits(q, k, theta, window, leaky_k) * scale
                y = logits.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        else:
            if self.uses_rope:
                mixed_b = self.cfg.mixed_b if arm.mixed_b is None else arm.mixed_b
                theta = rp.inv_freq(self.head_dim, self.cfg.rope_base, arm.scheme, s, mixed_b, L,
                                    self.cfg.yarn_alpha, self.cfg.yarn_beta)
                pos = torch.arange(t, device=x.device)
                q, k = rp.rotate(q, pos, theta), rp.rotate(k, pos, theta)
                if arm.scheme == "yarn":
                    scale = scale * rp.yarn_logit_scale(s)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, scale=scale)
        return self.out(y.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    def __init__(self, cfg: ArchConfig, is_last: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.width), nn.LayerNorm(cfg.width)
        self.attn = Attention(cfg, is_last)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width))

    def forward(self, x: torch.Tensor, arm: InferenceArm) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), arm)
        return x + self.mlp(self.norm2(x))


class CausalLM(nn.Module):
    def __init__(self, cfg: ArchConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg, i == cfg.layers - 1) for i in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.width)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def hidden(self, tokens: torch.Tensor, arm: InferenceArm | None = None) -> torch.Tensor:
        """(B, T) token ids -> (B, T, width): the final normed hidden states (features for probes)."""
        arm = arm or AS_TRAINED
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, arm)
        return self.norm(x)

    def forward(self, tokens: torch.Tensor, arm: InferenceArm | None = None) -> torch.Tensor:
        """(B, T) token ids -> (B, T, vocab) next-token logits (the embedding is tied)."""
        return self.hidden(tokens, arm) @ self.embed.weight.T

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def next_token_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting tokens[:, 1:] from tokens[:, :-1]; `model` may be DDP-wrapped."""
    return F.cross_entropy(model(tokens[:, :-1]).transpose(1, 2), tokens[:, 1:])
