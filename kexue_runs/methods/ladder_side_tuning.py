"""Ladder Side-Tuning：预训练模型的“过墙梯” (Ladder Side-Tuning: a ladder over the pretrained model's wall)
https://kexue.fm/archives/9138   (LST, arXiv 2206.06522)

The backbone stays frozen and runs without a graph; a thin side network climbs beside it, taking each
layer's hidden state through a down-projection and mixing it into its own stream with a learned gate:
    s_0 = D_0(h_0);   s_l = Block_l(g_l s_{l-1} + (1 - g_l) D_l(h_l)),  g_l = sigmoid(α_l)
and its top is projected back up and added to the backbone's output, U(s_L) + h_L (U starts at zero, so
training starts from the backbone's function). Backpropagation never enters the backbone: that is where the
memory and time go. Su's ladder uses Attention + FFN blocks (the paper's an MLP); the paper initialises the
side blocks by slicing the backbone's weights, Su's trial used random init and found it hurt.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def backbone_states(model, tokens: torch.Tensor, *block_args) -> list[torch.Tensor]:
    """The embedding and every block's output (no graph), then the final normed hidden state. `model` has
    embed, blocks and norm (the project's CausalLM); block_args go to each block after its input."""
    x = model.embed(tokens)
    states = [x]
    for block in model.blocks:
        x = block(x, *block_args)
        states.append(x)
    states.append(model.norm(x))
    return states


class LadderSide(nn.Module):
    def __init__(self, backbone, side_blocks: list[nn.Module], side_width: int, init: str = "random",
                 block_args: tuple = ()):
        """side_blocks: one Attention + FFN block per backbone layer, at side_width (built by the caller)."""
        super().__init__()
        width, layers = backbone.embed.embedding_dim, len(backbone.blocks)
        self.width, self.block_args = side_width, block_args
        self.down = nn.ModuleList(nn.Linear(width, side_width) for _ in range(layers + 1))
        self.gates = nn.Parameter(torch.zeros(layers))
        self.blocks = nn.ModuleList(side_blocks)
        self.up = nn.Linear(side_width, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        if init == "sliced":
            self.slice_from(backbone)
        elif init != "random":
            raise ValueError(f"init={init}: allowed: random, sliced")

    @torch.no_grad()
    def slice_from(self, backbone) -> None:
        """The paper's init: each side block takes the leading rows and columns of the backbone block's
        matrices (q, k and v sliced apart), norms their leading entries; down-projections the leading rows
        of the identity (the first `width` coordinates)."""
        w, n = self.width, backbone.embed.embedding_dim
        for side, full in zip(self.blocks, backbone.blocks):
            qkv = full.attn.qkv.weight.view(3, n, n)[:, :w, :w].reshape(3 * w, w)
            side.attn.qkv.weight.copy_(qkv)
            side.attn.out.weight.copy_(full.attn.out.weight[:w, :w])
            side.mlp[0].weight.copy_(full.mlp[0].weight[: side.mlp[0].out_features, :w])
            side.mlp[0].bias.copy_(full.mlp[0].bias[: side.mlp[0].out_features])
            side.mlp[2].weight.copy_(full.mlp[2].weight[:w, : side.mlp[2].in_features])
            side.mlp[2].bias.copy_(full.mlp[2].bias[:w])
            for s_norm, f_norm in ((side.norm1, full.norm1), (side.norm2, full.norm2)):
                s_norm.weight.copy_(f_norm.weight[:w])
                s_norm.bias.copy_(f_norm.bias[:w])
        for d in self.down:
            d.weight.zero_()
            d.weight[:, :w].copy_(torch.eye(w))
            d.bias.zero_()

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        """The final hidden state: the backbone's plus the side network's, projected up."""
        s = self.down[0](states[0])
        for i, block in enumerate(self.blocks):
            g = torch.sigmoid(self.gates[i])
            s = block(g * s + (1 - g) * self.down[i + 1](states[i + 1]), *self.block_args)
        return states[-1] + self.up(s)
