"""`make figures`: only canonical evidence is published (complete canonical sweeps, runs at the scale asked),
the index keeps every experiment's row, nothing runs unless asked, and the static results page loads in a
real headless browser with every image."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_dirs

from kexue_runs.publishing.publish import canonical_sweep, grid_points

ROOT = Path(__file__).resolve().parents[1]


def fake_sweep(outputs: Path, stamp: str, points, scale="cpu", extra=(), status="ok"):
    """A sweep folder with one job per grid point: overrides, status and scale are all canonical_sweep reads."""
    sweep = outputs / "sweeps" / "rerope_extrapolation" / stamp
    for i, point in enumerate(points):
        job = sweep / f"job{i}"
        job.mkdir(parents=True)
        overrides = ["experiment=rerope_extrapolation", "sweep=rerope_extrapolation", "trainer.threads=1",
                     *[f"{k}={v}" for k, v in sorted(point)], *extra]
        (job / "summary.json").write_text(json.dumps({"status": status, "overrides": overrides, "scale": scale,
                                                      "final": {}, "config": {"scale": {"name": scale}}}))
    return sweep


def test_only_the_complete_canonical_grid_is_published(tmp_path):
    keys, points = grid_points(ROOT / "configs" / "sweep" / "rerope_extrapolation.yaml")
    assert "seed" in keys and len(points) == 21
    points = sorted(points, key=sorted)
    complete = fake_sweep(tmp_path, "20260101-000000", points)
    fake_sweep(tmp_path, "20260102-000000", points[:5])  # partial
    fake_sweep(tmp_path, "20260103-000000", points, extra=["train.lr=1e-2"])  # ad hoc
    fake_sweep(tmp_path, "20260104-000000", points, scale="smoke")  # another scale
    failed = points[:-1]
    sweep = fake_sweep(tmp_path, "20260105-000000", failed)
    bad = sweep / "jobx"
    bad.mkdir()
    (bad / "summary.json").write_text(json.dumps({"status": "failed", "scale": "cpu", "final": {},
                                                  "overrides": [f"{k}={v}" for k, v in sorted(points[-1])]}))
    found, skipped = canonical_sweep(tmp_path, "rerope_extrapolation", "cpu")
    assert found == complete
    why = "\n".join(skipped)
    assert "1 of 21 jobs not finished" in why and "partial: 16 of 21" in why and "ad hoc" in why
    assert "scale smoke, not cpu" in why
    assert canonical_sweep(tmp_path, "rerope_extrapolation", "gpu")[0] is None


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Two real smoke runs, then `make figures` at scale=smoke (nothing else may run)."""
    from kexue_runs import cli

    outputs = tmp_path_factory.mktemp("publish")
    for name in ("retry", "reparam_argmax"):
        old = sys.argv
        sys.argv = ["kexue-run"]
        try:
            assert cli.main([f"experiment={name}", "scale=smoke", "trainer.progress=false", "trainer.threads=1",
                             f"output_root={outputs}"]) == 0
        finally:
            sys.argv = old
    done = subprocess.run([sys.executable, "scripts/make_figures.py", "--scale", "smoke", "--outputs", str(outputs)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return outputs


def test_index_keeps_every_row_and_runs_nothing(published):
    from kexue_runs.claims.catalog import experiment_files

    index = (published / "figures" / "index.md").read_text()
    rows = [line for line in index.splitlines() if line.startswith("| ") and not line.startswith("| experiment")]
    assert len(rows) == len(experiment_files())
    retry_row = next(r for r in rows if r.startswith("| retry |"))
    assert "| smoke |" in retry_row and "| PASS |" in retry_row
    assert "not published" in next(r for r in rows if r.startswith("| amos |"))
    assert len(run_dirs(published, "amos")) == 0  # nothing was started
    assert not (published / "sweeps").exists()


def test_results_page_has_the_verdict_tables_and_its_images_exist(published):
    page = (published / "figures" / "index.html").read_text()
    assert "<h2 id='retry'>" in page and "success_and_attempts_as_derived" in page
    assert "kexue-run experiment=retry scale=smoke" in page
    import re

    images = re.findall(r"<img src='([^']+)'", page)
    assert images and all((published / "figures" / src).exists() for src in images)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian's chromium is not installed (apt-get install chromium)")
def test_results_page_loads_in_a_headless_browser(published):
    page = published / "figures" / "index.html"
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    title = done.stdout.split("<title>", 1)[1].split("</title>", 1)[0]
    loaded, total = title.removeprefix("images ").removesuffix(" loaded").split("/")
    assert int(total) > 0 and loaded == total
