"""The DDPM/DDIM sampler family: determinism, marginals, a golden loop, the analytic mixture, the experiment."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import run_dirs, summary

from kexue_runs.methods.diffusion import (
    GaussianMixture,
    Sampler,
    Schedule,
    frechet_distance,
    mmd,
    sample,
    step,
    timesteps,
)


def toy_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x) * 0.5 + (t.double() / 20)[:, None] * 0.1


def x_T(n: int = 4, d: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_eta_zero_is_deterministic_and_eta_one_is_not():
    sch = Schedule(20)
    a = sample(toy_eps, x_T(), sch, Sampler(5, "eta", 0.0), torch.Generator().manual_seed(1))
    b = sample(toy_eps, x_T(), sch, Sampler(5, "eta", 0.0), torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c = sample(toy_eps, x_T(), sch, Sampler(5, "eta", 1.0), torch.Generator().manual_seed(1))
    d = sample(toy_eps, x_T(), sch, Sampler(5, "eta", 1.0), torch.Generator().manual_seed(2))
    assert not torch.allclose(c, d)


@pytest.mark.parametrize(("spacing", "pairs", "golden"), [
    ("trailing", ((20, 16), (16, 12), (12, 8), (8, 4), (4, 0)), -3.383756329463457),
    ("leading", ((17, 13), (13, 9), (9, 5), (5, 1), (1, 0)), None),  # the DDIM code's τ = 1, 5, 9, 13, 17
])
def test_golden_full_loop_against_the_papers_ddim_update(spacing, pairs, golden):
    sch = Schedule(20)
    ours = sample(toy_eps, x_T(), sch, Sampler(5, "eta", 0.0, spacing=spacing), torch.Generator().manual_seed(1))
    # DDIM paper notation: α = ᾱ² (Su's ᾱ is the signal coefficient)
    x = x_T()
    for t, s in pairs:
        at, as_ = float(sch.abar[t]) ** 2, float(sch.abar[s]) ** 2
        eps = toy_eps(x, torch.full((4,), t))
        x = math.sqrt(as_) * (x - math.sqrt(1 - at) * eps) / math.sqrt(at) + math.sqrt(1 - as_) * eps
    torch.testing.assert_close(ours, x)
    if golden is not None:
        assert ours.sum().item() == pytest.approx(golden, abs=1e-9)  # golden number


@pytest.mark.parametrize("eta", [0.0, 0.2, 0.5, 1.0])
def test_every_eta_keeps_p_of_x_s_given_x0(eta):
    """9181: any step N(κ x_t + λ x_0, σ²) of the family keeps p(x_s | x_0) = N(ᾱ_s x_0, β̄_s²). With the
    oracle ε (it knows x_0), one sampler step from x_t ~ p(x_t | x_0) must land on that Gaussian."""
    sch, x0, n = Schedule(100), 0.7, 400_000
    g = torch.Generator().manual_seed(0)
    t, s = 100, 60
    x_t = float(sch.abar[t]) * x0 + float(sch.bbar[t]) * torch.randn(n, 1, generator=g, dtype=torch.float64)
    oracle = lambda x, tt: (x - float(sch.abar[tt[0]]) * x0) / float(sch.bbar[tt[0]])  # noqa: E731
    x_s = step(oracle, x_t, t, s, sch, Sampler(5, "eta", eta), g)
    assert x_s.mean().item() == pytest.approx(float(sch.abar[s]) * x0, abs=4 / math.sqrt(n))
    assert x_s.var().item() == pytest.approx(float(sch.bbar[s]) ** 2, rel=0.01)
    wide = step(oracle, x_t, t, s, sch, Sampler(5, "sigma_hat"), g)  # σ̂ is not in the family: more variance
    assert wide.var().item() > 1.05 * float(sch.bbar[s]) ** 2


def test_ddim_keeps_a_gaussians_variance_as_steps_grow():
    """x_0 ~ N(0, v0) and the exact ε = β̄ x / (ᾱ² v0 + β̄²): with many steps DDIM ends at variance v0."""
    sch, v0 = Schedule(1000), 0.3
    eps = lambda x, t: float(sch.bbar[t[0]]) * x / (float(sch.abar[t[0]]) ** 2 * v0 + float(sch.bbar[t[0]]) ** 2)  # noqa: E731
    start = torch.randn(20_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    start = start * math.sqrt(float(sch.abar[-1]) ** 2 * v0 + float(sch.bbar[-1]) ** 2)
    fine = sample(eps, start, sch, Sampler(1000, "eta", 0.0)).var().item()
    coarse = sample(eps, start, sch, Sampler(5, "eta", 0.0)).var().item()
    assert fine == pytest.approx(v0, rel=0.03) and abs(coarse - v0) > abs(fine - v0)


def test_ode_euler_is_ddim_step_for_step():
    sch = Schedule(50, "linear")
    for steps in (5, 50):
        euler = sample(toy_eps, x_T(), sch, Sampler(steps, "ode_euler"))
        ddim = sample(toy_eps, x_T(), sch, Sampler(steps, "eta", 0.0))
        torch.testing.assert_close(euler, ddim)


def test_timesteps_come_from_the_list():
    assert timesteps(20, 5, spacing="trailing") == [4, 8, 12, 16, 20]
    assert timesteps(20, 5, "quadratic", "trailing") == [1, 3, 7, 13, 20]
    # the DDIM code's range(0, T, T // S) and int(linspace(0, √(0.8T), S)²), shifted to Su's t = 1..T
    assert timesteps(1000, 10) == [1, 101, 201, 301, 401, 501, 601, 701, 801, 901]
    assert timesteps(20, 5, "quadratic") == [1, 2, 5, 10, 17]
    for spacing in ("leading", "trailing"):
        assert timesteps(1000, 1000, spacing=spacing) == list(range(1, 1001))
    with pytest.raises(ValueError, match="allowed: leading, trailing"):
        timesteps(20, 5, spacing="middle")


def test_sigma_hats_failure_mode_needs_the_ddim_codes_spacing(mixture):
    """The DDIM paper's σ̂ row fails at few steps (FID 367 at S = 10): its large noise, added on the jump to
    t = 1, is never taken out by the tiny last step. With the exact ε of a mixture, σ̂ at S = 10 lands much
    farther from the data under the DDIM code's leading spacing than under a trailing one, whose last jump
    to x_0 adds no noise; η = 0 is not hurt that way."""
    sch = Schedule(1000)
    gen = torch.Generator().manual_seed(0)
    truth, start = mixture.sample(2000, gen), torch.randn(2000, 2, generator=gen, dtype=torch.float64)

    def dist(**kw):
        x = sample(mixture.eps(sch), start, sch, Sampler(10, **kw), torch.Generator().manual_seed(1))
        return mmd(x.float(), truth.float())

    lead, trail = dist(solver="sigma_hat", spacing="leading"), dist(solver="sigma_hat", spacing="trailing")
    assert lead > 2 * trail
    assert dist(solver="eta", eta=0.0, spacing="leading") < lead / 2
    from kexue_runs.experiments.ddpm_schedule import alphas

    abar = Schedule(1000).abar
    assert abar[-1].item() == pytest.approx(float(alphas(1000).prod()), rel=1e-12)  # the ddpm_schedule code
    assert math.log(abar[-1].item()) < -0.005 * 1001  # 9119's bound


@pytest.fixture(scope="module")
def mixture():
    means = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
    return GaussianMixture(means, torch.full((4,), 0.1, dtype=torch.float64),
                           torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64))


@pytest.mark.parametrize("sampler", [Sampler(1000, "eta", 0.0), Sampler(1000, "eta", 0.5), Sampler(1000, "eta", 1.0),
                                     Sampler(1000, "sigma_hat"), Sampler(200, "ode_heun")], ids=lambda s: s.label)
def test_every_sampler_recovers_the_mixture_with_the_exact_score(mixture, sampler):
    sch = Schedule(1000)
    gen = torch.Generator().manual_seed(0)
    truth, start = mixture.sample(1000, gen), torch.randn(1000, 2, generator=gen, dtype=torch.float64)
    x = sample(mixture.eps(sch), start, sch, sampler, torch.Generator().manual_seed(1))
    weights = torch.bincount(mixture.mode_of(x), minlength=4).double() / 1000
    assert (weights - mixture.weights).abs().max() < 0.05
    assert mmd(x.float(), truth.float()) < 0.01
    coarse = sample(mixture.eps(sch), start, sch, Sampler(3, "eta", 1.0), torch.Generator().manual_seed(1))
    assert mmd(coarse.float(), truth.float()) > 0.01  # the bound can fail: 3 DDPM steps miss


def test_frechet_distance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4000, 3, generator=g), torch.randn(4000, 3, generator=g)
    assert frechet_distance(a, b) < 0.02
    assert frechet_distance(a, b + torch.tensor([1.0, 0.0, 0.0])) == pytest.approx(1.0, abs=0.05)
    assert frechet_distance(a, 2 * b) == pytest.approx(3 * (2 - 1) ** 2, abs=0.15)  # tr((√2σ... )): 3(1-2)^2


SMOKE_DD = ["experiment=ddim_cifar", "scale=smoke", "trainer.progress=false"]


def test_smoke_run_writes_the_grid_and_sample_grid(kexue, tmp_path):
    code, out = kexue(*SMOKE_DD)
    assert code == 0, out
    (run,) = run_dirs(tmp_path / "outputs", "ddim_cifar")
    s = summary(run)
    samplers = {(r["arm"], r["sampler"], r["steps"]) for r in s["claim_rows"]}
    assert ("images", "eta0", 5) in samplers and ("gmm", "ode_heun", 10) in samplers
    assert ("images", "gap_eta1_minus_eta0", 10) in samplers and ("images", "gap_minus_eta0_fid", 10) in samplers
    assert ("raw_weights", "eta0", 5) in samplers and ("raw_weights", "eta1", 5) in samplers
    assert s["details"]["metric"] == "FID-digits-classifier"
    # the wide-margin rows are the paper's criterion, eta1 - 2 eta0, per shard (shards share x_T)
    rows = {(r["sampler"], r["shard"]): r["fid"] for r in s["claim_rows"] if r["arm"] == "images" and r["steps"] == 10}
    assert rows[("gap_minus_eta0_fid", 0)] == pytest.approx(rows[("eta1", 0)] - 2 * rows[("eta0", 0)])
    table = (run / "tables.md").read_text()
    assert "| eta0 |" in table and "Analytic arm" in table
    assert (run / "figures" / "samples.png").exists() and (run / "figures" / "quality_vs_steps.png").exists()


def test_ema_warm_up_schedule():
    from kexue_runs.experiments.ddim_cifar import ema_decay

    assert ema_decay(0.999, 0, True) == pytest.approx(0.1) and ema_decay(0.999, 90, True) == pytest.approx(0.91)
    assert ema_decay(0.999, 10**6, True) == 0.999 and ema_decay(0.999, 0, False) == 0.999
    # what is left of the random init after 2000 steps: 13.5% without warm-up, nothing to speak of with it
    import math

    left = lambda warm: math.prod(ema_decay(0.999, t, warm) for t in range(2000))  # noqa: E731
    assert left(False) == pytest.approx(0.135, abs=0.001) and left(True) < 1e-6


def test_labelled_local_set_gets_a_classifier_metric(kexue, tmp_path):
    """data=cifar10 from a local `datasets` folder with labels: FID in a trained classifier's features."""
    import datasets
    import numpy as np

    rng = np.random.default_rng(0)
    def split(n):
        imgs = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(n)]
        return datasets.Dataset.from_dict({"img": imgs, "label": [i % 10 for i in range(n)]},
                                          features=datasets.Features({"img": datasets.Image(),
                                                                      "label": datasets.ClassLabel(num_classes=10)}))
    root = tmp_path / "cifar"
    datasets.DatasetDict({"train": split(64), "test": split(32)}).save_to_disk(str(root))
    code, out = kexue(*SMOKE_DD, "data=cifar10", f"data.root={root}", "data.train_size=64", "data.val_size=32",
                      "eval.classifier_steps=2")
    assert code == 0, out
    (run,) = run_dirs(tmp_path / "outputs", "ddim_cifar")
    assert summary(run)["details"]["metric"] == "FID-cifar10-classifier"


@pytest.mark.parametrize(("args", "message"), [
    (["diffusion.schedule=cosine"], "diffusion.schedule=cosine: allowed: su, linear"),
    (["diffusion.spacing=middle"], "diffusion.spacing=middle: allowed: leading, trailing"),
    (["eval.steps=[10,5000]"], "eval.steps: 5000 is outside 1..diffusion.T=50"),
    (["eval.solvers=[eta,dpm]"], "eval.solvers: unknown 'dpm'"),
])
def test_bad_input_is_one_line(kexue, args, message):
    code, out = kexue(*SMOKE_DD, *args)
    assert code == 2 and message in out, out


@pytest.mark.parametrize("eta", [0.3, 0.5, 0.8])
def test_step_noise_is_eta_times_ddpm_sigma(eta):
    """sigma_t = eta * bbar_s / bbar_t * sqrt(1 - (abar_t / abar_s)^2) (9181): the spread of one step from a
    fixed x_t with a fixed eps is exactly that, linear in eta."""
    schedule = Schedule(100, "su")
    t, s = 60, 40
    x = torch.zeros(20000, 1, dtype=torch.float64)
    out = step(lambda x_, t_: torch.zeros_like(x_), x, t, s, schedule, Sampler(10, "eta", eta),
               torch.Generator().manual_seed(0))
    a_t, b_t, a_s, b_s = (float(v) for v in (schedule.abar[t], schedule.bbar[t], schedule.abar[s], schedule.bbar[s]))
    sigma = eta * (b_s / b_t) * math.sqrt(1 - (a_t / a_s) ** 2)
    assert out.std().item() == pytest.approx(sigma, rel=0.03)  # 20000 draws: the std's SE is 0.5%
