"""Sweep figures: one panel per entry of the experiment's `figure.panels`, mean ± std over seeds,
with the post's reported values drawn as a reference layer (dashed, grey)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .engine import Cell, matches


def series_label(row: dict, keys: list[str]) -> str:
    parts = [str(row.get(k)) for k in keys if row.get(k) is not None]
    return " / ".join(parts)


def sweep_figure(path: Path, rows: list[dict], spec: dict) -> Path | None:
    panels = (spec.get("figure") or {}).get("panels") or []
    ok = [r for r in rows if r.get("status") == "ok"]
    if not panels or not ok:
        return None
    from .report import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        keys = panel["series"] if isinstance(panel["series"], list) else [panel["series"]]
        groups: dict[str, dict] = defaultdict(lambda: defaultdict(list))
        for row in ok:
            if matches(row, panel.get("where")) and panel["metric"] in row and row.get(panel["x"]) is not None:
                groups[series_label(row, keys)][row[panel["x"]]].append(row[panel["metric"]])
        for label, by_x in sorted(groups.items()):
            xs = sorted(by_x)
            cells = [Cell([((i,), v) for i, v in enumerate(by_x[x])]) for x in xs]
            means = [c.mean for c in cells]
            stds = [c.std if c.n > 1 else 0.0 for c in cells]
            line, = ax.plot(xs, means, marker="o", ms=4, label=f"{label} (n={min(c.n for c in cells)})")
            ax.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                            color=line.get_color(), alpha=0.2)
        for ref in panel.get("reference") or []:
            style = dict(color="0.45", ls="--", lw=1.2)
            if ref["kind"] == "hline":
                ax.axhline(ref["y"], **style)
                ax.annotate(ref["label"], (0.02, ref["y"]), xycoords=("axes fraction", "data"), fontsize=7,
                            color="0.35", va="bottom")
            elif ref["kind"] == "vline":
                ax.axvline(ref["x"], **style)
                ax.annotate(ref["label"], (ref["x"], 0.02), xycoords=("data", "axes fraction"), fontsize=7,
                            color="0.35", rotation=90, ha="right", va="bottom")
            elif ref["kind"] == "points":
                ax.plot(ref["x"], ref["y"], ls="none", marker="*", ms=9, color="0.3", label=ref["label"])
        if panel.get("logx"):
            ax.set_xscale("log", base=2)
        if panel.get("logy"):
            ax.set_yscale("log")
        ax.set_xlabel(panel.get("xlabel", panel["x"]))
        ax.set_ylabel(panel.get("ylabel", panel["metric"]))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    title = (spec.get("figure") or {}).get("title")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
