"""NBCE：使用朴素贝叶斯扩展LLM的Context处理长度 (Naive Bayes-based Context Extension)
https://kexue.fm/archives/9617   and its follow-up https://kexue.fm/archives/9632

With contexts S_1..S_n that are independent given the continuation T,
    log p(T | S_1..S_n) = Σ_k log p(T | S_k) - (n - 1) log p(T) + const,
generalised to (β + 1) P[log p(T | S)] - β log p(T) for a pooling P over the contexts: average pooling with
β = n - 1 is pure naive Bayes, average with β = 0 is about PCW, and NBCE proper takes the distribution of
the context with the least entropy, with β = 0.25. The follow-up: pure naive Bayes turns to gibberish as n
grows because -β log p(T) amplifies the unreliable tails; Top-P truncation of every distribution and the
rule "where log p(T) = -inf, use P alone" fix that (still below minimum entropy). Its third device, a
transition penalty η, makes minimum-entropy selection favour the context chosen at the previous step: that
context's entropy counts η lower, so decoding switches only to a context more certain by more than η.
"""

from __future__ import annotations

import torch

POOLINGS = ("average", "max", "min_entropy")


def top_p(logp: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches p; the rest to -inf (per row)."""
    sorted_logp, order = logp.sort(-1, descending=True)
    cumulative = sorted_logp.exp().cumsum(-1)
    drop = cumulative - sorted_logp.exp() >= p  # tokens after the mass already reached p
    sorted_logp = sorted_logp.masked_fill(drop, float("-inf"))
    return torch.full_like(logp, float("-inf")).scatter(-1, order, sorted_logp)


def entropy(logp: torch.Tensor) -> torch.Tensor:
    p = logp.exp()
    return -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1)


def least_entropy_context(context_logp: torch.Tensor, previous: int | None = None, penalty: float = 0.0) -> int:
    """The context whose distribution has the least entropy; with the transition penalty, the previous step's
    context counts `penalty` nats lower."""
    h = entropy(context_logp)
    if previous is not None and penalty:
        h = h - penalty * torch.nn.functional.one_hot(torch.tensor(previous), len(h)).to(h.dtype)
    return int(h.argmin())


def pool(context_logp: torch.Tensor, pooling: str, previous: int | None = None, penalty: float = 0.0) -> torch.Tensor:
    """P[log p(T | S)] over the contexts (dim 0); previous and penalty: min_entropy's transition penalty."""
    if pooling == "average":
        return context_logp.mean(0)
    if pooling == "max":
        return context_logp.max(0).values
    if pooling == "min_entropy":
        return context_logp[least_entropy_context(context_logp, previous, penalty)]
    raise ValueError(f"pooling={pooling}: allowed: {', '.join(POOLINGS)}")


def combine(context_logp: torch.Tensor, uncond_logp: torch.Tensor, pooling: str, beta: float,
            truncate: float | None = None, inf_rule: bool = False, previous: int | None = None,
            penalty: float = 0.0) -> torch.Tensor:
    """Next-token scores (β + 1) P[log p(T|S)] - β log p(T) from each context's log-probabilities (n, V)
    and the context-free ones (V,). truncate: Top-P on every distribution first; inf_rule: where the
    context-free log-probability is -inf, the pooled one alone; previous, penalty: the transition penalty
    (min_entropy pooling only)."""
    full = context_logp
    if truncate is not None:
        context_logp, uncond_logp = top_p(context_logp, truncate), top_p(uncond_logp, truncate)
    pooled = pool(context_logp, pooling, previous, penalty)
    if truncate is not None and torch.isinf(pooled).all():
        # No token is in every context's Top-P set (average pooling): the posts leave this case undefined, and an
        # all -inf row would decode token 0. Ours: the untruncated pooling for this step (#28 review of nbce).
        pooled = pool(full, pooling, previous, penalty)
    merged = (beta + 1) * pooled - beta * uncond_logp
    if inf_rule:
        merged = torch.where(torch.isinf(uncond_logp), pooled, merged)
    return torch.nan_to_num(merged, nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))  # -inf - (-inf): none
