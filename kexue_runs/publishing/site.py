"""What the ledger renders to, never edited by hand: the README's results table (between marker comments)
and the static results site, docs/results/index.html plus one page per experiment, servable as is from
the repository (no server, no network: the pages link the ledger's figures under results/).
"""

from __future__ import annotations

import html
from pathlib import Path

from ..claims.catalog import experiment_files, load_experiment
from ..common.durations import span
from .ledger import is_repository_ledger, ledger_root, publish, read_entries, repo_root

TABLE_START = "<!-- results-table:{scale}:start (generated from results/{scale}/ by `make figures`; do not edit) -->"
TABLE_END = "<!-- results-table:{scale}:end -->"


def post_links(posts: list[dict]) -> str:
    return ", ".join(f"[{p.get('archive')}]({p.get('url')})" for p in posts)


def md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def readme_table(scale: str = "cpu", root: Path | None = None) -> str:
    """The README's results table at `scale`: one row per experiment, its ledger entry's verdict, reason, wall
    time and provenance, or 'not published' with the command that would publish it."""
    entries = {e["experiment"]: e for e in read_entries(scale, root)}
    lines = [TABLE_START.format(scale=scale), "",
             "| experiment | post | verdict | why | time | published |", "|---|---|---|---|---|---|"]
    for path in experiment_files():
        name = path.stem
        entry = entries.get(name)
        if entry is None:
            posts = (load_experiment(path).get("meta") or {}).get("posts") or []
            has_sweep = (path.parent.parent / "sweep" / f"{name}.yaml").is_file()
            command = f"kexue-run {'-m ' if has_sweep else ''}experiment={name}" + \
                      (f" sweep={name}" if has_sweep else "") + f" scale={scale}"
            lines.append(f"| `{name}` | {post_links(posts)} | not published | `{command}` | - | - |")
            continue
        prov = entry["provenance"]
        why = entry["reason"].split(": ", 1)[1] if ": " in entry["reason"] else entry["reason"]
        stability = f" ({entry['stability']} on held-out replicates)" if entry["stability"] != "-" else ""
        lines.append(f"| `{name}` | {post_links(entry['posts'])} | **{entry['shown']}** | {md(why)}{stability} | "
                     f"{span(prov['wall_s'], minute_decimals=0)} | [{prov['commit'][:7]}, {prov['date']}]"
                     f"(docs/results/{name}.html) |")
    lines += ["", TABLE_END.format(scale=scale)]
    return "\n".join(lines)


def readme_block(text: str, scale: str = "cpu") -> tuple[int, int] | None:
    """(start, end) of the generated table in the README's text, markers included; None without markers."""
    start = text.find(TABLE_START.format(scale=scale))
    end = text.find(TABLE_END.format(scale=scale))
    if start < 0 or end < start:
        return None
    return start, end + len(TABLE_END.format(scale=scale))


def update_readme(readme: Path | None = None, scale: str = "cpu", root: Path | None = None) -> bool:
    """Rewrite the README's generated table from the ledger. True when it changed."""
    readme = readme or repo_root() / "README.md"
    text = readme.read_text()
    span = readme_block(text, scale)
    if span is None:
        return False
    new = text[:span[0]] + readme_table(scale, root) + text[span[1]:]
    if new != text:
        readme.write_text(new)
    return new != text


# -- the site ----------------------------------------------------------------------------------------------

CSS = """body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-top:1px solid #ddd;padding-top:1rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.6rem 0}td,th{border:1px solid #ddd;
padding:.3rem .4rem;vertical-align:top;text-align:left}th{background:#f4f4f4}.PASS{color:#0a7a2f;font-weight:600}
.FAIL{color:#b00020;font-weight:600}.INCONCLUSIVE,.NOTREACHED{color:#8a6d00;font-weight:600}.NA{color:#777}
.unstable{color:#8e24aa;font-weight:600}img{max-width:100%;border:1px solid #eee;margin:.4rem 0}
code{background:#f4f4f4;padding:.1rem .3rem}.small{color:#666;font-size:.75rem}
.claim{background:#fafafa;border-left:3px solid #999;padding:.5rem .8rem}"""
IMAGE_CHECK = ("<script>window.addEventListener('load',function(){var i=[].slice.call(document.images);"
               "var ok=i.filter(function(x){return x.complete&&x.naturalWidth>0}).length;"
               "document.title='images '+ok+'/'+i.length+' loaded';});</script>")
esc = html.escape


def css_class(verdict: str) -> str:
    return verdict.replace("/", "").replace(" ", "")


def page(title: str, body: list[str]) -> str:
    return "\n".join([f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>"
                      f"<style>{CSS}</style></head><body>", *body, IMAGE_CHECK, "</body></html>"]) + "\n"


def index_page(entries: list[dict]) -> str:
    by_name: dict[str, list[dict]] = {}
    for e in entries:
        by_name.setdefault(e["experiment"], []).append(e)
    body = ["<h1>kexue-runs: the posts' claims, run</h1>",
            "<p>Every row is a ledger entry (<code>results/&lt;scale&gt;/&lt;experiment&gt;.json</code>) with its "
            "provenance; <code>kexue-run verify &lt;experiment&gt;</code> re-runs it at HEAD. Generated by "
            "<code>make figures</code>; do not edit.</p>",
            "<table><tr><th>experiment</th><th>post</th><th>scale</th><th>verdict</th><th>why</th>"
            "<th>held-out</th><th>commit</th><th>date</th></tr>"]
    for path in experiment_files():
        name = path.stem
        posts = (load_experiment(path).get("meta") or {}).get("posts") or []
        links = ", ".join(f"<a href='{esc(str(p.get('url', '')))}'>{esc(str(p.get('archive', '')))}</a>"
                          for p in posts)
        for e in by_name.get(name) or [None]:
            if e is None:
                body.append(f"<tr><td>{esc(name)}</td><td>{links}</td><td>-</td><td class='NA'>not published</td>"
                            "<td></td><td></td><td></td><td></td></tr>")
                continue
            prov = e["provenance"]
            body.append(f"<tr><td><a href='{esc(name)}.html#{esc(e['scale'])}'>{esc(name)}</a></td><td>{links}</td>"
                        f"<td>{esc(e['scale'])}</td><td class='{css_class(e['shown'])}'>{esc(e['shown'])}</td>"
                        f"<td>{esc(e['reason'])}</td><td>{esc(e['stability'])}</td>"
                        f"<td>{esc(prov['commit'][:7])}</td><td>{esc(prov['date'])}</td></tr>")
    body.append("</table>")
    return page("kexue-runs results", body)


def experiment_page(name: str, entries: list[dict], figure_prefix: str) -> str:
    first = entries[0]
    body = ["<p><a href='index.html'>All results</a></p>", f"<h1>{esc(name)}</h1>",
            f"<p>{esc(first.get('headline', ''))}</p><ul>"]
    body += [f"<li><a href='{esc(p['url'])}'>{esc(str(p['archive']))}</a> {esc(p['title'])}</li>"
             for p in first["posts"]]
    body += ["</ul>", f"<h2>The claim</h2><div class='claim'>{esc(first['claim'])}</div>"]
    if first["reported"]:
        body.append("<h2>The post's numbers</h2><table><tr><th>what</th><th>value</th><th>source</th>"
                    "<th>setup</th></tr>")
        body += [f"<tr><td>{esc(r['what'])}</td><td>{esc(r['value'])}</td><td>{esc(r['source'])}</td>"
                 f"<td>{esc(r['setup'])}</td></tr>" for r in first["reported"]]
        body.append("</table>")
    for e in entries:
        prov = e["provenance"]
        body.append(f"<h2 id='{esc(e['scale'])}'>scale={esc(e['scale'])}: "
                    f"<span class='{css_class(e['shown'])}'>{esc(e['shown'])}</span></h2>")
        body.append(f"<p>{esc(e['reason'])}. Held-out replicates: {esc(e['stability'])}. From a {esc(e['evidence'])}"
                    f" at commit <code>{esc(prov['commit'])}</code>{' (uncommitted changes)' if prov['dirty'] else ''}"
                    f", {esc(prov['date'])}.</p>")
        body.append("<table><tr><th>check</th><th>statement</th><th>ours</th><th>the post's</th><th>verdict</th>"
                    "<th>reason</th><th>test</th></tr>")
        for c in e["checks"]:
            test = c["test"] + (f"; {c['needs']}" if c.get("needs") else "")
            body.append(f"<tr><td>{esc(c['id'])}<div class='small'>{esc(c['basis'])}: {esc(c.get('source', ''))}"
                        f"</div></td><td>{esc(c.get('statement', ''))}</td><td>{esc(c['ours'] or c.get('note', ''))}"
                        f"</td><td>{esc(c['reported'])}</td><td class='{css_class(c['verdict'])}'>{esc(c['verdict'])}"
                        f"{' (leans ' + esc(c['leans']) + ')' if c.get('leans') else ''}</td>"
                        f"<td>{esc(c['reason'] or '')}</td><td><span class='small'>{esc(test)} "
                        f"({c['replicates']} × {esc(c['unit'])})</span></td></tr>")
        body.append("</table>")
        body += [f"<p><img src='{esc(figure_prefix + e['scale'] + '/' + f)}' alt='{esc(name)}: {esc(f)}'></p>"
                 for f in e["figures"]]
        if e.get("threats"):
            body.append("<h3>Threats to validity</h3><ul>" + "".join(f"<li>{esc(t)}</li>" for t in e["threats"])
                        + "</ul>")
        if e.get("to_decide_the_rest"):
            body.append(f"<p>To decide the rest: <code>{esc(e['to_decide_the_rest'])}</code></p>")
        body.append("<h3>Provenance</h3><table>")
        rows = [("command", prov["command"]), ("commit", prov["commit"]), ("code hash", prov["code_hash"]),
                ("config hash", prov["config_hash"]), ("seeds", ", ".join(map(str, prov["seeds"]))),
                ("wall time", f"{prov['wall_s']} s"), ("date", prov.get("ended") or prov["date"]),
                ("CPU", prov["cpu_model"]), ("threads", prov["threads"]), ("torch", prov["torch"]),
                ("Python", prov["python"]), ("platform", prov["platform"])]
        body += [f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in rows]
        body.append("</table>")
        body.append(f"<p>Reproduce: <code>{esc(prov['command'])}</code>; compare with the ledger: "
                    f"<code>kexue-run verify {esc(name)} --scale {esc(e['scale'])}</code></p>")
    return page(f"kexue-runs: {name}", body)


def write_site(out_dir: Path | None = None, root: Path | None = None) -> list[Path]:
    """docs/results/index.html and one page per published experiment; stale pages are removed."""
    out_dir = out_dir or repo_root() / "docs" / "results"
    root = root or ledger_root()
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = read_entries(None, root)
    prefix = Path(*[".."] * len(out_dir.resolve().relative_to(root.parent.resolve()).parts), root.name).as_posix() \
        + "/" if out_dir.resolve().is_relative_to(root.parent.resolve()) else root.resolve().as_uri() + "/"
    written = [out_dir / "index.html"]
    names = sorted({e["experiment"] for e in entries})
    for old in out_dir.glob("*.html"):
        if old.stem != "index" and old.stem not in names:
            old.unlink()
    write_if_changed(out_dir / "index.html", index_page(entries))
    for name in names:
        target = out_dir / f"{name}.html"
        write_if_changed(target, experiment_page(name, [e for e in entries if e["experiment"] == name], prefix))
        written.append(target)
    return written


def write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def publish_results(evidence: list, scale: str, root: Path | None = None, only: list[str] | None = None,
                    log=print) -> None:
    """The publishing step's ledger part: an entry per experiment with evidence (not smoke runs unless `root` is
    given: their numbers are not results), then, for the repository's ledger, the README table and the site."""
    if scale == "smoke" and root is None:
        log("ledger: scale=smoke is not published (pass --results DIR to write a smoke ledger elsewhere)")
        return
    chosen = [ev for ev in evidence if not only or ev.name in only]
    for path in publish(chosen, root, log):
        log(f"ledger: {path}")
    if is_repository_ledger(root or ledger_root()):  # a scratch ledger leaves the README and docs/ alone
        changed = update_readme(scale=scale)
        pages = write_site()
        log(f"README results table ({scale}): {'rewritten' if changed else 'unchanged'}; site: {pages[0]} "
            f"and {len(pages) - 1} pages")
