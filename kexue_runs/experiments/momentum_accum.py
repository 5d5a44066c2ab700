"""momentum_accum: gradient accumulation hidden in momentum (method: methods/momentum_accumulation.py).

Post: 隐藏在动量中的梯度累积：少更新几步，效果反而更好？ https://kexue.fm/archives/8634
  1. the post's derivation recomputed on a fixed data stream (softmax regression on digits, float64):
     the χ-form SGDM against explicit k-step accumulation (equal up to rounding); the χ-form Adam and the
     cheap recipe (β̃ = 1 - (1-β)/k, update every k steps) against true accumulation (only approximations:
     their deviation is measured, not judged); β̃^k against β to second order;
  2. the post's experiment, which it describes but does not tabulate: a digits MLP trained at batch 4 with
     (a) Adam every step, (b) updates every k steps with β unchanged, (c) (b) with β̃, (d) true accumulation
     (batch 4k), (e) the χ-form Adam, (f) β̃ alone with every-step updates, all arms from the same initial
     weights and sample order per seed (paired over seeds).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..common.progress import say
from ..data.tabular import digits_split
from ..methods.momentum_accumulation import AccumulatingAdam, AccumulatingSGDM, PeriodicAdam, adjusted_beta
from ..models.batched import train_classifier_replicates
from ..models.mlp import mlp

ARMS = {  # name: (description, micro-batch multiple, update period in micro-steps, betas adjusted)
    "every_step": "(a) Adam, batch b, every step",
    "every_k": "(b) update every k steps, β unchanged",
    "every_k_adjusted": "(c) update every k steps, β̃",
    "true_accumulation": "(d) true accumulation (batch kb)",
    "chi_adam": "(e) the post's χ-form Adam",
    "adjusted_only": "(f) β̃ alone, every step",
}


def softmax_regression_stream(seed: int, steps: int, batch: int, dtype=torch.float64):
    """A fixed stream of micro-batches from digits and a gradient function for softmax regression."""
    x, y, _, _ = digits_split()
    x = x.to(dtype)
    g = torch.Generator().manual_seed(seed)
    batches = [torch.randint(0, len(y), (batch,), generator=g) for _ in range(steps)]

    def gradient(w: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        w = w.detach().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(x[idx] @ w, y[idx])
        (grad,) = torch.autograd.grad(loss, w)
        return grad

    w0 = 0.01 * torch.randn(64, 10, generator=g, dtype=dtype)
    return w0, batches, gradient


def accumulate_explicitly(w0, batches, gradient, k: int, update):
    """True accumulation: average k micro-batch gradients into a buffer, then one optimizer update."""
    w = w0.clone()
    buffer = torch.zeros_like(w)
    for t, idx in enumerate(batches, start=1):
        buffer += gradient(w, idx)
        if t % k == 0:
            w = update(w, buffer / k)
            buffer.zero_()
    return w


def run_optimizer(w0, batches, gradient, make_optimizer):
    w = torch.nn.Parameter(w0.clone())
    opt = make_optimizer([w])
    for idx in batches:
        w.grad = gradient(w, idx)
        opt.step()
    return w.detach()


def momentum_sgd(beta: float, lr: float, w0: torch.Tensor):
    """One SGDM step on the k-step average: m = β m + (1-β) ḡ, θ -= α m (m kept in the closure)."""
    m = torch.zeros_like(w0)

    def step(w, g):
        nonlocal m
        m = beta * m + (1 - beta) * g
        return w - lr * m
    return step


def derivations(seed: int, sim) -> dict:
    k, beta, lr = int(sim.k), float(sim.beta1), float(sim.stream_lr)
    out = {}
    for dtype, tag in ((torch.float64, ""), (torch.float32, "_float32")):
        w0, batches, gradient = softmax_regression_stream(seed, k * int(sim.stream_updates), int(sim.batch), dtype)

        reference = accumulate_explicitly(w0, batches, gradient, k, momentum_sgd(beta, lr, w0))
        chi = run_optimizer(w0, batches, gradient, lambda p: AccumulatingSGDM(p, lr=lr, beta=beta, k=k))
        out[f"chi_sgdm_relative_error{tag}"] = float((chi - reference).norm() / (reference - w0).norm())
    # Adam: the χ-form and the recipe against true accumulation (float64), as the distance travelled's fraction
    w0, batches, gradient = softmax_regression_stream(seed, k * int(sim.stream_updates), int(sim.batch))
    betas, adam_lr = (float(sim.beta1), float(sim.beta2)), float(sim.lr)
    true_adam = PeriodicAdam([torch.nn.Parameter(w0.clone())], lr=adam_lr, betas=betas)

    def adam(w, g):
        (p,) = true_adam.param_groups[0]["params"]
        p.data.copy_(w)
        p.grad = g
        true_adam.step()
        return p.detach().clone()

    reference = accumulate_explicitly(w0, batches, gradient, k, adam)
    travelled = (reference - w0).norm()
    tilde = tuple(adjusted_beta(b, k) for b in betas)
    arms = {
        "chi_adam": lambda p: AccumulatingAdam(p, lr=adam_lr, betas=betas, k=k),
        "every_k_adjusted": lambda p: PeriodicAdam(p, lr=adam_lr, betas=tilde, k=k),
        "every_k": lambda p: PeriodicAdam(p, lr=adam_lr, betas=betas, k=k),
    }
    for name, make in arms.items():
        w = run_optimizer(w0, batches, gradient, make)
        out[f"{name}_deviation_from_accumulation"] = float((w - reference).norm() / travelled)
    for b in betas:  # β̃^k = β + (k-1)/(2k) (1-β)^2 - ...: an alternating series, so the first neglected term bounds it
        bound = (k - 1) / (2 * k) * (1 - b) ** 2
        out[f"beta{b:g}_tilde_power_error_ratio"] = abs(adjusted_beta(b, k) ** k - b) / bound
    return out


def optimizer_of(arm: str, params, sim) -> torch.optim.Optimizer:
    k = int(sim.k)
    betas = (float(sim.beta1), float(sim.beta2))
    tilde = tuple(adjusted_beta(b, k) for b in betas)
    lr = float(sim.lr)
    return {
        "every_step": lambda: PeriodicAdam(params, lr=lr, betas=betas),
        "every_k": lambda: PeriodicAdam(params, lr=lr, betas=betas, k=k),
        "every_k_adjusted": lambda: PeriodicAdam(params, lr=lr, betas=tilde, k=k),
        "true_accumulation": lambda: PeriodicAdam(params, lr=lr, betas=betas),
        "chi_adam": lambda: AccumulatingAdam(params, lr=lr, betas=betas, k=k),
        "adjusted_only": lambda: PeriodicAdam(params, lr=lr, betas=tilde),
    }[arm]()


def micro_batch(arm: str, sim) -> int:
    """(d) trains on each k consecutive micro-batches as one batch; every other arm on micro-batches."""
    return int(sim.batch) * int(sim.k) if arm == "true_accumulation" else int(sim.batch)


def split(sim):
    """digits' fixed train/test split, with the last `sim.selection` training samples held out to choose each
    arm's epoch (#28: every step is best at epoch ~10 and overfits by 30, so a fixed last epoch measures
    training length; each arm is compared at the epoch its own held-out loss picks)."""
    x, y, x_test, y_test = digits_split()
    n = len(y) - int(sim.selection)
    return x[:n], y[:n], x[n:], y[n:], x_test, y_test


def epoch_metrics(logits_of, data) -> list[dict]:
    """Per replicate after an epoch: the held-out selection loss, the test loss and accuracy, the train loss.
    logits_of(x) gives logits [replicates, n, 10]."""
    x, y, x_sel, y_sel, x_test, y_test = data

    def loss(inputs, labels):
        logits = logits_of(inputs)
        per_row = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.repeat(len(logits)),
                                                    reduction="none")
        return per_row.view(len(logits), -1).mean(1), logits

    with torch.no_grad():
        selection, _ = loss(x_sel, y_sel)
        test, logits = loss(x_test, y_test)
        accuracy = (logits.argmax(-1) == y_test).float().mean(1)
        train, _ = loss(x, y)
    return [{"selection_loss": float(selection[i]), "val_loss": float(test[i]), "val_accuracy": float(accuracy[i]),
             "train_loss": float(train[i])} for i in range(len(selection))]


def at_selected_epoch(history: list[dict], epochs: int) -> dict:
    """An arm's numbers at the epoch with the lowest held-out selection loss (the first such epoch); the last
    epoch's test loss beside them, and how much the selection loss still fell in the last quarter of training
    (the precondition that the budget lets every arm reach its best)."""
    best = min(range(len(history)), key=lambda e: history[e]["selection_loss"])
    early = min(h["selection_loss"] for h in history[:max(1, (3 * epochs) // 4)])
    return {key: history[best][key] for key in ("val_loss", "val_accuracy", "train_loss", "selection_loss")} | {
        "selected_epoch": best + 1, "last_epoch_val_loss": history[-1]["val_loss"],
        "selection_gain_in_last_quarter": early - history[best]["selection_loss"]}


def train_arm(arm: str, seed: int, sim) -> dict:
    """One arm of the post's experiment. Every arm sees the same samples in the same order (per seed) and
    starts from the same weights; (d) groups each k consecutive micro-batches into one batch."""
    data = x, y, *_ = split(sim)
    k, batch = int(sim.k), int(sim.batch)
    model = mlp(64, int(sim.hidden), 10, seed)
    opt, micro = optimizer_of(arm, model.parameters(), sim), micro_batch(arm, sim)
    gen = torch.Generator().manual_seed(seed)
    usable = len(y) // (batch * k) * (batch * k)  # whole accumulation windows only, the same samples for every arm
    history = []
    for _ in range(int(sim.epochs)):
        order = torch.randperm(len(y), generator=gen)[:usable]
        for i in range(0, usable, micro):
            idx = order[i:i + micro]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            model.zero_grad()
            loss.backward()
            opt.step()
        history.append(epoch_metrics(lambda inputs: model(inputs).unsqueeze(0), data)[0])
    return at_selected_epoch(history, int(sim.epochs))


def train_arm_replicates(arm: str, seeds: list[int], sim) -> list[dict]:
    """train_arm for every seed at once (models/batched.py): the same inits, sample orders and optimizer
    states per seed, one batched computation."""
    data = x, y, *_ = split(sim)
    k, batch = int(sim.k), int(sim.batch)
    models = [mlp(64, int(sim.hidden), 10, seed) for seed in seeds]
    usable = len(y) // (batch * k) * (batch * k)
    histories = [[] for _ in seeds]  # per replicate, per epoch (as train_arm records it)

    def after_epoch(batched) -> None:
        for history, metrics in zip(histories, epoch_metrics(
                lambda inputs: batched(inputs.expand(len(seeds), -1, -1)), data)):
            history.append(metrics)

    train_classifier_replicates(models, lambda params: optimizer_of(arm, params, sim), x, y, seeds,
                                int(sim.epochs), usable, micro_batch(arm, sim), after_epoch=after_epoch)
    return [at_selected_epoch(history, int(sim.epochs)) for history in histories]


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    k = int(sim.k)
    results = derivations(int(cfg.seed), sim)
    for b in (float(sim.beta1), float(sim.beta2)):
        ratio = results[f"beta{b:g}_tilde_power_error_ratio"]
        ctx.claim_rows.append({"beta": b, "beta_tilde_power_error_ratio": ratio})
    say(f"χ-SGDM vs explicit accumulation: relative error {results['chi_sgdm_relative_error']:.2e} (float64), "
            f"{results['chi_sgdm_relative_error_float32']:.2e} (float32); χ-Adam deviates "
            f"{results['chi_adam_deviation_from_accumulation']:.3f} of the distance travelled")
    seeds = [1000 * int(cfg.seed) + r for r in range(int(sim.replicates))]
    jobs = [(arm, r) for r in range(len(seeds)) for arm in ARMS]
    per = {}
    title = f"{len(ARMS)} arms x {len(seeds)} seeds, batch {int(sim.batch)}, k = {k}"
    if sim.batched:  # one batched computation per arm (models/batched.py), logged in the plain loop's order
        for arm in ctx.track(list(ARMS), f"{title}, seeds batched", total=len(ARMS)):
            per |= {(arm, r): m for r, m in enumerate(train_arm_replicates(arm, seeds, sim))}
        for arm, r in jobs:
            ctx.log(r, arm, **per[(arm, r)])
    else:
        for arm, r in ctx.track(jobs, title, total=len(jobs)):
            per[(arm, r)] = train_arm(arm, seeds[r], sim)
            ctx.log(r, arm, **per[(arm, r)])
    per = {job: per[job] for job in jobs}  # the claim rows in the plain loop's order
    for (arm, r), m in per.items():
        ctx.claim_rows.append({"arm": arm, "replicate": r} | m)
    for arm in ARMS:
        for key in ("val_loss", "val_accuracy", "train_loss", "selected_epoch", "last_epoch_val_loss"):
            results[f"{arm}_{key}"] = float(np.mean([per[(arm, r)][key] for r in range(len(seeds))]))
    plot(ctx, per, len(seeds), results, sim)
    return results


def plot(ctx, per, replicates, results, sim) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    names = list(ARMS)
    xs = np.arange(len(names))
    for ax, key, label in ((axes[0], "val_loss", "test cross-entropy"), (axes[1], "val_accuracy", "test accuracy")):
        values = np.array([[per[(a, r)][key] for r in range(replicates)] for a in names])
        base = values[0]
        for r in range(replicates):  # thin lines: one seed across arms (the comparison is paired)
            ax.plot(xs, values[:, r], color="0.8", lw=0.7, zorder=1)
        sem = values.std(1, ddof=1) / math.sqrt(replicates) if replicates > 1 else None
        ax.errorbar(xs, values.mean(1), yerr=None if sem is None else 1.96 * sem, fmt="o", capsize=4, color="C0",
                    zorder=2, label=f"mean ± 95% CI over {replicates} seeds")
        ax.axhline(base.mean(), color="C3", lw=0.8, ls="--", label="(a) every step")
        ax.set_xticks(xs, [ARMS[a] for a in names], rotation=25, ha="right", fontsize=7)
        ax.set(ylabel=label)
        ax.legend(fontsize=7)
    fig.suptitle(f"digits MLP, batch {int(sim.batch)}, k = {int(sim.k)}, each arm at its best of {int(sim.epochs)} "
                 f"epochs on {int(sim.selection)} held-out samples, "
                 f"Adam lr {float(sim.lr):g}",
                 fontsize=9)
    save_figure(ctx, "momentum_accum", fig)
