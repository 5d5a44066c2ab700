"""Preflight: compose every cell of a command line and check it before Hydra creates any folder.

Each problem becomes one ConfigError line naming what is wrong and what is allowed: an unknown
experiment or group option, an unknown key, a value of the wrong type, an impossible value.
"""

from __future__ import annotations

import importlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import config_dir
from .errors import ConfigError

MAX_CELLS = 2000

# Generic rules for the shared groups; experiments add their own in validate(cfg).
POSITIVE = ("trainer.steps", "trainer.batch_size", "trainer.eval_every", "trainer.log_every",
            "trainer.checkpoint_every", "optimizer.lr")
NON_NEGATIVE = ("seed", "optimizer.weight_decay", "optimizer.momentum", "optimizer.eps")
CHOICES = {"trainer.device": ("auto", "cpu", "cuda")}


def group_options(group: str) -> list[str]:
    root = config_dir() / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def experiments() -> list[str]:
    return group_options("experiment")


def expand(overrides: list[str]) -> list[list[str]]:
    """The cartesian cells of a command line's sweep overrides (Hydra's basic sweeper semantics)."""
    parsed = []
    for item in overrides:
        try:
            parsed += OverridesParser.create().parse_overrides([item])
        except HydraException as exc:
            reason = "; ".join(line.strip() for line in str(exc).splitlines()[1:2] if line.strip())
            raise ConfigError(f"cannot parse override '{item}' ({reason}); write key=value, lists as "
                              f"key=[a,b], sweeps (with -m) as key=a,b") from None
    lists = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ConfigError(f"{key}: range and interval sweeps are not supported; list the values: a,b,c")
            lists.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            lists.append([f"{key}={override.get_value_element_as_str()}"])
    return [list(cell) for cell in itertools.product(*lists)]


def first_line(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), message)


def explain(exc: Exception, base: DictConfig | None) -> str:
    """Turn Hydra/OmegaConf's multi-line messages into one line with what is allowed."""
    message = str(exc)
    missing = re.search(r"Could not find '([^']+)'", message)
    if missing:
        group, _, option = missing.group(1).rpartition("/")
        if group.startswith("sizing") or not group:
            return first_line(message)
        return f"unknown {group} '{option}'; allowed: {', '.join(group_options(group))}"
    bad_key = re.search(r"Could not override '([^']+)'", message) or re.search(r"Key '([^']+)' is not in struct",
                                                                                message)
    if bad_key:
        key = bad_key.group(1)
        parent = key.rpartition(".")[0]
        node = OmegaConf.select(base, parent) if (base is not None and parent) else base
        known = ", ".join(str(k) for k in node.keys()) if isinstance(node, DictConfig) else "see --cfg job"
        return f"unknown key '{key}'; keys{' under ' + parent if parent else ''}: {known}"
    return first_line(message)


def type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), type(value).__name__)


def check_types(cfg: DictConfig, default: DictConfig, cell: list[str]) -> None:
    """A value override must keep the type of the value it replaces (an int may stand for a float)."""
    for item in cell:
        key, _, _ = item.partition("=")
        if key.startswith(("+", "~", "hydra.")):
            continue
        old, new = OmegaConf.select(default, key), OmegaConf.select(cfg, key)
        if old is None or new is None or isinstance(old, DictConfig):
            continue
        old_py = OmegaConf.to_container(old) if OmegaConf.is_config(old) else old
        new_py = OmegaConf.to_container(new) if OmegaConf.is_config(new) else new
        # strings name options (their own rules say what is allowed); an int may stand for a float
        same = (type(old_py) is type(new_py) or (isinstance(old_py, float) and type(new_py) is int)
                or (isinstance(old_py, str) and not isinstance(new_py, dict)))
        if not same:
            raise ConfigError(f"{key}={new_py!r} has the wrong type: expected {type_name(old_py)} "
                              f"(default {old_py!r})")


def check_values(cfg: DictConfig) -> None:
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if value is not None and not value > 0:
            raise ConfigError(f"{key}={value}: must be > 0")
    for key in NON_NEGATIVE:
        value = OmegaConf.select(cfg, key)
        if value is not None and value < 0:
            raise ConfigError(f"{key}={value}: must be >= 0")
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value is not None and value not in allowed:
            raise ConfigError(f"{key}={value}: allowed: {', '.join(allowed)}")
    if cfg.trainer.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("trainer.device=cuda: no CUDA device here; allowed: auto, cpu")
    if cfg.get("data") and cfg.data.get("name"):
        from .data.images import check_available

        check_available(cfg.data)
    module = importlib.import_module(cfg.task)
    check_world_size(cfg, module)
    if hasattr(module, "validate"):
        module.validate(cfg)


def check_world_size(cfg: DictConfig, module) -> None:
    """Under torchrun: the experiment must train data-parallel, and the global batch must split evenly."""
    from .distributed import from_env

    world = from_env().world_size
    if world == 1:
        return
    if not getattr(module, "DATA_PARALLEL", False):
        from .catalog import data_parallel_experiments

        raise ConfigError(f"experiment={cfg.name} does not run under torchrun (WORLD_SIZE={world}); allowed: "
                          f"{', '.join(data_parallel_experiments())}")
    if int(cfg.trainer.batch_size) % world:
        raise ConfigError(f"trainer.batch_size={cfg.trainer.batch_size} does not split over {world} processes; "
                          f"it must be a multiple of {world}")


def compose_cell(cell: list[str], return_hydra: bool = False) -> DictConfig:
    return compose(config_name="config", overrides=cell, return_hydra_config=return_hydra)


@dataclass
class Plan:
    """What a validated command line will do: its jobs, and for a sweep the grids and the folder."""

    jobs: int
    grids: list[list[str]] = field(default_factory=lambda: [[]])  # extra overrides per Hydra call
    sweep_dir: str | None = None


def compose_job(overrides: list[str]) -> DictConfig:
    """The job config of one run, composed without Hydra's app (torchrun's non-zero ranks)."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="kexue-run"):
            return compose_cell(overrides)
    finally:
        GlobalHydra.instance().clear()


def preflight(overrides: list[str], multirun: bool) -> Plan:
    """Validate every cell of the command line before anything runs or is written."""
    from .distributed import from_env

    if multirun and from_env().enabled:
        raise ConfigError("-m under torchrun: torchrun runs one experiment on several processes; "
                          "sweep with a launcher instead (hydra/launcher=joblib, slurm)")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="kexue-run"):
            return plan_and_check(overrides, multirun)
    finally:
        GlobalHydra.instance().clear()


def plan_and_check(overrides: list[str], multirun: bool) -> Plan:
    cells = expand(overrides)
    if not multirun:
        if len(cells) > 1:
            raise ConfigError(f"{next(o for o in overrides if ',' in o.split('=', 1)[-1])}: several values "
                              f"need -m (a sweep); one run takes one value")
        cells = [overrides]
    try:
        head = compose_cell(cells[0], return_hydra=multirun)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(explain(exc, safe_base())) from None
    plan = Plan(jobs=len(cells))
    if multirun:
        # Grids from config (sweep=<name>, or hydra.sweeper.params): a command-line value wins.
        given = {c.split("=", 1)[0].lstrip("+~") for c in cells[0]}
        grids = [dict(g) for g in head.get("sweep_grids") or []] or [{}]
        plan.grids = [[f"{k}={v}" for k, v in g.items() if k not in given] for g in grids]
        params = [f"{k}={v}" for k, v in (head.hydra.sweeper.get("params") or {}).items() if k not in given]
        cells = [cell + more for grid in plan.grids for cell in cells for more in expand(grid + params)]
        plan.jobs = len(cells)
        plan.sweep_dir = head.hydra.sweep.dir
    if len(cells) > MAX_CELLS:
        raise ConfigError(f"the sweep has {len(cells)} jobs; at most {MAX_CELLS} are allowed in one call")
    defaults: dict[tuple, DictConfig] = {}
    groups_here = top_groups()
    for cell in cells:
        try:
            cfg = compose_cell(cell)
        except (HydraException, OmegaConfBaseException) as exc:
            raise ConfigError(explain(exc, safe_base())) from None
        if cfg.get("name") is None or cfg.get("task") is None:
            raise ConfigError(f"no experiment chosen: kexue-run experiment=<name>; allowed: {', '.join(experiments())}")
        groups = tuple(c for c in cell if c.split("=", 1)[0] in groups_here)
        if groups not in defaults:
            defaults[groups] = compose_cell(list(groups))
        check_types(cfg, defaults[groups], cell)
        check_values(cfg)
    return plan


def top_groups() -> set[str]:
    return {p.name for p in config_dir().iterdir() if p.is_dir()}


def safe_base() -> DictConfig | None:
    try:
        return compose(config_name="config", overrides=[])
    except Exception:
        return None


def resume_overrides(run_dir: str) -> list[str]:
    """`resume=<run dir>`: the killed run's own overrides, pointed back at its folder."""
    from .runfiles import saved_overrides

    path = Path(run_dir)
    if not (path / ".hydra" / "overrides.yaml").is_file():
        raise ConfigError(f"resume={run_dir}: not a run folder (no .hydra/overrides.yaml); "
                          f"give a folder under outputs/runs/<experiment>/")
    kept = [o for o in saved_overrides(path) if not o.startswith(("resume=", "hydra.run.dir="))]
    return kept + [f"resume={path}", f"hydra.run.dir={path}"]
