"""lora_plus: LoRA against LoRA+ learning-rate ratios η_B/η_A on a model that was really pretrained.

Post: 配置不同的学习率，LoRA还能再涨一点？ https://kexue.fm/archives/10001 (LoRA+, arXiv 2402.12354).

One run = one width n and one seed:
  1. pretrain a byte-level causal LM of width n on Python's standard-library source (models/pretrained.py:
     cached under <output_root>/cache/pretrained/, keyed by the pretraining config's hash, so every job of
     a sweep reuses it);
  2. fine-tune it with LoRA (base frozen) on English prose (pydoc topics) for every ratio λ = η_B/η_A
     in lora.ratios, searching η_A on a factor-2 grid until the best η_A has a worse neighbour on both
     sides (so no ratio's best sits on the grid's edge);
  3. per ratio: the best validation loss over η_A at the full budget and at shorter ones (does the
     ordering of the ratios still change with the budget?), and its speed-up over plain LoRA (λ = 1): the
     steps each needs to reach the loss both reach (the worse of their two best losses);
  4. the control: LoRA+ at λ against plain LoRA at α·λ with Adam at ε = 0, no weight decay, no
     clipping: the two loss curves should agree to float precision.
"""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import torch

from ..common.errors import ConfigError
from ..common.progress import say
from ..data.text import batch_windows, load_text, random_windows
from ..methods.lora import TARGETS, add_lora, lora_plus_groups
from ..models.pretrained import pretrained_lm
from ..models.transformer import CausalLM, next_token_loss

HIGHER_IS_BETTER = ("best_ratio", "speedup_at_16")


def validate(cfg) -> None:
    lo = cfg.lora
    bad = [t for t in lo.targets if t not in TARGETS]
    if bad:
        raise ConfigError(f"lora.targets: unknown {bad[0]!r}; allowed: {', '.join(TARGETS)}")
    if int(lo.rank) < 1:
        raise ConfigError(f"lora.rank={lo.rank}: must be >= 1")
    if 1 not in [float(r) for r in lo.ratios]:
        raise ConfigError(f"lora.ratios={list(lo.ratios)}: must include 1 (plain LoRA, the reference)")
    if any(float(r) <= 0 for r in lo.ratios) or float(lo.lr_start) <= 0:
        raise ConfigError("lora.ratios and lora.lr_start must be > 0")
    if int(lo.max_tries) < 3:
        raise ConfigError(f"lora.max_tries={lo.max_tries}: the eta_A search needs at least 3 fine-tunes per ratio")
    if cfg.optimizer.name != "adam":
        raise ConfigError(f"optimizer={cfg.optimizer.name}: LoRA+ is stated for Adam; allowed: adam")
    if int(cfg.model.width) % int(cfg.model.heads) or (int(cfg.model.width) // int(cfg.model.heads)) % 2:
        raise ConfigError(f"model.width={cfg.model.width}, model.heads={cfg.model.heads}: the head size "
                          f"width/heads must be an even integer")


def pretrained(cfg, ctx) -> CausalLM:
    """The project's pretrained byte-level LM for this width (models/pretrained.py: cached, shared)."""
    return pretrained_lm(cfg.output_root, cfg.model, cfg.data, cfg.pretrain, int(cfg.data.length), ctx.device,
                         ctx.track)


def finetune(base: CausalLM, cfg, ratio: float, lr: float, train: torch.Tensor, val: torch.Tensor, device,
             alpha: float | None = None, eps: float | None = None, steps: int | None = None) -> list[float]:
    """LoRA(+) fine-tuning from the frozen base; the validation loss at step 0 and every eval_every steps."""
    lo, ft, opt = cfg.lora, cfg.finetune, cfg.optimizer
    model = copy.deepcopy(base)
    add_lora(model, list(lo.targets), int(lo.rank), float(alpha if alpha is not None else lo.alpha), int(cfg.seed))
    # optimizer=adam gives betas and eps; the learning rates come from lora.lrs and the ratio
    optimizer = torch.optim.Adam(lora_plus_groups(model, lr, ratio), betas=tuple(opt.betas),
                                 eps=float(opt.eps if eps is None else eps), weight_decay=float(opt.weight_decay))
    steps = int(ft.steps if steps is None else steps)
    every, L = int(ft.eval_every), int(cfg.data.length)
    curve = [val_loss(model, val, device)]
    for step in range(steps):
        loss = next_token_loss(model, random_windows(train, L, int(ft.batch_size), int(cfg.seed), step).to(device))
        if not math.isfinite(loss.item()):
            return curve + [math.inf] * (steps // every + 1 - len(curve))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % every == 0:
            curve.append(val_loss(model, val, device))
    return curve


@torch.no_grad()
def val_loss(model, val: torch.Tensor, device) -> float:
    value = sum(next_token_loss(model, val[i:i + 64].to(device)).item() * val[i:i + 64].shape[0]
                for i in range(0, val.shape[0], 64)) / val.shape[0]
    return value if math.isfinite(value) else math.inf


class Results:
    """Fine-tune curves finished so far, keyed "ratio/lr": checkpointed, so a killed run resumes at the
    next ratio (the search inside a ratio is deterministic, so redoing it gives the same numbers)."""

    def __init__(self):
        self.curves: dict[str, list[float]] = {}

    def state_dict(self) -> dict:
        return {"curves": self.curves}

    def load_state_dict(self, state: dict) -> None:
        self.curves = dict(state["curves"])


def steps_to(curve: list[float], target: float, every: int) -> float:
    """The first evaluated step at or below target; not reached within the budget counts as the
    budget plus one evaluation interval (a censored value, so every run keeps a finite number)."""
    hit = next((i for i, v in enumerate(curve) if v <= target), None)
    return float(len(curve) * every if hit is None else hit * every)


def steps_to_shared_loss(arm: list[list[float]], plain: list[list[float]], every: int) -> tuple[float, float]:
    """(the arm's steps, plain LoRA's steps) to the loss both reach: the worse of their two best losses over
    their η_A curves, each side at its fastest η_A. ("Faster" compares the steps to a loss both attain: to plain
    LoRA's own best, plain LoRA would be first by construction.)"""
    shared = max(min(map(min, arm)), min(map(min, plain)))
    return min(steps_to(c, shared, every) for c in arm), min(steps_to(c, shared, every) for c in plain)


def search_lr(loss_at, start: float, max_tries: int) -> dict[float, float]:
    """η_A on a factor-2 grid: try start/2, start, 2 start, then extend toward the better edge until the
    best η_A has a tried, worse neighbour on both sides (or max_tries fine-tunes are spent)."""
    tried: dict[float, float] = {}
    for lr in (start / 2, start, start * 2):
        tried[lr] = loss_at(lr)
    while len(tried) < max_tries:
        best = min(tried, key=lambda lr: (tried[lr], lr))
        if best == min(tried):
            nxt = best / 2
        elif best == max(tried):
            nxt = best * 2
        else:
            break
        tried[nxt] = loss_at(nxt)
    return tried


def best_at(curve: list[float], budget: int, every: int) -> float:
    """The best validation loss seen within the first `budget` steps."""
    return min(curve[: budget // every + 1])


def run(cfg, ctx) -> dict:
    base = pretrained(cfg, ctx)
    base.eval()
    prose = load_text(cfg.finetune.data)
    L, every, budget = int(cfg.data.length), int(cfg.finetune.eval_every), int(cfg.finetune.steps)
    g = torch.Generator().manual_seed(1234)
    val = batch_windows(prose.test, torch.randint(0, prose.test.numel() - L - 1, (int(cfg.finetune.val_samples),),
                                                  generator=g), L + 1)
    ratios = sorted(float(r) for r in cfg.lora.ratios)
    say(f"width n={cfg.model.width} ({base.num_params() / 1e6:.2f}M params) | LoRA r={cfg.lora.rank} "
          f"(n/r = {int(cfg.model.width) / int(cfg.lora.rank):g}) alpha={cfg.lora.alpha} on {list(cfg.lora.targets)} "
          f"| fine-tune on {prose.describe()} | {len(ratios)} ratios, eta_A searched on a factor-2 grid from "
          f"{cfg.lora.lr_start:g} | {budget} steps each")
    probe = copy.deepcopy(base)
    wrapped = add_lora(probe, list(cfg.lora.targets), int(cfg.lora.rank), float(cfg.lora.alpha), int(cfg.seed))
    ctx.details["optimizer_groups"] = {
        group["name"]: {"lr": f"{group['lr']:g} x eta_A" if group["name"] == "A" else "ratio x lr(A)",
                        "params": [n for n, p in probe.named_parameters() if p.requires_grad and
                                   n.endswith("lora_" + group["name"])]}
        for group in lora_plus_groups(probe, 1.0, 1.0)}
    ctx.details["optimizer_groups"]["frozen"] = ("every base parameter: weights, biases, LayerNorms and the "
                                                 "(tied) embedding stay at their pretrained values")
    ctx.details["adapted_layers"] = wrapped
    results = Results()
    ctx.samples_per_step = budget * int(cfg.finetune.batch_size)
    start = float(cfg.lora.lr_start)
    for i in ctx.steps(len(ratios), {"results": results}, description="ratios"):
        ratio = ratios[i]
        done = {float(k.split("/")[1]): min(v) for k, v in results.curves.items() if float(k.split("/")[0]) == ratio}
        if i > 0:  # start the next ratio's search below the previous ratio's best (B's rate grows with it)
            prev = {float(k.split("/")[1]): min(v) for k, v in results.curves.items()
                    if float(k.split("/")[0]) == ratios[i - 1]}
            start = min(prev, key=lambda lr: (prev[lr], lr)) / 2

        def loss_at(lr: float, ratio=ratio, done=done) -> float:
            if lr in done:
                return done[lr]
            curve = finetune(base, cfg, ratio, lr, prose.train, val, ctx.device)
            results.curves[f"{ratio}/{lr}"] = curve
            return min(curve)

        tried = search_lr(loss_at, start, int(cfg.lora.max_tries))
        best_lr = min(tried, key=lambda lr: (tried[lr], lr))
        ctx.log(i, "finetune", ratio=ratio, lr_A=best_lr, best_loss=min(tried[best_lr], 99.0), tries=len(tried))
    curves = {tuple(map(float, k.split("/"))): v for k, v in results.curves.items()}
    lrs_of = {r: sorted(lr for rr, lr in curves if rr == r) for r in ratios}
    best = {r: min((min(curves[(r, lr)]), lr) for lr in lrs_of[r]) for r in ratios}
    target = best[1.0][0]
    plain = [curves[(1.0, lr)] for lr in lrs_of[1.0]]
    race = {r: steps_to_shared_loss([curves[(r, lr)] for lr in lrs_of[r]], plain, every) for r in ratios}
    speedup = {r: lora_steps / max(steps, 1.0) for r, (steps, lora_steps) in race.items()}
    best_ratio = min(ratios, key=lambda r: best[r][0])
    budgets = [b for b in (budget // 4, budget // 2, budget) if b >= every]
    at_budget = {b: {r: min(best_at(curves[(r, lr)], b, every) for lr in lrs_of[r]) for r in ratios} for b in budgets}
    ctx.claim_rows = [{"lora.ratio": r, "best_loss": best[r][0], "best_lr_A": best[r][1],
                       "lr_interior": float(lrs_of[r][0] < best[r][1] < lrs_of[r][-1]),
                       "steps_to_target": race[r][0], "lora_steps_to_target": race[r][1], "speedup": speedup[r]}
                      | {f"best_loss_at_{b}": at_budget[b][r] for b in budgets}
                      | ({"relative_gain_second_half": (at_budget[budgets[-2]][r] - at_budget[budgets[-1]][r])
                          / at_budget[budgets[-1]][r]} if len(budgets) > 1 else {})  # still improving: no plateau
                      for r in ratios]
    ranking = {b: sorted(ratios, key=lambda r: at_budget[b][r]) for b in budgets}
    equivalence = scale_equivalence(base, cfg, prose.train, val, ctx.device)
    write_grid(ctx.run_dir / "finetunes.csv", curves, every)
    plot(ctx, curves, best, ratios, every, cfg)
    at16 = 16.0 if 16.0 in best else best_ratio
    return {"best_ratio": best_ratio, "log2_best_ratio": math.log2(best_ratio), "best_loss": best[best_ratio][0],
            "lora_loss": target,
            "loss_at_16": best[at16][0], "speedup_at_16": speedup[at16],
            "initial_loss": curves[(1.0, lrs_of[1.0][0])][0],
            "lora_loss_drop": curves[(1.0, lrs_of[1.0][0])][0] - target,  # does plain LoRA learn the task at all?
            "ranking_same_at_half_budget": float(ranking[budgets[-1]] == ranking[budgets[-2]])
            if len(budgets) > 1 else math.nan,
            "fine_tunes": float(len(curves)),
            "equivalence_max_diff": equivalence}


def scale_equivalence(base, cfg, train, val, device) -> float:
    """max |loss(LoRA+ at λ, α) - loss(LoRA at 1, α·λ)| along the curve, Adam with ε -> 0 (control.eps;
    exactly 0 would divide 0 by 0 at the first step, where A's gradient is zero because B is)."""
    c = cfg.control
    lam, lr, steps, eps = float(c.ratio), float(c.lr), int(c.steps), float(c.eps)
    plus = finetune(base, cfg, lam, lr, train, val, device, eps=eps, steps=steps)
    scaled = finetune(base, cfg, 1.0, lr, train, val, device, alpha=float(cfg.lora.alpha) * lam, eps=eps, steps=steps)
    say(f"control: LoRA+ λ={lam:g} vs LoRA α·λ, Adam ε={eps:g}: losses {plus[-1]:.5f} vs {scaled[-1]:.5f}")
    diffs = [abs(a - b) for a, b in zip(plus, scaled)]
    return max(diffs) if all(math.isfinite(d) for d in diffs) else math.inf  # a NaN must not pass


def write_grid(path: Path, curves: dict, every: int) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ratio", "lr_A", "step", "val_loss"])
        for (r, lr), curve in curves.items():
            for i, v in enumerate(curve):
                w.writerow([r, lr, i * every, v])


def plot(ctx, curves, best, ratios, every, cfg) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for r in ratios:
        lrs = sorted(lr for rr, lr in curves if rr == r)
        ax1.plot(lrs, [min(curves[(r, lr)]) for lr in lrs], marker="o", ms=3, label=f"λ={r:g}")
    ax1.set(xscale="log", xlabel="η_A (factor-2 grid, searched per ratio)", ylabel="best val loss (nats/byte)",
            title=f"n = {cfg.model.width}, r = {cfg.lora.rank}: loss against η_A")
    ax1.set_ylim(top=min(ax1.get_ylim()[1], best[1.0][0] * 1.3))
    ax1.legend(fontsize=7, ncol=2)
    for r in ratios:
        curve = curves[(r, best[r][1])]
        ax2.plot([i * every for i in range(len(curve))], curve, label=f"λ={r:g}")
    ax2.axhline(best[1.0][0], color="grey", ls=":", lw=1, label="plain LoRA's best")
    ax2.set(xlabel="fine-tune step", ylabel="val loss (best η_A per λ)", title="curves at each ratio's best η_A")
    ax2.legend(fontsize=7, ncol=2)
    save_figure(ctx, "ratio_sweep", fig)


def sweep_tables(sweep_dir: Path, jobs: list[dict]) -> None:
    """tables.md: best loss and steps to plain LoRA's loss per (width, ratio), mean over seeds, and
    the best ratio per width beside √n and n scalings from the smallest width."""
    from collections import defaultdict

    cells: dict = defaultdict(list)
    best: dict = defaultdict(list)
    for job in jobs:
        n = int(job["config"]["model"]["width"])
        best[n].append(job["final"]["best_ratio"])
        for row in job.get("claim_rows") or []:
            cells[(n, row["lora.ratio"])].append(row)
    widths = sorted(best)
    ratios = sorted({r for _, r in cells})
    lines = ["# lora_plus: fine-tune loss at a fixed budget (best η_A per ratio), mean over seeds", "",
             "| n | " + " | ".join(f"λ={r:g}" for r in ratios) + " |", "|---|" + "---|" * len(ratios)]
    for n in widths:
        lines.append(f"| {n} | " + " | ".join(
            f"{sum(x['best_loss'] for x in cells[(n, r)]) / len(cells[(n, r)]):.4f}" for r in ratios) + " |")
    lines += ["", "Speed-up over plain LoRA to the loss both reach (the worse of their best; plain LoRA's steps / "
              "the ratio's), per seed:", "",
              "| n | " + " | ".join(f"λ={r:g}" for r in ratios) + " |", "|---|" + "---|" * len(ratios)]
    for n in widths:
        lines.append(f"| {n} | " + " | ".join(
            " / ".join(f"{x['speedup']:.2g}" for x in cells[(n, r)]) for r in ratios) + " |")
    n0 = widths[0] if widths else 1
    b0 = sum(best[n0]) / len(best[n0]) if widths else 1
    lines += ["", "Best ratio against width (per seed; the scalings start from the smallest width's mean):", "",
              "| n | best λ per seed | mean | √n scaling | n scaling |", "|---|---|---|---|---|"]
    for n in widths:
        mean = sum(best[n]) / len(best[n])
        lines.append(f"| {n} | {', '.join(f'{b:g}' for b in best[n])} | {mean:.3g} | "
                     f"{b0 * math.sqrt(n / n0):.3g} | {b0 * n / n0:.3g} |")
    (Path(sweep_dir) / "tables.md").write_text("\n".join(lines) + "\n")
    from ..claims.report import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for n in widths:
        means = [sum(x["best_loss"] for x in cells[(n, r)]) / len(cells[(n, r)]) for r in ratios]
        ax.plot(ratios, [m / means[0] for m in means], marker="o", label=f"n = {n}")
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.axvline(16, color="grey", ls="--", lw=1, label="LoRA+ recommendation (16)")
    ax.set(xscale="log", xlabel="λ = η_B / η_A", ylabel="best loss / plain LoRA's (best η_A each)",
           title="LoRA+: fine-tune loss against the ratio")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(sweep_dir) / "figure.png", dpi=130)
    plt.close(fig)
