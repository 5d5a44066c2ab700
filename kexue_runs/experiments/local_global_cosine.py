"""局部余弦相似度大，全局余弦相似度一定也大吗？ (does high local cosine imply high global cosine?)
https://kexue.fm/archives/9931

For vectors split into blocks, cos(x, y) = sum_i c_i |x_i||y_i| / (|x||y|): with every local cosine
c_i >= 0 it never exceeds max c_i, but it has no lower bound; Pearson's r adds the means' freedom,
so every group can correlate positively while the pooled data correlate negatively (Simpson).
Su's motivating observation: in training, the global cosine between the optimizer's update and the
gradient came out below every per-parameter (local) one; measured here with Adam on a small MLP.
"""

from __future__ import annotations

import numpy as np

from .numeric import figure, pyplot


def cos(x, y) -> float:
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def adam_cosines(seed: int, steps: int, hidden: int, lr: float) -> list[tuple[float, float]]:
    """(global cosine, smallest local cosine) between Adam's update and the minibatch gradient, per step,
    for an MLP on scikit-learn's digits (local = per parameter tensor)."""
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        batch = torch.randint(0, len(y), (32,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        before = [p.detach().clone() for p in model.parameters()]
        grads = [p.grad.detach().clone() for p in model.parameters()]
        opt.step()
        updates = [b - p.detach() for b, p in zip(before, model.parameters())]  # the step taken, along -grad
        local = [float(torch.nn.functional.cosine_similarity(u.flatten(), g.flatten(), dim=0))
                 for u, g in zip(updates, grads)]
        total = float(torch.nn.functional.cosine_similarity(torch.cat([u.flatten() for u in updates]),
                                                            torch.cat([g.flatten() for g in grads]), dim=0))
        out.append((total, min(local)))
    return out


def run(cfg, ctx) -> dict:
    sim = cfg.sim
    rng = np.random.default_rng(int(cfg.seed))
    results = {"counterexample_global": cos(np.array([1.0, 1.0]), np.array([1.0, 2.0]))}
    # random blocks with non-negative local cosines: the global cosine never exceeds the largest local one
    violations, below_min, worst_gap = 0, 0, -np.inf
    for _ in ctx.track(range(int(sim.trials)), "random blocks", total=int(sim.trials)):
        blocks = rng.integers(2, 6)
        xs = [rng.standard_normal(rng.integers(1, 5)) * rng.exponential(1.0) for _ in range(blocks)]
        ys = [x * rng.exponential(1.0) + rng.standard_normal(x.shape) * rng.exponential(0.5) for x in xs]
        ys = [y if x @ y >= 0 else -y for x, y in zip(xs, ys)]  # make every local cosine >= 0
        local = [cos(x, y) for x, y in zip(xs, ys)]
        g = cos(np.concatenate(xs), np.concatenate(ys))
        violations += g > max(local) + 1e-12
        below_min += g < min(local)
        worst_gap = max(worst_gap, g - max(local))
    results.update(upper_bound_violations=float(violations),
                   global_below_min_local_fraction=below_min / int(sim.trials),
                   worst_global_minus_max_local=float(worst_gap))
    # every local cosine is 1, the global one goes to 0: x = (1, e), y = (e, 1) with 1-D blocks
    for eps in (1e-1, 1e-2, 1e-3):
        results[f"construction_global_eps{eps:g}"] = cos(np.array([1.0, eps]), np.array([eps, 1.0]))
    # Simpson: two groups on parallel lines of slope +1, offset so the pooled trend is negative
    t = np.linspace(0, 1, 50)
    gx = [t, t + 3.0]
    gy = [t + 3.0, t]
    results["simpson_group_r_min"] = min(float(np.corrcoef(a, b)[0, 1]) for a, b in zip(gx, gy))
    results["simpson_pooled_r"] = float(np.corrcoef(np.concatenate(gx), np.concatenate(gy))[0, 1])
    below = []
    for r in ctx.track(range(int(sim.adam_seeds)), "Adam on digits", total=int(sim.adam_seeds)):
        pairs = adam_cosines(int(cfg.seed) * 1000 + r, int(sim.adam_steps), int(sim.adam_hidden), float(sim.adam_lr))
        frac = float(np.mean([g < lo for g, lo in pairs]))
        below.append(frac)
        ctx.claim_rows.append({"replicate": r, "adam_global_below_min_local": frac,
                               "adam_mean_global": float(np.mean([g for g, _ in pairs])),
                               "adam_mean_min_local": float(np.mean([lo for _, lo in pairs]))})
    results["adam_global_below_min_local"] = float(np.mean(below))
    ctx.log(0, "result", **results)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 3.5))
    for a, b, name in zip(gx, gy, ("group 1", "group 2")):
        ax.plot(a, b, ".", label=f"{name}: r = {np.corrcoef(a, b)[0, 1]:.2f}")
    ax.set(title=f"pooled r = {results['simpson_pooled_r']:.2f}", xlabel="x", ylabel="y")
    ax.legend(fontsize=8)
    figure(ctx, "simpson", fig)
    return results
