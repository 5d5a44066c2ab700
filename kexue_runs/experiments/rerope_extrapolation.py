"""rerope_extrapolation: length extrapolation of a small causal LM, as in the ReRoPE, HWFA and KeyNorm tables.

Posts: ReRoPE https://kexue.fm/archives/9708, HWFA https://kexue.fm/archives/9603, KeyNorm
https://kexue.fm/archives/9859, the retrospective https://kexue.fm/archives/9948.

One run trains one model (`arch=`: baseline, logn, hwfa, kna, qna, cosa, kna_nope) at training length
L and evaluates it without fine-tuning at L, 2L, 4L and 8L under every inference arm that applies to
it (RoPE, PI, NTK old/fixed/mixed, YaRN, ReRoPE(w), Leaky ReRoPE(w, k), each with and without log n†,
and a sliding-window mask with and without the first tokens kept), on two test sets built as the
posts build them:
  natural   windows of 8L+1 bytes of held-out text
  repeated  a chunk of c bytes (L <= c <= 4L) of held-out text repeated to fill 8L+1
Shorter lengths use the last T+1 bytes of the same windows, so the last L targets are the same at
every length (the rerope repository's eval_loss protocol) and "last L" metrics show whether more
context helps. Metric: per-token next-byte accuracy (and loss), over the whole sequence.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..common.errors import ConfigError
from ..common.progress import say
from ..data.text import CORPORA, batch_windows, load_text, random_windows
from ..methods.optim import make_optimizer
from ..models.transformer import POSITIONS, SCORES, ArchConfig, CausalLM, InferenceArm, next_token_loss

DATA_PARALLEL = True
HIGHER_IS_BETTER = ("acc_1x", "acc_8x_rep", "acc_8x_nonrep", "acc_last_8x_nonrep")
MULTIPLES = (1, 2, 4, 8)
SETS = ("natural", "repeated")


def hwfa_window(cfg) -> int:
    """arch.window, with auto = the largest w such that (w-1)(layers-1)+1 <= 3L/4 (9603)."""
    if str(cfg.arch.window) != "auto":
        return int(cfg.arch.window)
    return int((0.75 * int(cfg.data.length) - 1) // max(1, int(cfg.model.layers) - 1)) + 1


def yarn_ramp(cfg) -> tuple[float, float]:
    """YaRN's ramp (alpha, beta), in turns a RoPE pair makes within the training length L.

    The YaRN paper's alpha = 1, beta = 32 were set for training lengths in the thousands; the posts train
    at 512. Pair m makes L theta_m / 2 pi turns, so at a shorter L every pair makes proportionally fewer:
    `scaled` (default) multiplies alpha and beta by L / reference_length, which keeps the same pairs (the
    same share of dimensions) interpolated, blended and extrapolated as at the posts' L = 512. At L = 64
    that is alpha = 1/8, beta = 4. `absolute` uses the paper's numbers as they are."""
    e = cfg.eval
    alpha, beta = float(e.yarn_alpha), float(e.yarn_beta)
    if e.yarn_ramp == "scaled":
        factor = int(cfg.data.length) / float(e.yarn_reference_length)
        return alpha * factor, beta * factor
    return alpha, beta


def arch_config(cfg) -> ArchConfig:
    m, a = cfg.model, cfg.arch
    alpha, beta = yarn_ramp(cfg)
    return ArchConfig(vocab_size=256, width=int(m.width), layers=int(m.layers), heads=int(m.heads),
                      mlp_ratio=int(m.mlp_ratio), rope_base=float(m.rope_base), train_length=int(cfg.data.length),
                      score=a.score, position=a.position, logn=bool(a.logn), window=hwfa_window(cfg),
                      mixed_b=0.625 if tunes_mixed_b(cfg) else float(cfg.eval.ntk_mixed_b),
                      yarn_alpha=alpha, yarn_beta=beta)


def tunes_mixed_b(cfg) -> bool:
    return str(cfg.eval.ntk_mixed_b) == "tuned"


def validate(cfg) -> None:
    a, m = cfg.arch, cfg.model
    if a.score not in SCORES:
        raise ConfigError(f"arch.score={a.score}: allowed: {', '.join(SCORES)}")
    if a.position not in POSITIONS:
        raise ConfigError(f"arch.position={a.position}: allowed: {', '.join(POSITIONS)}")
    if int(m.width) % int(m.heads) or (int(m.width) // int(m.heads)) % 2:
        raise ConfigError(f"model.width={m.width}, model.heads={m.heads}: the head size width/heads must be an "
                          f"even integer (RoPE rotates pairs)")
    if cfg.data.name not in CORPORA:
        raise ConfigError(f"data.name={cfg.data.name}: allowed: {', '.join(CORPORA)}")
    if int(cfg.data.length) < 16:
        raise ConfigError(f"data.length={cfg.data.length}: the training length must be >= 16 (the arms use L/8)")
    if str(a.window) != "auto" and not str(a.window).lstrip("-").isdigit():
        raise ConfigError(f"arch.window={a.window}: allowed: 0 (full attention), auto, or a window size")
    if not 0 <= hwfa_window(cfg) < int(cfg.data.length):
        raise ConfigError(f"arch.window={a.window}: HWFA's window must be in 0..{int(cfg.data.length) - 1} "
                          f"(below the training length data.length={cfg.data.length})")
    unknown = [x for x in cfg.eval.arms if x not in ARM_FAMILIES]
    if unknown:
        raise ConfigError(f"eval.arms: unknown {unknown[0]!r}; allowed: {', '.join(ARM_FAMILIES)}")
    b = str(cfg.eval.ntk_mixed_b)
    if b != "tuned" and not (b.replace(".", "", 1).isdigit() and float(b) > 0):
        raise ConfigError(f"eval.ntk_mixed_b={b}: allowed: tuned (searched over eval.ntk_mixed_b_grid) or a "
                          f"number > 0 (9706's is 0.625)")
    if tunes_mixed_b(cfg) and not (cfg.eval.ntk_mixed_b_grid and all(float(x) > 0 for x in cfg.eval.ntk_mixed_b_grid)):
        raise ConfigError(f"eval.ntk_mixed_b_grid={list(cfg.eval.ntk_mixed_b_grid or [])}: with ntk_mixed_b=tuned, "
                          f"a non-empty list of numbers > 0")
    if cfg.eval.yarn_ramp not in ("scaled", "absolute"):
        raise ConfigError(f"eval.yarn_ramp={cfg.eval.yarn_ramp}: allowed: scaled, absolute")
    for fraction in cfg.eval.rerope_windows:
        window_size(str(fraction), int(cfg.data.length))


# -- the inference arms ---------------------------------------------------------------------------
ARM_FAMILIES = ("as_trained", "pi", "ntk_old", "ntk_fixed", "ntk_mixed", "yarn", "rerope", "leaky_rerope",
                "window")


def window_size(fraction: str, L: int) -> int:
    """'L/4' -> L // 4, '3L/4' -> 3L // 4, 'L' -> L: arm names stay the same at every scale."""
    num, _, den = fraction.partition("/")
    factor = int(num[:-1] or 1) if num.endswith("L") else None
    if factor is None or (den and not den.isdigit()):
        raise ConfigError(f"eval.rerope_windows: {fraction!r} is not a fraction of L; use e.g. L/8, L/2, 3L/4, L")
    return max(1, factor * L // int(den or 1))


def inference_arms(cfg) -> list[InferenceArm]:
    """The arms that apply to this model. log n† (suffix _logn†) only where it was not trained with log n."""
    L, a, e = int(cfg.data.length), cfg.arch, cfg.eval
    families = list(e.arms)
    arms = [InferenceArm("as_trained")]
    if a.position != "rope" or hwfa_window(cfg):  # NoPE and HWFA: as trained only
        return arms
    if a.score != "dot":  # KeyNorm Table 2: the norm variants also get ReRoPE (its w = L/4 row)
        return arms + ([InferenceArm("rerope_L/4", "rerope", window=window_size("L/4", L))]
                       if "rerope" in families else [])
    for dagger in ([False] if a.logn else [False, True]):
        suffix = "_logn†" if dagger else ""
        if dagger:
            arms.append(InferenceArm("logn†", logn_dagger=True))
        for scheme in ("pi", "ntk_old", "ntk_fixed", "ntk_mixed"):
            if scheme in families:
                arms.append(InferenceArm(scheme + suffix, scheme, logn_dagger=dagger))
        if "rerope" in families:
            for frac in e.rerope_windows:
                arms.append(InferenceArm(f"rerope_{frac}{suffix}", "rerope", window=window_size(frac, L),
                                         logn_dagger=dagger))
    if "yarn" in families:
        arms.append(InferenceArm("yarn", "yarn"))
    if "leaky_rerope" in families:  # Table 3 is with log n: trained, or else log n†
        for k in e.leaky_ks:
            arms.append(InferenceArm(f"leaky_rerope_L/4_k{k}{'' if a.logn else '_logn†'}", "leaky_rerope",
                                     window=window_size("L/4", L), leaky_k=float(k), logn_dagger=not a.logn))
    if "window" in families:
        arms.append(InferenceArm("window", mask_window=L))
        arms.append(InferenceArm("window_sinks", mask_window=L, sinks=int(e.sinks)))  # the Λ-mask (9948)
        arms.append(InferenceArm("window_sinks_original", mask_window=L, sinks=int(e.sinks),
                                 sink_positions="original"))  # ours: the sinks at their true distance
    return arms


def tune_mixed_b(model: CausalLM, train: torch.Tensor, cfg, device) -> tuple[float, list[tuple[float, float]]]:
    """NTK-mixed's b chosen as 9706 chose 0.625: the b of the grid with the best accuracy at 8L on natural
    text. Ours reads it on windows of the training text (eval.tune_samples of them), so the test windows
    never select it. Returns the best b and (b, accuracy) for every b of the grid."""
    L, e = int(cfg.data.length), cfg.eval
    windows = test_sets(train, L, int(e.tune_samples), int(e.seed) + 1)["natural"]
    scores = []
    for b in (float(x) for x in e.ntk_mixed_b_grid):
        arm = InferenceArm("ntk_mixed", "ntk_mixed", mixed_b=b)
        acc = evaluate_arm(model, windows, arm, L, int(e.batch_size), device, (8,))[8]["acc"].mean().item()
        scores.append((b, acc))
    best = max(scores, key=lambda bs: bs[1])[0]  # ties: the first, the smaller b
    return best, scores


def with_mixed_b(arms: list[InferenceArm], b: float) -> list[InferenceArm]:
    return [dataclasses.replace(a, mixed_b=b) if a.scheme == "ntk_mixed" else a for a in arms]


# -- test sets -------------------------------------------------------------------------------------
def test_sets(test: torch.Tensor, L: int, n: int, seed: int) -> dict[str, torch.Tensor]:
    """(n, 8L+1) natural windows and repeated-chunk samples, fixed by eval.seed (not the run seed)."""
    g = torch.Generator().manual_seed(seed)
    total = 8 * L + 1
    starts = torch.randint(0, test.numel() - total, (n,), generator=g)
    natural = batch_windows(test, starts, total)
    repeated = torch.empty_like(natural)
    for i in range(n):
        c = int(torch.randint(L, 4 * L + 1, (1,), generator=g))
        start = int(torch.randint(0, test.numel() - c, (1,), generator=g))
        chunk = test[start:start + c]
        repeated[i] = chunk.repeat(math.ceil(total / c))[:total]
    return {"natural": natural, "repeated": repeated}


@torch.no_grad()
def evaluate_arm(model: CausalLM, samples: torch.Tensor, arm: InferenceArm, L: int, batch: int, device,
                 multiples=MULTIPLES) -> dict:
    """Per-sample accuracy and loss at each multiple of L, overall and on the last L targets."""
    out = {}
    for mult in multiples:
        T = mult * L
        rows = {"acc": [], "loss": [], "acc_last": [], "loss_last": []}
        for start in range(0, samples.shape[0], batch):
            x = samples[start:start + batch, -(T + 1):].to(device)
            logits = model(x[:, :-1], arm)
            loss = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
            correct = (logits.argmax(-1) == x[:, 1:]).float()
            rows["acc"].append(correct.mean(1))
            rows["loss"].append(loss.mean(1))
            rows["acc_last"].append(correct[:, -L:].mean(1))
            rows["loss_last"].append(loss[:, -L:].mean(1))
        out[mult] = {k: torch.cat(v).cpu() for k, v in rows.items()}
    return out


# -- the run ----------------------------------------------------------------------------------------
def multiples(cfg) -> tuple[int, ...]:
    """The multiples of L the natural test set is read at: always 1 and 8 (the posts' columns)."""
    return tuple(sorted({1, 8} | {int(m) for m in cfg.eval.get("multiples", MULTIPLES)}))


def lr_at(step: int, cfg) -> float:
    """Linear warm-up, then cosine decay to 10%."""
    warmup, total = int(cfg.trainer.warmup_steps), int(cfg.trainer.steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def run(cfg, ctx) -> dict:
    corpus = load_text(cfg.data)
    L, device = int(cfg.data.length), ctx.device
    steps, batch = int(cfg.trainer.steps), int(cfg.trainer.batch_size)
    arch = arch_config(cfg)
    model = CausalLM(arch).to(device)
    net = ctx.dist.wrap(model, device)
    optimizer = make_optimizer(cfg.optimizer, model.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, cfg))
    sets = test_sets(corpus.test, L, int(cfg.eval.samples), int(cfg.eval.seed))
    arms = inference_arms(cfg)
    flops = 6 * model.num_params() * L + 12 * arch.layers * arch.width * L * L / 2
    say(f"{corpus.describe()} | arch {cfg.arch.name} ({arch.score}, {arch.position}"
          f"{', log n' if arch.logn else ''}{f', HWFA w={arch.window}' if arch.window else ''}) | "
          f"params {model.num_params() / 1e6:.2f}M | L={L}, eval up to {8 * L} | steps {steps} x batch {batch} "
          f"= {steps * batch * L / 1e6:.1f}M tokens | ~{flops * batch / 1e9:.2f} GFLOP/step | {len(arms)} arms")
    ctx.samples_per_step = batch * L  # tokens
    val = sets["natural"][:, -(L + 1):]
    val_loss = math.nan
    for step in ctx.steps(steps, {"model": model, "optimizer": optimizer, "schedule": schedule}):
        tokens = ctx.dist.shard(random_windows(corpus.train, L, batch, int(cfg.seed), step)).to(device)
        loss = next_token_loss(net, tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.trainer.grad_clip))
        optimizer.step()
        schedule.step()
        if ctx.is_log_step(step):
            ctx.log(step, "train", loss=ctx.dist.mean(loss).item(), lr=schedule.get_last_lr()[0])
        if ctx.is_eval_step(step, steps) and ctx.is_main:
            with torch.no_grad():
                model.eval()
                logits = torch.cat([model(val[i:i + 64, :-1].to(device)) for i in range(0, val.shape[0], 64)])
                val_loss = F.cross_entropy(logits.transpose(1, 2), val[:, 1:].to(device)).item()
                model.train()
            ctx.log(step + 1, "val", loss=val_loss)
    if not ctx.is_main:
        return {}
    model.eval()
    mixed_b, b_scores = float(arch.mixed_b), []
    if tunes_mixed_b(cfg) and any(a.scheme == "ntk_mixed" for a in arms):
        mixed_b, b_scores = tune_mixed_b(model, corpus.train, cfg, device)
        arms = with_mixed_b(arms, mixed_b)
        say(f"NTK-mixed b tuned on {int(cfg.eval.tune_samples)} training-text windows at 8L: b = {mixed_b} "
            f"({', '.join(f'{b}: {100 * acc:.2f}%' for b, acc in b_scores)})")
        with open(ctx.run_dir / "ntk_mixed_b.csv", "w", newline="") as f:
            csv.writer(f).writerows([["b", "acc_8x_train_text"]] + [[b, f"{acc:.5f}"] for b, acc in b_scores])
    results = {}
    for arm in ctx.track(arms, "arms", total=len(arms)):
        # the posts' columns: natural text at L and 8L (and eval.multiples between), repeated text at 8L
        results[arm.name] = {s: evaluate_arm(model, sets[s], arm, L, int(cfg.eval.batch_size), device,
                                             multiples(cfg) if s == "natural" else (8,)) for s in SETS}
    ctx.claim_rows = claim_rows(results, int(cfg.eval.shards))
    write_arm_table(ctx.run_dir / "arms.csv", results)
    write_run_tables(ctx, cfg, results)
    plot_arms(ctx, results, L)
    base = results["as_trained"]
    return {
        "acc_1x": base["natural"][1]["acc"].mean().item(),
        "acc_8x_rep": base["repeated"][8]["acc"].mean().item(),
        "acc_8x_nonrep": base["natural"][8]["acc"].mean().item(),
        "acc_last_8x_nonrep": base["natural"][8]["acc_last"].mean().item(),
        "loss_1x": base["natural"][1]["loss"].mean().item(),
        "loss_8x_nonrep": base["natural"][8]["loss"].mean().item(),
        "val/loss": val_loss,
        "ntk_mixed_b": mixed_b,
    }


def headline(arm: dict) -> dict[str, torch.Tensor]:
    """Per-sample values of the posts' three columns (and a few more) for one arm."""
    nat, rep = arm["natural"], arm["repeated"]
    return {"acc_1x": nat[1]["acc"], "acc_8x_rep": rep[8]["acc"], "acc_8x_nonrep": nat[8]["acc"],
            "acc_last_8x_nonrep": nat[8]["acc_last"], "loss_1x": nat[1]["loss"], "loss_8x_nonrep": nat[8]["loss"],
            "loss_last_8x_nonrep": nat[8]["loss_last"]}


def claim_rows(results: dict, shards: int) -> list[dict]:
    """One row per arm and test shard (the samples split into `shards` groups), for the checks:
    test-sample noise stands in for seed noise when arms of one model are compared."""
    base = headline(results["as_trained"])
    rows = []
    for name, arm in results.items():
        values = headline(arm)
        values["d_acc_1x"] = values["acc_1x"] - base["acc_1x"]
        values["drop_8x"] = values["acc_1x"] - values["acc_8x_nonrep"]
        values["loss_rise_8x"] = values["loss_8x_nonrep"] - values["loss_1x"]  # nats: 9948's "the PPL explodes"
        for shard, idx in enumerate(torch.arange(values["acc_1x"].numel()).chunk(shards)):
            rows.append({"arm": name, "shard": shard} | {k: v[idx].mean().item() for k, v in values.items()})
    return rows


def write_arm_table(path: Path, results: dict) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "set", "length_multiple", "acc", "acc_se", "loss", "acc_last", "loss_last"])
        for name, arm in results.items():
            for s in SETS:
                for mult, v in arm[s].items():
                    se = v["acc"].std().item() / math.sqrt(v["acc"].numel())
                    w.writerow([name, s, mult, f"{v['acc'].mean():.5f}", f"{se:.5f}", f"{v['loss'].mean():.5f}",
                                f"{v['acc_last'].mean():.5f}", f"{v['loss_last'].mean():.5f}"])


def post_row(cfg, arch: str, arm: str) -> list | None:
    """The post's [512, 4096 repeated, 4096 non-repeated] row for this (arch, arm), if it has one."""
    return (cfg.get("post_table") or {}).get(f"{arch}/{arm}")


def fmt_pct(x) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def write_run_tables(ctx, cfg, results: dict) -> None:
    """tables.md: rows = arms, columns = 1x, 8x repeated, 8x non-repeated; ours beside the post's."""
    L = int(cfg.data.length)
    lines = [f"# {cfg.arch.name}: accuracy (%) at L={L} and 8L={8 * L}, ours beside the post's (512 / 4096)", "",
             "| arm | ours 1x | ours 8x rep. | ours 8x non-rep. | ours last-L 8x non-rep. | post 512 | post 4096 rep."
             " | post 4096 non-rep. |", "|---|---|---|---|---|---|---|---|"]
    for name, arm in results.items():
        h = {k: v.mean().item() for k, v in headline(arm).items()}
        post = post_row(cfg, cfg.arch.name, name) or ["", "", ""]
        lines.append(f"| {name} | {fmt_pct(h['acc_1x'])} | {fmt_pct(h['acc_8x_rep'])} | "
                     f"{fmt_pct(h['acc_8x_nonrep'])} | {fmt_pct(h['acc_last_8x_nonrep'])} | "
                     + " | ".join(str(p) for p in post) + " |")
    (ctx.run_dir / "tables.md").write_text("\n".join(lines) + "\n")


def plot_arms(ctx, results: dict, L: int) -> None:
    from matplotlib.ticker import NullFormatter

    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    shown = [n for n in results if not (n.endswith("_logn†") and not n.startswith("rerope"))]  # readable
    colours = plt.get_cmap("tab20")
    for ax, s in zip(axes, SETS):
        for i, name in enumerate(shown):
            mults = sorted(results[name][s])
            accs = [results[name][s][m]["acc"].mean().item() for m in mults]
            ax.plot([m * L for m in mults], accs, marker="o", ms=3, label=name, color=colours(i % 20),
                    ls="-" if i < 20 else "--", lw=2.5 if name in ("as_trained", "rerope_L/2") else 1)
        mults = sorted(results["as_trained"][s])
        ax.set(xscale="log", xlabel="eval length (bytes)", title=f"{s} test set", xticks=[m * L for m in mults],
               xticklabels=[f"{m * L}" for m in mults])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axvline(L, color="grey", ls=":", lw=1)
    axes[0].set_ylabel("next-byte accuracy")
    axes[1].legend(fontsize=6, ncol=2, loc="lower left")
    save_figure(ctx, "accuracy_vs_length", fig)


def sweep_tables(sweep_dir: Path, jobs: list[dict]) -> None:
    """tables.md in the sweep folder: every (arch, arm) row, ours (mean over seeds) beside the post's."""
    from omegaconf import OmegaConf

    from .. import config_dir
    from ..claims.catalog import load_experiment

    spec = OmegaConf.create(load_experiment(config_dir() / "experiment" / "rerope_extrapolation.yaml"))
    by_row: dict[tuple, list[dict]] = {}
    for job in jobs:
        arch = job["config"]["arch"]["name"]
        for row in job.get("claim_rows") or []:
            by_row.setdefault((arch, row["arm"]), []).append(row)
    lines = ["# rerope_extrapolation: accuracy (%), ours beside the posts' (L=512, 8L=4096)", "",
             "| arch | arm | ours L | ours 8L rep. | ours 8L non-rep. | post 512 | post 4096 rep. "
             "| post 4096 non-rep. |",
             "|---|---|---|---|---|---|---|---|"]
    for (arch, arm), rows in by_row.items():
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("acc_1x", "acc_8x_rep", "acc_8x_nonrep")}
        post = post_row(spec, arch, arm) or ["", "", ""]
        lines.append(f"| {arch} | {arm} | {fmt_pct(mean['acc_1x'])} | {fmt_pct(mean['acc_8x_rep'])} | "
                     f"{fmt_pct(mean['acc_8x_nonrep'])} | " + " | ".join(str(p) for p in post) + " |")
    (Path(sweep_dir) / "tables.md").write_text("\n".join(lines) + "\n")
    sweep_figure(Path(sweep_dir), jobs)


def sweep_figure(sweep_dir: Path, jobs: list[dict]) -> None:
    """figure.png: accuracy against eval length on natural text, every trained model as trained, and the
    Baseline model's NTK-mixed and ReRoPE arms: one line per (model, arm), the mean over seeds with the
    seeds' spread as error bars."""
    from ..claims.report import pyplot

    curves: dict[str, dict[int, list[float]]] = {}
    for job in jobs:
        arch = job["config"]["arch"]["name"]
        path = Path(job.get("run_dir") or "") / "arms.csv"
        if not path.exists():
            continue
        rows = [r for r in csv.DictReader(open(path)) if r["set"] == "natural"]
        L = int(job["config"]["data"]["length"])
        for arm in ["as_trained"] + (["ntk_mixed", "rerope_L/2"] if arch == "baseline" else []):
            label = arch if arm == "as_trained" else f"{arch} + {arm}"
            for r in rows:
                if r["arm"] == arm:
                    curves.setdefault(label, {}).setdefault(int(r["length_multiple"]) * L, []).append(float(r["acc"]))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for i, (label, by_length) in enumerate(sorted(curves.items(), key=lambda kv: -np.mean(kv[1][max(kv[1])]))):
        lengths = sorted(by_length)
        means = [float(np.mean(by_length[x])) for x in lengths]
        spread = [float(np.std(by_length[x], ddof=1)) if len(by_length[x]) > 1 else 0.0 for x in lengths]
        seeds = min(len(by_length[x]) for x in lengths)
        ax.errorbar(lengths, means, yerr=spread, marker="o", ms=4, capsize=3, color=f"C{i % 10}",
                    ls="--" if " + " in label else "-", label=f"{label} ({seeds} seed{'s' * (seeds > 1)})")
    from matplotlib.ticker import NullFormatter

    lengths = sorted({x for by_length in curves.values() for x in by_length})
    ax.set(xscale="log", xlabel="eval length (bytes)", ylabel="next-byte accuracy, natural text",
           title="trained at L, tested at L..8L (mean over seeds, error bars: their std)", xticks=lengths,
           xticklabels=[str(x) for x in lengths])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), title="ordered by accuracy at 8L",
              title_fontsize=7)
    fig.tight_layout()
    fig.savefig(sweep_dir / "figure.png", dpi=130)
    plt.close(fig)
