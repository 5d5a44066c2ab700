"""analytic_logreg: the closed-form linear classifier of 8578 against gradient descent on fixed features.

Post: 概率视角下的线性模型：逻辑回归有解析解吗？ https://kexue.fm/archives/8578 (method code:
methods/analytic_classifier.py). The post trains on fixed sentence vectors of a pretrained encoder and
reports train / valid accuracy with the full training sets and with 1000 samples. Here, offline:

  digits, breast_cancer, wine   scikit-learn's bundled sets (64, 30, 13 features; 10, 2, 3 classes)
  stdlib_modules                which standard-library module a 64-byte chunk of source comes from
                                (~100 classes, like IFLYTEK's 119), on frozen mean-pooled features of the
                                project's pretrained byte-level LM (models/pretrained.py, the same cached
                                base as lora_plus at width 64)

Every replicate draws its own stratified train / valid split (the claim is about generalisation, so
the unit is the data draw). "small" is `small_per_class` training samples per class (the post's 1000
samples are ~8 per class on IFLYTEK), raised where needed to keep n >= small_min_n_over_d x d, as the
post's 1000 samples of 768-d vectors do (below n = d the within-class Σ is singular along the very
directions that separate the classes). Methods: the post's formula (Σ = I - Σ p_i μ_i μ_i^T after
whitening; Su's code implements it too since 2021-07-29), the Σ = I variant (his code's first week), and
gradient descent (softmax regression, Adam 1e-3, batch 32, no regularisation, on standardized features)
run for gd_steps steps: the post's 10 epochs of 12k-53k examples are 3.8k-17k steps, which 10 epochs of
these small sets are not. Replicates: the split, the small subset's draw, gradient descent's seed.
"""

from __future__ import annotations

import numpy as np
import torch

from ..common.errors import ConfigError
from ..common.progress import say
from ..methods.analytic_classifier import analytic_post, analytic_su_code, fit_whitening

HIGHER_IS_BETTER = ("train_acc", "valid_acc")
SKLEARN = ("digits", "breast_cancer", "wine")
DATASETS = SKLEARN + ("stdlib_modules",)
METHODS = ("analytic", "analytic_su_code", "gradient_descent")


def validate(cfg) -> None:
    bad = [d for d in cfg.sim.datasets if d not in DATASETS]
    if bad:
        raise ConfigError(f"sim.datasets: unknown {bad[0]!r}; allowed: {', '.join(DATASETS)}")


def sklearn_set(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    data = getattr(datasets, f"load_{name}")()
    return data.data.astype(np.float64), data.target.astype(np.int64)


def stdlib_modules(cfg, ctx) -> tuple[np.ndarray, np.ndarray]:
    """Mean-pooled final hidden states of 64-byte chunks from the largest standard-library modules."""
    from ..data.text import documents
    from ..models.pretrained import pretrained_lm

    s, L = cfg.sim, int(cfg.data.length)
    model = pretrained_lm(cfg.output_root, cfg.model, cfg.data, cfg.pretrain, L, ctx.device, ctx.track)
    model.eval()
    files = sorted(documents(cfg.data), key=lambda item: (-len(item[1]), item[0]))[: int(s.stdlib_classes)]
    rng = np.random.default_rng(1234)  # the chunks are fixed: every run and seed sees the same task
    chunks, labels = [], []
    for label, (_, body) in enumerate(files):
        starts = rng.integers(0, len(body) - L, int(s.stdlib_chunks_per_class))
        chunks += [np.frombuffer(body[i:i + L], dtype=np.uint8) for i in starts]
        labels += [label] * len(starts)
    tokens = torch.from_numpy(np.stack(chunks).astype(np.int64))
    features = []
    with torch.no_grad():
        for i in ctx.track(range(0, len(tokens), 256), "LM features", total=(len(tokens) + 255) // 256):
            features.append(model.hidden(tokens[i:i + 256].to(ctx.device)).mean(dim=1).cpu().double().numpy())
    return np.concatenate(features), np.array(labels)


def split(y: np.ndarray, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split drawn from `seed`: (train indices, valid indices)."""
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cut = max(1, int(round(len(idx) * valid_fraction)))
        valid += list(idx[:cut])
        train += list(idx[cut:])
    return np.array(sorted(train)), np.array(sorted(valid))


def small_subset(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    return np.array(sorted(i for c in np.unique(y)
                           for i in rng.permutation(np.flatnonzero(y == c))[:per_class]))


def small_per_class(cfg, classes: int, features: int) -> int:
    """Samples per class of the small set: small_per_class, or more where that would leave n below
    small_min_n_over_d x d (the post: 1000 samples of 768-d vectors, n / d = 1.3)."""
    return max(int(cfg.small_per_class), int(np.ceil(float(cfg.small_min_n_over_d) * features / classes)))


def gd_epochs(samples: int, cfg, steps: int | None = None) -> int:
    """Whole epochs that make at least `steps` (default gd_steps) steps of gd_batch (one at least)."""
    steps = int(cfg.gd_steps) if steps is None else steps
    return max(1, int(np.ceil(steps / int(np.ceil(samples / int(cfg.gd_batch))))))


def gradient_descent(x: np.ndarray, y: np.ndarray, classes: int, seed: int, cfg):
    """Softmax regression as the post trains it: Adam 1e-3, batch 32, no regularisation, the features
    standardized on the training set; run for gd_steps steps (whole epochs, at least one), then trained on,
    its length doubled each time, while the second half still gains gd_plateau_gain of train accuracy,
    up to gd_max_steps: gradient descent at its plateau, as the post's fits are. Returns a predict
    function with the train accuracy halfway."""
    mean, std = x.mean(0), x.std(0) + 1e-8
    torch.manual_seed(seed)
    layer = torch.nn.Linear(x.shape[1], classes).double()
    opt = torch.optim.Adam(layer.parameters(), lr=float(cfg.gd_lr))
    xt, yt = torch.from_numpy((x - mean) / std), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    batch = int(cfg.gd_batch)
    epochs = gd_epochs(len(yt), cfg)
    most = max(epochs, gd_epochs(len(yt), cfg, steps=int(cfg.gd_max_steps)))

    def train_acc() -> float:
        with torch.no_grad():
            return float((layer(xt).argmax(1) == yt).double().mean())

    done, accuracy = 0, {}
    while True:
        for epoch in range(done, epochs):
            order = torch.randperm(len(yt), generator=gen)
            for i in range(0, len(yt), batch):
                idx = order[i:i + batch]
                loss = torch.nn.functional.cross_entropy(layer(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if epoch + 1 in (epochs // 2, epochs):  # the plateau check's two points (no random draw)
                accuracy[epoch + 1] = train_acc()
        done = epochs
        half_train_acc = accuracy.get(epochs // 2, float("nan"))
        if accuracy[epochs] - half_train_acc < float(cfg.gd_plateau_gain) or 2 * epochs > most:
            break
        epochs *= 2

    def predict(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return layer(torch.from_numpy((z - mean) / std)).argmax(1).numpy()

    predict.half_train_acc, predict.epochs = half_train_acc, epochs
    return predict


def fit_predict(method: str, x: np.ndarray, y: np.ndarray, classes: int, seed: int, cfg):
    if method == "gradient_descent":
        return gradient_descent(x, y, classes, seed, cfg)
    white = fit_whitening(x)
    model = (analytic_post if method == "analytic" else analytic_su_code)(white(x), y, classes)
    return lambda z: model.predict(white(z))


def run(cfg, ctx) -> dict:
    s = cfg.sim
    results, table = {}, {}
    for name in ctx.track(list(s.datasets), "datasets", total=len(s.datasets)):
        x, y = stdlib_modules(cfg, ctx) if name == "stdlib_modules" else sklearn_set(name)
        classes = int(y.max()) + 1
        per_class = small_per_class(s, classes, x.shape[1])
        say(f"{name}: {x.shape[1]} features, {classes} classes, {len(y)} samples, valid fraction "
            f"{float(s.valid_fraction):g}, small {per_class} per class")
        valid_sets = set()
        for r in range(int(s.replicates)):
            train, valid = split(y, float(s.valid_fraction), seed=1000 * int(cfg.seed) + r)
            valid_sets.add(tuple(valid))
            rng = np.random.default_rng(1000 * int(cfg.seed) + r)
            sizes = {"full": train, "small": train[small_subset(y[train], per_class, rng)]}
            for size, idx in sizes.items():
                for method in METHODS:
                    predict = fit_predict(method, x[idx], y[idx], classes, 1000 * int(cfg.seed) + r, s)
                    train_acc = float((predict(x[idx]) == y[idx]).mean())
                    valid_acc = float((predict(x[valid]) == y[valid]).mean())
                    row = {"dataset": name, "size": size, "method": method, "replicate": r,
                           "train_acc": train_acc, "valid_acc": valid_acc, "gap": train_acc - valid_acc,
                           "train_per_feature": len(idx) / x.shape[1]}  # the post's n/d: 1000/768 > 1
                    if method == "gradient_descent":  # still climbing in the second half: not at its plateau
                        row["train_acc_gain_second_half"] = train_acc - predict.half_train_acc
                    ctx.claim_rows.append(row)
                    table.setdefault((name, size, method), []).append((train_acc, valid_acc))
        # the unit of the generalisation claims is the split: each replicate must draw its own
        ctx.claim_rows.append({"dataset": name, "size": "splits",
                               "distinct_split_share": len(valid_sets) / int(s.replicates)})
        results[f"{name}_distinct_split_share"] = len(valid_sets) / int(s.replicates)
    for (name, size, method), values in table.items():
        results[f"{name}_{size}_{method}_train_acc"] = float(np.mean([a for a, _ in values]))
        results[f"{name}_{size}_{method}_valid_acc"] = float(np.mean([b for _, b in values]))
    plot(ctx, table, list(s.datasets))
    write_table(ctx, table, list(s.datasets), cfg)
    return results


def write_table(ctx, table, datasets, cfg) -> None:
    lines = ["# analytic_logreg: train / valid accuracy (%), mean over replicates", "",
             "| dataset | size | gradient descent | analytic (post) | analytic (Σ = I, Su's code's first week) |",
             "|---|---|---|---|---|"]
    for name in datasets:
        for size in ("full", "small"):
            cells = [" / ".join(f"{100 * v:.2f}" for v in np.mean(table[(name, size, m)], axis=0))
                     for m in ("gradient_descent", "analytic", "analytic_su_code")]
            lines.append(f"| {name} | {size} | " + " | ".join(cells) + " |")
    lines += ["", "The post (train / valid, RoFormer-Sim-FT sentence vectors): full SENTIMENT 92.26 / 91.14 (GD) vs "
              "91.79 / 90.81 (analytic); IFLYTEK 93.43 / 51.14 vs 71.70 / 56.44; 1000 samples: SHOPPING-1K "
              "100.00 / 49.82 vs 100.00 / 65.49, TNEWS-1K 100.00 / 22.47 vs 100.00 / 26.74."]
    (ctx.run_dir / "tables.md").write_text("\n".join(lines) + "\n")


def plot(ctx, table, datasets) -> None:
    from ..claims.report import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    colours = {"gradient_descent": "C0", "analytic": "C1", "analytic_su_code": "C2"}
    width = 0.26
    for ax, size in zip(axes, ("full", "small")):
        for k, method in enumerate(("gradient_descent", "analytic", "analytic_su_code")):
            means = [np.mean(table[(d, size, method)], axis=0) for d in datasets]
            xs = np.arange(len(datasets)) + (k - 1) * width
            ax.bar(xs, [100 * m[1] for m in means], width, color=colours[method], label=f"{method}: valid")
            ax.plot(xs, [100 * m[0] for m in means], "k_", ms=12, mew=2, label="train" if k == 0 else None)
        ax.set_xticks(np.arange(len(datasets)), datasets, fontsize=8)
        ax.set_title(f"{size} training set" + (" (the post's 1000-sample regime)" if size == "small" else ""),
                     fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy (%): bars valid, dashes train")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle("analytic_logreg (8578): closed form vs gradient descent", fontsize=11)
    save_figure(ctx, "accuracy", fig)
