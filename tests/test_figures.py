"""`make figures`: every experiment's figure from saved outputs, with an index page."""

import subprocess
import sys

from conftest import REPO, SMOKE


def test_make_figures_uses_saved_sweeps_and_runs_what_is_missing(kexue, tmp_path):
    outputs = tmp_path / "outputs"
    code, _ = kexue("-m", *SMOKE, "quantizer=fsq,vq_ste", "seed=0,1", outputs=outputs)
    assert code == 0
    (sweep,) = (outputs / "sweeps" / "fsq_vs_vq").glob("*")
    before = {p.name for p in sweep.iterdir()}
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "make_figures.py"), "--scale", "smoke",
                          "--outputs", str(outputs), "--only", "fsq_vs_vq", "reparam_argmax", "lossless_bound"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = outputs / "figures"
    assert (figures / "fsq_vs_vq.png").exists()
    assert {p.name for p in sweep.iterdir()} == before  # no job was rerun for the saved sweep
    assert "fsq_vs_vq: no complete sweep" not in out.stdout
    index = (figures / "index.md").read_text()
    assert str(sweep) in index and "fsq_uses_nearly_all_codes" in index
    # experiments settled by one run got that run, at the requested scale, and their figures
    assert "reparam_argmax: no run yet; running it at scale=smoke" in out.stdout
    assert (figures / "reparam_argmax-argmax_distributions.png").exists()
    assert "single run: ok" in index
