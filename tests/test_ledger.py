"""The results ledger: every committed entry matches the schema, an entry built from a real run carries its
checks, numbers and provenance, figures stay small, and the README's table and the site are the ledger's."""

import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import REPO, smoke_run_each

from kexue_runs.publishing import ledger, site

LEDGER_FILES = sorted((REPO / "results").glob("*/*.json"))


def test_the_repository_has_a_ledger():
    assert LEDGER_FILES, "results/<scale>/<experiment>.json: none committed"


@pytest.mark.parametrize("path", LEDGER_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in LEDGER_FILES])
def test_every_ledger_file_matches_the_schema(path):
    entry = json.loads(path.read_text())
    assert ledger.validate_entry(entry) == []
    assert path.stem == entry["experiment"] and path.parent.name == entry["scale"]
    assert (REPO / "configs" / "experiment" / f"{entry['experiment']}.yaml").is_file()
    for figure in entry["figures"]:
        assert (path.parent / figure).is_file()


def test_the_validator_finds_what_breaks_the_schema():
    entry = json.loads(LEDGER_FILES[0].read_text())
    entry["checks"][0]["verdict"] = "MAYBE"
    entry["checks"][0]["reason"] = "bad luck"
    del entry["provenance"]["commit"]
    entry["provenance"]["wall_s"] = -1
    entry["extra"] = 1
    entry["scale"] = 3
    errors = "\n".join(ledger.validate_entry(entry))
    for where in ("$.checks[0].verdict", "$.checks[0].reason", "$.provenance: 'commit' is missing",
                  "$.provenance.wall_s", "$: 'extra' is not allowed", "$.scale: int"):
        assert where in errors


def test_the_results_folder_stays_small():
    files = [p for p in (REPO / "results").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 3_000_000
    assert all(p.stat().st_size <= ledger.FIGURE_BYTES for p in files if p.suffix == ".png")


def test_reading_a_check():
    effect, ci = ledger.parse_stat("paired t, n=10, 95% CI, effect 0.05321, CI [0.039, 6.8e-02]")
    assert effect == 0.05321 and ci == [0.039, 0.068]
    assert ledger.parse_stat("exact") == (None, None)
    assert ledger.check_reason({"verdict": "FAIL", "basis": "derivation"})[0] == "slip"
    assert ledger.check_reason({"verdict": "FAIL", "basis": "empirical"})[0] == "refuted"
    assert ledger.check_reason({"verdict": "FAIL", "stability": "unstable: PASS on seeds 0"})[0] == "unstable"
    assert ledger.check_reason({"verdict": "INCONCLUSIVE", "note": "precondition not met: a FAIL"})[0] == "not_reached"
    assert ledger.check_reason({"verdict": "INCONCLUSIVE"})[0] == "underpowered"
    assert ledger.check_reason({"verdict": "FAIL", "reason": "slip"}) == ("slip", "engine")
    assert ledger.replicates({"stat": "Welch t, n=4+5, 95% CI", "n": 1}) == 9


@pytest.fixture(scope="module")
def smoke_entry(tmp_path_factory):
    """A ledger entry written (to a scratch ledger) from a real smoke run of bert_init."""
    from kexue_runs.publishing.publish import collect

    outputs = tmp_path_factory.mktemp("ledger") / "outputs"
    smoke_run_each(["bert_init"], outputs)
    (ev,) = collect(outputs, "smoke", only=["bert_init"])
    root = outputs.parent / "results"
    (path,) = ledger.publish([ev], root)
    return json.loads(path.read_text()), path, ev


def test_an_entry_from_a_run_has_its_checks_numbers_and_provenance(smoke_entry):
    entry, path, ev = smoke_entry
    summary = json.loads((ev.path / "summary.json").read_text())
    assert ledger.validate_entry(entry) == []
    assert entry["verdict"] == summary["verdict"]
    assert [c["id"] for c in entry["checks"]] == [c["id"] for c in summary["checks"]]
    assert [c["verdict"] for c in entry["checks"]] == [c["verdict"] for c in summary["checks"]]
    assert entry["reason"].startswith(entry["verdict"])
    prov = entry["provenance"]
    assert prov["command"] == "kexue-run experiment=bert_init scale=smoke trainer.threads=1"
    assert prov["code_hash"] == summary["environment"]["code_hash"]
    assert prov["config_hash"] == summary["config_hash"] and prov["seeds"] == [0] and prov["threads"] == 1
    assert prov["commit"] and prov["torch"] == summary["environment"]["torch"]
    names = {n["name"]: n for n in entry["key_numbers"]}
    slope = names["log2_path_slope [arm=post_norm_unit]"]
    assert slope["n"] > 1 and 0 < slope["tolerance"] < abs(slope["value"])
    exact = next(c for c in entry["checks"] if c["id"] == "truncation_factor")
    assert exact["unit"] == "deterministic" and exact["tolerance"]["value"] < 1e-5
    assert all((path.parent / f).stat().st_size <= ledger.FIGURE_BYTES for f in entry["figures"])


def test_ad_hoc_runs_are_not_published(tmp_path):
    from kexue_runs.publishing.publish import collect

    outputs = tmp_path / "outputs"
    smoke_run_each(["ddpm_schedule"], outputs, ["sim.samples=2000"])
    (ev,) = collect(outputs, "smoke", only=["ddpm_schedule"])
    said = []
    assert ledger.publish([ev], tmp_path / "results", said.append) == []
    assert "ad hoc (sim.samples=2000)" in said[0]
    # a run resumed after a kill is the same run (same config, same numbers): publishable, its command without resume
    summary_file = ev.path / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary["overrides"] = [o for o in summary["overrides"] if not o.startswith("sim.")] + [f"resume={ev.path}"]
    summary_file.write_text(json.dumps(summary))
    (written,) = ledger.publish([ev], tmp_path / "results", said.append)
    assert "resume" not in json.loads(written.read_text())["provenance"]["command"]


@pytest.mark.parametrize("override", ["trainer.threads=2", "trainer.progress=false", "trainer.device=cpu",
                                      "output_root=/tmp/x", "resume=/tmp/x/run", "logger=csv", "logger.project=p",
                                      "hydra.launcher.n_jobs=2", "optimizer.lr=0.1", "loggerx=1", "seed=3"])
def test_one_list_says_what_only_says_where_or_how_a_run_ran(tmp_path, override):
    """The sweep report (what varies), the publisher (a sweep job's ad hoc overrides), the ledger (a run's ad hoc
    overrides, the published command) all read runfiles.RUN_ONLY_OVERRIDES: they agree on every key."""
    from types import SimpleNamespace

    from kexue_runs.common import runfiles
    from kexue_runs.lifecycle.sweeps import varying_keys
    from kexue_runs.publishing.publish import job_point

    key, value = override.split("=", 1)
    run_only = key.split(".")[0] in ("logger", "hydra", "output_root", "resume") or key.startswith("trainer.")
    assert runfiles.is_run_only(override) == run_only
    configs = [{key: value, "name": "e"}, {key: value + "0", "name": "e"}]
    assert varying_keys(configs) == ([] if run_only else [key])
    _, extra = job_point({"overrides": [override, "seed=0"]}, ["seed"])
    assert extra == ([] if run_only or key == "seed" else [override])
    runfiles.write_json(tmp_path / "summary.json", {"overrides": ["experiment=e", override]})
    ad_hoc = ledger.ad_hoc_overrides(SimpleNamespace(kind="run", path=tmp_path))
    assert ad_hoc == ([] if run_only or key == "seed" else [override])
    command = ledger.published_command([override], "e", "cpu", 1, False)
    assert (override in command) == (not run_only or key in ledger.STATED_IN_COMMAND)


def test_the_readme_table_is_the_ledgers():
    text = (REPO / "README.md").read_text()
    span = site.readme_block(text, "cpu")
    assert span is not None, "README.md lost its results-table markers"
    assert text[span[0]:span[1]] == site.readme_table("cpu"), "README's results table differs from the " \
        "ledger: run `make figures` (never edit the table by hand)"
    for entry in ledger.read_entries("cpu"):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{entry['experiment']}` |"))
        assert f"**{entry['shown']}**" in row and entry["provenance"]["commit"][:7] in row


def test_a_changed_ledger_changes_the_table(tmp_path):
    root = tmp_path / "results"
    shutil.copytree(REPO / "results", root)
    path = root / LEDGER_FILES[0].relative_to(REPO / "results")
    entry = json.loads(path.read_text())
    entry["shown"] = entry["verdict"] = "INCONCLUSIVE" if entry["verdict"] != "INCONCLUSIVE" else "PASS"
    path.write_text(json.dumps(entry))
    assert site.readme_table(entry["scale"], root) != site.readme_table(entry["scale"])


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.images, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))


SITE = REPO / "docs" / "results"


def site_pages():
    return sorted(SITE.glob("*.html"))


def test_the_site_is_the_ledgers_and_nothing_is_broken(tmp_path):
    from PIL import Image

    site.write_site(tmp_path / "docs" / "results", REPO / "results")
    generated = {p.name: p.read_text() for p in (tmp_path / "docs" / "results").glob("*.html")}
    committed = {p.name: p.read_text() for p in site_pages()}
    assert generated.keys() == committed.keys(), "docs/results/ differs from the ledger: run `make figures`"
    published = {e["experiment"] for e in ledger.read_entries()}
    assert {Path(n).stem for n in committed} == published | {"index"}
    parsed = {}
    for name, text in committed.items():
        parsed[name] = Links()
        parsed[name].feed(text)
    for name, links in parsed.items():
        for href in links.hrefs:
            if href.startswith("https://"):
                continue
            target, _, anchor = href.partition("#")
            assert (SITE / target).is_file(), f"{name}: broken link {href}"
            assert not anchor or anchor in parsed[target].ids, f"{name}: no #{anchor} in {target}"
        for src in links.images:
            with Image.open(SITE / src) as img:
                img.load()
                assert img.width > 0
    for entry in ledger.read_entries():
        page = committed[f"{entry['experiment']}.html"]
        assert entry["provenance"]["command"] in page and f">{entry['shown']}<" in page
        assert all(c["id"] in page for c in entry["checks"])


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("page", site_pages(), ids=[p.stem for p in site_pages()])
def test_every_site_page_loads_in_a_headless_browser(page, tmp_path):
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           f"--user-data-dir={tmp_path}", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    title = done.stdout.split("<title>", 1)[1].split("</title>", 1)[0]
    loaded, total = title.removeprefix("images ").removesuffix(" loaded").split("/")
    assert loaded == total
    assert page.name == "index.html" or int(total) > 0


def test_make_figures_at_smoke_leaves_the_repository_ledger_alone(tmp_path):
    before = {p: p.stat().st_mtime_ns for p in (REPO / "results").rglob("*")}
    done = subprocess.run([sys.executable, "scripts/make_figures.py", "--scale", "smoke", "--outputs",
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {p: p.stat().st_mtime_ns for p in (REPO / "results").rglob("*")} == before


def test_a_fresh_clone_lists_and_shows_the_published_verdict(tmp_path, kexue, monkeypatch):
    import shutil

    from kexue_runs.publishing.listing import verdict_and_stability

    # a ledger with bert_init alone (the repository's grows): amos is then unpublished
    scratch = tmp_path / "results"
    (scratch / "cpu").mkdir(parents=True)
    shutil.copy(ledger.ledger_root() / "cpu" / "bert_init.json", scratch / "cpu" / "bert_init.json")
    monkeypatch.setenv("KEXUE_RESULTS_DIR", str(scratch))
    entry = ledger.read_entry("bert_init", "cpu")
    mark = f"published, commit {entry['provenance']['commit'][:7]}, {entry['provenance']['date']}"
    assert verdict_and_stability("bert_init", tmp_path / "outputs") == (entry["shown"], mark, entry["stability"])
    assert verdict_and_stability("amos", tmp_path / "outputs")[0] == "-"
    monkeypatch.chdir(tmp_path)
    code, out = kexue("show", "bert_init")
    assert code == 0 and mark in out and entry["provenance"]["command"] in out


def test_local_results_that_differ_from_the_ledger_show_both(tmp_path):
    from kexue_runs.publishing.listing import verdict_and_stability

    entry = ledger.read_entry("bert_init", "cpu")
    checks = [{"id": c["id"], "basis": c["basis"], "verdict": c["verdict"]} for c in entry["checks"]]
    flipped = "PASS" if checks[0]["verdict"] != "PASS" else "FAIL"
    checks[0]["verdict"] = flipped
    folder = tmp_path / "runs" / "bert_init" / "20260101-000000-000000"
    folder.mkdir(parents=True)
    local = "INCONCLUSIVE" if entry["verdict"] != "INCONCLUSIVE" else "PASS"
    (folder / "summary.json").write_text(json.dumps({"status": "ok", "scale": "cpu", "checks": checks,
                                                     "verdict": local}))
    shown, source, _ = verdict_and_stability("bert_init", tmp_path)
    assert shown == local and source == f"cpu run; published {entry['shown']} (cpu)"
    assert ledger.differences(entry, {"checks": checks}) == [(checks[0]["id"], entry["checks"][0]["verdict"],
                                                              flipped)]


def test_a_count_metric_is_a_key_number_not_a_label():
    """The GAN toys' `modes` (an int, a check's metric) labelled every cell (`w1 [arm=gan, modes=6]`), so the
    names differed between seeds and runs and verify found them missing; read as a metric it is a number."""
    rows = [{"arm": "gan", "seed": s, "w1": 0.5 + s / 10, "modes": m} for s, m in enumerate((6, 4, 5))]
    numbers = {k["name"]: k for k in ledger.key_numbers({}, rows, {"w1", "modes"})}
    assert set(numbers) == {"w1 [arm=gan]", "modes [arm=gan]"}
    assert numbers["modes [arm=gan]"]["value"] == 5.0 and numbers["modes [arm=gan]"]["n"] == 3
    old = {k["name"] for k in ledger.key_numbers({}, rows)}  # without the checks' metrics: a label per count
    assert "w1 [arm=gan, modes=6]" in old and len(old) == 3
