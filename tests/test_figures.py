"""`make figures` on real outputs: an ad-hoc sweep is never published (it is listed as skipped, with why) and
nothing runs unless asked; RUN_MISSING runs only what is missing, at the requested scale."""

import subprocess
import sys

from conftest import REPO, SMOKE


def test_ad_hoc_sweeps_are_skipped_and_missing_runs_only_on_request(kexue, tmp_path):
    outputs = tmp_path / "outputs"
    code, _ = kexue("-m", *SMOKE, "quantizer=fsq,vq_ste", "seed=0,1", outputs=outputs)
    assert code == 0
    (sweep,) = (outputs / "sweeps" / "fsq_vs_vq").glob("*")
    before = {p.name for p in sweep.iterdir()}
    command = [sys.executable, str(REPO / "scripts" / "make_figures.py"), "--scale", "smoke", "--outputs", str(outputs)]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = outputs / "figures"
    assert not (figures / "fsq_vs_vq.png").exists()
    index = (figures / "index.md").read_text()
    fsq_row = next(line for line in index.splitlines() if line.startswith("| fsq_vs_vq |"))
    assert "not published" in fsq_row and "partial" in fsq_row and str(sweep) in fsq_row
    assert not (outputs / "runs").exists()  # nothing was started
    out = subprocess.run([*command, "--run-missing", "--only", "reparam_argmax"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "reparam_argmax: nothing publishable at scale=smoke; running" in out.stdout
    assert (figures / "reparam_argmax-argmax_distributions.png").exists()
    assert [p.parent.name for p in (outputs / "runs").glob("*/*")] and \
        {p.name for p in (outputs / "runs").iterdir()} == {"reparam_argmax"}
    assert {p.name for p in sweep.iterdir()} == before  # the saved sweep was not touched
