"""`kexue-run list`: every experiment with its post, claim, scales and last verdict.

Reads the experiment YAML files directly (no composition, no torch import), so it is instant.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from . import config_dir
from .progress import console

VERDICT_STYLE = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "NOT REACHED": "cyan"}


def experiment_files() -> list[Path]:
    return sorted((config_dir() / "experiment").glob("*.yaml"))


def load_experiment(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def scales(name: str) -> list[str]:
    order = {"smoke": 0, "cpu": 1, "gpu": 2}
    found = [p.stem for p in (config_dir() / "sizing" / name).glob("*.yaml")]
    return sorted(found, key=lambda s: order.get(s, 9))


def last_report(name: str, outputs: Path = Path("outputs")) -> dict | None:
    """The newest claim report of the experiment's sweeps, else its newest run's own verdict."""
    from .runfiles import newest_claim_report

    return newest_claim_report(name, outputs) or newest_run_verdict(name, outputs)


def verdict_and_stability(name: str, outputs: Path = Path("outputs")) -> tuple[str, str, str]:
    """(verdict as shown, where it comes from, stability on held-out replicates) of the newest report."""
    report = last_report(name, outputs)
    if report is None:
        return "-", "", "-"
    from .claims import overall_reason, stable

    summary = overall_reason(report["checks"])
    verdict = summary["verdict"]  # re-decided by this engine's rules, whatever engine wrote the report
    stability = report.get("stability") or stable(report["checks"])
    source = str(report.get("scale", "?"))
    source = source if source.endswith(" run") else f"{source} sweep"
    return verdict, source + (f", {summary['reason']}" if summary["reason"] else ""), stability


def last_verdict(name: str, outputs: Path = Path("outputs")) -> str:
    shown, source, _ = verdict_and_stability(name, outputs)
    if shown == "-":
        return "-"
    return f"[{VERDICT_STYLE.get(shown, 'magenta')}]{shown}[/] ({source})"


def newest_run_verdict(name: str, outputs: Path) -> dict | None:
    """A run's own verdict: the newest finished run at the largest scale that has one (a smoke run made to
    try a flag must not hide the cpu verdict beneath it)."""
    from . import runfiles

    rank = {"smoke": 0, "cpu": 1, "gpu": 2}
    best = None
    for path in sorted((Path(outputs) / "runs" / name).glob(f"*/{runfiles.SUMMARY}"), reverse=True):
        summary = runfiles.read_summary(path.parent)
        if summary and summary.get("checks") and summary.get("status") == "ok":
            if best is None or rank.get(summary.get("scale"), -1) > rank.get(best.get("scale"), -1):
                best = summary
    if best is None:
        return None
    return {"checks": best["checks"], "scale": f"{best['scale']} run",
            "verdict": best.get("verdict"), "stability": best.get("stability")}


def short_title(title: str) -> str:
    """The English gloss in a post title's last parentheses, else the title."""
    if title.endswith(")") and "(" in title:
        return title[title.rindex("(") + 1:-1]
    return title


def print_catalog(outputs: Path = Path("outputs")) -> None:
    """One line per experiment at any width (80 columns and up): name, post, short title, last verdict and
    where it came from, and whether it held on held-out replicates."""
    from rich.markup import escape

    width = max(console.width, 80)
    fixed = {"experiment": 22, "post": 7, "verdict": 34, "held-out": 9}
    title_width = width - sum(fixed.values())
    cut = lambda text, n: text if len(text) <= n else text[: n - 1] + "…"  # noqa: E731
    console.print("kexue-runs experiments (kexue-run show <name>: a post's claim, checks, results)", highlight=False)
    console.print(f"{'experiment':<22}{'post':<7}{'title':<{title_width}}{'verdict':<34}held-out", style="bold",
                  highlight=False)
    for path in experiment_files():
        spec = load_experiment(path)
        posts = (spec.get("meta") or {}).get("posts", [])
        post = str(posts[0]["archive"]) + ("+" if len(posts) > 1 else "") if posts else ""
        title = cut(short_title(posts[0]["title"]) if posts else "", title_width - 1)
        shown, source, stability = verdict_and_stability(path.stem, outputs)
        verdict = cut(f"{shown} {source}".strip(), 33)
        coloured = verdict.replace(shown, f"[{VERDICT_STYLE.get(shown, 'magenta')}]{shown}[/]", 1) if shown != "-" \
            else verdict
        pad = " " * (34 - len(verdict))
        console.print(f"{escape(cut(path.stem, 21)):<22}{post:<7}{escape(title):<{title_width}}{coloured}{pad}"
                      f"{stability}", highlight=False, soft_wrap=True)


def print_experiment(name: str, outputs: Path = Path("outputs")) -> int:
    """`kexue-run show <experiment>`: the posts, the claim, each check, the post's numbers, the last results."""
    from .errors import ConfigError, some_of

    path = config_dir() / "experiment" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown experiment '{name}'; allowed: "
                          f"{some_of([p.stem for p in experiment_files()], near=name)}")
    spec = load_experiment(path)
    from rich.markup import escape

    from .report import reported_table
    from .verdicts import BASIS_TAG, print_verdicts

    console.print(f"[bold]{name}[/]: {(spec.get('meta') or {}).get('headline', '')}", highlight=False)
    for p in (spec.get("meta") or {}).get("posts", []):
        console.print(f"  {p['archive']} {p['title']}  {p['url']}", highlight=False, soft_wrap=True)
    console.print(f"\n[bold]Claim.[/] {escape(str(spec.get('claim') or '').strip())}\n", highlight=False)
    console.print("[bold]Checks[/] (fixed before results; derivation = the post's arithmetic, empirical = a "
                  "measurement that could contradict it, ours = beyond the post):", highlight=False)
    for c in spec.get("checks") or []:
        console.print(escape(f"  {c['id']} ({BASIS_TAG.get(c.get('basis'), c.get('basis'))}; {c.get('source', '')}): "
                             f"{c.get('statement', '')}"), highlight=False, soft_wrap=True)
    console.print("\n[bold]The post's numbers[/]", highlight=False)
    for line in reported_table(spec.get("reported"))[2:]:
        console.print(escape("  " + line.strip("| ").replace(" | ", "; ")), highlight=False, soft_wrap=True)
    report = last_report(name, outputs)
    console.print("")
    if report is None:
        console.print(f"No results yet: kexue-run experiment={name}", highlight=False)
    else:
        report.setdefault("experiment", name)
        from .claims import by_basis, overall_reason, stable

        summary = overall_reason(report["checks"], str(report.get("scale", "")).split()[0] or None)
        report.update(verdict=summary["verdict"], reason=summary["reason"], reason_text=summary["text"])
        report.setdefault("by_basis", by_basis(report["checks"]))
        report["stability"] = report.get("stability") or stable(report["checks"])
        print_verdicts(report)
    has_sweep = (config_dir() / "sweep" / f"{name}.yaml").is_file()
    console.print(f"\nrun: kexue-run experiment={name}" + (f"   sweep: kexue-run -m experiment={name} sweep={name}"
                                                            if has_sweep else ""), highlight=False)
    return 0


def data_parallel_experiments() -> list[str]:
    """Experiments whose module trains data-parallel under torchrun (DATA_PARALLEL = True)."""
    import importlib

    names = []
    for path in experiment_files():
        spec = load_experiment(path)
        if spec.get("task") and getattr(importlib.import_module(spec["task"]), "DATA_PARALLEL", False):
            names.append(spec["name"])
    return names
