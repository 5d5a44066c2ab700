"""Bad input: one clear line naming the problem and what is allowed, exit code 2, nothing written."""

import pytest
from conftest import SMOKE

BAD = [
    (["experiment=fsq_vs_vqq"], "unknown experiment 'fsq_vs_vqq'; allowed: attention_sparsity, bert_init,"),
    ([], "no experiment chosen"),
    ([*SMOKE, "quantizer=lfq"], "unknown quantizer 'lfq'; allowed: fsq, vq_rotation, vq_ste"),
    ([*SMOKE, "optimizer=lion"], "unknown optimizer 'lion'; allowed: adam, adamw, sgd"),
    ([*SMOKE, "scale=huge"], "unknown scale 'huge'; allowed: cpu, gpu, smoke"),
    ([*SMOKE, "trainer.stepz=5"], "unknown key 'trainer.stepz'; keys under trainer:"),
    ([*SMOKE, "trainer.steps=abc"], "trainer.steps='abc' has the wrong type: expected an integer"),
    ([*SMOKE, "optimizer.lr=-0.1"], "optimizer.lr=-0.1: must be > 0"),
    ([*SMOKE, "quantizer.codebook_size=0"], "the codebook is empty"),
    ([*SMOKE, "quantizer.levels=[5,1]"], "every FSQ level must be >= 2"),
    ([*SMOKE, "quantizer.codebook_size=1000"], "no FSQ level table entry"),
    ([*SMOKE, "quantizer=vq_ste", "quantizer.init=zeros"], "quantizer.init=zeros: allowed: normal, small_norm, kmeans"),
    ([*SMOKE, "trainer.device=tpu"], "trainer.device=tpu: allowed: auto, cpu, cuda"),
    ([*SMOKE, "trainer.batch_size=0"], "trainer.batch_size=0: must be > 0"),
    ([*SMOKE, "model.downsample=5"], "model.downsample=5"),
    ([*SMOKE, "data=cifar10", "data.root=/nonexistent"], "data=cifar10 needs a local copy or the network"),
    ([*SMOKE, "seed=-1"], "seed=-1: must be >= 0"),
    (["resume=/nonexistent/run"], "not a run folder"),
    ([*SMOKE, "trainer.steps=[1"], "trainer.steps=[1"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_input_gets_one_clear_line(kexue, tmp_path, args, message):
    code, out = kexue(*args)
    assert code == 2, out
    lines = [line for line in out.strip().splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("error: ") and message in lines[0], out
    assert "Traceback" not in out
    assert not (tmp_path / "outputs").exists()  # nothing half-written


def test_a_bad_cell_in_a_sweep_stops_it_before_any_job(kexue, tmp_path):
    code, out = kexue("-m", *SMOKE, "quantizer.codebook_size=16,1000")
    assert code == 2 and "no FSQ level table entry" in out
    assert not (tmp_path / "outputs").exists()
