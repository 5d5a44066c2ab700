"""Reports for one run: the training-curve figure and report.md (what ran, the claim, theirs, ours).

Reads only the run's files (metrics.jsonl, summary.json, .hydra/config.yaml).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf

from . import runfiles
from .progress import fmt


def pyplot():
    """matplotlib.pyplot on the headless Agg backend, imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(ctx, name: str, fig) -> None:
    """figures/<name>.png in the run folder."""
    ctx.figures_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(ctx.figures_dir / f"{name}.png", dpi=130)
    pyplot().close(fig)


def write_run_figures(run_dir: Path) -> Path | None:
    """figures/curves.png: every logged metric against step, one panel each, train and val."""
    rows = runfiles.read_metrics(run_dir)
    series: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for key, value in row.items():
            if key in ("step", "time", "split") or not isinstance(value, (int, float)):
                continue
            series[key][row["split"]].append((row["step"], value))
    if not series or len({row["step"] for row in rows}) < 2:  # no curve to draw (a computation, not training)
        return None
    plt = pyplot()
    names = sorted(series)
    cols = min(3, len(names))
    nrows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.8 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for split, points in sorted(series[name].items()):
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o" if len(points) < 12 else None, ms=3, label=split)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    # fixed margins in inches instead of tight_layout, which measured every tick label of every panel and
    # was most of a smoke run's report time (panels are a fixed 4 x 2.8 in)
    width, height = 4 * cols, 2.8 * nrows
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=0.5 / height, top=1 - 0.3 / height,
                        wspace=0.3, hspace=0.55)
    path = Path(run_dir) / runfiles.FIGURES / "curves.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def post_lines(meta) -> list[str]:
    posts = meta.get("posts", []) if meta else []
    return [f"- [{p['archive']}] {p['title']}: {p['url']}" for p in posts]


def reported_table(reported) -> list[str]:
    if not reported:
        return ["(none transcribed)"]
    lines = ["| what | value | source | setup |", "|---|---|---|---|"]
    for r in reported:
        cells = [r.get("what", ""), f"{r.get('value', '')} {r.get('unit', '') or ''}".strip(), r.get("source", ""),
                 r.get("setup", "")]
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    return lines


def md_cell(value) -> str:
    """A value made safe for a markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def run_checks(cfg_dict: dict, summary: dict) -> list[dict]:
    """The experiment's checks evaluated on this one run (numerical claims settle here)."""
    from .claims import evaluate_checks, table_from_runs

    return evaluate_checks(cfg_dict.get("checks") or [], table_from_runs([summary | {"config": cfg_dict}]))


def write_run_report(run_dir: Path, cfg, summary: dict) -> Path:
    """report.md: the verdict on the post first (with the post's numbers beside ours), then the details."""
    cfg_dict = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
    figures = sorted((Path(run_dir) / runfiles.FIGURES).glob("*.png"))
    lines = [f"# {summary['experiment']}: run report", ""] + post_lines(cfg_dict.get("meta")) + [""]
    lines += ["**Claim.** " + str(cfg_dict.get("claim") or "(none)"), ""]
    # re-evaluated with this engine's rules on the run's rows (`kexue-run report <run dir>` re-reports an old run)
    results = run_checks(cfg_dict, summary) if cfg_dict.get("checks") else summary.get("checks")
    if results:
        from .verdicts import build_report, markdown_verdicts

        lines += markdown_verdicts(build_report(summary["experiment"], summary["scale"], results))
    lines += [f"status **{summary['status']}**, scale `{summary['scale']}`, seed {summary['seed']}, "
              f"config hash `{summary['config_hash']}`, {summary['timing']['wall_s']} s on "
              f"{summary['environment']['device']} (git {summary['environment']['git_sha']})", ""]
    if summary.get("error"):
        lines += ["```", summary["error"].strip()[-2000:], "```", ""]
    lines += ["## What ran", "", "`kexue-run " + " ".join(summary["overrides"]) + "`", ""]
    lines += ["## The post's numbers", ""] + reported_table(cfg_dict.get("reported")) + [""]
    lines += ["## Ours", "", "| metric | final | best |", "|---|---|---|"]
    for key, value in summary["final"].items():
        lines.append(f"| {key} | {fmt(value)} | {fmt(summary['best'].get(key, ''))} |")
    lines.append("")
    if figures:
        lines += ["## Figures", ""] + [f"![{p.stem}](figures/{p.name})" for p in figures] + [""]
    path = Path(run_dir) / runfiles.REPORT
    runfiles.atomic_write_text(path, "\n".join(lines))
    return path
