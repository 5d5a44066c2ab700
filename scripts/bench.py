"""`make bench`: each experiment's hot loop, in one table: its rate at 1 and 2 threads (and in bf16-mixed
where the CPU has native bf16), the fraction of this run's own float32 matmul peak at that thread count,
and a peer's rate on the same op where one is installed (`make install-bench`: vector-quantize-pytorch
for FSQ/VQ, diffusers for the DDIM step; fused attention for ReRoPE); each GAN loss's iterations/s on the
2-D toys and on 8x8 images, with the cost ratios the GAN posts claim (WGAN-GP over GAN-QP, GN over the
gradient penalty). ReRoPE against RoPE at 512, 2048 and 8192 tokens: time and peak memory, each case in a
fresh process. Start-up: `--help`, `list` and every experiment's smoke run in a fresh process, the time
outside each experiment's own work against #19's 1.5 s. Replicates (#31): each batching harness at R = 1, 4, 16
seeds, one batched run against R lone runs, 1 thread. Thread policy (#31): the default against 1 and 2 threads,
quiet and beside a busy loop on one core. Speed targets live here, never in timed tests.
Results land in outputs/bench/<stamp>.json, so two commits can be compared.

    python scripts/bench.py [--seconds 3] [--only fsq_vs_vq|startup|replicates|threads|...] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from kexue_runs import config_dir

REPO = Path(__file__).resolve().parent.parent
# Targets on the 2-core development CPU (fp32): the cpu-scale sizings assume these rates.
TARGETS = {("fsq_vs_vq", "fsq K=1024"): 1000, ("rerope_extrapolation", "train L=64"): 15000}


def matmul_peak(seconds: float = 1.5, n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start)


def timed(step, seconds: float) -> float:
    for _ in range(2):
        step()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        step()
        count += 1
    return (time.perf_counter() - start) / count


def measure(fn, seconds: float) -> tuple[float, float]:
    """(seconds per call, FLOP per call) of fn, its FLOPs counted once by torch's counter (nan where the counter
    cannot follow: torch.autograd.grad inside the step, as in a gradient penalty)."""
    try:
        with FlopCounterMode(display=False) as counter:
            fn()
        flops = counter.get_total_flops()
    except RuntimeError:
        flops = float("nan")
    return timed(fn, seconds), flops


def experiment_config(*overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16-mixed" else nullcontext()


def train_step(model, loss_fn, lr: float = 1e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step(precision: str = "32"):
        with autocast(precision):
            loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


# -- the hot loops: each yields (arm, unit, per-call function(precision), samples per call, peer) --------
def fsq_vs_vq_loops():
    from kexue_runs.experiments.fsq_vs_vq import QuantizedAutoencoder, loss_terms, to_model_range

    for quantizer in ("fsq", "vq_ste", "vq_rotation"):
        cfg = experiment_config("experiment=fsq_vs_vq", f"quantizer={quantizer}")
        model = QuantizedAutoencoder(3, cfg.model, cfg.quantizer, torch.Generator().manual_seed(0))
        x = to_model_range(torch.rand(int(cfg.trainer.batch_size), 3, 16, 16))
        step = train_step(model, lambda model=model, x=x, loss=cfg.loss: loss_terms(model(x), x, loss)[0])
        yield f"{quantizer} K={cfg.quantizer.codebook_size}", "samples/s", step, x.shape[0], None
    # the quantizer alone against vector-quantize-pytorch on the same latents (forward + backward)
    z = torch.randn(64 * 16, 16, requires_grad=True)
    peers = quantizer_peers()
    from kexue_runs.methods.fsq import FSQ
    from kexue_runs.methods.vq import VectorQuantizer

    fsq = FSQ([8, 5, 5, 5])
    z4 = torch.randn(64 * 16, 4, requires_grad=True)
    yield "FSQ op [8,5,5,5]", "latents/s", lambda p="32": fsq(z4)[0].sum().backward(), z4.shape[0], peers.get("fsq")
    for gradient in ("ste", "rotation"):
        vq = VectorQuantizer(1024, 16, gradient, "normal", torch.Generator().manual_seed(0))

        def op(p="32", vq=vq):
            q, _, cb, commit = vq(z)
            (q.sum() + cb + 0.25 * commit).backward()

        yield f"VQ-{gradient} op K=1024", "latents/s", op, z.shape[0], peers.get(gradient)


def quantizer_peers() -> dict:
    """vector-quantize-pytorch's FSQ and VectorQuantize (STE, rotation trick) on the same shapes, if installed."""
    try:
        from vector_quantize_pytorch import FSQ, VectorQuantize
    except ImportError:
        return {}
    z4 = torch.randn(64, 16, 4, requires_grad=True)
    z = torch.randn(64, 16, 16, requires_grad=True)
    fsq = FSQ(levels=[8, 5, 5, 5])
    ste = VectorQuantize(dim=16, codebook_size=1024, rotation_trick=False, ema_update=False, learnable_codebook=True)
    rot = VectorQuantize(dim=16, codebook_size=1024, rotation_trick=True, ema_update=False, learnable_codebook=True)

    def vq_op(module):
        def op():
            out, _, loss = module(z)
            (out.sum() + loss.sum()).backward()
        return op

    return {"fsq": ("vector-quantize-pytorch FSQ", lambda: fsq(z4)[0].sum().backward()),
            "ste": ("vector-quantize-pytorch VQ (STE)", vq_op(ste)),
            "rotation": ("vector-quantize-pytorch VQ (rotation)", vq_op(rot))}


def rerope_extrapolation_loops():
    from kexue_runs.experiments.rerope_extrapolation import arch_config
    from kexue_runs.models.transformer import CausalLM, InferenceArm, next_token_loss

    cfg = experiment_config("experiment=rerope_extrapolation")
    torch.manual_seed(0)
    model = CausalLM(arch_config(cfg))
    L, batch = int(cfg.data.length), int(cfg.trainer.batch_size)
    tokens = torch.randint(0, 256, (batch, L + 1))
    yield f"train L={L}", "tokens/s", train_step(model, lambda: next_token_loss(model, tokens)), batch * L, None
    long = torch.randint(0, 256, (int(cfg.eval.batch_size), 8 * L))
    model.eval()
    for arm in (InferenceArm("rope"), InferenceArm("rerope", "rerope", window=L // 2)):
        def infer(p="32", arm=arm):
            with torch.no_grad(), autocast(p):
                model(long, arm)

        yield f"{arm.name} eval 8L={8 * L}", "tokens/s", infer, long.numel(), None


def ddim_cifar_loops():
    from torch.nn import functional as F

    from kexue_runs.methods.diffusion import Sampler, Schedule, step
    from kexue_runs.models.unet import UNet

    cfg = experiment_config("experiment=ddim_cifar")
    torch.manual_seed(0)
    model = UNet(1, int(cfg.model.width), tuple(cfg.model.mults), int(cfg.model.blocks))
    schedule, batch = Schedule(int(cfg.diffusion.T)), int(cfg.trainer.batch_size)
    x0, t, noise = torch.rand(batch, 1, 8, 8) * 2 - 1, torch.randint(1, 1001, (batch,)), torch.randn(batch, 1, 8, 8)
    loss = lambda: F.mse_loss(model(schedule.q_sample(x0, t, noise), t), noise)  # noqa: E731
    yield "train 8x8 digits", "images/s", train_step(model, loss, 2e-4), batch, None
    # the sampler's own arithmetic per step (a fixed eps, so the U-Net is out of it), against diffusers
    x = torch.randn(512, 1, 8, 8)
    eps = torch.randn_like(x)
    for sampler in (Sampler(10, "eta", 0.0), Sampler(10, "eta", 1.0)):
        yield (f"sampler step {sampler.label}", "images/s",
               lambda p="32", s=sampler: step(lambda x_, t_: eps, x, 500, 400, schedule, s), x.shape[0],
               diffusers_peer(x, eps, sampler.eta))


def diffusers_peer(x, eps, eta: float):
    try:
        from diffusers import DDIMScheduler
    except ImportError:
        return None
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    scheduler.set_timesteps(10)
    t = int(scheduler.timesteps[5])
    gen = torch.Generator().manual_seed(0)
    return (f"diffusers DDIMScheduler.step (eta={eta:g})",
            lambda: scheduler.step(eps, t, x, eta=eta, generator=gen))


GAN_ARMS = {"gan_qp": ("sgan", "wgan_gp", "qp_l1", "qp_l2"), "wgan_gn": ("wgan_gp", "gn_iccv", "gn_wacv", "direction")}


def gan_loops(experiment: str):
    """One training iteration of each GAN loss (the experiment's critic steps + one generator step, Adam), on
    the 2-D toys' MLPs and on 8x8 images with the DCGAN pair: the posts' cost claims are per iteration."""
    import importlib

    from kexue_runs.models import dcgan
    from kexue_runs.models.toy2d import target, train_adversarial

    images = dcgan.ImageTarget("random 8x8", torch.rand(512, 1, 8, 8) * 2 - 1)
    module, arms = importlib.import_module(f"kexue_runs.experiments.{experiment}"), GAN_ARMS[experiment]
    sim = experiment_config(f"experiment={experiment}").sim
    one = OmegaConf.merge(sim, {"iterations": 1})
    second = float(sim.lam) if experiment == "gan_qp" else float(sim.eps)
    for domain, t in (("2-D", target("ring8")), ("8x8", images)):
        for arm in arms:
            torch.manual_seed(0)
            a = dcgan.Arena(t) if domain == "2-D" else dcgan.Arena(t, (None, None, "cpu"), "fid", "images")
            g, d = a.networks(one, "leaky_relu" if experiment == "wgan_gn" else "relu")  # as each trains
            d_loss, g_loss = module.losses(arm, second)

            def iteration(p="32", g=g, d=d, d_loss=d_loss, g_loss=g_loss, t=t, one=one):
                train_adversarial(g, d, d_loss, g_loss, t, one, 0)

            yield f"{arm} {domain} ({int(sim.d_steps)}D+1G)", "iter/s", iteration, 1, None


def gan_cost_ratios(rows: list[dict]) -> list[dict]:
    """The posts' cost claims from the GAN rows: WGAN-GP over GAN-QP-L2 (GAN-QP's table: ~1.5x) and GN over
    the gradient penalty (post 8757: GN is slower), time per iteration at each thread count."""
    rate = {(r["experiment"], r["arm"].split(" (")[0], r["threads"]): r["rate"] for r in rows
            if r["unit"] == "iter/s" and r["precision"] == "32"}
    out = []
    for (experiment, slow, fast, claim) in (("gan_qp", "wgan_gp", "qp_l2", "~1.5x (GAN-QP, post 6163)"),
                                            ("wgan_gn", "gn_iccv", "wgan_gp", "> 1 (post 8757)"),
                                            ("wgan_gn", "gn_wacv", "wgan_gp", "> 1 (post 8757)")):
        for (e, arm, threads), r in rate.items():
            if e == experiment and arm.startswith(slow + " "):
                domain = arm.split(" ", 1)[1]
                other = rate.get((experiment, f"{fast} {domain}", threads))
                if other:
                    out.append({"ratio": f"{slow} / {fast}", "domain": domain, "threads": threads,
                                "time_ratio": other / r, "post": claim})
    return out


LOOPS = {"fsq_vs_vq": fsq_vs_vq_loops, "rerope_extrapolation": rerope_extrapolation_loops,
         "ddim_cifar": ddim_cifar_loops, "gan_qp": lambda: gan_loops("gan_qp"),
         "wgan_gn": lambda: gan_loops("wgan_gn")}


# #31: R replicates trained as one batched computation (models/batched.py) against R lone runs, 1 thread.
REPLICATE_TARGETS = {"digits MLP": (16, 2.0), "2-D toys": (4, 1.8)}  # harness: (R, at most this many times one)


def replicate_cases(repeats: int = 3, counts=(1, 4, 16)) -> list[dict]:
    """Each batching harness's training at R = counts replicates, batched and as R lone runs, on 1 thread: the
    best of `repeats` timings each, in the process's CPU seconds (on one thread its wall time on a quiet machine;
    on a loaded one the wall time mostly measures the other processes) and, for the record, in wall seconds. A
    lone run is timed once per repetition and R lone runs cost R times it (they run one after another)."""
    from kexue_runs.experiments import gan_qp, momentum_accum
    from kexue_runs.models import toy2d

    torch.set_num_threads(1)
    digits = OmegaConf.merge(experiment_config("experiment=momentum_accum").sim, {"epochs": 1})
    toys = OmegaConf.merge(experiment_config("experiment=gan_qp").sim,
                           {"iterations": 40, "evaluations": 1, "eval_samples": 64})
    ring = toy2d.target(str(toys.target))
    harnesses = {  # name: (what one run trains, lone(seed), batched(seeds))
        "digits MLP": (f"Adam every step, batch {int(digits.batch)}, hidden {int(digits.hidden)}, one epoch",
                       lambda seed: momentum_accum.train_arm("every_step", seed, digits),
                       lambda seeds: momentum_accum.train_arm_replicates("every_step", seeds, digits)),
    }
    for arm in ("sgan", "wgan_gp"):
        losses = gan_qp.losses(arm, float(toys.lam))
        harnesses[f"2-D toys {arm}"] = (
            f"{arm}, batch {int(toys.batch)}, {int(toys.hidden)}x{int(toys.layers)} MLPs, "
            f"{int(toys.iterations)} iterations",
            lambda seed, losses=losses: toy2d.train_gan(*losses, ring, toys, seed),
            lambda seeds, losses=losses: toy2d.train_gan_batched(*losses, ring, toys, seeds))
    rows = []
    for name, (what, lone, batched) in harnesses.items():
        lone(0)  # warm-up: imports, first-call allocations
        lone_cpu, lone_wall = _best(lone, 0, repeats)
        for r in counts:
            batched_cpu, batched_wall = _best(batched, list(range(r)), repeats)
            rows.append({"harness": name, "what": what, "replicates": r, "lone_s": lone_cpu,
                         "sequential_s": r * lone_cpu, "batched_s": batched_cpu,
                         "batched_over_one": batched_cpu / lone_cpu, "speedup": r * lone_cpu / batched_cpu,
                         "lone_wall_s": lone_wall, "batched_wall_s": batched_wall})
    return rows


def _best(fn, arg, repeats: int) -> tuple[float, float]:
    """(least CPU seconds, least wall seconds) of fn(arg) over `repeats` calls."""
    cpu, wall = [], []
    for _ in range(repeats):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        fn(arg)
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return min(cpu), min(wall)


def bf16_native() -> bool:
    """AVX-512 BF16 or AMX on this CPU (without them bf16 matmuls run ~250x slower than float32)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# -- ReRoPE against RoPE: time and peak memory, each case in a fresh process ------------------------------
ATTENTION_CASE = r"""
import json, sys, time, torch
from kexue_runs.methods import rerope as rp
torch.set_num_threads(int(sys.argv[3]))
mode, T = sys.argv[1], int(sys.argv[2])
B, H, D, w = 4, 2, 64, 128
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(B, H, T, D, generator=g) for _ in range(3))
theta, pos = rp.inv_freq(D, 10000.0), torch.arange(T)
def hwm():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024
def run():
    if mode == 'rope':
        return torch.nn.functional.scaled_dot_product_attention(rp.rotate(q, pos, theta), rp.rotate(k, pos, theta),
                                                               v, is_causal=True)
    if mode == 'rerope':
        return rp.rerope_attention(q, k, v, theta, w, D ** -0.5)
    logits = rp.rerope_logits(q, k, theta, w) * D ** -0.5
    return logits.masked_fill(rp.relative_positions(T) < 0, float('-inf')).softmax(-1) @ v
base = hwm(); run(); peak = hwm() - base
times = []
for _ in range(3 if T >= 8192 else 7):
    start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "peak_mb": peak}))
"""


def attention_cases(threads: int, lengths=(512, 2048, 8192)) -> list[dict]:
    rows = []
    for length in lengths:
        for mode in ("rope", "rerope", "two_matrix"):
            if mode == "two_matrix" and length > 2048:
                continue  # 2 x 4 x 2 x 8192^2 floats: 4 GB, the reason for the blockwise version
            out = subprocess.run([sys.executable, "-c", ATTENTION_CASE, mode, str(length), str(threads)],
                                 capture_output=True, text=True, cwd=REPO, env=os.environ | {"OMP_NUM_THREADS": "1"})
            if out.returncode:
                print(out.stderr[-500:], file=sys.stderr)
                continue
            rows.append({"length": length, "mode": mode, "threads": threads} | json.loads(out.stdout))
    return rows


STARTUP_TARGET_S = 1.5  # #19: a smoke run's time outside its own work (the process's wall minus `experiment`)


def startup_cases(experiments: list[str]) -> list[dict]:
    """`kexue-run --help`, `list`, and each experiment's smoke run, each in a fresh process on 1 thread: the
    process's wall clock, the phases its summary records, and the time outside the experiment's own work."""
    import tempfile

    exe = [sys.executable, "-m", "kexue_runs.cli"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    rows = []
    for args in (["--help"], ["list"]):
        start = time.perf_counter()
        subprocess.run(exe + args, capture_output=True, cwd=REPO, env=env, check=True)
        rows.append({"command": " ".join(args), "wall_s": time.perf_counter() - start})
    with tempfile.TemporaryDirectory() as root:
        for name in experiments:
            start = time.perf_counter()
            out = subprocess.run(exe + [f"experiment={name}", "scale=smoke", "trainer.threads=1",
                                        "trainer.progress=false", f"output_root={root}"],
                                 capture_output=True, text=True, cwd=REPO, env=env)
            wall = time.perf_counter() - start
            summaries = list(Path(root, "runs", name).glob("*/summary.json"))
            if out.returncode or not summaries:
                print(f"  {name}: exit {out.returncode}", out.stderr[-300:], file=sys.stderr)
                continue
            phases = json.loads(summaries[0].read_text())["timing"].get("phases", {})
            rows.append({"command": f"experiment={name} scale=smoke", "wall_s": wall, "phases": phases,
                         "outside_s": wall - phases.get("experiment", 0.0)})
    return rows


THREAD_WORKLOAD = ["experiment=fsq_vs_vq", "scale=cpu", "trainer.steps=40", "trainer.progress=false"]
THREAD_TARGET = 1.2  # #31: under a one-core busy loop the default is never slower than 1.2x the best fixed choice


def thread_policy_cases(repeats: int = 2) -> list[dict]:
    """The default thread policy next to 1 and 2 fixed threads, on the machine as it is and with a busy loop
    on one core (another process spinning): a cpu-scale run cut to 40 steps, a fresh process each time, the
    best wall of `repeats`. Returns one row per (condition, choice) with the threads the default picked."""
    import tempfile

    rows = []
    for condition in ("quiet", "one core busy"):
        spinner = None
        if condition == "one core busy":
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)  # let the kernel's count of runnable threads see it
        try:
            for choice in ("default", "1", "2"):
                best, picked, why = None, None, ""
                for _ in range(repeats):
                    with tempfile.TemporaryDirectory() as tmp:
                        extra = [] if choice == "default" else [f"trainer.threads={choice}"]
                        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
                        start = time.perf_counter()
                        out = subprocess.run([sys.executable, "-m", "kexue_runs.cli", *THREAD_WORKLOAD, *extra,
                                              f"output_root={tmp}"], cwd=REPO, env=env, capture_output=True,
                                             text=True)
                        wall = time.perf_counter() - start
                        if out.returncode != 0:
                            raise RuntimeError(out.stderr[-2000:])
                        (summary,) = Path(tmp).glob("runs/*/*/summary.json")
                        environment = json.loads(summary.read_text())["environment"]
                        picked, why = environment.get("threads"), environment.get("thread_policy", "")
                    best = wall if best is None else min(best, wall)
                rows.append({"condition": condition, "choice": choice, "threads": picked, "why": why,
                             "wall_s": best})
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    for condition in ("quiet", "one core busy"):
        fixed = min(r["wall_s"] for r in rows if r["condition"] == condition and r["choice"] != "default")
        for r in rows:
            if r["condition"] == condition:
                r["over_best_fixed"] = r["wall_s"] / fixed
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--only", default=None)
    parser.add_argument("--threads", default="1,2", help="thread counts to measure, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="replicates bench: timings per case, the best kept")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    precisions = ["32"] + (["bf16-mixed"] if bf16_native() else [])
    peaks, rows = {}, []
    header = (f"{'experiment':<21}{'hot loop':<24}{'thr':>3} {'precision':<11}{'rate':>11} {'unit':<10}{'GFLOP/s':>8}"
              f"{'of peak':>8}  peer rate (same op)")
    for threads in thread_counts:
        torch.set_num_threads(threads)
        peaks[threads] = matmul_peak()
        print(f"float32 matmul peak, 1024^2, {threads} thread(s): {peaks[threads] / 1e9:.1f} GFLOP/s")
    print(header)
    for name, loops in LOOPS.items():
        if args.only and name != args.only:
            continue
        for arm, unit, fn, per_call, peer in loops():
            for threads in thread_counts:
                torch.set_num_threads(threads)
                for precision in precisions:
                    if precision != "32" and unit not in ("samples/s", "tokens/s", "images/s"):
                        continue
                    seconds, flops = measure(lambda fn=fn, p=precision: fn(p), args.seconds)
                    row = {"experiment": name, "arm": arm, "threads": threads, "precision": precision,
                           "rate": per_call / seconds, "unit": unit, "gflops": flops / seconds / 1e9,
                           "of_peak": flops / seconds / peaks[threads]}
                    if peer is not None and precision == "32":
                        peer_seconds = timed(peer[1], args.seconds)
                        row |= {"peer": peer[0], "peer_rate": per_call / peer_seconds}
                    target = TARGETS.get((name, arm))
                    row["target"] = target
                    rows.append(row)
                    peer_text = f"{row['peer_rate']:,.0f} ({row['peer']})" if "peer" in row else ""
                    flag = "" if target is None or threads != max(thread_counts) or precision != "32" else (
                        "  target ok" if row["rate"] >= target else f"  BELOW target {target}")
                    print(f"{name:<21}{arm:<24}{threads:>3} {precision:<11}{row['rate']:>11,.0f} {unit:<10}"
                          f"{row['gflops']:>8.1f}{row['of_peak']:>8.0%}  {peer_text}{flag}", flush=True)
    ratios = gan_cost_ratios(rows)
    if ratios:
        print("\nThe GAN posts' cost claims, time per iteration (same critic steps per generator step):")
        for r in ratios:
            print(f"  {r['ratio']:<18} {r['domain']:<4} {r['threads']} thr  {r['time_ratio']:.2f}x   "
                  f"the post: {r['post']}")
    attention = []
    if not args.only or args.only == "rerope_extrapolation":
        print("\nReRoPE attention against RoPE with fused attention (B=4, H=2, d=64, w=128), fresh process per case:")
        for threads in thread_counts:
            attention += attention_cases(threads)
        by = {(r["length"], r["mode"], r["threads"]): r for r in attention}
        for (length, mode, threads), r in sorted(by.items()):
            rope = by.get((length, "rope", threads))
            ratio = f"{r['seconds'] / rope['seconds']:.2f}x time, {r['peak_mb'] / max(rope['peak_mb'], 1e-9):.2f}x " \
                    f"memory of RoPE" if rope and mode != "rope" else ""
            print(f"  T={length:<5} {mode:<10} {threads} thr  {r['seconds'] * 1000:9.1f} ms  {r['peak_mb']:8.0f} MB  "
                  f"{ratio}")
    startup = []
    if not args.only or args.only == "startup":
        from kexue_runs.preflight.overrides import experiments

        print(f"\nStart-up, fresh process, 1 thread (target: under {STARTUP_TARGET_S} s outside the experiment's "
              f"own work; torch's import counted):")
        print(f"  {'command':<42}{'wall':>7}{'outside':>9}{'torch':>7}{'hydra':>7}{'preflight':>10}{'report':>8}")
        startup = startup_cases(experiments())
        for r in startup:
            ph = r.get("phases", {})
            outside = r.get("outside_s", r["wall_s"])
            flag = "" if outside < STARTUP_TARGET_S else "  ABOVE target"
            cells = "".join(f"{ph[k]:>{w}.2f}" if k in ph else " " * w for k, w in
                            (("torch_import", 7), ("job", 7), ("preflight", 10), ("report", 8)))
            print(f"  {r['command']:<42}{r['wall_s']:>7.2f}{outside:>9.2f}{cells}{flag}", flush=True)
        runs = [r for r in startup if "phases" in r]
        if runs:
            worst = max(runs, key=lambda r: r["outside_s"])
            print(f"  smoke runs: {sum(r['outside_s'] < STARTUP_TARGET_S for r in runs)} of {len(runs)} under the "
                  f"target; median outside {sorted(r['outside_s'] for r in runs)[len(runs) // 2]:.2f} s, worst "
                  f"{worst['outside_s']:.2f} s ({worst['command']})")
    replicates = []
    if not args.only or args.only == "replicates":
        print(f"\nReplicates as one batch (#31), 1 thread, best of {args.repeats}, CPU seconds (wall in the json): R "
              f"lone runs (R x one) against one batched run of R")
        print(f"  {'harness':<20}{'R':>3}{'sequential':>12}{'batched':>10}{'speed-up':>10}{'x one':>8}  target")
        replicates = replicate_cases(args.repeats)
        for r in replicates:
            kind = "2-D toys" if r["harness"].startswith("2-D toys") else r["harness"]
            count, most = REPLICATE_TARGETS[kind]
            flag = "" if r["replicates"] != count else (
                f"<= {most}x one: {'ok' if r['batched_over_one'] <= most else 'MISSED'}")
            print(f"  {r['harness']:<20}{r['replicates']:>3}{r['sequential_s']:>11.2f}s{r['batched_s']:>9.2f}s"
                  f"{r['speedup']:>9.2f}x{r['batched_over_one']:>7.2f}x  {flag}", flush=True)
        for name in dict.fromkeys(r["harness"] for r in replicates):
            print(f"    {name}: {next(r['what'] for r in replicates if r['harness'] == name)}")
    threads_rows = []
    if not args.only or args.only == "threads":
        print(f"\nThread policy (#31): {' '.join(THREAD_WORKLOAD)}, a fresh process, best of 2 walls; the default "
              f"against 1 and 2 fixed threads, quiet and beside a busy loop on one core (target: the default within "
              f"{THREAD_TARGET}x of the best fixed choice under the busy loop)")
        threads_rows = thread_policy_cases()
        for r in threads_rows:
            flag = "" if r["condition"] != "one core busy" or r["choice"] != "default" else (
                "  target ok" if r["over_best_fixed"] <= THREAD_TARGET else "  MISSED target")
            print(f"  {r['condition']:<14} {r['choice']:<8} -> {r['threads']} thr  {r['wall_s']:6.1f} s  "
                  f"{r['over_best_fixed']:.2f}x best fixed{flag}   ({r['why']})", flush=True)
    out = REPO / "outputs" / "bench" / f"{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    git = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    out.write_text(json.dumps({"git_sha": git.strip(), "torch": torch.__version__, "bf16_native": bf16_native(),
                               "matmul_peak_gflops": {str(k): v / 1e9 for k, v in peaks.items()}, "loops": rows,
                               "gan_cost_ratios": ratios, "attention": attention,
                               "startup": startup, "replicates": replicates, "thread_policy": threads_rows},
                              indent=1) + "\n")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
