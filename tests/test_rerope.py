"""ReRoPE and the position schemes: invariants, prefill against cached decoding, and the experiment."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import run_dirs, summary

from kexue_runs.methods import rerope as rp
from kexue_runs.models.transformer import ArchConfig, CausalLM, InferenceArm

D, T = 16, 12


def qkv(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, T, D, generator=g) for _ in range(3)]


def causal_softmax(logits: torch.Tensor) -> torch.Tensor:
    causal = rp.relative_positions(logits.shape[-1]) >= 0
    return logits.masked_fill(~causal, float("-inf")).softmax(-1)


@pytest.mark.parametrize("leaky_k", [None, 4.0])
def test_prefill_matches_token_by_token_decoding_with_a_cache(leaky_k):
    q, k, v = qkv()
    theta = rp.inv_freq(D, 10000.0)
    prefill = causal_softmax(rp.rerope_logits(q, k, theta, window=5, leaky_k=leaky_k)) @ v
    decoded = torch.cat([
        rp.rerope_decode_logits(q[..., t:t + 1, :], k[..., :t + 1, :], t, theta, 5, leaky_k).softmax(-1)
        @ v[..., :t + 1, :] for t in range(T)], dim=-2)
    torch.testing.assert_close(decoded, prefill, atol=1e-5, rtol=1e-5)


def rope_logits(q, k, theta):
    pos = torch.arange(q.shape[-2])
    return rp.rotate(q, pos, theta) @ rp.rotate(k, pos, theta).transpose(-1, -2)


def test_rerope_equals_rope_inside_the_window_and_differs_beyond():
    q, k, _ = qkv(1)
    theta = rp.inv_freq(D, 10000.0)
    torch.testing.assert_close(rp.rerope_logits(q, k, theta, window=T), rope_logits(q, k, theta))
    clipped = rp.rerope_logits(q, k, theta, window=3)
    far = rp.relative_positions(T) >= 3
    assert not torch.allclose(clipped[..., far], rope_logits(q, k, theta)[..., far])
    torch.testing.assert_close(clipped[..., ~far], rope_logits(q, k, theta)[..., ~far])


def test_leaky_rerope_limits():
    q, k, _ = qkv(2)
    theta = rp.inv_freq(D, 10000.0)
    # k -> infinity: every far position becomes w, which is ReRoPE
    torch.testing.assert_close(rp.rerope_logits(q, k, theta, 3, leaky_k=1e9), rp.rerope_logits(q, k, theta, 3),
                               atol=1e-4, rtol=1e-4)
    # k = 1: w + (i - j - w) = i - j, which is RoPE
    torch.testing.assert_close(rp.rerope_logits(q, k, theta, 3, leaky_k=1.0), rope_logits(q, k, theta),
                               atol=1e-4, rtol=1e-4)


def test_rope_scores_depend_on_relative_position_only():
    q, k, _ = qkv(3)
    theta = rp.inv_freq(D, 10000.0)
    a = rp.rotate(q[..., :1, :], torch.tensor([5]), theta) @ rp.rotate(k[..., :1, :], torch.tensor([2]), theta).mT
    b = rp.rotate(q[..., :1, :], torch.tensor([13]), theta) @ rp.rotate(k[..., :1, :], torch.tensor([10]), theta).mT
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_frequency_schemes():
    d, base, s = 64, 10000.0, 8.0
    rope = rp.inv_freq(d, base).double().tolist()
    for scheme in ("pi", "ntk_old", "ntk_fixed", "ntk_mixed", "yarn"):
        assert rp.inv_freq(d, base, scheme, 1.0).tolist() == rope  # s = 1: plain RoPE
    assert rp.inv_freq(d, base, "pi", s).tolist() == pytest.approx([r / s for r in rope], rel=1e-6)
    old, fixed = rp.inv_freq(d, base, "ntk_old", s).tolist(), rp.inv_freq(d, base, "ntk_fixed", s).tolist()
    mixed = rp.inv_freq(d, base, "ntk_mixed", s).tolist()
    assert old[0] == pytest.approx(rope[0])                          # NTK keeps the highest frequency
    assert fixed[-1] == pytest.approx(rope[-1] / s, rel=1e-5)        # and divides the lowest by exactly s
    assert mixed[-1] == pytest.approx(rope[-1] / s, rel=1e-5)
    assert old[-1] / rope[-1] == pytest.approx(s ** (-(d - 2) / d), rel=1e-5)
    assert all(r / s * (1 - 1e-6) <= m <= r * (1 + 1e-6) for m, r in zip(mixed, rope))
    yarn = rp.inv_freq(d, base, "yarn", s, train_length=4096).tolist()
    assert yarn[0] == pytest.approx(rope[0]) and yarn[-1] == pytest.approx(rope[-1] / s, rel=1e-5)
    assert rp.yarn_logit_scale(s) == pytest.approx((1 + 0.1 * math.log(s)) ** 2)


def test_logn_dagger_is_one_up_to_the_training_length():
    scale = rp.logn_scale(256, 64, clip=True)
    assert torch.all(scale[:64] == 1) and scale[127] == pytest.approx(math.log(128) / math.log(64))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CausalLM(ArchConfig(width=32, layers=2, heads=2, train_length=16)).eval()


@torch.no_grad()
def test_every_arm_is_the_model_itself_at_the_training_length(model):
    x = torch.randint(0, 256, (2, 16))
    base = model(x)
    for arm in (InferenceArm("pi", "pi"), InferenceArm("ntk_mixed", "ntk_mixed"), InferenceArm("yarn", "yarn"),
                InferenceArm("logn", logn_dagger=True), InferenceArm("rerope", "rerope", window=16),
                InferenceArm("window", mask_window=16)):
        torch.testing.assert_close(model(x, arm), base, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model(x, InferenceArm("r", "rerope", window=4)), base, atol=1e-4)
    longer = torch.randint(0, 256, (2, 64))
    assert not torch.allclose(model(longer, InferenceArm("pi", "pi")), model(longer), atol=1e-4)


@torch.no_grad()
def test_sliding_window_with_sinks_sees_the_first_tokens(model):
    x = torch.randint(0, 256, (1, 40))
    y = x.clone()
    y[0, 0] = (x[0, 0] + 1) % 256  # change the first token only
    plain, sinks = InferenceArm("w", mask_window=8), InferenceArm("ws", mask_window=8, sinks=2)
    # the last position is > 2 layers x 8 tokens away from token 0: only the sink can carry it
    torch.testing.assert_close(model(x, plain)[0, -1], model(y, plain)[0, -1])
    assert not torch.allclose(model(x, sinks)[0, -1], model(y, sinks)[0, -1])


@torch.no_grad()
def test_capped_sinks_read_every_far_distance_as_the_training_length():
    """The Λ-mask: the sinks sit at distance L - 1 whatever the sequence length, so the last query's output
    depends on what the sinks and the window hold, not on how far back the sinks are; at their original
    positions it does."""
    from kexue_runs.models.transformer import Attention

    torch.manual_seed(0)
    attention = Attention(ArchConfig(width=32, layers=2, heads=2, train_length=16), is_last=False).eval()
    sinks, window = torch.randn(1, 2, 32), torch.randn(1, 16, 32)
    near = torch.cat([sinks, torch.randn(1, 30, 32), window], 1)   # the sinks 47 tokens back
    far = torch.cat([sinks, torch.randn(1, 90, 32), window], 1)    # 107 tokens back
    capped = InferenceArm("ws", mask_window=16, sinks=2)
    original = InferenceArm("wso", mask_window=16, sinks=2, sink_positions="original")
    torch.testing.assert_close(attention(near, capped)[0, -1], attention(far, capped)[0, -1])
    assert not torch.allclose(attention(near, original)[0, -1], attention(far, original)[0, -1], atol=1e-4)
    # inside the window nothing changes: at the training length both arms are the plain window
    short = torch.cat([sinks, window[:, 2:]], 1)
    torch.testing.assert_close(attention(short, capped), attention(short, original))


@torch.no_grad()
def test_an_arms_mixed_b_overrides_the_models_and_b_1_is_ntk_fixed(model):
    x = torch.randint(0, 256, (1, 64))
    fixed = model(x, InferenceArm("ntk_fixed", "ntk_fixed"))
    torch.testing.assert_close(model(x, InferenceArm("m", "ntk_mixed", mixed_b=1.0)), fixed, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model(x, InferenceArm("m", "ntk_mixed")), fixed, atol=1e-4)  # the model's 0.625


def test_mixed_b_is_tuned_on_training_text_to_the_grids_best(model):
    from omegaconf import OmegaConf

    from kexue_runs.experiments import rerope_extrapolation as rr

    cfg = OmegaConf.create({"data": {"length": 16}, "eval": {"tune_samples": 4, "seed": 1234, "batch_size": 4,
                                                             "ntk_mixed_b_grid": [0.25, 0.625, 1.0]}})
    train = torch.randint(0, 256, (5000,), generator=torch.Generator().manual_seed(0))
    best, scores = rr.tune_mixed_b(model, train, cfg, "cpu")
    assert [b for b, _ in scores] == [0.25, 0.625, 1.0]
    windows = rr.test_sets(train, 16, 4, 1235)["natural"]
    for b, acc in scores:  # each score is the arm's accuracy at 8L on those windows
        arm = InferenceArm("ntk_mixed", "ntk_mixed", mixed_b=b)
        assert acc == rr.evaluate_arm(model, windows, arm, 16, 4, "cpu", (8,))[8]["acc"].mean().item()
    assert best == max(scores, key=lambda bs: bs[1])[0]
    arms = rr.with_mixed_b([InferenceArm("pi", "pi"), InferenceArm("ntk_mixed", "ntk_mixed")], best)
    assert arms[0].mixed_b is None and arms[1].mixed_b == best


def test_test_sets_are_built_as_the_posts_build_them():
    from kexue_runs.experiments.rerope_extrapolation import test_sets

    stream = torch.arange(10_000) % 251
    sets = test_sets(stream, 16, 4, seed=0)
    assert sets["natural"].shape == sets["repeated"].shape == (4, 8 * 16 + 1)
    for sample in sets["repeated"]:
        periods = [c for c in range(16, 65) if torch.equal(sample[c:], sample[:-c])]
        assert periods, "a repeated sample repeats a chunk of L..4L tokens"
    assert torch.equal(test_sets(stream, 16, 4, seed=0)["natural"], sets["natural"])


def test_hwfa_window_follows_the_rule():
    from omegaconf import OmegaConf

    from kexue_runs.experiments.rerope_extrapolation import hwfa_window

    cfg = OmegaConf.create({"arch": {"window": "auto"}, "data": {"length": 64}, "model": {"layers": 4}})
    assert hwfa_window(cfg) == 16  # (16 - 1) * 3 + 1 = 46 <= 48 < (17 - 1) * 3 + 1
    cfg.data.length = 512
    cfg.model.layers = 24
    assert hwfa_window(cfg) == 17  # 9603 used 16 (346 = 0.68 L); the rule's largest is 17 (369 <= 384)


SMOKE_RR = ["experiment=rerope_extrapolation", "scale=smoke", "trainer.progress=false"]


def test_smoke_run_writes_the_table_and_arm_rows(kexue, tmp_path):
    code, out = kexue(*SMOKE_RR)
    assert code == 0, out
    (run,) = run_dirs(tmp_path / "outputs", "rerope_extrapolation")
    s = summary(run)
    assert s["status"] == "ok"
    arms = {r["arm"] for r in s["claim_rows"]}
    assert {"as_trained", "pi", "ntk_mixed", "yarn", "rerope_L/2", "rerope_L/2_logn†", "leaky_rerope_L/4_k16_logn†",
            "window_sinks", "window_sinks_original"} <= arms
    assert len(s["claim_rows"]) == 2 * len(arms)  # two shards at smoke
    table = (run / "tables.md").read_text()
    assert "| rerope_L/2 |" in table and "48.48" in table  # ours beside the post's ReRoPE-w256 row
    assert (run / "figures" / "accuracy_vs_length.png").exists() and (run / "arms.csv").exists()
    grid = (run / "ntk_mixed_b.csv").read_text().splitlines()
    assert grid[0] == "b,acc_8x_train_text" and len(grid) == 11  # the 10 b of the grid
    assert s["final"]["ntk_mixed_b"] in (0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 2.0)
    check = {c["id"]: c for c in s["checks"]}
    assert check["keynorm_beats_baseline"]["verdict"] == "NOT REACHED"  # waits on baseline_degrades_at_8x


def test_training_time_arm_trains_its_own_model(kexue, tmp_path):
    code, out = kexue(*SMOKE_RR, "arch=hwfa")
    assert code == 0, out
    s = summary(run_dirs(tmp_path / "outputs", "rerope_extrapolation")[0])
    assert {r["arm"] for r in s["claim_rows"]} == {"as_trained"} and s["config"]["arch"]["name"] == "hwfa"


@pytest.mark.parametrize(("args", "message"), [
    (["arch.score=softplus"], "arch.score=softplus: allowed: dot, keynorm, querynorm, cosine"),
    (["eval.rerope_windows=[L/2,half]"], "eval.rerope_windows: 'half' is not a fraction of L"),
    (["model.heads=3"], "the head size width/heads must be an even integer"),
    (["arch=hwfa", "arch.window=99"], "HWFA's window must be in 0..15"),
    (["arch=nope"], "unknown arch 'nope'; allowed: baseline, cosa, hwfa, kna, kna_nope, logn, qna"),
    (["eval.ntk_mixed_b=half"], "eval.ntk_mixed_b=half: allowed: tuned (searched over eval.ntk_mixed_b_grid) or a"),
])
def test_bad_input_is_one_line(kexue, tmp_path, args, message):
    code, out = kexue(*SMOKE_RR, *args)
    assert code == 2 and message in out, out
    assert not (tmp_path / "outputs").exists()


def test_smoke_sweep_over_trained_arms_writes_the_cross_model_table(kexue, tmp_path):
    import json

    code, out = kexue("-m", *SMOKE_RR, "arch=baseline,kna")
    assert code == 0, out
    (sweep,) = (tmp_path / "outputs" / "sweeps" / "rerope_extrapolation").glob("*")
    table = (sweep / "tables.md").read_text()
    assert "| kna | as_trained |" in table and "47.69" in table and "| baseline | rerope_L/2 |" in table
    checks = {c["id"]: c for c in json.loads((sweep / "claim_report.json").read_text())["checks"]}
    assert "no runs match" not in checks["keynorm_beats_baseline"]["note"]  # both models are in the table
    assert checks["keynorm_beats_baseline"]["n"] == 2
    assert (sweep / "figure.png").exists()


def test_yarn_ramp_scaled_to_the_training_length_keeps_the_posts_share_of_pairs():
    """At L = 64 the scaled ramp (alpha = 1/8, beta = 4) treats the same pairs as alpha = 1, beta = 32 at L = 512."""
    from omegaconf import OmegaConf

    from kexue_runs.experiments.rerope_extrapolation import yarn_ramp

    cfg = OmegaConf.create({"data": {"length": 64}, "eval": {"yarn_alpha": 1.0, "yarn_beta": 32.0,
                                                            "yarn_ramp": "scaled", "yarn_reference_length": 512}})
    assert yarn_ramp(cfg) == (0.125, 4.0)
    assert yarn_ramp(OmegaConf.merge(cfg, {"eval": {"yarn_ramp": "absolute"}})) == (1.0, 32.0)
    d, base, s = 64, 10000.0, 8.0
    ours = rp.inv_freq(d, base, "yarn", s, train_length=64, yarn_alpha=0.125, yarn_beta=4.0)
    posts = rp.inv_freq(d, base, "yarn", s, train_length=512, yarn_alpha=1.0, yarn_beta=32.0)
    rope = rp.inv_freq(d, base)
    assert torch.allclose(ours / rope, posts / rope, atol=1e-6)  # the same blend for every pair
    absolute = rp.inv_freq(d, base, "yarn", s, train_length=64, yarn_alpha=1.0, yarn_beta=32.0)
    assert (absolute / rope < 0.99).all()  # the paper's numbers at L = 64: no pair extrapolates


@pytest.mark.parametrize(("length", "window", "leaky", "chunk"), [
    (200, 32, None, 64), (200, 32, 16.0, 64), (64, 64, None, 16), (300, 7, 8.0, 50), (50, 100, None, 256),
    (129, 1, None, 32)])
def test_blockwise_rerope_equals_the_two_matrix_softmax(length, window, leaky, chunk):
    """The band + shifted fused call + log-sum-exp merge is the explicit softmax over rerope_logits."""
    g = torch.Generator().manual_seed(length + window)
    q, k, v = (torch.randn(2, 3, length, 16, generator=g, dtype=torch.float64) for _ in range(3))
    theta = rp.inv_freq(16, 10000.0).double()
    logits = rp.rerope_logits(q, k, theta, window, leaky) * 0.25
    ref = logits.masked_fill(rp.relative_positions(length) < 0, float("-inf")).softmax(-1) @ v
    got = rp.rerope_attention(q, k, v, theta, window, 0.25, leaky, chunk=chunk)
    assert (got - ref).abs().max().item() < 1e-12
    got32 = rp.rerope_attention(q.float(), k.float(), v.float(), theta.float(), window, 0.25, leaky, chunk=chunk)
    assert (got32.double() - ref).abs().max().item() < 5e-6


def test_the_public_api_fallback_matches_fused_causal_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 100, 8, generator=g) for _ in range(3))
    out, lse = rp.blockwise_attention_lse(q, k, v, 0.3, block=17)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3)
    scores = (q @ k.transpose(-1, -2) * 0.3).masked_fill(rp.relative_positions(100) < 0, float("-inf"))
    assert (out - ref).abs().max() < 1e-5 and (lse - torch.logsumexp(scores, -1)).abs().max() < 1e-5
    fused_out, fused_lse = rp.causal_attention_lse(q, k, v, 0.3)
    assert (fused_out - ref).abs().max() < 1e-5 and (fused_lse - lse).abs().max() < 1e-5
