"""Verdict tables for people: the console table a run or sweep ends with, the markdown that opens
report.md and claim_report.md, and the command that runs the cells a claim still needs.

A verdict report is a dict: experiment, scale, checks (claims.evaluate_checks), verdict (the post's,
from derivation and empirical checks), by_basis, stability, jobs, dir.
"""

from __future__ import annotations

from pathlib import Path

from .. import config_dir
from .engine import FAIL, INCONCLUSIVE, NA, NOT_REACHED, PASS, by_basis, counts, overall_reason, stable

STYLE = {PASS: "green", FAIL: "red", INCONCLUSIVE: "yellow", NOT_REACHED: "cyan", NA: "dim", "unstable": "magenta"}
BASIS_TAG = {"derivation": "derivation", "empirical": "empirical", "precondition": "precondition (our setup)",
             "ours": "ours, not the post's"}


def build_report(experiment: str, scale: str | None, results: list[dict], overrides=(), seeds_run=(),
                 **extra) -> dict:
    summary = overall_reason(results, scale)
    report = {"experiment": experiment, "scale": scale, "verdict": summary["verdict"], "reason": summary["reason"],
              "reason_text": summary["text"], "counts": counts(results), "by_basis": by_basis(results),
              "stability": stable(results), "checks": results}
    report["command"] = next_command(experiment, scale, results, overrides, seeds_run)
    return report | extra


def shown_verdict(verdict: str, stability: str) -> str:
    """What a reader sees: the verdict itself (a check that did not hold on a held-out half is already
    INCONCLUSIVE with reason unstable; the stability is reported beside it)."""
    return verdict


def verdict_text(result: dict) -> str:
    text = result["verdict"]
    if result.get("reason"):
        text += f" [{result['reason']}]"
    if result.get("leans"):
        text += f" (leans {result['leans']})"
    return text


# a run's own overrides that the next command must not repeat: it sets these itself, or they name this run only
NOT_CARRIED = ("experiment", "scale", "seed", "sweep", "output_root", "resume", "trainer.progress", "hydra")


def carried(overrides) -> str:
    """The run's overrides that define what it ran (sim.target=images, model.width=256, ...), for the next
    command to run the same thing."""
    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    keep = [o for o in overrides or () if key(o) not in NOT_CARRIED and not key(o).startswith(("hydra.", "hydra/"))]
    return "".join(f" {o}" for o in keep)


def next_command(experiment: str, scale: str | None, results: list[dict], overrides=(), seeds_run=()) -> str | None:
    """The command that gives the undecided checks the cells or replicates they lack, with the run's own
    overrides (a run on images asks for more seeds on images); after a multirun over `seeds_run`, the next
    five seeds (the same ones again would only reuse their cells); after a sweep, twice its seeds."""
    short = [r for r in results if r["verdict"] == INCONCLUSIVE and r.get("basis") != "ours"
             and not (r.get("note") or "").startswith("precondition not met")  # more runs do not mend a setup
             and r.get("reason") != "unstable"
             and any(w in (r.get("needs") or "") + (r.get("note") or "")
                     for w in ("not run", "replicates", "needs at least", "has 1", "needs >= "))]
    if not short:
        return None
    scale_arg = f" scale={scale}" if scale and scale != "cpu" else ""
    if (config_dir() / "sweep" / f"{experiment}.yaml").is_file():
        command = f"kexue-run -m experiment={experiment} sweep={experiment}{scale_arg}"
        lacking = [r for r in short if any(w in (r.get("needs") or "") + (r.get("note") or "")
                                           for w in ("not run", "needs at least", ", has "))]
        if lacking:
            return command
        # every cell there, only the noise undecided: the sweep again would only reuse its cells. Twice the
        # seeds it ran (at least 0-5): the finished ones are reused, as many new ones are added.
        last = max(5, 2 * (max((int(x) for x in seeds_run), default=-1) + 1) - 1)
        return command + " seed=" + ",".join(str(x) for x in range(last + 1))
    if scale == "smoke":
        return f"kexue-run experiment={experiment}{carried(overrides)}"
    first = max((int(x) for x in seeds_run), default=-1) + 1
    seeds = ",".join(str(x) for x in range(first, first + 5))
    return f"kexue-run -m experiment={experiment}{scale_arg}{carried(overrides)} seed={seeds}"


def check_detail(r: dict) -> str:
    detail = r.get("stat") or ""
    if r.get("needs") and r["needs"] != r.get("note") or r.get("observed") and r.get("needs"):
        detail += ("; " if detail else "") + r["needs"]
    return detail


def title(report: dict) -> str:
    return f"{report['experiment']}: the post's claim, checked ({report.get('scale')})"


def plain_verdicts(report: dict) -> list[str]:
    """The verdict table as plain lines for a log, a CI console or a Slurm .out file: one block per check, its id
    whole on the first line with the verdict, and nothing that depends on a terminal's width."""
    lines = [title(report)]
    for r in report["checks"]:
        basis = BASIS_TAG.get(r.get("basis"), "")
        lines.append(f"- {r['id']}{f' [{basis}]' if basis else ''}: {verdict_text(r)}")
        ours = (r.get("observed") or r.get("note") or "").replace("\n", " ")
        detail = check_detail(r).replace("\n", " ")
        lines.append(f"    ours: {ours or '-'}{f' ({detail})' if detail else ''}")
        lines.append(f"    the post's: {str(r.get('reported', '')).replace(chr(10), ' ') or '-'}")
    return lines


def print_verdicts(report: dict, console=None) -> None:
    from rich.table import Table

    from ..common.progress import console as default_console

    console = console or default_console
    if not console.is_terminal:  # a table drawn at a guessed width splits ids mid-word in a log
        for line in plain_verdicts(report):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        console.print(overall_line(report), markup=False, highlight=False, soft_wrap=True)
        if report.get("command"):
            console.print(f"to decide the rest: {report['command']}", markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=title(report),
                  show_lines=False, title_justify="left")
    table.add_column("check", overflow="fold", ratio=3)
    table.add_column("ours", overflow="fold", ratio=4)
    table.add_column("the post's", overflow="fold", ratio=2)
    table.add_column("verdict", overflow="fold", ratio=2)
    for r in report["checks"]:
        detail = check_detail(r)
        ours = (r.get("observed") or r.get("note") or "") + (f"\n[dim]{detail}[/]" if detail else "")
        v = r["verdict"]
        table.add_row(f"{r['id']}\n[dim]{BASIS_TAG.get(r.get('basis'), '')}[/]", ours, str(r.get("reported", "")),
                      f"[{STYLE.get(v, 'white')}]{verdict_text(r)}[/]")
    console.print(table)
    console.print(overall_line(report, markup=True), highlight=False)
    if report.get("command"):
        console.print(f"to decide the rest: {report['command']}", highlight=False, soft_wrap=True)


def overall_line(report: dict, markup: bool = False) -> str:
    v = report["verdict"]
    shown = shown_verdict(v, report.get("stability", "-"))
    head = f"[bold {STYLE.get(shown, 'white')}]{shown}[/]" if markup else shown
    parts = [f"{basis} {verdict}" for basis, verdict in (report.get("by_basis") or {}).items()]
    stability = report.get("stability", "-")
    tail = f"; held-out replicates: {stability}" if stability != "-" else ""
    jobs = report.get("jobs")
    job_text = ("; jobs " + ", ".join(f"{n} {s}" for s, n in jobs.items())) if jobs else ""
    why = report.get("reason_text", "")
    why = why.split(": ", 1)[1] if ": " in why else ""
    return f"overall {head}{': ' + why if why else ''} ({', '.join(parts)}){tail}{job_text}"


def md(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_verdicts(report: dict) -> list[str]:
    """The block that opens report.md and claim_report.md."""
    lines = [f"**Verdict on the post: {shown_verdict(report['verdict'], report.get('stability', '-'))}** "
             f"({overall_line(report).split('(', 1)[1]}", ""]
    lines += ["| check | kind | ours | the post's | verdict | test | note |", "|---|---|---|---|---|---|---|"]
    for r in report["checks"]:
        kind = f"{BASIS_TAG.get(r.get('basis'), r.get('basis'))}; {r.get('source', '')}"
        if r.get("unit"):
            kind += f"; unit: {r['unit']} (n = {r.get('units', '?')})"
        if r.get("value_from"):
            kind += f"; threshold from {r['value_from']}"
        note = "; ".join(x for x in (r.get("needs"), r.get("note"), r.get("stability")) if x)
        cells = [f"{r['id']}: {r.get('statement', '')}", kind, r.get("observed", ""), r.get("reported", ""),
                 f"**{verdict_text(r)}**", r.get("stat", ""), note]
        lines.append("| " + " | ".join(md(c) for c in cells) + " |")
    lines.append("")
    lines += ["Derivation checks recompute the post's own arithmetic (consistency, not evidence); empirical "
              "checks are measurements that could contradict it; preconditions measure that our setup is in the "
              "post's regime (when one fails, its dependents are NOT REACHED); 'ours' extends the post and never "
              "decides its verdict. Noisy comparisons use a t test at the real n of units (paired where arms share "
              "them), decided by the 95% confidence interval, Bonferroni over the cells of a claim about every "
              "cell, and re-decided on both halves of the units; a non-PASS check says why: refuted, slip, "
              "not_reached, underpowered or unstable. See `kexue_runs/claims/engine.py`.", ""]
    if report.get("command"):
        lines += [f"To decide the rest: `{report['command']}`", ""]
    return lines


def relative(path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
