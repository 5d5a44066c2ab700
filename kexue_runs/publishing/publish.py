"""Publishing: for each experiment the evidence `make figures` may show (its newest complete canonical sweep,
or for an experiment without a sweep its newest finished run, at one scale), the index (markdown) and a
static results page (HTML: no server, no network, images beside it).

Canonical sweep: a sweep whose jobs are exactly the points of the experiment's configs/sweep/<name>.yaml
grids (extra overrides that cannot change results, such as trainer.threads, are allowed), every job finished
(ok or diverged), at the requested scale. Anything else is skipped and listed with why.
"""

from __future__ import annotations

import html
import itertools
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import config_dir
from ..claims.catalog import experiment_files, load_experiment
from ..common.runfiles import is_run_only
from ..lifecycle.sweeps import aggregate, load_jobs


@dataclass
class Evidence:
    name: str
    post: str = ""
    title: str = ""
    kind: str = ""  # "sweep" | "run" | "" (nothing publishable)
    path: Path | None = None
    scale: str = ""
    date: str = ""
    git_sha: str = ""
    verdict: str = ""
    stability: str = ""
    checks: list[dict] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    command: str = ""
    spec: dict = field(default_factory=dict)


def grid_points(sweep_file: Path) -> tuple[list[str], set[frozenset]]:
    """(the grid keys, every point of every grid) of a configs/sweep/<name>.yaml."""
    spec = yaml.safe_load(sweep_file.read_text()) or {}
    grids = spec.get("sweep_grids") or [((spec.get("hydra") or {}).get("sweeper") or {}).get("params") or {}]
    keys, points = set(), set()
    for grid in grids:
        values = {k: [v.strip() for v in str(vs).split(",")] for k, vs in grid.items()}
        keys |= set(values)
        for combo in itertools.product(*values.values()):
            points.add(frozenset(zip(values, combo)))
    return sorted(keys), points


def job_point(job: dict, keys: list[str]) -> tuple[frozenset, list[str]]:
    """(the job's values of the grid keys, its other overrides that could change results)."""
    pairs = [o.split("=", 1) for o in job.get("overrides") or [] if "=" in o]
    point = frozenset((k, v) for k, v in pairs if k in keys)
    extra = [f"{k}={v}" for k, v in pairs if k not in keys and k not in ("experiment", "sweep", "scale")
             and not is_run_only(k)]
    return point, extra


def job_scale(job: dict) -> str:
    scale = job.get("scale") or (job.get("config") or {}).get("scale") or ""
    return str(scale.get("name", "") if isinstance(scale, dict) else scale)


def canonical_sweep(outputs: Path, name: str, scale: str) -> tuple[Path | None, list[str]]:
    """The newest canonical sweep at `scale`, and why each newer sweep was skipped."""
    keys, points = grid_points(config_dir() / "sweep" / f"{name}.yaml")
    skipped = []
    for sweep in sorted((outputs / "sweeps" / name).glob("*"), reverse=True):
        jobs = load_jobs(sweep) if sweep.is_dir() else []
        if not jobs:
            continue
        scales = {job_scale(j) for j in jobs}
        seen, extras = set(), set()
        for j in jobs:
            point, extra = job_point(j, keys)
            seen.add(point)
            extras |= set(extra)
        unfinished = sum(j.get("status") not in ("ok", "diverged") for j in jobs)
        why = (f"scale {', '.join(sorted(scales))}, not {scale}" if scales != {scale} else
               f"ad hoc: overrides outside the grid ({', '.join(sorted(extras)[:3])})" if extras else
               f"partial: {len(points - seen)} of {len(points)} grid points not run" if points - seen else
               f"not the canonical grid: {len(seen - points)} jobs outside it" if seen - points else
               f"{unfinished} of {len(jobs)} jobs not finished" if unfinished else "")
        if not why:
            return sweep, skipped
        skipped.append(f"{sweep}: {why}")
    return None, skipped


def newest_run(outputs: Path, name: str, scale: str) -> tuple[Path | None, list[str]]:
    skipped = []
    for summary_file in sorted((outputs / "runs" / name).glob("*/summary.json"), reverse=True):
        s = json.loads(summary_file.read_text())
        if job_scale(s) != scale:
            continue
        if s.get("status") != "ok":
            skipped.append(f"{summary_file.parent}: status {s.get('status')}")
            continue
        return summary_file.parent, skipped
    return None, skipped


def collect(outputs: Path, scale: str, only: list[str] | None = None) -> list[Evidence]:
    out = []
    for path in experiment_files():
        name = path.stem
        if only and name not in only:
            continue
        spec = load_experiment(path)
        posts = (spec.get("meta") or {}).get("posts") or [{}]
        ev = Evidence(name, "+".join(str(p.get("archive", "")) for p in posts), posts[0].get("title", ""), spec=spec)
        has_sweep = (config_dir() / "sweep" / f"{name}.yaml").exists()
        if has_sweep:
            sweep, ev.skipped = canonical_sweep(outputs, name, scale)
            ev.command = f"kexue-run -m experiment={name} sweep={name} scale={scale}"
            if sweep is not None:
                report = aggregate(sweep, quiet=True)
                ev.kind, ev.path, ev.scale = "sweep", sweep, scale
                ev.date, ev.git_sha = str(report.get("generated", ""))[:10], str(report.get("git_sha") or "")[:10]
                ev.verdict, ev.checks = report["verdict"], report["checks"]
                ev.stability = str(report.get("stability") or "")
                ev.figures = [p for p in [sweep / "figure.png"] if p.exists()]
        else:
            run, ev.skipped = newest_run(outputs, name, scale)
            ev.command = f"kexue-run experiment={name} scale={scale}"
            if run is not None:
                s = json.loads((run / "summary.json").read_text())
                ev.kind, ev.path, ev.scale = "run", run, scale
                ev.date, ev.git_sha = str(s.get("ended") or s.get("started") or "")[:10], \
                    str((s.get("environment") or {}).get("git_sha") or "")[:10]
                ev.verdict, ev.checks, ev.stability = s.get("verdict", ""), s.get("checks") or [], \
                    str(s.get("stability") or "")
                ev.figures = sorted((run / "figures").glob("*.png"))
        out.append(ev)
    return out


def copy_figures(evidence: list[Evidence], out_dir: Path) -> dict[str, list[str]]:
    names = {}
    for ev in evidence:
        names[ev.name] = []
        for fig in ev.figures:
            target = f"{ev.name}-{fig.name}" if ev.kind == "run" else f"{ev.name}.png"
            shutil.copy2(fig, out_dir / target)
            names[ev.name].append(target)
    return names


def index_markdown(evidence: list[Evidence], figures: dict[str, list[str]], scale: str) -> str:
    lines = [f"# kexue-runs results (scale={scale})", "",
             "| experiment | post | scale | date | git | verdict | stability | figures | evidence |",
             "|---|---|---|---|---|---|---|---|---|"]
    for ev in evidence:
        if ev.kind:
            figs = " ".join(f"![{f}]({f})" for f in figures[ev.name])
            lines.append(f"| {ev.name} | {ev.post} | {ev.scale} | {ev.date} | {ev.git_sha} | {ev.verdict} | "
                         f"{ev.stability or '-'} | {figs} | {ev.kind} {ev.path} |")
        else:
            why = "; ".join(ev.skipped[:2]) or "nothing run at this scale"
            lines.append(f"| {ev.name} | {ev.post} | - | - | - | not published | - | | {why} (`{ev.command}`) |")
    return "\n".join(lines) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.5rem;border-top:1px solid #ddd;padding-top:1rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.6rem 0}td,th{border:1px solid #ddd;
padding:.3rem .4rem;vertical-align:top;text-align:left}th{background:#f4f4f4}.PASS{color:#0a7a2f;font-weight:600}
.FAIL{color:#b00020;font-weight:600}.INCONCLUSIVE{color:#8a6d00;font-weight:600}.NA{color:#777}
img{max-width:100%;border:1px solid #eee;margin:.4rem 0}code{background:#f4f4f4;padding:.1rem .3rem}
.basis{color:#666;font-size:.75rem}.claim{background:#fafafa;border-left:3px solid #999;padding:.5rem .8rem}"""


def results_html(evidence: list[Evidence], figures: dict[str, list[str]], scale: str) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>kexue-runs results ({esc(scale)})"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>kexue-runs: the posts' claims, run (scale={esc(scale)})</h1>",
             "<table><tr><th>experiment</th><th>post</th><th>verdict</th><th>stability</th><th>date</th><th>git</th></tr>"]
    for ev in evidence:
        verdict = ev.verdict or "not published"
        parts.append(f"<tr><td><a href='#{esc(ev.name)}'>{esc(ev.name)}</a></td><td>{esc(ev.post)}</td>"
                     f"<td class='{esc(verdict.replace('/', ''))}'>{esc(verdict)}</td>"
                     f"<td>{esc(ev.stability or '-')}</td><td>{esc(ev.date or '-')}</td>"
                     f"<td>{esc(ev.git_sha or '-')}</td></tr>")
    parts.append("</table>")
    for ev in evidence:
        spec = ev.spec
        posts = (spec.get("meta") or {}).get("posts") or []
        links = ", ".join(f"<a href='{esc(p.get('url', ''))}'>{esc(str(p.get('archive', '')))}</a>" for p in posts)
        parts.append(f"<h2 id='{esc(ev.name)}'>{esc(ev.name)}: {esc(ev.title)}</h2><p>Post {links}.</p>")
        parts.append(f"<div class='claim'>{esc(str(spec.get('claim') or ''))}</div>")
        reported = spec.get("reported") or []
        if reported:
            parts.append("<h3>The post's numbers</h3><table><tr><th>what</th><th>value</th><th>source</th>"
                         "<th>setup</th></tr>")
            parts += [f"<tr><td>{esc(str(r.get('what', '')))}</td><td>{esc(str(r.get('value', '')))}</td>"
                      f"<td>{esc(str(r.get('source', '')))}</td><td>{esc(str(r.get('setup', '')))}</td></tr>"
                      for r in reported]
            parts.append("</table>")
        if ev.kind:
            parts.append(f"<h3>Verdict: <span class='{esc(ev.verdict)}'>{esc(ev.verdict)}</span></h3>"
                         f"<p>From the {esc(ev.kind)} <code>{esc(str(ev.path))}</code> ({esc(ev.date)}, git "
                         f"{esc(ev.git_sha)}, held-out replicates: {esc(ev.stability or '-')}).</p>")
            parts.append("<table><tr><th>check</th><th>statement</th><th>ours</th><th>the post's</th>"
                         "<th>verdict</th></tr>")
            for c in ev.checks:
                v = str(c.get("verdict", ""))
                parts.append(f"<tr><td>{esc(c['id'])}<div class='basis'>{esc(c.get('basis', ''))}: "
                             f"{esc(str(c.get('source', '')))}</div></td><td>{esc(str(c.get('statement', '')))}</td>"
                             f"<td>{esc(str(c.get('observed', '')))}<div class='basis'>{esc(str(c.get('stat', '')))}"
                             f"</div></td><td>{esc(str(c.get('reported', '')))}</td>"
                             f"<td class='{esc(v.replace('/', ''))}'>{esc(v)}</td></tr>")
            parts.append("</table>")
            parts += [f"<img src='{esc(f)}' alt='{esc(ev.name)} figure {esc(f)}'>" for f in figures[ev.name]]
        else:
            parts.append("<p>Nothing published at this scale" + (": " + esc("; ".join(ev.skipped[:3]))
                                                                  if ev.skipped else "") + ".</p>")
        parts.append(f"<p>Reproduce: <code>{esc(ev.command)}</code></p>")
    parts.append("<script>window.addEventListener('load',function(){var i=[].slice.call(document.images);"
                 "var ok=i.filter(function(x){return x.complete&&x.naturalWidth>0}).length;"
                 "document.title='images '+ok+'/'+i.length+' loaded';});</script>")
    parts.append("</body></html>")
    return "\n".join(parts)
