"""Bad input: one clear line naming the problem and what is allowed, exit code 2, nothing written.

Every value is checked against kexue_runs/preflight/schema.yaml; a composed config with a key no rule covers
fails the coverage test below, so a new key cannot go unchecked."""

import pytest
from conftest import SMOKE

FSQ = SMOKE
RE = ["experiment=rerope_extrapolation", "scale=smoke", "trainer.progress=false"]
DD = ["experiment=ddim_cifar", "scale=smoke", "trainer.progress=false"]
LP = ["experiment=lora_plus", "scale=smoke", "trainer.progress=false"]
SG = ["experiment=sgd_bound", "scale=smoke"]
UN = ["experiment=unargmaxable", "scale=smoke"]
RA = ["experiment=reparam_argmax", "scale=smoke"]

BAD = [
    # choosing things
    (["experiment=fsq_vs_vqq"], "unknown experiment 'fsq_vs_vqq'; allowed: fsq_vs_vq, "),
    ([], "no experiment chosen"),
    ([*FSQ, "quantizer=lfq"], "unknown quantizer 'lfq'; allowed: fsq, vq_rotation, vq_ste"),
    ([*FSQ, "optimizer=lion"], "unknown optimizer 'lion'; allowed: adam, adam_layer_adapted, adamw, sgd"),
    ([*FSQ, "scale=huge"], "unknown scale 'huge'; allowed: cpu, gpu, smoke"),
    ([*FSQ, "sweep=nope"], "unknown sweep 'nope'; allowed: ddim_cifar, fsq_vs_vq, lora_plus, rerope_extrapolation"),
    ([*FSQ, "quantiser=fsq"], "unknown key or group 'quantiser'"),
    ([*FSQ, "trainer.stepz=5"], "unknown key 'trainer.stepz'; keys under trainer:"),
    ([*RE, "arch=gau"], "unknown arch 'gau'; allowed: baseline, cosa, hwfa, kna, kna_nope, logn, qna"),
    # types
    ([*FSQ, "trainer.steps=abc"], "trainer.steps='abc' has the wrong type: expected an integer"),
    ([*FSQ, "trainer.steps=1.5"], "trainer.steps=1.5 has the wrong type: expected an integer"),
    ([*FSQ, "trainer.progress=maybe"], "trainer.progress='maybe' has the wrong type: expected a boolean"),
    ([*FSQ, "quantizer.levels=[8,abc]"], "quantizer.levels=[8, 'abc']: every FSQ level must be an integer"),
    ([*FSQ, "trainer.threads=abc"], "trainer.threads='abc'"),
    ([*FSQ, "optimizer.betas=0.9"], "optimizer.betas=0.9"),
    # ranges, from the schema
    ([*FSQ, "optimizer.lr=-0.1"], "optimizer.lr=-0.1: must be > 0"),
    ([*FSQ, "optimizer.lr=inf"], "optimizer.lr=inf: must be finite"),
    ([*FSQ, "optimizer.lr=0"], "optimizer.lr=0: must be > 0"),
    ([*FSQ, "optimizer.betas=[2.0,0.999]"], "optimizer.betas=[2.0, 0.999]: every entry must be < 1"),
    ([*FSQ, "optimizer.betas=[0.9]"], "optimizer.betas=[0.9]: must have 2 entries"),
    ([*FSQ, "trainer.threads=-1"], "trainer.threads=-1: must be >= 1"),
    ([*FSQ, "trainer.threads=0"], "trainer.threads=0: must be >= 1"),
    ([*FSQ, "trainer.batch_size=0"], "trainer.batch_size=0: must be >= 1"),
    ([*FSQ, "trainer.steps=0"], "trainer.steps=0: must be >= 1"),
    ([*FSQ, "trainer.checkpoint_every=0"], "trainer.checkpoint_every=0: must be >= 1"),
    ([*FSQ, "trainer.device=tpu"], "trainer.device='tpu': allowed: auto, cpu, cuda"),
    ([*FSQ, "seed=-1"], "seed=-1: must be >= 0"),
    ([*FSQ, "data.train_size=0"], "data.train_size=0: must be >= 1"),
    ([*FSQ, "data.val_size=0"], "data.val_size=0: must be >= 1"),
    ([*FSQ, "trainer.batch_size=100000"], "trainer.batch_size=100000 is larger than the training set"),
    ([*FSQ, "model.latent_norm=layernorm"], "model.latent_norm='layernorm': allowed: groupnorm, batchnorm, none"),
    ([*FSQ, "loss.commitment_weight=-1"], "loss.commitment_weight=-1: must be >= 0"),
    ([*DD, "diffusion.ema=1.5"], "diffusion.ema=1.5: must be < 1"),
    ([*DD, "eval.steps=[]"], "eval.steps=[]: must have at least 1 entry"),
    ([*LP, "lora.rank=0"], "lora.rank=0: must be >= 1"),
    ([*LP, "lora.ratios=[1,-4]"], "lora.ratios=[1, -4]: every entry must be > 0"),
    ([*RE, "eval.yarn_ramp=linear"], "eval.yarn_ramp='linear': allowed: scaled, absolute"),
    ([*SG, "sim.horizons=1"], "sim.horizons=1: must be >= 2"),
    ([*UN, "sim.norm_spreads=[-0.5]"], "sim.norm_spreads=[-0.5]: every entry must be >= 0"),
    ([*RA, "sim.mu=[1.0]"], "sim.mu=[1.0]: must have at least 2 entries"),
    # the experiments' own rules
    ([*FSQ, "quantizer.codebook_size=0"], "quantizer.codebook_size=0: must be >= 1"),
    ([*FSQ, "quantizer.levels=[5,1]"], "every FSQ level must be >= 2"),
    ([*FSQ, "quantizer.codebook_size=1000"], "no FSQ level table entry"),
    ([*FSQ, "quantizer=vq_ste", "quantizer.init=zeros"],
     "quantizer.init=zeros: allowed: fan_in, normal, small_norm, uniform, kmeans"),
    ([*FSQ, "model.downsample=5"], "model.downsample=5"),
    ([*DD, "diffusion.schedule=cosine"], "diffusion.schedule=cosine: allowed: su, linear"),
    ([*LP, "optimizer=sgd"], "optimizer=sgd: LoRA+ is stated for Adam; allowed: adam"),
    ([*RE, "model.heads=3"], "the head size width/heads must be an even integer"),
    (["experiment=gan_qp", "sim.target=images", "data=photo_patches", "data.patch=10"],
     "10x10 images; the DCGAN nets need a side divisible by 4"),
    (["experiment=monoflow", "sim.target=images", "data=photo_patches", "data.patch=10"],
     "10x10 images; the DCGAN nets need a side divisible by 4"),
    (["experiment=next_patch", "sim.target=ring8"], "sim.target='ring8': allowed: bimodal, images"),
    (["experiment=wgan_gn", "sim.target=cubes"], "sim.target='cubes': allowed: ring8, grid25, moons, images"),
    (["experiment=wgan_gn", "sim.wgan_gp_lambda=0.5"], "sim.wgan_gp_lambda=0.5 must be one of sim.wgan_gp_lambdas"),
    (["experiment=gan_qp", "sim.wgan_gp_lambdas=[0.1,-1]"], "sim.wgan_gp_lambdas=[0.1, -1]: every entry must be > 0"),
    (["experiment=nbce", "finetune.format=paragraphs"], "finetune.format='paragraphs': allowed: single, reading"),
    # parsing and the environment
    ([*FSQ, "data=cifar10", "data.root=/nonexistent"], "data=cifar10 needs a local copy or the network"),
    (["resume=/nonexistent/run"], "not a run folder"),
    ([*FSQ, "trainer.steps=[1"], "trainer.steps=[1"),
    ([*FSQ, "=5"], "cannot parse override '=5'"),
    ([*FSQ, "trainer.steps"], "cannot parse override 'trainer.steps'"),
    ([*FSQ, "quantizer.codebook_size=16,64"], "several values need -m"),
    ([*FSQ, "optimizer.lr=" + "1" * 5000], "optimizer.lr="),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_input_gets_one_clear_line(kexue, tmp_path, args, message):
    code, out = kexue(*args)
    assert code == 2, out
    lines = [line for line in out.strip().splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("error: ") and message in lines[0], out
    assert len(lines[0]) < 400, "a long value must not be echoed whole"
    assert "Traceback" not in out
    assert not (tmp_path / "outputs").exists()  # nothing half-written


def test_there_are_at_least_40_bad_inputs():
    assert len(BAD) >= 40


def test_a_bad_cell_in_a_sweep_stops_it_before_any_job(kexue, tmp_path):
    code, out = kexue("-m", *FSQ, "quantizer.codebook_size=16,1000")
    assert code == 2 and "no FSQ level table entry" in out
    assert not (tmp_path / "outputs").exists()


def test_every_config_key_has_a_rule_and_every_experiment_passes_its_rules():
    """Every key of every experiment at every scale (and of every group option) has a rule, and the defaults
    pass them: a shared rule written for one experiment's key must not reject another's value (the CI failure
    of sim.checkpoints: monoflow's count against simsiam_dynamics' list of times)."""
    from hydra import compose, initialize_config_dir

    from kexue_runs import config_dir
    from kexue_runs.preflight.overrides import experiments, group_options
    from kexue_runs.preflight.schema_rules import ConfigError, check_schema, uncovered_keys

    missing, rejected = set(), []
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        for name in experiments():
            for scale in ("smoke", "cpu", "gpu"):
                cfg = compose("config", overrides=[f"experiment={name}", f"scale={scale}"])
                missing |= set(uncovered_keys(cfg))
                try:
                    check_schema(cfg)
                except ConfigError as err:
                    rejected.append(f"{name} {scale}: {err}")
        for group in ("optimizer", "quantizer", "data", "arch"):
            for option in group_options(group):
                cfg = compose("config", overrides=["experiment=fsq_vs_vq", f"{group}={option}"]
                              if group != "arch" else ["experiment=rerope_extrapolation", f"arch={option}"])
                missing |= set(uncovered_keys(cfg))
    assert not missing, f"keys without a rule in kexue_runs/preflight/schema.yaml: {sorted(missing)}"
    assert not rejected


def test_a_key_declared_twice_in_the_shared_schema_is_an_error(tmp_path):
    from kexue_runs.preflight import schema_rules

    (tmp_path / "schema.yaml").write_text("sim.n: {type: int}\nsim.n: {type: list}\n")
    with pytest.raises(ValueError, match="more than once"):
        schema_rules.load_rules(str(tmp_path / "schema.yaml"))


def test_schema_rules_flag_what_they_should():
    from kexue_runs.preflight.schema_rules import problem

    assert problem(3, {"type": "int", "min": 1}) is None
    assert problem(True, {"type": "int"}) == "must be an integer"
    assert problem(0.5, {"type": "number", "gt": 0, "lt": 1}) is None
    assert problem(1.0, {"type": "number", "lt": 1}) == "must be < 1"
    assert problem(float("nan"), {"type": "number"}) == "must be finite"
    assert problem(None, {"type": "int", "nullable": True}) is None
    assert problem([1, 2], {"type": "list", "items": {"type": "int", "min": 2}}).startswith("every entry must be >= 2")


def test_bf16_is_refused_where_the_cpu_has_no_native_bf16(kexue, tmp_path, monkeypatch):
    from kexue_runs.preflight import validate

    monkeypatch.setattr(validate, "bf16_supported", lambda device: False)
    code, out = kexue(*FSQ, "trainer.precision=bf16-mixed")
    assert code == 2 and "no native bf16" in out and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()
