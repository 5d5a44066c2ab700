"""Sweeps that end in a verdict: aggregate the job folders, evaluate the claim, draw the figure.

Reads only run files (summary.json, which carries the resolved config), never the models, so
`kexue-run report <dir>` rebuilds everything after a crash, on another machine, or after a
plotting change. Writes, into the sweep folder:

    aggregate.csv      one row per job: job, status, every config key that varies across jobs (from the
                       resolved configs, defaults included), final metrics, error
    grouped.csv        mean, std and n over seeds for every other combination of those keys
    claim_report.json  each check: observed, the post's number, verdict, n, note
    claim_report.md    the same, for people, with the post's numbers beside ours
    figure.png         mean +- std over seeds, the post's numbers as a reference layer
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import yaml

from .. import config_dir
from ..claims.catalog import load_experiment
from ..claims.engine import evaluate_checks, table_from_runs
from ..claims.verdicts import build_report, markdown_verdicts, print_verdicts
from ..common import runfiles
from ..common.progress import console, fmt

METRIC_PREFIXES = ("val/", "test/", "train/", "eval/")


# -- reading a sweep ---------------------------------------------------------------------------

def job_dirs(sweep_dir: Path) -> list[Path]:
    """Every folder under the sweep that Hydra made for a job (it has .hydra/) or that has a summary."""
    found = {p.parent.parent for p in Path(sweep_dir).rglob(".hydra/overrides.yaml")}
    found |= {p.parent for p in Path(sweep_dir).rglob(runfiles.SUMMARY)}
    return sorted(d for d in found if d != Path(sweep_dir) or (d / runfiles.SUMMARY).exists())


def load_jobs(sweep_dir: Path) -> list[dict]:
    jobs = []
    for d in job_dirs(sweep_dir):
        summary = runfiles.read_summary(d)
        if summary is None:  # killed before it could write one
            overrides = runfiles.saved_overrides(d) if (d / ".hydra" / "overrides.yaml").exists() else []
            summary = {"status": "incomplete", "overrides": overrides, "final": {}, "config": None,
                       "error": "no summary.json (killed?)"}
            config_file = d / ".hydra" / "config.yaml"
            if config_file.exists():
                summary["config"] = yaml.safe_load(config_file.read_text())
        summary["job"] = str(d.relative_to(sweep_dir)) if d != Path(sweep_dir) else "."
        jobs.append(summary)
    return jobs


def experiment_spec(jobs: list[dict]) -> dict:
    """The claim, checks and figure: from the experiment file as it is now, else as the jobs ran."""
    name = next((j.get("experiment") or (j.get("config") or {}).get("name") for j in jobs
                 if j.get("experiment") or j.get("config")), None)
    path = config_dir() / "experiment" / f"{name}.yaml"
    if name and path.exists():
        spec = load_experiment(path)
    else:
        spec = next((j["config"] for j in jobs if j.get("config")), {}) or {}
    return {k: spec.get(k) for k in ("name", "meta", "claim", "reported", "checks", "figure")} | {"name": name}


def job_configs(jobs: list[dict]) -> list[dict]:
    """Each job's resolved config as dotted keys (what it computed), or its command-line overrides when
    it died before writing one."""
    from ..claims.engine import flatten

    out = []
    for job in jobs:
        if job.get("config"):
            out.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in flatten(job["config"]).items()})
        else:
            out.append(dict(item.lstrip("+~").split("=", 1) for item in job.get("overrides") or [] if "=" in item))
    return out


def varying_keys(configs: list[dict]) -> list[str]:
    """Every config key whose value differs across the jobs (in first-seen order), run-only keys aside."""
    keys: list[str] = []
    for config in configs:
        keys += [k for k in config if k not in keys]
    return [k for k in keys if not runfiles.is_run_only(k) and len({repr(c.get(k)) for c in configs}) > 1]


def metric_columns(jobs: list[dict]) -> list[str]:
    keys: list[str] = []
    for job in jobs:
        for key in job.get("final") or {}:
            if key not in keys:
                keys.append(key)
    return sorted(keys, key=lambda k: (not k.startswith("val/"), k))


# -- writing the aggregate -----------------------------------------------------------------------

def aggregate_frame(jobs: list[dict]):
    """pandas: one row per job: job, status, the config keys that vary across jobs, final metrics, error."""
    import pandas as pd

    configs = job_configs(jobs)
    keys = varying_keys(configs)
    metrics = metric_columns(jobs)
    rows = []
    for job, config in zip(jobs, configs):
        final = job.get("final") or {}
        rows.append({"job": job["job"], "status": job["status"]}
                    | {k: (str(config.get(k)) if isinstance(config.get(k), list) else config.get(k)) for k in keys}
                    | {m: final.get(m) if isinstance(final.get(m), (int, float)) else None for m in metrics}
                    | {"error": (job.get("error") or "").strip().splitlines()[-1] if job.get("error") else ""})
    return pd.DataFrame(rows, columns=["job", "status"] + keys + metrics + ["error"]), keys, metrics


def grouped_frame(frame, keys: list[str], metrics: list[str]):
    """Mean, std and n over seeds for every other combination of the varying keys (ok jobs only)."""
    import pandas as pd

    ok = frame[frame["status"] == "ok"]
    by = [k for k in keys if k != "seed"]
    if ok.empty or not metrics:
        return pd.DataFrame(columns=by)
    stats = ok.groupby(by, dropna=False, sort=True)[metrics].agg(["mean", "std", "count"]) if by else \
        ok[metrics].agg(["mean", "std", "count"]).unstack().to_frame().T
    stats.columns = [f"{m} {s if s != 'count' else 'n'}" for m, s in stats.columns]
    return stats.reset_index() if by else stats


def aggregate(sweep_dir: Path, quiet: bool = False) -> dict:
    sweep_dir = Path(sweep_dir)
    jobs = load_jobs(sweep_dir)
    if not jobs:
        raise FileNotFoundError(f"no job folders under {sweep_dir}")
    spec = experiment_spec(jobs)
    frame, keys, metrics = aggregate_frame(jobs)
    write_frame(sweep_dir / "aggregate.csv", frame)
    grouped = grouped_frame(frame, keys, metrics)
    write_frame(sweep_dir / "grouped.csv", grouped)
    rows = table_from_runs(jobs)
    results = evaluate_checks(spec.get("checks") or [], rows)
    statuses = defaultdict(int)
    for j in jobs:
        statuses[j["status"]] += 1
    scale = next((j.get("scale") for j in jobs if j.get("scale")), None)
    # what every job ran besides its seed, and the seeds: a multirun over seeds asks for the next ones
    common = set.intersection(*(set(j.get("overrides") or ()) for j in jobs))
    seeds_run = sorted({int(j["seed"]) for j in jobs if j.get("seed") is not None})
    report = build_report(spec["name"], scale, results, sorted(common), seeds_run, sweep_dir=str(sweep_dir),
                          jobs=dict(statuses),
                          generated=datetime.now().isoformat(timespec="seconds"),
                          git_sha=next((j.get("environment", {}).get("git_sha") for j in jobs
                                        if j.get("environment")), None),
                          wall_s=round(sum((j.get("timing") or {}).get("wall_s") or 0 for j in jobs), 1))
    runfiles.write_json(sweep_dir / "claim_report.json", report)
    by = [k for k in keys if k != "seed"]
    runfiles.atomic_write_text(sweep_dir / "claim_report.md", claim_markdown(report, spec, grouped, by, metrics))
    try:
        from ..claims.figures import sweep_figure

        sweep_figure(sweep_dir / "figure.png", rows, spec)
    except Exception as exc:  # the numbers matter more than the picture
        console.print(f"[red]figure failed: {exc}[/]")
    experiment_tables(sweep_dir, jobs)
    if not quiet:
        print_verdicts(report)
    return report


def write_frame(path: Path, frame) -> None:
    runfiles.atomic_write_text(path, frame.to_csv(index=False))


def experiment_tables(sweep_dir: Path, jobs: list[dict]) -> None:
    """The experiment's own sweep tables and figures (`sweep_tables(sweep_dir, jobs)` in its module)."""
    import importlib

    task = next(((j.get("config") or {}).get("task") for j in jobs if (j.get("config") or {}).get("task")), None)
    try:
        module = importlib.import_module(task) if task else None
        if module is not None and hasattr(module, "sweep_tables"):
            module.sweep_tables(sweep_dir, [j for j in jobs if j.get("status") == "ok"])
    except Exception as exc:  # the verdicts are written already
        console.print(f"[red]{task}: sweep tables failed: {exc}[/]")


def claim_markdown(report: dict, spec: dict, grouped, keys: list[str], metrics: list[str]) -> str:
    posts = (spec.get("meta") or {}).get("posts", [])
    lines = [f"# {report['experiment']}: claim report", ""]
    lines += [f"- [{p['archive']}] {p['title']}: {p['url']}" for p in posts] + [""]
    lines += [f"**Claim.** {spec.get('claim') or ''}", ""]
    lines += markdown_verdicts(report)
    lines += [f"Sweep `{report['sweep_dir']}`, scale `{report['scale']}`, jobs "
              + ", ".join(f"{n} {s}" for s, n in report["jobs"].items())
              + f", summed job wall time {report['wall_s']} s, git {report['git_sha']}.", ""]
    lines += ["## The post's numbers", ""]
    from ..claims.report import reported_table

    lines += reported_table(spec.get("reported")) + [""]
    shown = [m for m in metrics if not m.startswith("train/")][:6]
    lines += ["## Ours: mean ± std (n) over seeds", "",
              "| " + " | ".join(keys + shown) + " |", "|" + "---|" * (len(keys) + len(shown))]
    for _, g in grouped.iterrows():
        cells = [f"{fmt(g[f'{m} mean'])} ± {fmt(g[f'{m} std'])} ({int(g[f'{m} n'])})" if f"{m} mean" in g else ""
                 for m in shown]
        lines.append("| " + " | ".join([str(g[k]) for k in keys] + cells) + " |")
    lines += ["", "![figure](figure.png)", ""]
    return "\n".join(lines)


# -- finding sweeps ----------------------------------------------------------------------------

def find_completed(outputs: Path, name: str, config_hash: str, code_hash: str) -> Path | None:
    """A finished ok job of this experiment with the same config hash and the same code (codehash.code_hash:
    the sources its numbers depend on, committed or not), in any sweep. Jobs from before code hashes were
    recorded are never reused."""
    for path in sorted((Path(outputs) / "sweeps" / name).glob(f"*/*/{runfiles.SUMMARY}"), reverse=True):
        summary = runfiles.read_summary(path.parent)
        if (summary and summary.get("status") == "ok" and summary.get("config_hash") == config_hash
                and summary.get("environment", {}).get("code_hash") == code_hash):
            return path.parent
    return None


def copy_job(source: Path, target: Path) -> None:
    for item in source.iterdir():
        if item.name in (".hydra", runfiles.CHECKPOINT, runfiles.LOCK):
            continue
        dest = target / item.name
        if item.is_dir():
            shutil.copytree(item, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(item, dest)
    summary = runfiles.read_summary(target)
    summary["reused_from"] = str(source)
    summary["run_dir"] = str(target)
    runfiles.write_json(target / runfiles.SUMMARY, summary)


# -- entry points ------------------------------------------------------------------------------

def finish_sweep(sweep_dir: Path) -> dict | None:
    try:
        return aggregate(sweep_dir)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/]")
        return None


def report_main(args: list[str]) -> int:
    if len(args) != 1 or args[0] in ("-h", "--help"):
        console.print("usage: kexue-run report <sweep dir or run dir>")
        return 2
    target = Path(args[0])
    if not target.is_dir():
        console.print(f"[bold red]error:[/] {target}: no such folder; give outputs/sweeps/<experiment>/<stamp> "
                      f"or outputs/runs/<experiment>/<stamp>")
        return 2
    if (target / runfiles.SUMMARY).exists() and not any(target.glob(f"*/{runfiles.SUMMARY}")):
        from omegaconf import OmegaConf

        from ..claims.report import write_run_figures, write_run_report

        summary = runfiles.read_summary(target)
        if not isinstance(summary, dict):
            console.print(f"[bold red]error:[/] {target / runfiles.SUMMARY} is not valid JSON (cut short?); write it "
                          f"again by resuming the run: kexue-run resume={target}", highlight=False, soft_wrap=True)
            return 2
        cfg = summary.get("config") or OmegaConf.to_container(OmegaConf.load(target / ".hydra" / "config.yaml"))
        spec = experiment_spec([summary])
        write_run_figures(target)
        path = write_run_report(target, {**cfg, **{k: v for k, v in spec.items() if v is not None}}, summary)
        console.print(f"rewrote {path}")
        return 0
    try:
        aggregate(target)
    except FileNotFoundError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    return 0
