"""`make figures`: every experiment's figure from its newest complete sweep, without retraining.

Writes outputs/figures/<experiment>.png and outputs/figures/index.md (experiment, verdicts, figure,
sweep folder, git sha). An experiment with no complete sweep yet gets its canonical sweep run at
--scale first (it says so); one with no canonical sweep gets a single run and its run figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from kexue_runs import config_dir
from kexue_runs.catalog import experiment_files
from kexue_runs.sweeps import aggregate, load_jobs


def newest_complete_sweep(outputs: Path, name: str) -> Path | None:
    for sweep in sorted((outputs / "sweeps" / name).glob("*"), reverse=True):
        jobs = load_jobs(sweep) if sweep.is_dir() else []
        if jobs and all(j["status"] in ("ok", "diverged") for j in jobs):
            return sweep
    return None


def newest_run(outputs: Path, name: str) -> Path | None:
    runs = sorted((outputs / "runs" / name).glob("*/summary.json"))
    return runs[-1].parent if runs else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="cpu", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--outputs", default="outputs", type=Path)
    parser.add_argument("--only", nargs="+", default=None, metavar="EXPERIMENT", help="just these experiments")
    args = parser.parse_args()
    known = [p.stem for p in experiment_files()]
    unknown = [n for n in args.only or [] if n not in known]
    if unknown:
        print(f"error: --only {unknown[0]}: no such experiment; allowed: {', '.join(known)}", file=sys.stderr)
        return 2
    out_dir = args.outputs / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# kexue-runs figures", "", "| experiment | verdicts | figure | source | git |", "|---|---|---|---|---|"]
    for path in experiment_files():
        name = path.stem
        if args.only and name not in args.only:
            continue
        has_sweep = (config_dir() / "sweep" / f"{name}.yaml").exists()
        sweep = newest_complete_sweep(args.outputs, name) if has_sweep else None
        if has_sweep and sweep is None:
            print(f"{name}: no complete sweep yet; running its canonical sweep at scale={args.scale}", flush=True)
            subprocess.run([sys.executable, "-m", "kexue_runs.cli", "-m", f"experiment={name}", f"sweep={name}",
                            f"scale={args.scale}", f"output_root={args.outputs}"], check=False)
            sweep = newest_complete_sweep(args.outputs, name)
        if sweep is not None:
            report = aggregate(sweep, quiet=True)
            target = out_dir / f"{name}.png"
            if (sweep / "figure.png").exists():
                shutil.copy2(sweep / "figure.png", target)
            verdicts = ", ".join(f"{c['id']}: {c['verdict']}" for c in report["checks"])
            lines.append(f"| {name} | {verdicts} | ![{name}]({target.name}) | {sweep} | {report['git_sha']} |")
            print(f"{name}: {target} from {sweep} ({report['verdict']})")
            continue
        run = newest_run(args.outputs, name)
        if run is None:
            print(f"{name}: no run yet; running it at scale={args.scale}", flush=True)
            subprocess.run([sys.executable, "-m", "kexue_runs.cli", f"experiment={name}", f"scale={args.scale}",
                            f"output_root={args.outputs}"], check=False)
            run = newest_run(args.outputs, name)
        if run is None:
            lines.append(f"| {name} | run failed | | | |")
            continue
        subprocess.run([sys.executable, "-m", "kexue_runs.cli", "report", str(run)], check=False,
                       capture_output=True)
        summary = json.loads((run / "summary.json").read_text())
        copied = []
        for fig in sorted((run / "figures").glob("*.png")):
            shutil.copy2(fig, out_dir / f"{name}-{fig.name}")
            copied.append(f"![{fig.stem}]({name}-{fig.name})")
        verdicts = ", ".join(f"{c['id']}: {c['verdict']}" for c in summary.get("checks") or [])
        lines.append(f"| {name} | single run: {summary['status']}; {verdicts} | {' '.join(copied)} | {run} | "
                     f"{summary['environment']['git_sha']} |")
        print(f"{name}: figures from run {run}")
    (out_dir / "index.md").write_text("\n".join(lines) + "\n")
    print(f"index: {out_dir / 'index.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
