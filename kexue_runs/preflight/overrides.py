"""Hydra overrides: a command line parsed into its cells (key=value, sweeps, ~deletions), its group options and
launcher checked, Hydra's composition errors explained in one line, and a killed run's own overrides for resume=."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from .. import config_dir
from ..common.errors import ConfigError, some_of
from .schema_rules import SPEC


def group_options(group: str) -> list[str]:
    root = config_dir() / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def experiments() -> list[str]:
    return group_options("experiment")


def expand(overrides: list[str]) -> list[list[str]]:
    """The cartesian cells of a command line's sweep overrides (Hydra's basic sweeper semantics)."""
    parsed = []
    for item in overrides:
        hint = "write key=value, lists as key=[a,b], sweeps (with -m) as key=a,b"
        if item.startswith("~"):
            check_deletion(item)
            if "=" not in item:  # ~group: Hydra's grammar, kept as given
                parsed.append(item)
                continue
        if "=" not in item or item.split("=", 1)[0].lstrip("+~") == "":
            raise ConfigError(f"cannot parse override '{short_text(item)}' (no key=value); {hint}")
        try:
            parsed += OverridesParser.create().parse_overrides([item])
        except (HydraException, ValueError) as exc:
            reason = "; ".join(line.strip() for line in str(exc).splitlines()[1:2] if line.strip()) or \
                short_text(first_line(str(exc)))
            raise ConfigError(f"cannot parse override '{short_text(item)}' ({reason}); {hint}") from None
    lists = []
    for override in parsed:
        if isinstance(override, str):
            lists.append([override])
            continue
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise ConfigError(f"{key}: range and interval sweeps are not supported; list the values: a,b,c")
            lists.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            lists.append([f"{key}={override.get_value_element_as_str()}"])
    return [list(cell) for cell in itertools.product(*lists)]


def check_deletion(item: str) -> None:
    """Hydra's ~key deletes a key, ~group an entry of the defaults list. Deleting a value leaves the experiment
    reading a key that is gone (a failed run, not a default); only the optional groups may be dropped."""
    key = item[1:].partition("=")[0]
    droppable = ("logger", "sweep")
    if key in droppable:
        return
    groups = top_groups()
    what = f"the {key} group" if key in groups else f"the key {key}"
    instead = f"choose another option: {key}=<option>" if key in groups else f"set a value instead: {key}=<value>"
    raise ConfigError(f"{short_text(item)}: deleting {what} is not supported (every experiment reads its keys and "
                      f"groups); {instead}; ~ drops only {', '.join('~' + g for g in droppable)}")


def short_text(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_line(message: str) -> str:
    return next((line.strip() for line in message.splitlines() if line.strip()), message)


def yaml_problem(exc) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}" if mark else "a config file"
    problem = getattr(exc, "problem", None) or first_line(str(exc))
    return f"malformed YAML in {where}: {problem}; fix or remove that file"


def explain(exc: Exception, base: DictConfig | None) -> str:
    """Turn Hydra/OmegaConf's multi-line messages into one line with what is allowed."""
    import yaml

    if isinstance(exc, yaml.YAMLError):
        return yaml_problem(exc)
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
        known = ", ".join(str(k) for k in node.keys() if str(k) not in SPEC) if isinstance(node, DictConfig) \
            else "see --cfg job"
        if not parent:
            groups = ", ".join(sorted(g for g in top_groups() if g not in ("sizing", "hydra", "local")))
            return f"unknown key or group '{key}'; groups: {groups}; keys: {known}"
        return f"unknown key '{key}'; keys under {parent}: {known}"
    if message.startswith("Error merging override") and exc.__cause__ is not None:  # the reason is the cause
        return f"{first_line(message)}: {short_text(first_line(str(exc.__cause__)), 160)}"
    return first_line(message)


def check_group_options(overrides: list[str]) -> None:
    """group=option for every config group, the optional ones (sweep, local) too, which Hydra would skip."""
    groups = top_groups()
    for item in overrides:
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        if key not in groups or key in ("sizing", "hydra") or not value or value == "null":
            continue
        options = group_options(key)
        if value.startswith("[") and value.endswith("]"):  # several options of one group: logger=[a,b]
            chosen = [v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip()]
        elif "," in value:
            continue  # a sweep's values: each cell is checked on its own
        else:
            chosen = [value]
        for option in chosen:
            if option not in options:
                raise ConfigError(f"unknown {key} '{short_text(option)}'; allowed: {some_of(options, near=option)}")


# Launchers that come from Hydra plugins: their module, and how to install it.
LAUNCHER_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "make install-launchers (pip install hydra-joblib-launcher)"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "make install-launchers (pip install "
                                                                "hydra-submitit-launcher)"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "make install-launchers (pip install "
                                                                "hydra-submitit-launcher)"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "make install-launchers (pip install hydra-submitit-launcher)"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "pip install hydra-ray-launcher (see README, Scaling out)"),
    "ray_cluster": ("hydra_plugins.hydra_ray_launcher", "pip install hydra-ray-launcher (see README, Scaling out)"),
}


def check_launcher(items: list[str]) -> None:
    """hydra/launcher=<name>: a launcher whose Hydra plugin is not installed is missing, not unknown."""
    import importlib.util

    from ..common.errors import EnvironmentFailure

    for item in items:
        key, _, value = item.partition("=")
        if key.lstrip("+") != "hydra/launcher" or value not in LAUNCHER_PLUGINS:
            continue
        module, install = LAUNCHER_PLUGINS[value]
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # no hydra_plugins namespace at all
            found = False
        if not found:
            raise EnvironmentFailure(f"hydra/launcher={value} needs a Hydra launcher plugin that is not installed; "
                                     f"{install}, or drop hydra/launcher= to run the jobs one after another")


def top_groups() -> set[str]:
    return {p.name for p in config_dir().iterdir() if p.is_dir()}


def resume_overrides(run_dir: str) -> list[str]:
    """`resume=<run dir>`: the killed run's own overrides, pointed back at its folder."""
    from ..common.runfiles import saved_overrides

    path = Path(run_dir)
    if not (path / ".hydra" / "overrides.yaml").is_file():
        raise ConfigError(f"resume={run_dir}: not a run folder (no .hydra/overrides.yaml); "
                          f"give a folder under outputs/runs/<experiment>/")
    try:
        saved = saved_overrides(path)
    except ValueError as exc:
        raise ConfigError(f"resume={run_dir}: {exc}") from None
    kept = [o for o in saved if not o.startswith(("resume=", "hydra.run.dir="))]
    return kept + [f"resume={path}", f"hydra.run.dir={path}"]
