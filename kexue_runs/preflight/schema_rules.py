"""Schema rules: every value's type and range, declared in kexue_runs/preflight/schema.yaml, with an
experiment's own `schema:` block (rules for its own keys) on top."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from ..common.errors import ConfigError

SPEC = ("meta", "claim", "reported", "checks", "figure", "paper_table", "hydra", "schema", "threats")


def schema() -> dict:
    """The shared rules. A key declared twice would silently keep the later rule (one experiment's range
    imposed on another's value), so a repeated key is an error: give such a key an experiment-local rule."""
    return load_rules(str(Path(__file__).parent / "schema.yaml"))


@functools.lru_cache(maxsize=4)
def load_rules(path: str) -> dict:

    class Strict(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml where PyYAML has it: 0.03 s to 0.004
        pass

    def mapping(loader, node):
        keys = [loader.construct_object(k) for k, _ in node.value]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"schema.yaml declares {twice} more than once; move one to its experiment's schema: block")
        return loader.construct_mapping(node)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(Path(path).read_text(), Loader=Strict)


def leaves(node, prefix: str = ""):
    for key, value in node.items():
        name = f"{prefix}{key}"
        if not prefix and key in SPEC:
            continue
        if isinstance(value, dict) and value:
            yield from leaves(value, name + ".")
        else:
            yield name, value


def rule_for(key: str, rules: dict) -> dict | None:
    from fnmatch import fnmatchcase

    if key in rules:
        return rules[key]
    return next((rule for pattern, rule in rules.items() if "*" in pattern and fnmatchcase(key, pattern)), None)


def short(value) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def problem(value, rule: dict) -> str | None:
    """What is wrong with value under rule, or None."""
    kind = rule.get("type", "any")
    if value is None:
        return None if rule.get("nullable") or kind == "any" else "must be set (not null)"
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = {"int": isinstance(value, int) and not isinstance(value, bool), "float": numeric, "number": numeric,
                "bool": isinstance(value, bool), "str": isinstance(value, str), "list": isinstance(value, list),
                "dict": isinstance(value, dict), "any": True}[kind]
    if not expected:
        article = {"int": "an integer", "float": "a number", "number": "a number", "bool": "true or false",
                   "str": "a string", "list": "a list [a,b,...]", "dict": "a mapping"}[kind]
        return f"must be {article}"
    if numeric:
        import math

        if rule.get("finite", True) and not math.isfinite(value):
            return "must be finite"
        for field, test, words in (("min", lambda v, b: v >= b, ">="), ("max", lambda v, b: v <= b, "<="),
                                   ("gt", lambda v, b: v > b, ">"), ("lt", lambda v, b: v < b, "<")):
            if field in rule and not test(value, rule[field]):
                return f"must be {words} {rule[field]}"
    if "choices" in rule and value not in rule["choices"]:
        return f"allowed: {', '.join(map(str, rule['choices']))}"
    if isinstance(value, list):
        if "length" in rule and len(value) != rule["length"]:
            return f"must have {rule['length']} entries"
        if len(value) < rule.get("min_length", 0):
            return f"must have at least {rule['min_length']} entr{'y' if rule['min_length'] == 1 else 'ies'}"
        for item in value:
            bad = problem(item, rule["items"]) if "items" in rule else None
            if bad:
                return f"every entry {bad} ({short(item)} is not)"
    return None


def rules_for(cfg: DictConfig) -> dict:
    """kexue_runs/preflight/schema.yaml, with the experiment's own `schema:` block (rules for its own keys) on top."""
    own = cfg.get("schema") if isinstance(cfg, DictConfig) else None
    return schema() | (OmegaConf.to_container(own) if own else {})


def check_schema(cfg: DictConfig, rules: dict | None = None) -> None:
    rules = rules if rules is not None else rules_for(cfg)
    values = OmegaConf.to_container(cfg, resolve=True)
    for key, value in leaves(values):
        rule = rule_for(key, rules)
        if rule is None:
            continue  # tests/test_bad_input.py fails on any key without a rule
        bad = problem(value, rule)
        if bad:
            raise ConfigError(f"{key}={short(value)}: {bad}")


def uncovered_keys(cfg: DictConfig, rules: dict | None = None) -> list[str]:
    rules = rules if rules is not None else rules_for(cfg)
    return [key for key, _ in leaves(OmegaConf.to_container(cfg, resolve=False)) if rule_for(key, rules) is None]
