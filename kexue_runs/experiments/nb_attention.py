"""nb_attention: attention as generalised naive Bayes (method: methods/naive_bayes_attention.py).

Post: Naive Bayes is all you need ? https://kexue.fm/archives/9648 (no quantitative claim)
  1. the naive-Bayes decomposition recomputed: in a model where the earlier tokens are independent given
     the next one, the post's Σ_j log p(x_t|x_j) - (m-1) log p(x_t) equals the Bayes posterior exactly
     (enumeration over random small models);
  2. ours, the demo the post suggests: cross-entropy (bits per token) on a synthetic order-2 Markov corpus
     and on Python source bytes of unigram, bigram, count-based naive Bayes over skip-gram pair
     conditionals of the last m tokens (pure, i.e. β = m-1; a plain sum; β = 0; β = 0.25), and a learned
     one-layer attention LM with and without the bigram residual. Test shards are the replicates.
"""

from __future__ import annotations

import math

import torch

from ..common.progress import say
from ..data.text import load_text
from ..methods.naive_bayes_attention import exact_posterior, naive_bayes_from_pairs

LOG2 = math.log(2)


def identity_error(seed: int, draws: int) -> float:
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _ in range(draws):
        v, m = 5, 4
        prior = torch.distributions.Dirichlet(torch.ones(v, dtype=torch.float64)).sample()
        emission = torch.rand(v, v, generator=g, dtype=torch.float64) + 0.05
        emission = emission / emission.sum(1, keepdim=True)  # emission[t, j] = p(x_j = j | x_t = t)
        observed = torch.randint(0, v, (m,), generator=g)
        worst = max(worst, float((exact_posterior(prior, emission, observed)
                                  - naive_bayes_from_pairs(prior, emission, observed)).abs().max()))
    return worst


def markov_corpus(seed: int, vocab: int, length: int) -> torch.Tensor:
    """An order-2 Markov chain with sparse random transitions (Dirichlet 0.3)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    table = torch.distributions.Dirichlet(torch.full((vocab,), 0.3)).sample((vocab, vocab))
    out = torch.empty(length, dtype=torch.long)
    out[:2] = torch.randint(0, vocab, (2,), generator=g)
    u = torch.rand(length, generator=g)
    cdf = table.cumsum(-1)
    for i in range(2, length):
        out[i] = min(int(torch.searchsorted(cdf[out[i - 2], out[i - 1]], u[i])), vocab - 1)
    return out


def counts(train: torch.Tensor, vocab: int, window: int, alpha: float):
    """Add-α estimates: log p(x), log p(x_t | x_{t-1}), and skip-gram log p(x_t | x_j) over distances 1..window."""
    uni = torch.bincount(train, minlength=vocab).double() + alpha
    bi = torch.zeros(vocab, vocab, dtype=torch.float64)
    bi.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1, dtype=torch.float64), accumulate=True)
    pair = torch.zeros(vocab, vocab, dtype=torch.float64)
    for d in range(1, window + 1):
        pair.index_put_((train[:-d], train[d:]), torch.ones(len(train) - d, dtype=torch.float64), accumulate=True)
    norm = lambda c: (c + alpha).log() - (c + alpha).sum(-1, keepdim=True).log()  # noqa: E731
    return (uni / uni.sum()).log(), norm(bi), norm(pair)


def count_models(test: torch.Tensor, vocab: int, window: int, alpha: float, train: torch.Tensor) -> dict:
    """Per-position natural-log loss of every count model on test positions window..end."""
    prior, bigram, pair = counts(train, vocab, window, alpha)
    targets = test[window:]
    contexts = test.unfold(0, window, 1)[:-1]  # (N, window): the tokens before each target
    out = {"unigram": -prior[targets], "bigram": -bigram[test[window - 1:-1], targets]}
    variants = {"nb_pure": (None, "average"), "nb_sum": (0.0, "sum"), "nb_beta0": (0.0, "average"),
                "nb_beta025": (0.25, "average")}
    for name, (beta, pooling) in variants.items():
        losses = []
        for start in range(0, len(targets), 4096):
            ctx_rows = contexts[start:start + 4096]
            rows = pair[ctx_rows]  # (n, window, V)
            pooled = rows.mean(1) if pooling == "average" else rows.sum(1)
            b = float(window - 1) if beta is None else beta
            logp = torch.log_softmax((1 + b) * pooled - b * prior, -1)
            losses.append(-logp.gather(1, targets[start:start + 4096, None]).squeeze(1))
        out[name] = torch.cat(losses)
    return out


class OneLayerAttention(torch.nn.Module):
    """Σ_j a_{t,j} v(x_j) · w(x_t): one causal attention layer (queries from the current token), logits by a
    tied output map; `residual` adds the current token's own embedding, i.e. a bigram path."""

    def __init__(self, vocab: int, width: int, residual: bool):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.q, self.k, self.v = (torch.nn.Linear(width, width, bias=False) for _ in range(3))
        self.out = torch.nn.Linear(width, vocab)
        self.residual = residual

    def forward(self, tokens):
        e = self.embed(tokens)
        h = torch.nn.functional.scaled_dot_product_attention(self.q(e), self.k(e), self.v(e), is_causal=True)
        return self.out(h + e if self.residual else h)


def attention_losses(train, test, vocab: int, residual: bool, sim, seed: int, device="cpu") -> torch.Tensor:
    torch.manual_seed(seed)
    model = OneLayerAttention(vocab, int(sim.width), residual).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(sim.lr))
    g = torch.Generator().manual_seed(seed)
    length = int(sim.length)
    for _ in range(int(sim.steps)):
        starts = torch.randint(0, len(train) - length - 1, (int(sim.batch),), generator=g)
        x = torch.stack([train[s:s + length + 1] for s in starts.tolist()]).to(device)
        loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).transpose(1, 2), x[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    # scored on the count models' targets (positions window..end), each with at least `window` tokens before it
    window = int(sim.window)
    losses = torch.empty(len(test) - window)
    stride = length - window
    with torch.no_grad():
        for a in range(0, len(test) - window, stride):
            seq = test[a:a + length + 1]
            logp = torch.log_softmax(model(seq[None, :-1].to(device))[0], -1).cpu()
            positions = torch.arange(a + window, a + len(seq))  # targets p, predicted by logits row p - a - 1
            losses[positions - window] = -logp[positions - a - 1, test[positions]]
    return losses


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    results = {"nb_identity_error": identity_error(int(cfg.seed), int(sim.identity_draws))}
    say(f"naive-Bayes decomposition against exact Bayes: max error {results['nb_identity_error']:.1e}")
    corpora = {}
    if "markov" in sim.corpora:
        stream = markov_corpus(int(cfg.seed), int(sim.markov_vocab), int(sim.markov_length))
        cut = int(0.9 * len(stream))
        corpora["markov"] = (stream[:cut], stream[cut:], int(sim.markov_vocab))
    if "source" in sim.corpora:
        text = load_text(cfg.data)
        corpora["source"] = (text.train, text.test[: int(sim.test_bytes)], 256)
    shards = int(sim.shards)
    jobs = [(name, arm) for name in corpora for arm in ("counts", "attention", "attention_residual")]
    per = {}
    for name, arm in ctx.track(jobs, "models per corpus", total=len(jobs)):
        train, test, vocab = corpora[name]
        if arm == "counts":
            per.update({(name, k): v for k, v in
                        count_models(test, vocab, int(sim.window), float(sim.alpha), train).items()})
        else:
            per[(name, arm)] = attention_losses(train, test, vocab, arm == "attention_residual", sim, int(cfg.seed),
                                                ctx.device)
    for (name, model), losses in per.items():
        for s, chunk in enumerate(torch.tensor_split(losses, shards)):
            ctx.claim_rows.append({"corpus": name, "model": model, "shard": s, "bits": float(chunk.mean()) / LOG2})
        results[f"{name}_{model}_bits"] = float(losses.mean()) / LOG2
    plot(ctx, results, list(corpora))
    return results


def plot(ctx, results, corpora) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    models = ["unigram", "bigram", "nb_pure", "nb_sum", "nb_beta0", "nb_beta025", "attention", "attention_residual"]
    fig, axes = plt.subplots(1, len(corpora), figsize=(5.5 * len(corpora), 3.6), squeeze=False)
    for ax, name in zip(axes[0], corpora):
        values = [results[f"{name}_{m}_bits"] for m in models]
        ax.bar(range(len(models)), values, color=["C7", "C7", "C3", "C3", "C1", "C1", "C0", "C0"])
        ax.set_xticks(range(len(models)), [m.replace("_", " ") for m in models], rotation=30, ha="right", fontsize=7)
        ax.set(ylabel="test cross-entropy (bits/token)", title=name)
    save_figure(ctx, "nb_attention", fig)
