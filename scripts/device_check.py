"""The device check for the day a GPU is available (issue #32): one command, at most 9 minutes.

    make device-check                  # on the GPU machine: CUDA
    python scripts/device_check.py --dry --only fsq   # the same path on the CPU, cut small (the tests run it)

1. The flagships' smoke runs (tests/test_flagship_pins.py's PINNED) on the device, each final metric compared
   with its CPU pin (within the pin's tolerance: three seed-to-seed standard deviations) and each check's verdict
   with the pinned one.
2. One gpu-scale training step per flagship experiment, timed at the real gpu shapes (3 steps, no evaluation
   or checkpoint in between; the median of the steps after the first).

Everything goes to outputs/bench/cuda-<stamp>.json (dry: cpu-dry-<stamp>.json). Exit 0 when every smoke run
matches its pins, 1 otherwise, 2 for bad arguments. Each run is a subprocess with its own time limit; what does
not finish in the budget is recorded as such, never silently skipped.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUDGET_S = 540  # 9 minutes in all

# One gpu-scale step per flagship: the run cut to 3 steps, nothing else changed in the model or batch shapes.
STEP_ONLY = ["trainer.steps=3", "trainer.log_every=1", "trainer.eval_every=1000000",
             "trainer.checkpoint_every=1000000"]
GPU_STEP = {
    "fsq_vs_vq": ["experiment=fsq_vs_vq", *STEP_ONLY],
    "ddim_cifar": ["experiment=ddim_cifar", *STEP_ONLY, "eval.samples=64", "eval.shards=1"],
    "rerope_extrapolation": ["experiment=rerope_extrapolation", *STEP_ONLY, "trainer.warmup_steps=1",
                             "eval.samples=8", "eval.shards=1"],
    "lora_plus": ["experiment=lora_plus", "pretrain.steps=3", "finetune.steps=3", "finetune.val_samples=32",
                  "trainer.log_every=1"],
}


def load_pins() -> dict:
    """PINNED from tests/test_flagship_pins.py, read as data (no pytest needed on the GPU machine)."""
    tree = ast.parse((REPO / "tests" / "test_flagship_pins.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PINNED" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("tests/test_flagship_pins.py has no PINNED")


def run_cli(args: list[str], root: Path, timeout: float) -> dict:
    """One kexue-run in a subprocess: its exit code, wall time, run folder and summary (or what stopped it)."""
    started = time.time()
    env = os.environ | {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    try:
        out = subprocess.run([sys.executable, "-m", "kexue_runs.cli", *args, "trainer.progress=false",
                              f"output_root={root}"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "limit_s": round(timeout, 1), "wall_s": round(time.time() - started, 1)}
    result = {"exit": out.returncode, "wall_s": round(time.time() - started, 1)}
    runs = sorted((root / "runs").glob("*/*"))
    if not runs:  # refused before anything was written: the one line says why
        lines = [x for x in (out.stdout + out.stderr).splitlines() if x.strip()]
        return result | {"status": "refused", "error": lines[-1] if lines else ""}
    run = runs[-1]
    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return result | {"status": "no summary", "run_dir": str(run)}
    return result | {"status": summary["status"], "run_dir": str(run), "summary": summary}


def compare_smoke(name: str, pins: tuple, device: str, root: Path, timeout: float) -> dict:
    overrides, metrics, overall, checks = pins
    got = run_cli([*overrides, "scale=smoke", f"trainer.device={device}", "seed=0", "trainer.threads=1"],
                  root / name, timeout)
    summary = got.pop("summary", None)
    entry = {"name": name, "overrides": overrides} | got
    if summary is None or summary["status"] != "ok":
        if summary:
            entry["error"] = (summary.get("error") or "").strip().splitlines()[-1:]
        entry["matches_pins"] = False
        return entry
    compared = {}
    for key, (pin, tol) in metrics.items():
        value = summary["final"].get(key)
        within = isinstance(value, (int, float)) and abs(value - pin) <= tol
        compared[key] = {"value": value, "pin": pin, "tolerance": tol, "within": within}
    verdicts = {c["id"]: c["verdict"] for c in summary.get("checks", [])}
    entry |= {"metrics": compared, "verdict": summary.get("verdict"), "pinned_verdict": overall,
              "verdicts_differ": {k: [verdicts.get(k), v] for k, v in checks.items() if verdicts.get(k) != v},
              "environment": summary.get("environment", {})}
    entry["matches_pins"] = all(m["within"] for m in compared.values()) and summary.get("verdict") == overall \
        and not entry["verdicts_differ"]
    return entry


def step_time(run_dir: str | None, summary_timing: dict | None) -> float | None:
    """Median seconds between consecutive training steps after the first (warm-up, compilation, allocation)."""
    if run_dir:
        rows = []
        path = Path(run_dir) / "metrics.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        times = [r["time"] for r in rows if r.get("split") == "train" and "time" in r]
        gaps = [b - a for a, b in zip(times, times[1:]) if b >= a]
        if len(gaps) >= 2:
            return round(statistics.median(gaps[1:]), 4)
        if gaps:
            return round(gaps[0], 4)
    if summary_timing and summary_timing.get("steps"):
        return round(summary_timing["wall_s"] / summary_timing["steps"], 4)
    return None


def time_gpu_step(experiment: str, device: str, scale: str, root: Path, timeout: float) -> dict:
    args = [*GPU_STEP[experiment], f"scale={scale}", f"trainer.device={device}", "seed=0"]
    got = run_cli(args, root / f"gpu-{experiment}", timeout)
    summary = got.pop("summary", None)
    entry = {"experiment": experiment, "overrides": args} | got
    if summary:
        entry["step_s"] = step_time(got.get("run_dir"), summary.get("timing"))
        entry["steps"] = summary.get("timing", {}).get("steps")
        if summary["status"] != "ok":
            entry["error"] = (summary.get("error") or "").strip().splitlines()[-1:]
    return entry


def flagship_experiments(pins: dict) -> list[str]:
    names = []
    for overrides, *_ in pins.values():
        name = next(o.split("=", 1)[1] for o in overrides if o.startswith("experiment="))
        if name not in names:
            names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="on the CPU, data cut small: the check of this script")
    parser.add_argument("--only", nargs="*", default=None, help="pinned names (fsq, ddim, ...) to run")
    parser.add_argument("--out", default=str(REPO / "outputs" / "bench"), help="folder for the JSON report")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds in all (default 540)")
    parser.add_argument("--step-scale", default=None, choices=["gpu", "cpu", "smoke"],
                        help="the scale whose step is timed (default gpu; smoke with --dry: a gpu-scale step on one "
                             "CPU core takes about a minute, and make gpu-dryrun is the CPU check of those shapes)")
    args = parser.parse_args(argv)
    pins = load_pins()
    if args.only:
        unknown = [n for n in args.only if n not in pins]
        if unknown:
            print(f"error: --only {' '.join(unknown)}: not pinned; allowed: {', '.join(pins)}", file=sys.stderr)
            return 2
        pins = {n: pins[n] for n in args.only}
    device = "cpu" if args.dry else "cuda"
    step_scale = args.step_scale or ("smoke" if args.dry else "gpu")
    if not args.dry:
        import torch

        if not torch.cuda.is_available():
            print("error: no CUDA device here; run on the GPU machine, or --dry to check this script on the CPU",
                  file=sys.stderr)
            return 2
    started = time.time()
    deadline = started + args.budget
    report = {"stamp": datetime.now().isoformat(timespec="seconds"), "device": device, "dry": args.dry,
              "budget_s": args.budget, "step_scale": step_scale, "smoke": [], "gpu_step": []}
    try:
        import torch

        report["device_name"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
        report["torch"] = torch.__version__
    except Exception as exc:  # the report still says what it could not learn
        report["device_name"] = f"unknown ({exc})"
    experiments = flagship_experiments(pins)
    with tempfile.TemporaryDirectory(prefix="device-check-") as tmp:
        root = Path(tmp)
        # the smoke comparisons get two thirds of the budget, the step timings the rest
        smoke_deadline = started + args.budget * 2 / 3
        for i, (name, pin) in enumerate(pins.items()):
            left = (smoke_deadline - time.time()) / max(1, len(pins) - i)
            report["smoke"].append(compare_smoke(name, pin, device, root, left))
            print(f"smoke {name}: {report['smoke'][-1]['status']}, matches pins: "
                  f"{report['smoke'][-1]['matches_pins']}", flush=True)
        for i, experiment in enumerate(experiments):
            left = (deadline - time.time()) / max(1, len(experiments) - i)
            entry = time_gpu_step(experiment, device, step_scale, root, left)
            report["gpu_step"].append(entry)
            print(f"{step_scale} step {experiment}: {entry['status']}, {entry.get('step_s')} s a step", flush=True)
    report["elapsed_s"] = round(time.time() - started, 1)
    report["all_smoke_match_pins"] = all(e["matches_pins"] for e in report["smoke"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out / f"{'cpu-dry' if args.dry else 'cuda'}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {path} ({report['elapsed_s']} s); smoke runs match the CPU pins: {report['all_smoke_match_pins']}")
    return 0 if report["all_smoke_match_pins"] else 1


if __name__ == "__main__":
    sys.exit(main())
