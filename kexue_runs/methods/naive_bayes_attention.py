"""Naive Bayes is all you need ? (attention as generalised naive Bayes)
https://kexue.fm/archives/9648

If the earlier tokens x_1..x_m are independent given the next token x_t, Bayes' rule twice gives
    log p(x_t | x_1..x_m) = Σ_j log p(x_t | x_j) - (m - 1) log p(x_t) + const,
generalised (as NBCE) to (1 + β) Pool_j[log p(x_t | x_j)] - β log p(x_t). With β = 0 and a weighted mean
Σ_j a_{t,j} log p(x_t | x_j), and log p(x_t | x_j) = v(x_j)·w(x_t) + const (skip-gram style), the score is
(Σ_j a_{t,j} v(x_j))·w(x_t): one attention layer; a residual adds log p(x_t | x_{t-1}), the bigram.
"""

from __future__ import annotations

import torch


def naive_bayes_scores(pair_logp: torch.Tensor, prior_logp: torch.Tensor, context: torch.Tensor,
                       beta: float | None, pooling: str = "average") -> torch.Tensor:
    """Log-probabilities of the next token from counts: pair_logp[j, t] = log p(x_t = t | x_j = j),
    prior_logp[t] = log p(x_t = t), context the earlier tokens (m,). beta None: pure naive Bayes
    (average pooling, β = m - 1, i.e. Σ_j log p(x_t|x_j) - (m - 1) log p(x_t)); renormalised over x_t."""
    rows = pair_logp[context]  # (m, V)
    m = len(context)
    pooled = rows.mean(0) if pooling == "average" else rows.sum(0)
    b = float(m - 1) if beta is None else beta
    return torch.log_softmax((1 + b) * pooled - b * prior_logp, -1)


def exact_posterior(prior: torch.Tensor, emission: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """log p(x_t | x_1..x_m) by Bayes in a model where each x_j is drawn from emission[x_t] independently:
    p(x_t | x) ∝ p(x_t) Π_j p(x_j | x_t)."""
    log_joint = prior.log() + emission[:, observed].log().sum(-1)
    return torch.log_softmax(log_joint, -1)


def naive_bayes_from_pairs(prior: torch.Tensor, emission: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """The same posterior through the post's formula: Σ_j log p(x_t | x_j) - (m - 1) log p(x_t), where
    p(x_t | x_j) = p(x_t) p(x_j | x_t) / p(x_j) is one pair at a time."""
    marginal = prior @ emission  # p(x_j)
    pair = (prior[:, None] * emission / marginal[None, :]).T.log()  # pair[j, t] = log p(x_t | x_j)
    return naive_bayes_scores(pair, prior.log(), observed, beta=None)
