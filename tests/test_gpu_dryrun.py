"""scripts/gpu_dryrun.py (make gpu-dryrun): the cut, the meter and the extrapolation, checked at smoke size against
numbers computed independently: a broken cap or estimate turns these red. Reports are read as JSON."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import gpu_dryrun  # noqa: E402


def test_the_cut_rule_cuts_phase_lengths_and_data_but_no_shape_or_ratio():
    config = {"trainer": {"steps": 20000, "batch_size": 256, "warmup_steps": 1000, "eval_every": 2000},
              "sim": {"iterations": 20000, "d_steps": 5, "classifier_steps": 5000, "replicates": 3, "width": 64,
                      "samples": 2000000, "halving_steps": [1000, 10000]},
              "eval": {"samples": 8192, "steps": [10, 20, 50, 100, 1000], "shards": 4},
              "data": {"train_size": 50000, "patch": 32}, "model": {"steps": 7}, "seed": 3,
              "finetune": {"shards": 10, "questions_per_shard": 100}}
    cuts = {c["key"]: (c["kind"], c["cut"]) for c in gpu_dryrun.cut_plan(config)}
    assert cuts == {"trainer.steps": ("steps", 2), "trainer.warmup_steps": ("fixed", 1),
                    "sim.iterations": ("steps", 2), "sim.classifier_steps": ("steps", 2),
                    "sim.replicates": ("replicates", 2), "sim.samples": ("draws", 4096),
                    "eval.samples": ("evaluated", 16), "eval.steps": ("steps", [2, 3, 4, 5, 6]),
                    "eval.shards": ("partitions", 2), "data.train_size": ("data", 512),
                    # shards that repeat the work (a count per shard beside them) are replicates, else partitions
                    "finetune.shards": ("replicates", 2), "finetune.questions_per_shard": ("evaluated", 16)}


def test_the_extrapolation_recovers_a_known_cost_model_exactly():
    """Work = replicates x (fixed + sum of a_k x size_k) for every measured count: the cut run and the doubled ones
    made from that model must give back the full run's value."""
    config = {"trainer": {"steps": 1000, "warmup_steps": 10}, "sim": {"iterations": 20000, "classifier_steps": 1000,
                                                                      "replicates": 5, "eval_samples": 5000},
              "eval": {"steps": [10, 100]}}
    plan = gpu_dryrun.cut_plan(config)
    rate = {"trainer.steps": 7.0, "sim.iterations": 11.0, "sim.classifier_steps": 3.0, "sim.eval_samples": 0.5,
            "eval.steps": 13.0}

    def work(values: dict) -> float:
        def size(v):
            return sum(v) if isinstance(v, list) else v
        return values["sim.replicates"] * (100.0 + sum(rate[k] * size(values[k]) for k in rate))

    def parse(override: str):
        key, value = override.split("=", 1)
        return key, json.loads(value)

    runs = {}
    for name, overrides in gpu_dryrun.variants(plan):
        value = work(dict(parse(o) for o in overrides))
        runs[name] = {"flops": value, "ops": 2 * value, "optimizer_steps": value / 10}
    # trainer.steps and sim.classifier_steps share their full size: one doubled run measures both
    assert len(runs) == 1 + 4
    full = work({"trainer.steps": 1000, "sim.iterations": 20000, "sim.classifier_steps": 1000, "sim.replicates": 5,
                 "sim.eval_samples": 5000, "eval.steps": [10, 100]})
    got = gpu_dryrun.extrapolate(plan, runs)
    assert got["flops"] == pytest.approx(full, rel=1e-12)
    assert got["ops"] == pytest.approx(2 * full, rel=1e-12)
    assert got["replicate_factor"] == 2.5


def test_the_meter_counts_flops_params_state_and_saved_activations_of_a_known_net():
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    layer = torch.nn.Linear(10, 5)
    optimizer = torch.optim.Adam(layer.parameters())
    x = torch.randn(8, 10)

    def two_steps():
        for _ in range(2):
            optimizer.zero_grad()
            layer(x).sum().backward()
            optimizer.step()

    reference = FlopCounterMode(display=False)
    with reference:
        two_steps()
    with gpu_dryrun.Meter() as meter:
        two_steps()
    got = meter.result()
    assert got["flops"] == reference.get_total_flops() > 0
    assert got["optimizer_steps"] == 2 and got["params"] == 55
    # 55 parameters, their gradients and Adam's two moments, float32; backward keeps the input only (8 x 10)
    assert got["resident_bytes"] == 4 * (55 + 55 + 2 * 55)
    assert got["activation_bytes"] == 4 * 8 * 10
    assert got["ops"] > 0


def test_the_dry_run_honours_the_cap_and_its_estimate_matches_a_full_run(tmp_path):
    """fsq_vs_vq at smoke size: the cut run makes 2 optimizer steps, and the estimate made from the cut runs
    matches the same run made in full (evaluation once, at the end, in both; the validation set, which the dry run
    cuts without extrapolating, at the cut size in both)."""
    config = gpu_dryrun.composed("fsq_vs_vq", "smoke")
    config["trainer"]["eval_every"] = 1000000
    config["data"]["val_size"] = 512
    plan = gpu_dryrun.cut_plan(config, gpu_dryrun.experiment_source(config["task"]))
    assert [c["key"] for c in plan] == ["trainer.steps"]
    common = ["experiment=fsq_vs_vq", "scale=smoke", "trainer.device=cpu", "trainer.threads=1",
              "trainer.progress=false", "seed=0", "trainer.eval_every=1000000", "data.val_size=512"]
    spec = {"common": common, "variants": [*gpu_dryrun.variants(plan), ("full", [])], "root": str(tmp_path / "runs"),
            "out": str(tmp_path / "out.json")}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "scripts/gpu_dryrun.py", "--child", str(tmp_path / "spec.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = json.loads((tmp_path / "out.json").read_text())
    assert all(r["status"] == "ok" for r in runs.values()), runs
    base, full = runs["base"], runs["full"]
    assert base["steps"] == base["optimizer_steps"] == 2
    full_steps = next(c["full"] for c in plan if c["key"] == "trainer.steps")
    assert full["optimizer_steps"] == full_steps
    estimate = gpu_dryrun.extrapolate(plan, runs)
    assert estimate["optimizer_steps"] == pytest.approx(full_steps)
    assert estimate["flops"] == pytest.approx(full["flops"], rel=0.02)
    assert estimate["ops"] == pytest.approx(full["ops"], rel=0.05)
    # the shapes are the run's own: parameters and one step's activations as in the full run
    assert base["params"] == full["params"] > 0
    assert base["activation_bytes"] == full["activation_bytes"] > 0


def test_an_unknown_experiment_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "scripts/gpu_dryrun.py", "--only", "nonesuch", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "nonesuch" in done.stderr and "fsq_vs_vq" in done.stderr
    assert not list(tmp_path.iterdir())


def test_monoflow_with_fewer_flow_steps_than_checkpoints_ends_with_its_figure(kexue, tmp_path):
    """Found by the dry run (flow_steps cut to 2, 5 checkpoints): np.linspace(0, 2, 5) rounds to 3 distinct steps, the
    flow measures the particles at those 3, and the figure drew them against 5 steps: a ValueError after the whole
    run. The figure now uses the steps the flow measured."""
    code, out = kexue("experiment=monoflow", "scale=smoke", "sim.flow_steps=2", "sim.checkpoints=5",
                      "sim.iterations=4", "sim.k_iterations=2", "trainer.progress=false")
    (run,) = (tmp_path / "outputs" / "runs" / "monoflow").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert code == 0 and summary["status"] == "ok", summary.get("error")
    assert (run / "figures" / "monoflow.png").exists()
