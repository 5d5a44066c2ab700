"""The post's retry form as the package's retry (9938): its semantics, its use by the downloads, and the
retry experiment's smoke numbers and verdicts."""

import sys
import types

import pytest
from conftest import run_dirs, summary

from kexue_runs.methods.retry import Retry


def run_body(tries: Retry, outcomes: list):
    """Run a body that pops its outcome (None: success, an exception: raise it); return the attempts."""
    attempts = 0
    for retry in tries:
        with retry:
            attempts += 1
            outcome = outcomes.pop(0)
            if outcome is not None:
                raise outcome
    return attempts


def test_stops_at_the_first_success_without_sleeping_after_it():
    slept = []
    tries = Retry(5, sleep=slept.append)
    assert run_body(tries, [OSError("x"), OSError("y"), None, OSError("never")]) == 3
    assert tries.ok and tries.error is None
    assert slept == [2.0, 2.0]  # between tries only


def test_gives_up_after_max_tries_with_no_sleep_after_the_last():
    slept = []
    tries = Retry(3, delay=1.0, backoff=2.0, sleep=slept.append)
    last = ValueError("third")
    assert run_body(tries, [ValueError("a"), ValueError("b"), last]) == 3
    assert not tries.ok and tries.error is last
    assert slept == [1.0, 2.0]


def test_ctrl_c_and_exit_go_through_at_once():
    for exc in (KeyboardInterrupt, SystemExit):
        outcomes = [exc(), None]
        with pytest.raises(exc):
            run_body(Retry(5, sleep=lambda s: None), outcomes)
        assert outcomes == [None]  # the body ran once


def test_the_posts_exit_swallows_ctrl_c():
    tries = Retry(4, catch=BaseException, sleep=lambda s: None)
    assert run_body(tries, [KeyboardInterrupt() for _ in range(4)]) == 4
    assert not tries.ok


def test_errors_outside_catch_are_not_retried():
    with pytest.raises(ZeroDivisionError):
        run_body(Retry(5, catch=OSError, sleep=lambda s: None), [ZeroDivisionError(), None])


def test_max_tries_must_be_positive():
    with pytest.raises(ValueError, match="max_tries=0"):
        Retry(0)


def test_text_download_retries_through_retry(monkeypatch):
    """data.name=hf loads through `datasets`: a flaky loader is retried, the sleep is the module's."""
    from kexue_runs.data import text

    calls, slept = [], []

    def load_dataset(path, split):
        calls.append(path)
        if len(calls) < 3:
            raise ConnectionError("network down")
        return [{"text": "hello"}, {"text": "world"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr("time.sleep", slept.append)
    cfg = types.SimpleNamespace(name="hf", hf_path="someone/corpus", hf_text_field="text")
    assert text.documents(cfg) == [("0", b"hello"), ("1", b"world")]
    assert len(calls) == 3 and slept == [1.0, 2.0]


def test_text_download_gives_one_clear_error(monkeypatch):
    from kexue_runs.common.errors import ConfigError
    from kexue_runs.data import text

    def load_dataset(path, split):
        raise ConnectionError("network down")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr("time.sleep", lambda s: None)
    cfg = types.SimpleNamespace(name="hf", hf_path="someone/corpus", hf_text_field="text")
    with pytest.raises(ConfigError, match="after 3 tries"):
        text.documents(cfg)


def test_retry_experiment_smoke(tmp_path):
    from kexue_runs import cli

    old = sys.argv
    sys.argv = ["kexue-run"]
    try:
        code = cli.main(["experiment=retry", "scale=smoke", "trainer.progress=false", "trainer.threads=1",
                         f"output_root={tmp_path}"])
    finally:
        sys.argv = old
    assert code == 0
    (run,) = run_dirs(tmp_path, "retry")
    s = summary(run)
    final = s["final"]
    # seeded failure process: the counts are exact
    assert final["p0.5_n5_success_rate"] == pytest.approx(PINNED["p0.5_n5_success_rate"], abs=1e-12)
    assert final["p0.5_n5_mean_attempts"] == pytest.approx(PINNED["p0.5_n5_mean_attempts"], abs=1e-12)
    assert final["p0.9_n3_success_rate"] == pytest.approx(PINNED["p0.9_n3_success_rate"], abs=1e-12)
    assert final["p0.5_n5_expected_attempts"] == pytest.approx(1.9375)
    assert final["sleep_violations"] == 0
    assert (final["interrupt_runs_post"], final["interrupt_runs_ours"]) == (5, 1)
    assert {c["id"]: c["verdict"] for c in s["checks"]} == {
        "success_and_attempts_as_derived": "PASS", "sleeps_only_between_tries": "PASS",
        "ctrl_c_goes_through": "PASS", "post_exit_retries_ctrl_c": "PASS"}
    assert s["verdict"] == "PASS"


PINNED = {"p0.5_n5_success_rate": 0.9673333333333334, "p0.5_n5_mean_attempts": 1.9253333333333333,
          "p0.9_n3_success_rate": 0.269}  # kexue-run experiment=retry scale=smoke (seed 0)
