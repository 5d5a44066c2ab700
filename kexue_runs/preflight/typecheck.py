"""Type checks against the defaults: a cell's config compared with the config its group choices compose to
(a value keeps its type, +key adds only declared keys, ${...} resolves, every _target_ imports)."""

from __future__ import annotations

import functools
import importlib

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..common.errors import ConfigError
from .overrides import first_line, short_text
from .schema_rules import SPEC, rule_for, rules_for, short


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
        if old is None or new is None:
            continue
        if isinstance(old, DictConfig):
            if isinstance(new, DictConfig):
                continue
            # a whole mapping replaced by one value: neither this check nor the schema (rules are per leaf) saw it
            names = [str(k) for k in old.keys()]
            raise ConfigError(f"{key}={short(OmegaConf.to_container(new) if OmegaConf.is_config(new) else new)}: "
                              f"{key} is a group of settings, not one value; set one of them, e.g. "
                              f"{key}.{names[0] if names else '<name>'}=...; keys under {key}: "
                              f"{', '.join(names)}")
        old_py = OmegaConf.to_container(old) if OmegaConf.is_config(old) else old
        new_py = OmegaConf.to_container(new) if OmegaConf.is_config(new) else new
        # strings name options (their own rules say what is allowed); an int may stand for a float
        same = (type(old_py) is type(new_py) or (isinstance(old_py, float) and type(new_py) is int)
                or (isinstance(old_py, str) and not isinstance(new_py, dict)))
        if not same:
            raise ConfigError(f"{key}={new_py!r} has the wrong type: expected {type_name(old_py)} "
                              f"(default {old_py!r})")


def check_interpolations(cfg: DictConfig) -> None:
    """${...} in a value must resolve: to a key of the config, or an environment variable that is set."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "a value"
        reason = first_line(getattr(exc, "msg", None) or str(exc))
        raise ConfigError(f"{key}: {short_text(reason, 120)}; an interpolation ${{...}} must name a key of the "
                          f"config (${{trainer.steps}}) or a set environment variable (${{oc.env:NAME}})") from None


def check_added_keys(cfg: DictConfig, default: DictConfig, cell: list[str], groups: set[str]) -> None:
    """+key=value adds a key the config does not have: Hydra accepts any, and a typo (+trainer.stpes=5) would run
    with the key ignored. Allowed only for keys the experiment declares (a rule in schema.yaml or its schema:
    block) and does not set."""
    rules = None
    for item in cell:
        key = item.partition("=")[0]
        if not key.startswith("+"):
            continue
        key = key.lstrip("+")
        if key.startswith("hydra.") or key == "hydra" or "/" in key or key in groups or "@" in key:
            continue  # Hydra's own settings and config groups: Hydra checks those
        if OmegaConf.select(default, key, default=None) is not None:
            continue  # ++key on a key that exists: an ordinary override
        rules = rules if rules is not None else rules_for(cfg)
        if rule_for(key, rules) is not None:
            continue
        parent = key.rpartition(".")[0]
        node = OmegaConf.select(default, parent, default=None) if parent else default
        known = [str(k) for k in node.keys() if not (not parent and str(k) in SPEC)] \
            if isinstance(node, DictConfig) else []
        import difflib

        leaf = key.rpartition(".")[2]
        near = difflib.get_close_matches(leaf, known, n=1, cutoff=0.6)
        hint = f"did you mean {parent + '.' if parent else ''}{near[0]}? " if near else ""
        where = f"keys under {parent}: {', '.join(known)}" if parent and known else \
            f"keys: {', '.join(known)}" if known else "see --cfg job"
        raise ConfigError(f"+{key}: unknown key ({hint}+ adds only keys the experiment declares in its schema); "
                          f"{where}")


def check_targets(cfg: DictConfig) -> None:
    """Every `_target_` names something that imports, checked now rather than when the run instantiates it."""
    for key, value in targets(OmegaConf.to_container(cfg, resolve=False)):
        if not isinstance(value, str) or "${" in value:
            continue
        reason = unimportable(value)
        if reason:
            raise ConfigError(f"{key}={short(value)} does not import ({reason}); give a dotted path to a class "
                              f"or function (module.Name)")


def targets(node, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if not prefix and key in SPEC:
                continue
            if key == "_target_":
                yield name, value
            else:
                yield from targets(value, name + ".")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from targets(value, f"{prefix.rstrip('.')}[{i}].")


@functools.lru_cache(maxsize=256)
def unimportable(path: str) -> str | None:
    """Why a dotted path does not import, or None."""
    module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        return "not a dotted path"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return f"no module {exc.name or module_name}" if exc.name else first_line(str(exc))
    except Exception as exc:  # a module that fails while importing
        return first_line(f"{type(exc).__name__}: {exc}")
    if not hasattr(module, attribute):
        return f"{module_name} has no {attribute}"
    return None
