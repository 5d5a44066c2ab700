"""`kexue-run list` and `kexue-run show <name>`: every experiment with its post, claim, scales and last verdict,
from local results where there are some, else from the published ledger (marked as published).

Reads the experiment YAML files directly (no composition, no torch import), so it is instant.
"""

from __future__ import annotations

from pathlib import Path

from .. import config_dir
from ..claims.catalog import experiment_files, load_experiment
from ..common.progress import console
from . import ledger

VERDICT_STYLE = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "NOT REACHED": "cyan"}


def last_report(name: str, outputs: Path = Path("outputs")) -> dict | None:
    """The newest claim report of the experiment's sweeps, else its newest run's own verdict."""
    from ..common.runfiles import newest_claim_report

    return newest_claim_report(name, outputs) or newest_run_verdict(name, outputs)


def verdict_and_stability(name: str, outputs: Path = Path("outputs")) -> tuple[str, str, str]:
    """(verdict as shown, where it comes from, stability on held-out replicates) of the newest report."""
    report = last_report(name, outputs)
    published = ledger.read_entry(name)
    if report is None:  # a fresh clone: the ledger's verdict, marked as published
        if published is not None:
            return published["shown"], ledger.published_mark(published), published["stability"]
        return "-", "", "-"
    from ..claims.engine import overall_reason, stable

    verdict = report.get("verdict") or overall_reason(report["checks"])["verdict"]
    stability = report.get("stability") or stable(report["checks"])
    source = str(report.get("scale", "?"))
    source = source if source.endswith(" run") else f"{source} sweep"
    if published is not None and published["shown"] != verdict:  # local results differ from the ledger's
        source += f"; published {published['shown']} ({published['scale']})"
    return verdict, source, stability


def verdict_reason(name: str, outputs: Path = Path("outputs")) -> str:
    """Why the newest report's verdict (else the published one) is not PASS (refuted, slip, not_reached,
    underpowered, unstable), or ''."""
    from ..claims.engine import overall_reason

    report = last_report(name, outputs)
    if report is not None:
        return overall_reason(report["checks"])["reason"]
    published = ledger.read_entry(name)
    return str((published or {}).get("reason") or "")


def last_verdict(name: str, outputs: Path = Path("outputs")) -> str:
    shown, source, _ = verdict_and_stability(name, outputs)
    if shown == "-":
        return "-"
    return f"[{VERDICT_STYLE.get(shown, 'magenta')}]{shown}[/] ({source})"


def newest_run_verdict(name: str, outputs: Path) -> dict | None:
    """A run's own verdict: the newest finished run at the largest scale that has one (a smoke run made to
    try a flag must not hide the cpu verdict beneath it)."""
    from ..common import runfiles

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
    where it came from, and why it is not PASS (refuted, slip, not_reached, underpowered, unstable) or, for a
    PASS, whether it held on held-out replicates."""
    from rich.markup import escape

    width = max(console.width, 80)
    verdict_width = 25 if width < 110 else 44  # room for "published, commit abc1234, 2026-12-08" when there is
    fixed = {"experiment": 22, "post": 7, "verdict": verdict_width, "why": 13}
    title_width = width - sum(fixed.values())
    cut = lambda text, n: text if len(text) <= n else text[: n - 1] + "…"  # noqa: E731
    console.print("kexue-runs experiments (kexue-run show <name>: a post's claim, checks, results)", highlight=False)
    console.print(f"{'experiment':<22}{'post':<7}{'title':<{title_width}}{'verdict':<{verdict_width}}why",
                  style="bold", highlight=False)
    for path in experiment_files():
        spec = load_experiment(path)
        posts = (spec.get("meta") or {}).get("posts", [])
        post = str(posts[0]["archive"]) + ("+" if len(posts) > 1 else "") if posts else ""
        title = cut(short_title(posts[0]["title"]) if posts else "", title_width - 1)
        shown, source, stability = verdict_and_stability(path.stem, outputs)
        verdict = f"{shown} {source}".strip()
        if len(verdict) > verdict_width - 1:  # narrow: keep the commit, drop the words
            verdict = verdict.replace("published, commit ", "published ")
        verdict = cut(verdict, verdict_width - 1)
        coloured = verdict.replace(shown, f"[{VERDICT_STYLE.get(shown, 'magenta')}]{shown}[/]", 1) if shown != "-" \
            else verdict
        pad = " " * (verdict_width - len(verdict))
        console.print(f"{escape(cut(path.stem, 21)):<22}{post:<7}{escape(title):<{title_width}}{coloured}{pad}"
                      f"{verdict_reason(path.stem, outputs) or stability}", highlight=False, soft_wrap=True)


def print_experiment(name: str, outputs: Path = Path("outputs")) -> int:
    """`kexue-run show <experiment>`: the posts, the claim, each check, the post's numbers, the last results."""
    from ..common.errors import ConfigError, some_of

    path = config_dir() / "experiment" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown experiment '{name}'; allowed: "
                          f"{some_of([p.stem for p in experiment_files()], near=name)}")
    spec = load_experiment(path)
    from rich.markup import escape

    from ..claims.report import reported_table
    from ..claims.verdicts import BASIS_TAG, print_verdicts

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
    if ledger.print_published(name, report, console):  # the ledger's table: no local results
        pass
    elif report is None:
        console.print(f"No results yet: kexue-run experiment={name}", highlight=False)
    else:
        report.setdefault("experiment", name)
        from ..claims.engine import by_basis, overall_reason, stable

        summary = overall_reason(report["checks"], str(report.get("scale", "")).split()[0] or None)
        report.update(verdict=summary["verdict"], reason=summary["reason"], reason_text=summary["text"])
        report.setdefault("by_basis", by_basis(report["checks"]))
        report["stability"] = report.get("stability") or stable(report["checks"])
        print_verdicts(report)
    has_sweep = (config_dir() / "sweep" / f"{name}.yaml").is_file()
    console.print(f"\nrun: kexue-run experiment={name}" + (f"   sweep: kexue-run -m experiment={name} sweep={name}"
                                                            if has_sweep else ""), highlight=False)
    return 0


