"""nbce: naive-Bayes context extension against concatenation and its own variants (method: methods/nbce.py).

Posts: NBCE https://kexue.fm/archives/9617 and its follow-up https://kexue.fm/archives/9632
A byte-level LM (the project's pretrained base, fine-tuned on the task; both cached) learns to answer
"?name" with the value from one short paragraph of facts "name123;name456;name789;" (`facts.separator`: ""; "="
writes "name=123;" and "?name="), its fine-tune rows mixed with in-context copying rows (`finetune.copy_rows`).
At test time the question comes with n paragraphs, only one of which holds the name. Arms:
  (a) concatenation of all n paragraphs (beyond the length the model was trained on for n >= 2)
  (b) pure naive Bayes: average pooling, β = n - 1, no truncation
  (c) (b) with Top-P 0.95 on every distribution and the -inf rule (9632)
  (d) max pooling, β = 0.25 (with Top-P)
  (e) NBCE: minimum-entropy pooling, β = 0.25 (with Top-P, as bojone/NBCE's test.py)
  (f) average pooling, β = 0 (about PCW)
Greedy decoding. Exact match on the value; gibberish = an answer whose first three bytes are not all digits
(a malformed answer, not merely a wrong value). Questions come in shards: the replicates, shared by every
arm. Coupled questions "?a+b=" need two facts: NBCE with both in one paragraph against one in each (9632's
stated limit).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import torch

from ..common import runfiles
from ..common.progress import say
from ..data.facts import copy_batch, reading_batch, stack_rows, test_case, training_batch
from ..methods.nbce import combine, least_entropy_context, top_p
from ..models.pretrained import cache_path, pretrained_lm
from ..models.transformer import CausalLM

ARMS = {  # name: (pooling, beta, truncate, inf_rule); beta None = n - 1
    "concatenation": None,
    "naive_bayes": ("average", None, None, False),
    "naive_bayes_fixed": ("average", None, 0.95, True),
    "max_pooling": ("max", 0.25, 0.95, True),
    "nbce": ("min_entropy", 0.25, 0.95, True),
    "pcw": ("average", 0.0, None, False),
    "nbce_transition": ("min_entropy", 0.25, 0.95, True),  # + 9632's transition penalty (TRANSITION_PENALTY)
}
# η in nats. 9632 gives no value; ours: one bit, so decoding leaves its context only for one at least a bit
# more certain. Added 2026-11-24 because NBCE switched paragraphs inside coupled answers (measured: at the
# second digit of each value it chose a paragraph without the facts 42% and 38% of the time).
TRANSITION_PENALTY = {"nbce_transition": math.log(2)}
def finetuned_lm(cfg, ctx) -> CausalLM:
    """The shared pretrained base, fine-tuned on the task (answer bytes only), cached by what made it."""
    base_path = cache_path(cfg.output_root, cfg.model, cfg.data, cfg.pretrain, int(cfg.data.length))
    spec = {"base": base_path.name, "finetune": runfiles.to_jsonable(dict(cfg.finetune)),
            "facts": runfiles.to_jsonable(dict(cfg.facts))}
    path = Path(cfg.output_root) / "cache" / "pretrained" / f"nbce-{runfiles.config_hash(spec)}.pt"
    model = pretrained_lm(cfg.output_root, cfg.model, cfg.data, cfg.pretrain, int(cfg.data.length), ctx.device,
                          ctx.track)
    if path.exists():
        model.load_state_dict(torch.load(path, map_location=ctx.device))
        say(f"fine-tuned on the facts task: {path} (cached)")
        return model
    f = cfg.finetune
    rng = random.Random(int(f.seed))
    torch.manual_seed(int(f.seed))
    copy_generator = torch.Generator().manual_seed(int(f.seed) + 1)
    copies = int(round(float(f.copy_rows) * int(f.batch_size)))
    opt = torch.optim.AdamW(model.parameters(), lr=float(f.lr), weight_decay=0.0)
    steps = int(f.steps)
    for step in ctx.track(range(steps), "fine-tune on facts", total=steps):
        for group in opt.param_groups:
            group["lr"] = float(f.lr) * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / steps))
        if f.format == "reading":
            tokens, mask = reading_batch(rng, int(f.batch_size) - copies, float(f.unanswerable), int(f.max_facts),
                                         int(cfg.data.length), str(cfg.facts.separator))
        else:
            tokens, mask = training_batch(rng, int(f.batch_size) - copies, float(f.unanswerable))
        if copies:  # in-context copying rows beside the task's (finetune.copy_rows)
            tokens, mask = stack_rows((tokens, mask), copy_batch(copy_generator, copies, int(cfg.data.length)))
        tokens, mask = tokens.to(ctx.device), mask.to(ctx.device)
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits[mask[:, 1:]], tokens[:, 1:][mask[:, 1:]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    runfiles.atomic_save(path, model.state_dict())
    say(f"fine-tuned on the facts task: {steps} steps, final answer loss {loss.item():.3f} -> {path}")
    return model


def as_tokens(texts: list[bytes], device) -> torch.Tensor:
    if len({len(t) for t in texts}) != 1:
        raise ValueError("a decoding batch needs texts of one length (the facts task's paragraphs and prompts are)")
    return torch.tensor([list(t) for t in texts], device=device)


@torch.no_grad()
def answers(model, cases, arm: str, length: int) -> list[str]:
    """Greedy decoding of `length` bytes under one arm, for a batch of (paragraphs, prompt, ...) cases with the
    same number of paragraphs: one forward pass per byte for the whole batch."""
    outs = [b"" for _ in cases]
    chosen = [None for _ in cases]  # the transition penalty's previous context, per case
    device = next(model.parameters()).device
    for _ in range(length):
        if arm == "concatenation":
            texts = [("".join(p) + q).encode() + o for (p, q, *_), o in zip(cases, outs)]
            logits = model(as_tokens(texts, device))[:, -1]
            nxt = logits.argmax(-1).tolist()
        else:
            pooling, beta, truncate, inf_rule = ARMS[arm]
            penalty = TRANSITION_PENALTY.get(arm, 0.0)
            n = len(cases[0][0])
            beta = n - 1 if beta is None else beta
            contexts = as_tokens([(par + q).encode() + o for (p, q, *_), o in zip(cases, outs) for par in p], device)
            context_logp = torch.log_softmax(model(contexts)[:, -1].double(), -1).view(len(cases), n, -1)
            uncond = as_tokens([q.encode() + o for (p, q, *_), o in zip(cases, outs)], device)
            uncond_logp = torch.log_softmax(model(uncond)[:, -1].double(), -1)
            nxt = [int(combine(context_logp[i], uncond_logp[i], pooling, float(beta), truncate, inf_rule,
                               chosen[i], penalty).argmax()) for i in range(len(cases))]
            if penalty:  # the context each case decoded from, for the next step's penalty
                chosen = [least_entropy_context(top_p(context_logp[i], truncate), chosen[i], penalty)
                          for i in range(len(cases))]
        outs = [o + bytes([t]) for o, t in zip(outs, nxt)]
    return [o.decode("latin-1") for o in outs]


def score(out: str, value: str) -> dict:
    return {"exact": float(out[:len(value)] == value), "gibberish": float(not out[:len(value)].isdigit())}


@torch.no_grad()
def reading_diagnostics(model, seed: int, questions: int = 100, separator: str = "=") -> dict:
    """What the base does with one paragraph, measured beside the checks (none decides on them):
      copy_accuracy      next-byte accuracy on the repeat of 20 random lowercase letters (in-context copying,
                         the mechanism reading a fact needs; chance 1/26)
      k{k}_exact         exact match from one paragraph of k facts
      k{k}_other_value   the answer is another fact's value of the paragraph: about (k-1)/k when the model
                         copies a value without matching the name
      coupled_k3_exact   exact match on "?a+b" from one paragraph of 3 facts holding both (no pooling: what the
                         coupled-context limit is measured against)"""
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    letters = torch.randint(ord("a"), ord("z") + 1, (questions, 20), generator=g)
    seq = torch.cat([letters, letters], 1).to(device)
    predicted = model(seq[:, :-1]).argmax(-1)
    out = {"copy_accuracy": float((predicted[:, 20:] == seq[:, 21:]).float().mean())}
    for k in (1, 2, 5):
        rng = random.Random(1_000_003 * seed + 424_242 + k)  # apart from every other draw of the run
        cases = [test_case(rng, 1, facts=k, separator=separator) for _ in range(questions)]
        outs = answers(model, cases, "concatenation", 3)
        values = [[part[-3:] for part in p[0].strip().split(";") if part] for p, q, v in cases]  # "name123"
        out[f"k{k}_exact"] = float(np.mean([o == v for o, (p, q, v) in zip(outs, cases)]))
        out[f"k{k}_other_value"] = float(np.mean([o != v and o in vs for o, vs, (p, q, v) in
                                                  zip(outs, values, cases)]))
    rng = random.Random(1_000_003 * seed + 424_242)
    cases = [test_case(rng, 1, "same", separator=separator) for _ in range(questions)]
    outs = answers(model, cases, "concatenation", 6)
    out["coupled_k3_exact"] = float(np.mean([o == v for o, (p, q, v) in zip(outs, cases)]))
    return out


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    model = finetuned_lm(cfg, ctx)
    model.eval()
    ns = [int(n) for n in sim.contexts]
    shards, per_shard = int(sim.shards), int(sim.questions_per_shard)
    jobs = [(n, s) for n in ns for s in range(shards)]
    results, cells = {}, {}
    for n, s in ctx.track(jobs, f"{len(ARMS)} arms x n in {ns} x {shards} shards", total=len(jobs)):
        rng = random.Random(1_000_003 * int(cfg.seed) + 1009 * n + s)
        cases = [test_case(rng, n, separator=str(cfg.facts.separator)) for _ in range(per_shard)]
        for arm in ARMS:
            scores = [score(out, v) for out, (p, q, v) in zip(answers(model, cases, arm, 3), cases)]
            row = {k: float(np.mean([x[k] for x in scores])) for k in ("exact", "gibberish")}
            ctx.claim_rows.append({"part": "single", "arm": arm, "n": n, "shard": s} | row)
            cells.setdefault((arm, n), []).append(row)
    for s in range(shards):  # NBCE's drop from the fewest to the most contexts, per shard
        drop = cells[("nbce", ns[0])][s]["exact"] - cells[("nbce", ns[-1])][s]["exact"]
        ctx.claim_rows.append({"part": "drop", "shard": s, "nbce_drop": drop})
    for (arm, n), rows in cells.items():
        for k in ("exact", "gibberish"):
            results[f"{arm}_n{n}_{k}"] = float(np.mean([r[k] for r in rows]))
    coupled_n = int(sim.coupled_contexts)
    for s in range(shards):
        rng = random.Random(1_000_003 * int(cfg.seed) + 7_777_777 + s)  # apart from the single-fact draws
        for placement in ("same", "split"):
            cases = [test_case(rng, coupled_n, placement, separator=str(cfg.facts.separator))
                     for _ in range(per_shard)]
            for arm in ("nbce", "nbce_transition", "concatenation"):
                outs = answers(model, cases, arm, 6)
                exact = float(np.mean([score(out, v)["exact"] for out, (p, q, v) in zip(outs, cases)]))
                ctx.claim_rows.append({"part": "coupled", "arm": arm, "placement": placement, "shard": s,
                                       "exact": exact})
                results.setdefault(f"coupled_{arm}_{placement}_exact", []).append(exact)
    for key in [k for k, v in results.items() if isinstance(v, list)]:
        results[key] = float(np.mean(results[key]))
    say(f"exact match at n = {ns[0]} / {ns[-1]}: NBCE {results[f'nbce_n{ns[0]}_exact']:.2f} / "
        f"{results[f'nbce_n{ns[-1]}_exact']:.2f}, concatenation {results[f'concatenation_n{ns[0]}_exact']:.2f} / "
        f"{results[f'concatenation_n{ns[-1]}_exact']:.2f}; coupled facts split across contexts: NBCE "
        f"{results['coupled_nbce_split_exact']:.2f} (same context {results['coupled_nbce_same_exact']:.2f})")
    diagnostics = reading_diagnostics(model, int(cfg.seed), separator=str(cfg.facts.separator))
    results |= diagnostics
    say(f"the base with one paragraph: copies a repeated string {diagnostics['copy_accuracy']:.2f} (chance 0.04); "
        + ", ".join(f"{k} facts: exact {diagnostics[f'k{k}_exact']:.2f}, another fact's value "
                    f"{diagnostics[f'k{k}_other_value']:.2f}" for k in (1, 2, 5))
        + f"; coupled \"?a+b\" from one paragraph {diagnostics['coupled_k3_exact']:.2f}")
    plot(ctx, results, ns)
    return results


def plot(ctx, results, ns) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    labels = {"concatenation": "(a) concatenation", "naive_bayes": "(b) naive Bayes, β = n-1",
              "naive_bayes_fixed": "(c) (b) + Top-P + -inf rule", "max_pooling": "(d) max pooling, β = 0.25",
              "nbce": "(e) NBCE: min entropy, β = 0.25", "pcw": "(f) average, β = 0 (PCW)",
              "nbce_transition": "(e) + transition penalty ln 2"}
    for i, arm in enumerate(ARMS):
        for ax, key in zip(axes, ("exact", "gibberish")):
            ax.plot(ns, [results[f"{arm}_n{n}_{key}"] for n in ns], "o-", color=f"C{i}", label=labels[arm])
    axes[0].set(xscale="log", xlabel="contexts n (one holds the answer)", ylabel="exact match", ylim=(-0.02, 1.02))
    axes[1].set(xscale="log", xlabel="contexts n", ylabel="gibberish answers", ylim=(-0.02, 1.02))
    axes[0].set_xticks(ns, [str(n) for n in ns])
    axes[1].set_xticks(ns, [str(n) for n in ns])
    axes[1].legend(fontsize=7)
    save_figure(ctx, "nbce", fig)
