"""FSQ (kexue.fm 9826): the implicit codebook, its indices, and the straight-through rounding."""

import math

import pytest
import torch

from kexue_runs.methods.fsq import FSQ, PAPER_LEVELS, levels_for, round_ste


@pytest.mark.parametrize("bound", ["tanh", "sigmoid"])
@pytest.mark.parametrize("levels", list(PAPER_LEVELS.values()))
def test_indices_codes_round_trip(levels, bound):
    fsq = FSQ(levels, bound=bound)
    assert fsq.codebook_size == math.prod(levels)
    indices = torch.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(indices)
    assert codes.shape == (fsq.codebook_size, len(levels))
    assert torch.equal(fsq.codes_to_indices(codes), indices)
    # every grid point is distinct: the implicit codebook really has prod(levels) codes
    assert torch.unique(codes, dim=0).shape[0] == fsq.codebook_size


@pytest.mark.parametrize("bound", ["tanh", "sigmoid"])
def test_forward_indices_in_range_and_on_grid(bound):
    fsq = FSQ([8, 5, 5, 5], bound=bound)
    z = torch.randn(4096, 4) * 3
    codes, indices, _ = fsq(z)
    assert indices.min() >= 0 and indices.max() < fsq.codebook_size
    assert torch.allclose(fsq.indices_to_codes(indices), codes)
    assert codes.abs().max() <= 1.0 + 1e-6
    # with wide inputs every level of every dimension is reached
    for d, level in enumerate(fsq.levels):
        assert torch.unique(codes[:, d]).numel() == level


def test_levels_table_matches_the_paper():
    assert levels_for(2**4) == [5, 3]
    assert levels_for(2**6) == [8, 8]
    assert levels_for(2**8) == [8, 6, 5]
    assert levels_for(2**10) == [8, 5, 5, 5]
    assert levels_for(2**12) == [7, 5, 5, 5, 5]
    with pytest.raises(ValueError, match="no FSQ level table entry"):
        levels_for(1000)


def test_rounding_gradient_is_straight_through():
    x = torch.tensor([0.2, 1.7, -2.4], requires_grad=True)
    y = round_ste(x)
    assert torch.equal(y, torch.tensor([0.0, 2.0, -2.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))


def test_levels_below_two_are_rejected():
    with pytest.raises(ValueError, match=">= 2"):
        FSQ([5, 1])


def test_half_budget_reads_the_last_evaluation_at_or_before_half_and_the_rise_over_the_shortfall():
    """Usage against training length: utilization at half the budget, and (end - half) / (1 - end), which
    is 0.5 exactly when one more budget (two halves) at the second half's rate would reach full use."""
    from kexue_runs.experiments.fsq_vs_vq import half_budget

    rows = [{"step": 0, "split": "train", "loss": 1.0},
            {"step": 200, "split": "val", "utilization": 0.2, "codes_used": 2.0, "mse": 0.5},
            {"step": 400, "split": "val", "utilization": 0.4, "codes_used": 4.0, "mse": 0.3},
            {"step": 600, "split": "val", "utilization": 0.6, "codes_used": 6.0, "mse": 0.25}]
    out = half_budget(rows, 800, {"utilization": 0.7}, 10)
    assert out["val/half_step"] == 400 and out["val/utilization_half"] == 0.4 and out["val/codes_used_half"] == 4
    assert out["val/mse_half"] == 0.3
    assert out["val/usage_rise_over_shortfall"] == pytest.approx(0.3 / 0.3)  # rise = shortfall: past the 0.5 bar
    assert half_budget(rows, 800, {"utilization": 0.5}, 10)["val/usage_rise_over_shortfall"] == pytest.approx(0.2)
    assert half_budget(rows, 800, {"utilization": 0.3}, 10)["val/usage_rise_over_shortfall"] < 0  # usage fell
    # full use at the end: the shortfall is one code (1/K), never zero
    assert half_budget(rows, 800, {"utilization": 1.0}, 10)["val/usage_rise_over_shortfall"] == pytest.approx(6.0)
    assert half_budget(rows[:1], 800, {"utilization": 0.7}, 10) == {}  # no evaluation by half the budget
