"""Property-based input testing (issue #32): hypothesis generates overrides for every experiment's keys (wrong
types, out-of-range values, strings, nesting, unicode, +key, ~key, whole mappings replaced) and checks the
contract: refused with one line (exit 2, nothing written), or a valid run.

Seeded (derandomize) and bounded: KEXUE_FUZZ_EXAMPLES sets how many command lines the preflight property tries
(default 60: about 10 s of CPU, most of it composing each experiment once), KEXUE_FUZZ_RUNS how many go through
whole smoke runs (default 6). A longer campaign (1,500 lines: 161 accepted, 1,339 refused with one line):
KEXUE_FUZZ_EXAMPLES=3000 KEXUE_FUZZ_REPORT=outputs/fuzz.json pytest -n 0 tests/test_fuzz_inputs.py
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("KEXUE_FUZZ_EXAMPLES", "60"))
RUNS = int(os.environ.get("KEXUE_FUZZ_RUNS", "6"))
BASE = ["scale=smoke", "trainer.progress=false", "trainer.threads=1"]
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=list(HealthCheck))
TALLY: Counter = Counter()  # outcomes, for the report (KEXUE_FUZZ_REPORT)

_defaults: dict[str, dict] = {}
_composed: dict = {}  # preflight's cache of composed group choices: the configs do not change during the test


def default_config(experiment: str) -> dict:
    if experiment not in _defaults:
        from omegaconf import OmegaConf

        from kexue_runs.preflight.validate import compose_job

        _defaults[experiment] = OmegaConf.to_container(compose_job([f"experiment={experiment}", "scale=smoke"]))
    return _defaults[experiment]


def keys_of(experiment: str) -> tuple[list[tuple[str, object]], list[str]]:
    """(leaf key, default value) pairs and the keys of mappings, less the claim apparatus and Hydra's own."""
    from kexue_runs.preflight.schema_rules import SPEC, leaves

    cfg = default_config(experiment)
    leaf = [(k, v) for k, v in leaves(cfg) if k.split(".")[0] not in SPEC]
    mappings = []

    def walk(node, prefix=""):
        for k, v in node.items():
            if not prefix and k in SPEC:
                continue
            if isinstance(v, dict) and v:
                mappings.append(prefix + k)
                walk(v, prefix + k + ".")

    walk(cfg)
    return leaf, mappings


def quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


unicode_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
ident = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
SPECIAL = ["0", "-1", "1", "2", "4294967295", "4294967296", "-4294967296", "9" * 30, "1e308", "-1e-308", "1e-320",
           "inf", "-inf", "nan", "true", "false", "null", "''", "' '", "[]", "{}", "[[1,2],[3]]", "{a:{b:1}}",
           "[1,'x',null]", "${seed}", "${nonexistent}", "${oc.env:HOME}", "${oc.env:NO_SUCH_VARIABLE_KX}",
           "0x10", "1_000", "+5", ".5", "5.", "１２", "ⅷ", "١٢", "\u00a0", "a b", "é", "日本", "🙂", "\\", "'",
           "[a,", "{a:", "a=b", "a,b", "[1,2,3,4,5,6,7,8,9,10,11,12]", "cpu", "cuda", "auto", "bf16-mixed"]


def related(default) -> st.SearchStrategy[str]:
    """Values near the default: the same type out of range, or another type in its place."""
    if isinstance(default, bool):
        return st.sampled_from(["true", "false", "0", "1", "yes", "'true'"])
    if isinstance(default, (int, float)):
        scale = st.sampled_from([-1, 0, 0.5, 2, 1e3, 1e9, 1e18])
        return st.one_of(scale.map(lambda k: str(type(default)(default * k)) if abs(default * k) < 1e300 else "inf"),
                         st.just(str(float(default) + 0.5)), st.just(quoted(str(default))))
    if isinstance(default, list):
        items = default or [0]
        return st.one_of(st.just("[" + ",".join(map(str, items[:-1])) + "]"),
                         st.just("[" + ",".join(map(str, items + items[-1:])) + "]"),
                         st.just("[" + ",".join("'x'" for _ in items) + "]"),
                         st.just("[" + ",".join(f"[{x}]" for x in items) + "]"),
                         st.just("[" + ",".join(str(-abs(x)) if isinstance(x, (int, float)) and not isinstance(x, bool)
                                                else "null" for x in items) + "]"))
    if isinstance(default, str):
        return st.one_of(st.just(default + "x"), st.just(default.upper()), st.just(quoted(default + " ")))
    return st.just("null")


any_value = st.one_of(
    st.sampled_from(SPECIAL),
    st.integers(-2**70, 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    unicode_text,
    unicode_text.map(quoted),
    st.lists(st.one_of(st.integers(-10, 10**6).map(str), st.sampled_from(["'x'", "null", "1.5", "[]"])),
             max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
    st.dictionaries(ident, st.integers(-3, 3).map(str), max_size=3).map(
        lambda d: "{" + ",".join(f"{k}:{v}" for k, v in d.items()) + "}"),
)


@st.composite
def command_line(draw, experiments: list[str] | None = None) -> list[str]:
    from kexue_runs.preflight.overrides import experiments as all_experiments

    experiment = draw(st.sampled_from(experiments or all_experiments()))
    leaf, mappings = keys_of(experiment)
    items = [f"experiment={experiment}"]
    for _ in range(draw(st.integers(1, 3))):
        shape = draw(st.sampled_from(["leaf", "leaf", "leaf", "leaf", "mapping", "nested", "unknown", "added",
                                      "deleted"]))
        if shape in ("leaf", "nested") or not mappings:
            key, default = draw(st.sampled_from(leaf))
        else:
            key, default = draw(st.sampled_from(mappings)), None
        value = draw(st.one_of(related(default), any_value) if shape == "leaf" else any_value)
        if shape == "nested":
            key = f"{key}.{draw(ident)}"
        elif shape == "unknown":
            key = f"{key}.{draw(ident)}"
        elif shape == "added":
            key = draw(st.sampled_from(["+", "++"])) + draw(st.one_of(st.just(key + "." + draw(ident)), ident))
        elif shape == "deleted":
            key = "~" + key
            if draw(st.booleans()):
                items.append(key)
                continue
        items.append(f"{key}={value}")
    return items


def one_line(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message and "\r" not in message


@settings(FUZZ, max_examples=EXAMPLES)
@given(cell=command_line())
def test_preflight_refuses_with_one_line_or_accepts(cell):
    """In-process and fast: preflight either accepts a command line or refuses it with one line; never another
    exception (a traceback at the console), and never a file written."""
    from kexue_runs.common.errors import ConfigError, EnvironmentFailure
    from kexue_runs.preflight.validate import preflight

    root = Path(os.environ.get("PYTEST_FUZZ_ROOT", "/nonexistent-kexue-fuzz")) / "outputs"
    try:
        preflight([*cell, *BASE, f"output_root={root}"], multirun=False, composed=_composed)
        TALLY["accepted"] += 1
    except (ConfigError, EnvironmentFailure) as exc:
        assert one_line(str(exc)), (cell, str(exc))
        TALLY["refused: " + refusal_kind(str(exc))] += 1
    assert not root.exists()


def refusal_kind(message: str) -> str:
    for words, kind in (("cannot parse", "grammar"), ("wrong type", "type"), ("must be", "range or type"),
                        ("unknown key", "unknown key"), ("group of settings", "mapping replaced"),
                        ("deleting", "deletion"), ("does not import", "_target_"), ("allowed:", "choice"),
                        ("interpolation", "interpolation"), ("several values", "sweep without -m")):
        if words in message:
            return kind
    return "other: " + message[:60]


CHEAP = ["sgd_bound", "ddpm_schedule", "self_consuming", "simsiam_dynamics", "reparam_argmax", "bert_init"]


@st.composite
def cheap_run(draw) -> list[str]:
    """Overrides of the cheap simulations' own keys, sized so that an accepted one runs in seconds."""
    experiment = draw(st.sampled_from(CHEAP))
    leaf, _ = keys_of(experiment)
    own = [(k, v) for k, v in leaf if k.startswith("sim.") or k == "seed"]
    key, default = draw(st.sampled_from(own))
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        value = draw(st.one_of(st.sampled_from(["0", "-1", "1", "nan", "inf", "'x'", "[1]", "null", "true"]),
                               st.floats(0, 2).map(lambda k: str(type(default)(default * k)))))
    elif isinstance(default, list):
        value = draw(related(default))
    else:
        value = draw(any_value)
    return [f"experiment={experiment}", f"{key}={value}"]


@pytest.mark.slow
@settings(FUZZ, max_examples=RUNS)
@given(cell=cheap_run())
def test_an_accepted_command_line_runs(cell, tmp_path_factory):
    """Whole runs, in-process: exit 2 with one line and no folder, or a run that ends ok (or diverged, a result);
    a run that fails after preflight let it through is what the issue calls a defect."""
    from kexue_runs import cli

    root = tmp_path_factory.mktemp("fuzz") / "outputs"
    old = sys.argv
    sys.argv = ["kexue-run"]
    try:
        code = cli.main([*cell, *BASE, f"output_root={root}"])
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = old
    if code == 2:
        assert not root.exists(), cell
        TALLY["run: refused"] += 1
        return
    (run,) = sorted((root / "runs").glob("*/*"))
    status = json.loads((run / "summary.json").read_text())["status"]
    assert code == 0 and status in ("ok", "diverged"), (cell, code, status)
    TALLY[f"run: {status}"] += 1


@pytest.fixture(scope="module", autouse=True)
def fuzz_report():
    yield
    if os.environ.get("KEXUE_FUZZ_REPORT"):
        Path(os.environ["KEXUE_FUZZ_REPORT"]).write_text(json.dumps(dict(sorted(TALLY.items())), indent=2) + "\n")
