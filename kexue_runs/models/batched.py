"""R independently seeded MLPs trained as one: each Linear's weights stacked along a leading replicate axis and
applied with one batched matmul (torch.baddbmm), so R small models cost about as many operator calls as one.

Each replicate keeps everything a lone run has: its init (the lone models are built first, one seed each, and
their weights copied in), its data order (the caller draws each replicate's batch from that replicate's own
generator) and its optimizer state (an elementwise optimizer such as Adam, SGD with momentum or the χ-form
accumulation on the stacked tensors keeps exactly the per-replicate state a lone optimizer would; a per-model
norm over parameters, e.g. gradient clipping, would have to be computed per replicate and is not used here).
A replicate's numbers equal its lone run's up to float rounding (reductions may be ordered differently).

Inputs are (R, B, features) or folded as (R * B, features) (replicate r's rows r*B .. (r+1)*B - 1): the folded
form lets per-sample code written for one model (input gradients, per-row norms) run unchanged on all R.
Why not torch.func.vmap over functional_call: the issue's prototype measured it slower than explicitly batched
layers at every size on one CPU thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh)  # activations that act per element, the same for every replicate


class BatchedMLP(nn.Module):
    """R copies of one nn.Sequential of Linear layers and elementwise activations, as stacked parameters."""

    def __init__(self, models: Sequence[nn.Sequential], streams: Sequence[torch.Generator] | None = None):
        """streams: one generator per replicate for the random draws a loss makes per row (rand_rows)."""
        super().__init__()
        if not models:
            raise ValueError("BatchedMLP needs at least one model")
        self.replicates = len(models)
        self.streams = list(streams) if streams is not None else None
        self.stacked = nn.ParameterList()  # weight, bias per Linear, in the lone model's parameter order
        self.plan: list = []               # an int (the Linear's index) or an activation module, in order
        for layers in zip(*models, strict=True):
            first = layers[0]
            if isinstance(first, nn.Linear) and all(type(x) is nn.Linear for x in layers):
                # (R, in, out): h @ W without a transpose, so the weight's gradient comes out in the weight's own
                # layout (a transposed one made autograd copy it into place every step, the slowest op of all)
                weight = torch.stack([x.weight.detach().t() for x in layers]).contiguous()
                bias = torch.stack([x.bias.detach() for x in layers]).clone()
                self.plan.append(len(self.stacked) // 2)
                self.stacked.extend([nn.Parameter(weight), nn.Parameter(bias)])
            elif isinstance(first, ELEMENTWISE) and all(repr(x) == repr(first) for x in layers):
                self.plan.append(first)
            else:
                raise TypeError(f"BatchedMLP stacks Linear layers and {', '.join(c.__name__ for c in ELEMENTWISE)} "
                                f"only, the same in every replicate; got {type(first).__name__}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folded = x.dim() == 2
        h = x.reshape(self.replicates, -1, x.shape[-1]) if folded else x
        for step in self.plan:
            if isinstance(step, int):
                weight, bias = self.stacked[2 * step], self.stacked[2 * step + 1]
                h = torch.baddbmm(bias.unsqueeze(1), h, weight)
            else:
                h = step(h)
        return h.reshape(-1, h.shape[-1]) if folded else h

    def rand_rows(self, shape: tuple) -> torch.Tensor:
        """torch.rand(shape) for folded rows, replicate r's share drawn from streams[r] (as its lone run would
        draw it from the global stream)."""
        if self.streams is None:
            raise ValueError("this BatchedMLP has no per-replicate streams (BatchedMLP(models, streams))")
        share = (shape[0] // self.replicates,) + tuple(shape[1:])
        return torch.cat([torch.rand(share, generator=g) for g in self.streams])

    @torch.no_grad()
    def copy_into(self, models: Sequence[nn.Sequential]) -> None:
        """Write each replicate's current weights into its lone model (for evaluation with the lone code)."""
        for r, model in enumerate(models):
            linears = [m for m in model if isinstance(m, nn.Linear)]
            for i, layer in enumerate(linears):
                layer.weight.copy_(self.stacked[2 * i][r].t())
                layer.bias.copy_(self.stacked[2 * i + 1][r])


def continue_global_stream() -> torch.Generator:
    """A generator in the global RNG's current state: what a lone run would draw from torch's global stream next
    (e.g. the gradient penalty's mixing weights after its model's init), kept apart for one replicate."""
    g = torch.Generator()
    g.set_state(torch.get_rng_state())
    return g


def train_classifier_replicates(models: Sequence[nn.Sequential], make_optimizer, x: torch.Tensor, y: torch.Tensor,
                                seeds: Sequence[int], epochs: int, usable: int, micro: int,
                                after_epoch=None, subsets: Sequence[torch.Tensor] | None = None) -> None:
    """Cross-entropy training of R lone classifiers as one BatchedMLP, the batched form of this loop per seed:
        gen = Generator(seed); per epoch: order = randperm(len(y), gen)[:usable]; micro-batches of `micro` rows
        in that order; loss = cross_entropy (mean); zero_grad, backward, make_optimizer(params).step()
    Each replicate's loss is its own batch mean; their sum is backpropagated, so each replicate's gradient is its
    lone gradient. The trained weights are written back into `models`; `after_epoch(batched)` is called after
    every epoch.
    subsets: each replicate's own training rows (indices into x, y, all of one length), so that replicates can
    train on different splits of one pool; the lone loop then runs on (x[subset], y[subset])."""
    batched = BatchedMLP(models)
    opt = make_optimizer(batched.parameters())
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    rows = torch.stack(list(subsets)) if subsets is not None else None  # (R, n) or None: all of x for everyone
    n = rows.shape[1] if rows is not None else len(y)
    for _ in range(epochs):
        order = torch.stack([torch.randperm(n, generator=g)[:usable] for g in gens])  # (R, usable)
        if rows is not None:  # positions in each replicate's own subset -> rows of x
            order = torch.gather(rows, 1, order)
        for i in range(0, usable, micro):
            idx = order[:, i:i + micro]
            logits = batched(x[idx])
            per_row = nn.functional.cross_entropy(logits.flatten(0, 1), y[idx].flatten(), reduction="none")
            loss = per_row.view(len(seeds), -1).mean(1).sum()
            batched.zero_grad()
            loss.backward()
            opt.step()
        if after_epoch is not None:  # e.g. each replicate's test loss after the epoch (reads, never trains)
            after_epoch(batched)
    batched.copy_into(models)
