"""make gpu-dryrun: every experiment at its gpu shapes on the CPU, cut to 2 steps of each phase (issue #32).

    make gpu-dryrun                                   # all 30 experiments, ~10 minutes on one core
    python scripts/gpu_dryrun.py --only fsq_vs_vq     # some of them
    python scripts/gpu_dryrun.py --only fsq_vs_vq --scale smoke   # the machinery at smoke size (the tests)

Each experiment runs through the ordinary CLI at `scale=gpu trainer.device=cpu trainer.threads=1`, with its phase
lengths cut by a rule on the composed config's key names, not per experiment (CUT below): every step, iteration or
epoch count to 2, every sample or data-size count to 512, every replicate count to 2. The model, batch and sequence
shapes are the gpu ones. No code of the package changes, so no code hash of a normal run does; the cut is ordinary
overrides, and the runs go to a temporary folder. While it runs, the child process measures (Meter below):

- FLOPs (torch.utils.flop_counter.FlopCounterMode) and aten ops (each a kernel launch on a GPU);
- the bytes autograd saves for backward within one optimizer step, each storage once: the activation memory of a
  step, the same in float32 on a GPU;
- the parameters that take part in a forward pass, their gradients and every live optimizer's state, at its peak;
- optimizer steps, wall time, and the process's peak RSS.

The full gpu run is then extrapolated (extrapolate below): one more run per group of cut keys that share a full value,
with that group doubled, gives the FLOPs, ops and optimizer steps each unit of those keys adds; the full run is the
cut run plus those marginals times the keys' full values, times (full replicates / 2). Time on an H100 is
FLOPs / H100_FLOPS + ops x LAUNCH_S; memory is parameters + gradients + optimizer state + activations + the CUDA
context. Where the gpu sizing names data=cifar10 (not on this machine) the run uses a stand-in of CIFAR-10's shape
(random 32x32x3 images through the same `datasets` loading path) and the table says so.

Writes outputs/bench/gpu-dryrun-<stamp>.json and .md (a table a closing note can paste). Exit 0 when every experiment
ran, 1 when any did not, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import weakref
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# -- the cut: by the last component of a key's name, the same rule for every experiment --------------------------
CAPS = {
    "steps": 2,  # steps (iterations, epochs) of each phase; a list of step counts (eval.steps) to 2, 3, 4, ...
    "replicates": 2,  # seeds, replicates: 2, so statistics over them still have a spread
    "data": 512,  # data held (train/val sizes, streams): what 2 steps of a 256 batch need
    "evaluated": 16,  # samples a network generates or scores for an evaluation (ddim_cifar: 8 a shard, 2 shards)
    "partitions": 2,  # shards that split a fixed number of samples (the samples are cut on their own)
    "draws": 4096,  # Monte Carlo draws of a computation (vectorised: cheap, and too few give empty cells)
    "per_class": 2,  # examples per class pushed through a network for features
}
STEP_NAMES = {"steps", "iterations", "epochs", "iters"}
STEP_SUFFIX = re.compile(r".+_(steps|iterations|iters)$")
# inner-loop ratios, schedules and algorithm shapes, not phase lengths: the same at every scale of a run
NOT_CUT = {"d_steps", "critic_steps", "diffusion_steps", "log_every", "eval_every", "checkpoint_every", "seed",
           "warmup_steps", "halving_steps"}
REPLICATE_NAMES = {"replicates", "seeds", "adam_seeds"}
DATA_NAMES = {"train_size", "val_size", "markov_length", "test_bytes"}
EVALUATED_NAMES = {"eval_samples", "val_samples", "particles", "eval_examples", "questions_per_shard", "eval_contexts"}
DRAW_NAMES = {"samples", "trials", "runs", "bound_points", "line_points", "ks_samples", "random_draws"}
SHARD_NAMES = {"shards"}
CUT_SECTIONS = ("trainer", "pretrain", "finetune", "sim", "eval", "data", "control", "gmm", "lora")

# Where a gpu shape cannot run on this machine at all, the dry run measures a smaller one and says so (the table's
# status). The only one: linear_attention_cost times plain softmax attention on the host's CPU (by design: the
# post's claim is about CPU-visible FLOP ratios); at n = 16384 its 12-head score matrix and softmax take
# 2 x 12 x 16384^2 x 4 B = 24 GiB, all of this shared machine's memory (a GPU host's 128 GiB hold it).
SMALLER = {"linear_attention_cost": (["sim.lengths=[32,128,512,1024,2048,4096,8192]"],
                                     "lengths to 8192: n=16384 needs 24 GiB of host memory (2 x 12 x n^2 x 4 B)", 1)}
# Where the gpu batch makes even the cut run too long for one core, these run at a batch cut by the
# factor given, and their FLOPs and activations are scaled up by it (an upper bound: evaluation does not grow with
# the training batch). ladder_side_tuning: 24 arm x task x seed jobs, each step a batch of 64 x 128 bytes through a
# 19M-parameter LM (about 0.9 TFLOP): 300 s were not enough at batch 64.
SMALLER_BATCH = {"ladder_side_tuning": (["sim.batch=8"], "batch 8 of 64, FLOPs and activations x 8", 8)}

# -- the H100 model (stated, not measured: no GPU has been lent to this project) -------------------------------------
# Runs are float32 (trainer.precision "32"; torch leaves TF32 matmuls off by default): an H100 SXM's float32 peak is
# 67 TFLOP/s; the small nets here sustain well under half of it, so 25 TFLOP/s. Each aten op is at least one kernel
# launch, about 8 us of launch and Python dispatch where the kernels are too small to hide it. The CUDA context and
# cuBLAS/cuDNN workspaces take about 0.5 GiB before the first tensor.
H100_FLOPS = 25e12
LAUNCH_S = 8e-6
CUDA_CONTEXT_BYTES = 512 * 2 ** 20


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def kind_of(key: str, value, siblings: dict | None = None) -> str | None:
    """What a config leaf counts ('steps', 'replicates', 'data', 'evaluated', 'draws', 'per_class', 'partitions'), or
    None: not cut. A list is cut only when it lists step counts (eval.steps: the samplers' step counts). Shards
    repeat the work where a sibling counts something per shard (questions_per_shard), else they split it."""
    section, last = key.split(".", 1)[0], key.rsplit(".", 1)[-1]
    if section not in CUT_SECTIONS or last in NOT_CUT:
        return None
    if isinstance(value, list):
        return "steps" if last in STEP_NAMES and value and all(is_count(v) for v in value) else None
    if not is_count(value):
        return None
    if last in REPLICATE_NAMES:
        return "replicates"
    if last in SHARD_NAMES:
        return "replicates" if any(k.endswith("_per_shard") for k in (siblings or {})) else "partitions"
    if last in STEP_NAMES or STEP_SUFFIX.match(last) or last == "max_tries":  # a search's tries: phases too
        return "steps"
    if last in DATA_NAMES:
        return "data"
    if last in EVALUATED_NAMES or (last == "samples" and section in ("eval", "gmm")):
        return "evaluated"
    if last in DRAW_NAMES:
        return "draws"
    if last.endswith("_per_class") and last != "small_per_class":
        return "per_class"
    return None


def cut_list(values: list[int], cap: int) -> list[int]:
    """Step counts cut to cap, cap + 1, ... in their order of size, each at most its own value: the list keeps
    its distinct entries (a sampler per step count)."""
    rank = {v: i for i, v in enumerate(sorted(set(values)))}
    return [min(v, cap + rank[v]) for v in values]


def size(value) -> int:
    return sum(value) if isinstance(value, list) else int(value)


def leaves(tree: dict, prefix: str = ""):
    """(dotted key, value, the mapping that holds it) for every leaf."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value, tree


def experiment_source(task: str) -> str:
    """The sources of the experiment's module and every package module it imports (the code hash's closure)."""
    sys.path.insert(0, str(REPO))
    from kexue_runs.lifecycle.codehash import imported, module_file

    todo, seen = [task], {}
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or name in seen:
            continue
        seen[name] = path.read_text()
        todo.extend(imported(name, path))
    return "\n".join(seen.values())


def lowest_allowed(key: str, rules: dict | None) -> int:
    """The smallest value the config schema allows for key (its min, or gt + 1): the cut never goes below it, or
    preflight would refuse the dry run (sim.markov_length >= 1000)."""
    if not rules:
        return 0
    sys.path.insert(0, str(REPO))
    from kexue_runs.preflight.schema_rules import rule_for

    rule = rule_for(key, rules) or {}
    low = [int(rule["min"])] if "min" in rule else []
    low += [int(rule["gt"]) + 1] if "gt" in rule else []
    return max(low, default=0)


def schema_rules(config: dict) -> dict:
    sys.path.insert(0, str(REPO))
    from kexue_runs.preflight.schema_rules import schema

    return schema() | (config.get("schema") or {})


def cut_plan(config: dict, source: str | None = None, rules: dict | None = None) -> list[dict]:
    """Every key the cut changes: {key, kind, full, cut, doubled}; warmup_steps follows the steps (at most 1).
    `doubled` is the value of the extra run that measures what each unit of the key costs. Every config has the
    trainer group, most experiments never read it: with the experiment's source given, a trainer key is cut only
    where that source reads it (`trainer.<name>`), so no extra run measures a key nothing uses."""
    plan = []
    for key, value, siblings in leaves(config):
        if source is not None and key.startswith("trainer.") and key not in source:
            continue
        kind = kind_of(key, value, siblings)
        if kind is None:
            if key.endswith(".warmup_steps") and is_count(value) and value > 1:
                plan.append({"key": key, "kind": "fixed", "full": value, "cut": 1, "doubled": 1})
            continue
        cap = CAPS[kind]
        if isinstance(value, list):
            cut, doubled = cut_list(value, cap), [min(v, 2 * c) for v, c in zip(value, cut_list(value, cap))]
        else:
            cut = min(value, max(cap, lowest_allowed(key, rules)))
            doubled = min(value, 2 * cut)
        if cut != value:
            plan.append({"key": key, "kind": kind, "full": value, "cut": cut, "doubled": doubled})
    return plan


# Kinds whose work is extrapolated (phases in sequence: the work grows in proportion). Data held (train/val sizes) and
# per-class feature passes are cut but not measured twice: loading and one feature pass are a small part of a gpu
# run (fsq_vs_vq's 10 evaluations of 10,000 images are under 1% of its 20,000 steps x 256), and each doubled run
# of a gpu-shape experiment costs as much as the cut run itself.
LINEAR = ("steps", "evaluated", "draws")


def groups_of(plan: list[dict]) -> dict[tuple, list[dict]]:
    """Keys measured together: those of the same full, cut and doubled size (one extra run for them all)."""
    groups: dict[tuple, list[dict]] = {}
    for c in plan:
        if c["kind"] in LINEAR:
            groups.setdefault((size(c["full"]), size(c["cut"]), size(c["doubled"])), []).append(c)
    return groups


def override(key: str, value) -> str:
    return f"{key}=[{','.join(str(v) for v in value)}]" if isinstance(value, list) else f"{key}={value}"


def group_name(sizes: tuple) -> str:
    return f"x{sizes[0]}-{sizes[1]}"


def variants(plan: list[dict]) -> list[tuple[str, list[str]]]:
    """The cut run, then one run per group of keys with that group at its doubled values."""
    out = [("base", [override(c["key"], c["cut"]) for c in plan])]
    for sizes, members in sorted(groups_of(plan).items()):
        keys = {c["key"] for c in members}
        out.append((group_name(sizes), [override(c["key"], c["doubled"] if c["key"] in keys else c["cut"])
                                        for c in plan]))
    return out


MEASURED = ("flops", "ops", "optimizer_steps")


def extrapolate(plan: list[dict], runs: dict[str, dict]) -> dict:
    """The full run's FLOPs, ops and optimizer steps from the cut run and the doubled ones (see the docstring).

    Linear in every cut key of a LINEAR kind (phases run one after another), multiplied by the replicate keys'
    full/cut ratio (a replicate repeats the run; an upper bound where some work is shared)."""
    base = runs["base"]
    full = {m: float(base[m]) for m in MEASURED}
    for sizes, _members in groups_of(plan).items():
        doubled = runs.get(group_name(sizes))
        if doubled is None:
            raise KeyError(f"no run with the keys of full size {sizes[0]} doubled")
        size_full, size_cut, size_doubled = sizes
        for m in MEASURED:
            # counts, not timings: exact; a negative difference comes from an adaptive loop, and counts as none
            per_unit = max(0.0, (doubled[m] - base[m]) / (size_doubled - size_cut))
            full[m] += per_unit * (size_full - size_cut)
    factor = 1.0
    for c in plan:
        if c["kind"] == "replicates":
            factor *= c["full"] / c["cut"]
    return {m: v * factor for m, v in full.items()} | {"replicate_factor": factor}


def estimate(full: dict, base: dict, batch_factor: float = 1) -> dict:
    full = full | {"flops": full["flops"] * batch_factor}
    seconds = full["flops"] / H100_FLOPS + full["ops"] * LAUNCH_S
    memory = base["resident_bytes"] + base["activation_bytes"] * batch_factor + CUDA_CONTEXT_BYTES
    return {"gpu_seconds": seconds, "gpu_memory_bytes": memory, "flops": full["flops"], "ops": full["ops"],
            "optimizer_steps": full["optimizer_steps"]}


# -- the child: runs the CLI in-process under the meter ----------------------------------------------------------

class Meter:
    """FLOPs, aten ops, activation bytes per optimizer step, and the peak of parameters + gradients + optimizer
    state, for everything torch does inside the `with`. One dispatch mode counts ops and FLOPs (FLOPs by
    torch.utils.flop_counter's formulas; FlopCounterMode itself tracks modules with hooks that autograd.grad, as in
    a gradient penalty, refuses)."""

    def __init__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils.flop_counter import flop_registry

        meter = self

        class Count(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                if not func.is_view:  # a view launches no kernel
                    meter.ops += 1
                formula = flop_registry.get(func._overloadpacket)
                if formula is not None:
                    meter.flops += int(formula(*args, **kwargs, out_val=out))
                return out

        self.torch = torch
        self.mode = Count()
        self.flops = 0
        self.ops = 0
        self.optimizer_steps = 0
        self.step_storages: dict[int, int] = {}  # storage pointer -> bytes saved for backward since the last step
        self.activation_bytes = 0
        self.resident_bytes = 0
        self.params: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self.param_count = 0
        self.optimizers: weakref.WeakSet = weakref.WeakSet()
        self._handles = []

    def _pack(self, tensor):
        try:
            storage = tensor.untyped_storage()
            self.step_storages[storage.data_ptr() or id(storage)] = storage.nbytes()
        except (RuntimeError, NotImplementedError):  # tensors without a storage (sparse, nested)
            self.step_storages[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    def _forward(self, module, args):
        for p in module.parameters(recurse=False):
            self._param(p)

    def _param(self, p) -> None:
        """A parameter in use. The count is the most parameters alive at once (models of arms that run one after
        another are not added up); the weak mapping forgets a freed one, whose id Python may give a new one."""
        if self.params.get(id(p)) is not p:
            self.params[id(p)] = p
            self.param_count = max(self.param_count, sum(q.numel() for q in list(self.params.values())))

    def _after_step(self, optimizer, args, kwargs):
        self.optimizer_steps += 1
        self.optimizers.add(optimizer)
        self.activation_bytes = max(self.activation_bytes, sum(self.step_storages.values()))
        self.step_storages.clear()
        tensors = {id(p): p for p in list(self.params.values())}
        for opt in list(self.optimizers):
            for group in opt.param_groups:
                for p in group["params"]:  # parameters outside any nn.Module (batched nets) too
                    self._param(p)
                    tensors[id(p)] = p
        resident = 0
        for p in tensors.values():
            resident += p.numel() * p.element_size()
            if p.grad is not None:
                resident += p.grad.numel() * p.grad.element_size()
        for opt in list(self.optimizers):
            for state in opt.state.values():
                resident += sum(v.numel() * v.element_size() for v in state.values()
                                if isinstance(v, self.torch.Tensor) and v.dim() > 0)
        self.resident_bytes = max(self.resident_bytes, resident)

    def __enter__(self):
        torch = self.torch
        from torch.nn.modules.module import register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self._handles = [register_module_forward_pre_hook(self._forward),
                         register_optimizer_step_post_hook(self._after_step)]
        self._saved = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._saved.__enter__()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)
        self._saved.__exit__(*exc)
        for handle in self._handles:
            handle.remove()
        # a run without an optimizer (a computation): its saved bytes still count as one step's
        self.activation_bytes = max(self.activation_bytes, sum(self.step_storages.values()))
        return False

    def result(self) -> dict:
        return {"flops": self.flops, "ops": self.ops,
                "optimizer_steps": self.optimizer_steps, "activation_bytes": self.activation_bytes,
                "resident_bytes": self.resident_bytes, "params": self.param_count}


def child(spec_path: str) -> int:
    """Run each variant of one experiment in this process, under the meter; write the results as JSON."""
    spec = json.loads(Path(spec_path).read_text())
    from hydra.core.global_hydra import GlobalHydra

    from kexue_runs import cli

    results = {}
    for name, overrides in spec["variants"]:
        root = Path(spec["root"]) / name
        GlobalHydra.instance().clear()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.time()
        sys.argv = ["kexue-run"]
        with Meter() as meter:
            try:
                code = cli.main([*spec["common"], *overrides, f"output_root={root}"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        entry = meter.result() | {"exit": code, "wall_s": round(time.time() - started, 2),
                                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                                  "rss_grew_mib": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                         - rss_before) / 1024, 1)}
        runs = sorted((root / "runs").glob("*/*"))
        if runs:
            try:
                summary = json.loads((runs[-1] / "summary.json").read_text())
                entry |= {"status": summary["status"], "steps": summary["timing"]["steps"],
                          "error": (summary.get("error") or "").strip().splitlines()[-1:]}
            except (OSError, json.JSONDecodeError, KeyError):
                entry["status"] = "no summary"
        else:
            entry["status"] = "refused"
        results[name] = entry
        Path(spec["out"]).write_text(json.dumps(results))
        if entry["status"] != "ok":
            break  # the doubled runs would fail the same way
    return 0


# -- the parent: one child process per experiment ----------------------------------------------------------------

def composed(name: str, scale: str) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from kexue_runs import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={name}", f"scale={scale}"])
    return OmegaConf.to_container(cfg, resolve=True)


def wants_cifar10(name: str, scale: str) -> bool:
    """The gpu sizing names data=cifar10 as the data its run is meant for."""
    path = REPO / "configs" / "sizing" / name / f"{scale}.yaml"
    return path.exists() and "data=cifar10" in path.read_text()


def make_cifar10_standin(folder: Path, train: int, test: int) -> Path:
    """Random 32x32x3 uint8 images and labels in CIFAR-10's `datasets` layout (img, label), saved with
    save_to_disk: the loader reads it through the same path as a local copy of the real set."""
    import datasets
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)

    def split(n):
        images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]
        features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
        return datasets.Dataset.from_dict({"img": images, "label": rng.integers(0, 10, n).tolist()}, features=features)

    path = folder / "cifar10-standin"
    if not (path / "dataset_dict.json").exists():
        datasets.DatasetDict({"train": split(train), "test": split(test)}).save_to_disk(str(path))
    return path


def run_child(spec: dict, tmp: Path, timeout: float) -> tuple[dict, dict]:
    """The spec's variants in one child process: (their results, what the child said if it failed)."""
    spec_path = Path(spec["out"]).with_suffix(".spec.json")
    spec_path.write_text(json.dumps(spec))
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
                        "MPLBACKEND": "Agg"}
    said = {}
    try:
        out = subprocess.run([sys.executable, __file__, "--child", str(spec_path)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=timeout)
        said["child_exit"] = out.returncode
        if out.returncode:
            said["child_error"] = (out.stdout + out.stderr).strip().splitlines()[-3:]
    except subprocess.TimeoutExpired:
        said["child_exit"] = "timeout"
    try:
        return json.loads(Path(spec["out"]).read_text()), said
    except (OSError, json.JSONDecodeError):
        return {}, said


def dry_run(name: str, scale: str, tmp: Path, timeout: float, smaller_batch: bool = True) -> dict:
    """The cut run of one experiment: does it start and run at its gpu shapes; params, activations, optimizer state."""
    config = composed(name, scale)
    extra, standin = [], None
    if wants_cifar10(name, scale):
        standin = make_cifar10_standin(tmp, CAPS["data"], CAPS["data"])
        extra = ["data=cifar10", f"data.root={standin}"]
        config["data"] = composed_data_cifar10()
    plan = cut_plan(config, experiment_source(config["task"]), schema_rules(config))
    smaller, why_smaller, factor = SMALLER.get(name, ([], None, 1)) if scale == "gpu" else ([], None, 1)
    if smaller_batch and scale == "gpu" and name in SMALLER_BATCH:
        smaller, why_smaller, factor = SMALLER_BATCH[name]
    common = [f"experiment={name}", f"scale={scale}", "trainer.device=cpu", "trainer.threads=1",
              "trainer.progress=false", "seed=0", *extra, *smaller]
    entry = {"experiment": name, "scale": scale, "standin": "cifar10 (random images, same shape)" if standin else None,
             "smaller": why_smaller, "batch_factor": factor, "common": common, "cut": plan, "runs": {}}
    started = time.time()
    runs = run_variants(entry, variants(plan)[:1], tmp, timeout, "cut")
    base = runs.get("base")
    if (base is None or base.get("status") != "ok") and any(c["kind"] == "draws" for c in plan) \
            and entry.get("child_exit") != "timeout":
        # Monte Carlo draws cut small can leave a cell empty (a 0/0) where the full count never does: the
        # computation again with its draws at full size, and the table says so
        entry["draws_kept"] = f"the cut run ended {(base or {}).get('status')}: {(base or {}).get('error')}; " \
                              f"draws kept at full size"
        entry["cut"] = [c for c in plan if c["kind"] != "draws"]
        entry["runs"] = {}
        runs = run_variants(entry, variants(entry["cut"])[:1], tmp, timeout - (time.time() - started), "draws-kept")
        base = runs.get("base")
    entry["wall_s"] = round(time.time() - started, 1)
    if base is None or base.get("status") != "ok":
        entry["status"] = (base or {}).get("status") or ("timeout" if entry["child_exit"] == "timeout" else "no run")
        entry["error"] = (base or {}).get("error") or entry.get("child_error")
        return entry
    entry |= {"status": "ok (no estimate)", "params": base["params"],
              "activation_bytes": base["activation_bytes"] * entry["batch_factor"],
              "resident_bytes": base["resident_bytes"], "peak_rss_mib": base["rss_grew_mib"]}
    if base["ops"] == 0:
        entry["note"] = "no torch work: a CPU computation (numpy), nothing for a GPU"
    return entry


def run_variants(entry: dict, chosen: list, tmp: Path, timeout: float, label: str) -> dict:
    name = entry["experiment"]
    spec = {"common": entry["common"], "variants": chosen, "root": str(tmp / name / label),
            "out": str(tmp / f"{name}-{label}.json")}
    runs, said = run_child(spec, tmp, max(10.0, timeout))
    entry.update(said)
    entry["runs"].update(runs)
    return runs


def add_estimate(entry: dict, tmp: Path, timeout: float) -> None:
    """The doubled runs, then the extrapolation to the full gpu run."""
    started = time.time()
    plan = entry["cut"]
    chosen = variants(plan)[1:]
    if chosen:
        run_variants(entry, chosen, tmp, timeout, "doubled")
    entry["wall_s"] = round(entry["wall_s"] + time.time() - started, 1)
    runs = entry["runs"]
    bad = [n for n, _ in chosen if runs.get(n, {}).get("status") != "ok"]
    if bad:
        entry["error"] = f"doubled run {bad[0]}: " + (f"ended {runs[bad[0]]['status']}" if bad[0] in runs
                                                       else f"not finished in {timeout:.0f} s")
        return
    full = extrapolate(plan, runs)
    entry["estimate"] = estimate(full, runs["base"], entry.get("batch_factor", 1)) | {
        "replicate_factor": full["replicate_factor"]}
    entry["status"] = "ok"


def composed_data_cifar10() -> dict:
    import yaml

    return yaml.safe_load((REPO / "configs" / "data" / "cifar10.yaml").read_text())


def human_bytes(n: float) -> str:
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MiB"


def human_seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.0f} min"
    return f"{s:.1f} s" if s >= 0.1 else "< 0.1 s"


def status_text(e: dict) -> str:
    notes = [e["status"]]
    if e.get("draws_kept"):
        notes.append("draws at full size")
    if e.get("smaller"):
        notes.append("measured smaller: " + e["smaller"])
    if e.get("note"):
        notes.append("numpy only: no GPU work")
    if e.get("error") and e["status"] != "ok":
        notes.append(str(e["error"])[:120])
    return "; ".join(notes).replace("|", "/")


def table_rows(report: dict) -> list[list[str]]:
    rows = []
    for e in report["experiments"]:
        est = e.get("estimate") or {}
        rows.append([e["experiment"], f"{e['params']:,}" if "params" in e else "-",
                     f"{e['activation_bytes'] / 2 ** 20:.1f}" if "activation_bytes" in e else "-",
                     "n/a (CPU)" if e.get("note") else human_bytes(est["gpu_memory_bytes"]) if est else "-",
                     "n/a (CPU)" if e.get("note") else human_seconds(est["gpu_seconds"]) if est else "-",
                     "yes: " + e["standin"] if e.get("standin") else "no", status_text(e)])
    return rows


HEADER = ["experiment", "params", "activation MiB/step", "est. GPU memory", "est. GPU time", "stand-in data",
          "status"]


def markdown(report: dict) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report)]
    caps = ", ".join(f"{k} {v}" for k, v in CAPS.items())
    note = (f"\nscale={report['scale']} on the CPU (1 thread), cut to: {caps}; estimates for one H100 at "
            f"{H100_FLOPS / 1e12:.0f} TFLOP/s float32 sustained plus {LAUNCH_S * 1e6:.0f} us per op; memory = params "
            f"+ grads + optimizer "
            f"state + activations + {CUDA_CONTEXT_BYTES / 2 ** 20:.0f} MiB CUDA context. `make gpu-dryrun`, "
            f"{report['elapsed_s']:.0f} s.\n")
    return "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="experiments to run (default: all)")
    parser.add_argument("--scale", default="gpu", choices=["gpu", "cpu", "smoke"],
                        help="the scale whose shapes run (default gpu; smoke for the tests)")
    parser.add_argument("--out", default=str(REPO / "outputs" / "bench"), help="folder for the JSON and markdown")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per experiment (default 300)")
    parser.add_argument("--base-only", action="store_true",
                        help="only the cut run of each experiment: does it start at its gpu shapes (no estimate)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds in all: the doubled runs stop when it is spent (their rows say so)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child)
    from kexue_runs.claims.catalog import experiment_files

    names = [p.stem for p in experiment_files()]
    if args.only:
        unknown = [n for n in args.only if n not in names]
        if unknown:
            print(f"error: --only {' '.join(unknown)}: no such experiment; allowed: {', '.join(names)}",
                  file=sys.stderr)
            return 2
        names = [n for n in names if n in args.only]
    started = time.time()
    report = {"stamp": datetime.now().isoformat(timespec="seconds"), "scale": args.scale,
              "caps": CAPS,
              "model": {"h100_flops": H100_FLOPS, "launch_s": LAUNCH_S, "cuda_context_bytes": CUDA_CONTEXT_BYTES},
              "experiments": []}
    deadline = started + args.budget if args.budget else None
    with tempfile.TemporaryDirectory(prefix="gpu-dryrun-") as tmp:
        # first every experiment's cut run (can it start at its gpu shapes?), then the doubled runs that make the
        # estimates, quickest experiment first, while the budget lasts
        for name in names:
            entry = dry_run(name, args.scale, Path(tmp), args.timeout)
            report["experiments"].append(entry)
            print(f"{name}: cut run {entry['status']} ({entry['wall_s']} s)"
                  + (f": {entry['error']}" if entry.get("error") else ""), flush=True)
        if not args.base_only:
            for entry in sorted(report["experiments"], key=lambda e: e["wall_s"]):
                if not entry["status"].startswith("ok"):
                    continue
                left = args.timeout if deadline is None else min(args.timeout, deadline - time.time())
                if left < 10:
                    entry["error"] = "no estimate: the budget was spent"
                    continue
                add_estimate(entry, Path(tmp), left)
                row = table_rows({"experiments": [entry]})[0]
                print("  ".join(f"{h}={v}" for h, v in zip(HEADER, row)) + f"  ({entry['wall_s']} s)", flush=True)
    report["elapsed_s"] = round(time.time() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out / f"gpu-dryrun-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    md = markdown(report)
    path.with_suffix(".md").write_text(md)
    print(md)
    print(f"wrote {path} and {path.with_suffix('.md')} ({report['elapsed_s']} s)")
    return 0 if all(e["status"].startswith("ok") for e in report["experiments"]) else 1


if __name__ == "__main__":
    sys.exit(main())
