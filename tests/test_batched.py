"""Replicates trained as one batch (models/batched.py): each replicate of a batched run equals a lone run of its
seed up to float rounding, for each harness that batches (the digits MLP, the 2-D toys' adversarial loop).

Tolerances: the batched matmuls and the per-replicate means reduce in another order than the lone ones, so
results agree to float32 rounding per step (~1e-7 relative), and training carries such differences forward.
Measured: the digits MLP (two epochs of a few hundred batch-4 steps) within 2.5e-6 of its lone weights (SGD
with momentum, the largest), the adversarial loop (a game, which amplifies perturbations) within 3e-7 over
its 24 iterations here; both are asserted at 1e-5. Each test also checks that another seed's lone run lands far
outside that tolerance, so the comparison can tell replicates apart.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from kexue_runs.experiments import gan_qp, momentum_accum, wgan_gn
from kexue_runs.methods.momentum_accumulation import AccumulatingAdam, AccumulatingSGDM, PeriodicAdam
from kexue_runs.models import toy2d
from kexue_runs.models.batched import BatchedMLP, train_classifier_replicates
from kexue_runs.models.mlp import mlp

SEEDS = [0, 1, 2]
MLP_ATOL = 1e-5   # digits MLP weights and metrics, float32, one epoch
GAN_ATOL = 1e-5   # 2-D toys' samples and metrics, float32, a few dozen adversarial iterations


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_batched_forward_is_each_lone_forward():
    models = [toy2d.mlp(3, 2, 8, 2, "leaky_relu") for _ in range(4)]
    batched = BatchedMLP(models)
    x = torch.randn(4, 5, 3)
    y = batched(x)
    assert y.shape == (4, 5, 2)
    for r, model in enumerate(models):
        torch.testing.assert_close(y[r], model(x[r]), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(batched(x.reshape(20, 3)), y.reshape(20, 2))  # the folded rows: the same
    with pytest.raises(TypeError, match="Linear"):
        BatchedMLP([torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))])


# -- the digits MLP ---------------------------------------------------------------------------------------------

def lone_classifier(seed: int, make_optimizer, x, y, epochs: int, usable: int, micro: int):
    """The loop train_classifier_replicates batches, for one seed (momentum_accum.train_arm's loop)."""
    model = mlp(x.shape[1], 16, 10, seed)
    opt = make_optimizer(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)[:usable]
        for i in range(0, usable, micro):
            idx = order[i:i + micro]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            model.zero_grad()
            loss.backward()
            opt.step()
    return model


def weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("make_optimizer", [
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),           # SGD with momentum
    lambda p: AccumulatingSGDM(p, lr=0.5, beta=0.9, k=4),           # the χ-form accumulation
    lambda p: AccumulatingAdam(p, lr=1e-3, k=4),
    lambda p: PeriodicAdam(p, lr=1e-3),                              # Adam
    lambda p: torch.optim.Adam(p, lr=1e-3),
], ids=["sgdm", "chi_sgdm", "chi_adam", "periodic_adam", "torch_adam"])
def test_digits_replicates_equal_lone_runs(make_optimizer):
    from kexue_runs.data.tabular import digits_split

    x, y, _, _ = digits_split()
    x, y = x[:400], y[:400]
    models = [mlp(64, 16, 10, seed) for seed in SEEDS]
    train_classifier_replicates(models, make_optimizer, x, y, SEEDS, epochs=2, usable=384, micro=4)
    lone = [lone_classifier(seed, make_optimizer, x, y, 2, 384, 4) for seed in SEEDS]
    for batched_model, lone_model in zip(models, lone):
        torch.testing.assert_close(weights(batched_model), weights(lone_model), rtol=0, atol=MLP_ATOL)
    # another seed's lone run is far away: the comparison tells the replicates apart
    assert float((weights(models[1]) - weights(lone[0])).abs().max()) > 100 * MLP_ATOL


def test_digits_replicates_on_their_own_subsets_equal_lone_runs():
    """Each replicate trains on its own rows of one pool (its own split) in its own order: each equals the lone
    loop run on that replicate's rows."""
    from kexue_runs.data.tabular import digits_split

    x, y, _, _ = digits_split()
    subsets = [torch.randperm(len(y), generator=torch.Generator().manual_seed(50 + s))[:300] for s in SEEDS]
    make_optimizer = lambda p: PeriodicAdam(p, lr=1e-3, k=4)  # noqa: E731
    models = [mlp(64, 16, 10, seed) for seed in SEEDS]
    train_classifier_replicates(models, make_optimizer, x, y, SEEDS, epochs=2, usable=288, micro=4, subsets=subsets)
    lone = [lone_classifier(seed, make_optimizer, x[rows], y[rows], 2, 288, 4) for seed, rows in zip(SEEDS, subsets)]
    for batched_model, lone_model in zip(models, lone):
        torch.testing.assert_close(weights(batched_model), weights(lone_model), rtol=0, atol=MLP_ATOL)
    # the same seed on another replicate's rows lands far away: the subsets are used, not only the seeds
    other = lone_classifier(SEEDS[0], make_optimizer, x[subsets[1]], y[subsets[1]], 2, 288, 4)
    assert float((weights(models[0]) - weights(other)).abs().max()) > 100 * MLP_ATOL


def test_momentum_accum_arms_batched_equal_lone():
    sim = OmegaConf.create({"batch": 4, "k": 8, "beta1": 0.9, "beta2": 0.999, "lr": 1e-3, "hidden": 16, "epochs": 2,
                             "data": "digits", "train_size": 400, "selection": 300, "test": 397})
    for arm in ("every_k", "true_accumulation", "chi_adam"):
        batched = momentum_accum.train_arm_replicates(arm, SEEDS[:2], sim)
        for seed, got in zip(SEEDS[:2], batched):
            want = momentum_accum.train_arm(arm, seed, sim)
            assert got.keys() == want.keys()
            for key in want:
                assert got[key] == pytest.approx(want[key], abs=MLP_ATOL), (arm, seed, key)
        assert abs(batched[1]["val_loss"] - batched[0]["val_loss"]) > 100 * MLP_ATOL


# -- the 2-D toys ---------------------------------------------------------------------------------------------

TOY = {"z_dim": 4, "hidden": 16, "layers": 2, "batch": 32, "lr": 2e-4, "beta1": 0.5, "d_steps": 2,
       "iterations": 24, "evaluations": 2, "eval_samples": 100, "bandwidth": 0.2}


@pytest.mark.parametrize("experiment,arm,activation", [
    (gan_qp, "sgan", "relu"),
    (gan_qp, "wgan_gp", "relu"),        # the gradient penalty's mixing weights: each replicate's own stream
    (gan_qp, "qp_l2", "relu"),
    (wgan_gn, "gn_iccv", "leaky_relu"),  # input gradients, second order through the batched layers
])
def test_toy_replicates_equal_lone_runs(experiment, arm, activation):
    sim = OmegaConf.create(TOY | {"beta2": 0.9})
    d_loss, g_loss = experiment.losses(arm, 1e-3 if experiment is wgan_gn else 10.0)
    t = toy2d.target("ring8")
    batched = toy2d.train_gan_batched(d_loss, g_loss, t, sim, SEEDS, activation)
    for seed, got in zip(SEEDS, batched):
        want = toy2d.train_gan(d_loss, g_loss, t, sim, seed, activation)
        np.testing.assert_allclose(got["samples"], want["samples"], rtol=0, atol=GAN_ATOL)
        assert [row["iteration"] for row in got["trace"]] == [row["iteration"] for row in want["trace"]]
        for got_row, want_row in zip(got["trace"], want["trace"]):
            assert got_row.keys() == want_row.keys()
            for key in want_row:
                assert got_row[key] == pytest.approx(want_row[key], abs=GAN_ATOL), (arm, seed, key)
        # the bytes autograd keeps per replicate: exactly a lone iteration's
        assert got["cost"]["saved_kib_per_iteration"] == want["cost"]["saved_kib_per_iteration"]
    assert np.abs(batched[1]["samples"] - batched[0]["samples"]).max() > 100 * GAN_ATOL


def test_ign_gan_arm_batched_equals_lone():
    """ign's GAN arm (its own nets through toy2d.train_adversarial_replicates): each seed's trained generator."""
    from kexue_runs.experiments import ign
    from kexue_runs.models import dcgan

    sim = OmegaConf.create({"hidden": 16, "layers": 2, "beta1": 0.5, "gan_lr": 2e-4, "batch": 32, "iterations": 20})
    a = dcgan.Arena(toy2d.target("ring8"))
    z = torch.randn(200, 2, generator=torch.Generator().manual_seed(5))
    batched = ign.train_gans_batched(SEEDS[:2], sim, a)
    lone = [ign.train_gan(seed, sim, a) for seed in SEEDS[:2]]
    with torch.no_grad():
        outs = [b["model"](z) for b in batched]
        for got, b, want in zip(outs, batched, lone):
            assert b["params"] == want["params"]
            torch.testing.assert_close(got, want["model"](z), rtol=0, atol=GAN_ATOL)
    assert float((outs[1] - outs[0]).abs().max()) > 100 * GAN_ATOL


@pytest.mark.parametrize("loss,k", [("log_sigmoid", 1), ("matching", 3)])
def test_monoflow_generators_batched_equal_lone(loss, k):
    """monoflow's generator runs (a logistic discriminator, k generator steps on -h(D) or the matching loss, whose
    frozen anchor is a copy of the BatchedMLP): each seed's W1 at start and end and its figure samples."""
    from kexue_runs.experiments import monoflow
    from kexue_runs.models import dcgan

    sim = OmegaConf.create({"hidden": 16, "layers": 2, "z_dim": 4, "beta1": 0.5, "lr": 2e-4, "gan_lr_2d": 1e-3,
                            "batch": 32, "eval_samples": 100, "bandwidth": 0.2, "flow_eps": 0.1})
    a = dcgan.Arena(toy2d.target("ring8"))
    batched = monoflow.train_generators_batched(loss, k, SEEDS[:2], sim, a, 8)
    lone = [monoflow.train_generator(loss, k, seed, sim, a, 8) for seed in SEEDS[:2]]
    for got, want in zip(batched, lone):
        assert got.keys() == want.keys()
        np.testing.assert_allclose(got["samples"], want["samples"], rtol=0, atol=GAN_ATOL)
        for key in ("w1_start", "w1", "modes"):
            assert got[key] == pytest.approx(want[key], abs=GAN_ATOL), (loss, key)
    assert np.abs(batched[1]["samples"] - batched[0]["samples"]).max() > 100 * GAN_ATOL


def test_batched_toys_same_seed_same_bytes():
    sim = OmegaConf.create(TOY | {"iterations": 6})
    d_loss, g_loss = gan_qp.losses("wgan_gp", 10.0)
    first, again = (toy2d.train_gan_batched(d_loss, g_loss, toy2d.target("moons"), sim, SEEDS) for _ in range(2))
    for a, b in zip(first, again):
        assert np.array_equal(a["samples"], b["samples"]) and a["final"] == b["final"]


def test_batched_option_is_checked(kexue, tmp_path):
    code, out = kexue("experiment=momentum_accum", "scale=smoke", "sim.batched=maybe")
    assert code == 2
    assert "sim.batched='maybe' has the wrong type: expected a boolean" in out
    assert not (tmp_path / "outputs").exists()


def test_periodic_adam_in_its_buffers_is_the_plain_formula_bit_for_bit():
    """PeriodicAdam computes its update in kept buffers (fast on stacked replicates): the same bits as the plain
    expression p -= lr m̂ / (√v̂ + ε), so lone runs' numbers did not move."""
    torch.manual_seed(0)
    w = torch.randn(3, 16, 8)
    grads = [torch.randn(3, 16, 8) * 10.0 ** -i for i in range(6)]
    p = torch.nn.Parameter(w.clone())
    opt = PeriodicAdam([p], lr=1e-3, betas=(0.9, 0.999), k=2)
    ref, m, v = w.clone(), torch.zeros_like(w), torch.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        m.mul_(0.9).add_(g, alpha=1 - 0.9)
        v.mul_(0.999).add_(g ** 2, alpha=1 - 0.999)
        if t % 2 == 0:
            m_hat, v_hat = m / (1 - 0.9 ** t), v / (1 - 0.999 ** t)
            ref.sub_(1e-3 * m_hat / (v_hat.sqrt() + 1e-8))
        assert torch.equal(p.detach(), ref), t
