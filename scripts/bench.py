"""`make bench`: each experiment's hot loop, in samples/s and achieved FLOP/s against this
machine's measured float32 matmul peak. Speed targets live here, never in timed tests.

    python scripts/bench.py [--seconds 10] [--only fsq_vs_vq]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from hydra import compose, initialize_config_dir
from torch.utils.flop_counter import FlopCounterMode

from kexue_runs import config_dir

# Targets on the 2-core development CPU (fp32, eager), from shared/reference/environment.md.
# rerope_extrapolation counts tokens: 22k tokens/s measured for the 0.82M-parameter cpu model.
TARGETS = {"fsq_vs_vq": {"samples_per_s": 1000}, "rerope_extrapolation": {"samples_per_s": 15000}}


def matmul_peak(seconds: float = 2.0, n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start)


def timed(step, seconds: float) -> tuple[float, int]:
    for _ in range(3):
        step()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += 1
    return (time.perf_counter() - start) / count, count


def experiment_config(*overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def measure(fn, seconds: float) -> tuple[float, float]:
    """(seconds per call, FLOP per second) of fn, its FLOPs counted once by torch's counter."""
    with FlopCounterMode(display=False) as counter:
        fn()
    per_call, _ = timed(fn, seconds)
    return per_call, counter.get_total_flops() / per_call


def bench_fsq_vs_vq(seconds: float) -> list[dict]:
    from kexue_runs.experiments.fsq_vs_vq import QuantizedAutoencoder, loss_terms, to_model_range

    rows = []
    for quantizer in ("fsq", "vq_ste", "vq_rotation"):
        cfg = experiment_config("experiment=fsq_vs_vq", f"quantizer={quantizer}")
        model = QuantizedAutoencoder(3, cfg.model, cfg.quantizer, torch.Generator().manual_seed(0))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = to_model_range(torch.rand(int(cfg.trainer.batch_size), 3, 16, 16))

        def step(model=model, optimizer=optimizer, x=x, loss_cfg=cfg.loss):
            loss, _ = loss_terms(model(x), x, loss_cfg)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        per_step, flops = measure(step, seconds)
        rows.append({"experiment": "fsq_vs_vq", "arm": f"{quantizer} K={cfg.quantizer.codebook_size}",
                     "samples_per_s": x.shape[0] / per_step, "flops": flops})
    return rows


def bench_rerope_extrapolation(seconds: float) -> list[dict]:
    """Training tokens/s at L (scale=cpu sizes), and inference at 8L: RoPE against ReRoPE's two score matrices."""
    from kexue_runs.experiments.rerope_extrapolation import arch_config
    from kexue_runs.models.transformer import CausalLM, InferenceArm, next_token_loss

    cfg = experiment_config("experiment=rerope_extrapolation")
    torch.manual_seed(0)
    model = CausalLM(arch_config(cfg))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    L, batch = int(cfg.data.length), int(cfg.trainer.batch_size)
    tokens = torch.randint(0, 256, (batch, L + 1))

    def train_step():
        loss = next_token_loss(model, tokens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    per_step, flops = measure(train_step, seconds)
    rows = [{"experiment": "rerope_extrapolation", "arm": f"train L={L}", "samples_per_s": batch * L / per_step,
             "flops": flops}]
    long = torch.randint(0, 256, (int(cfg.eval.batch_size), 8 * L))
    model.eval()
    for arm in (InferenceArm("rope"), InferenceArm("rerope", "rerope", window=L // 2)):
        with torch.no_grad():
            per_call, flops = measure(lambda arm=arm: model(long, arm), seconds / 2)
        rows.append({"experiment": "rerope_extrapolation", "arm": f"{arm.name} eval 8L={8 * L}",
                     "samples_per_s": long.numel() / per_call, "flops": flops})
    rope, rerope = rows[-2]["samples_per_s"], rows[-1]["samples_per_s"]
    print(f"  ReRoPE inference at 8L costs {rope / rerope:.2f}x RoPE's time (two score matrices, no fused SDPA)")
    return rows


def bench_ddim_cifar(seconds: float) -> list[dict]:
    """Training images/s (scale=cpu sizes) and sampler steps/s: U-Net calls on the eval batch per second."""
    from torch.nn import functional as F

    from kexue_runs.methods.diffusion import Sampler, Schedule, step
    from kexue_runs.models.unet import UNet

    cfg = experiment_config("experiment=ddim_cifar")
    torch.manual_seed(0)
    model = UNet(1, int(cfg.model.width), tuple(cfg.model.mults), int(cfg.model.blocks))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    schedule, batch = Schedule(int(cfg.diffusion.T)), int(cfg.trainer.batch_size)
    x0, t, noise = torch.rand(batch, 1, 8, 8) * 2 - 1, torch.randint(1, 1001, (batch,)), torch.randn(batch, 1, 8, 8)

    def train_step():
        loss = F.mse_loss(model(schedule.q_sample(x0, t, noise), t), noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    per_step, flops = measure(train_step, seconds)
    rows = [{"experiment": "ddim_cifar", "arm": "train 8x8 digits", "samples_per_s": batch / per_step, "flops": flops}]
    model.eval()
    x = torch.randn(int(cfg.eval.samples), 1, 8, 8)
    for sampler in (Sampler(10, "eta", 0.0), Sampler(10, "ode_heun")):
        with torch.no_grad():
            per_call, flops = measure(lambda s=sampler: step(model, x, 500, 400, schedule, s), seconds / 2)
        rows.append({"experiment": "ddim_cifar", "arm": f"sampler step {sampler.label}",
                     "samples_per_s": x.shape[0] / per_call, "flops": flops})
        print(f"  {sampler.label}: {1 / per_call:.1f} sampler steps/s on {x.shape[0]} images")
    return rows


BENCHES = {"fsq_vs_vq": bench_fsq_vs_vq, "rerope_extrapolation": bench_rerope_extrapolation,
           "ddim_cifar": bench_ddim_cifar}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--only", default=None)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    peak = matmul_peak()
    print(f"float32 matmul peak (1024^2, {torch.get_num_threads()} threads): {peak / 1e9:.1f} GFLOP/s")
    print(f"{'experiment':<20} {'arm':<22} {'samples/s':>10} {'GFLOP/s':>8} {'of peak':>8}  target"
          "   (rerope_extrapolation: tokens/s)")
    for name, bench in BENCHES.items():
        if args.only and name != args.only:
            continue
        for row in bench(args.seconds):
            target = TARGETS.get(name, {}).get("samples_per_s")
            mark = "" if target is None else ("ok" if row["samples_per_s"] >= target else f"BELOW {target}")
            print(f"{row['experiment']:<20} {row['arm']:<22} {row['samples_per_s']:>10.0f} "
                  f"{row['flops'] / 1e9:>8.1f} {row['flops'] / peak:>7.0%}  {mark}")


if __name__ == "__main__":
    main()
