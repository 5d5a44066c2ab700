"""`kexue-run verify` and `kexue-run reproduce` on a scratch ledger ($KEXUE_RESULTS_DIR): a re-run at HEAD that
reproduces exits 0, a changed verdict exits 1 with the difference recorded, `--all` resumes, and reproduce
runs only what is not current."""

import copy
import json
import shutil

from conftest import REPO, subprocess_cli

from kexue_runs.publishing import ledger, verify


def entry(name="ddpm_schedule"):
    return json.loads((REPO / "results" / "cpu" / f"{name}.json").read_text())


def test_compare_finds_verdicts_and_numbers_that_moved():
    old = entry("bert_init")
    assert verify.compare(old, copy.deepcopy(old)) == (verify.REPRODUCED, [])
    new = copy.deepcopy(old)
    check = next(c for c in new["checks"] if c.get("tolerance") and "effect" in c["tolerance"])
    check["effect"] += 2 * check["tolerance"]["effect"]
    status, rows = verify.compare(old, new)
    assert status == verify.NUMBERS_MOVED and [(r["what"], r["field"]) for r in rows] == [(check["id"], "effect")]
    check["effect"] -= 1.5 * check["tolerance"]["effect"]  # inside the interval again
    assert verify.compare(old, new)[0] == verify.REPRODUCED
    new["key_numbers"][0]["value"] += 3 * new["key_numbers"][0]["tolerance"]
    new["checks"][0]["verdict"] = "FAIL" if old["checks"][0]["verdict"] != "FAIL" else "PASS"
    status, rows = verify.compare(old, new)
    assert status == verify.VERDICT_CHANGED
    assert {(r["what"], r["field"]) for r in rows} == {(old["checks"][0]["id"], "verdict"),
                                                      (old["key_numbers"][0]["name"], "key number")}


def test_a_wall_clock_time_is_not_compared_as_a_number():
    """linear_attention_cost's `seconds` doubled on a loaded machine with every verdict the same (verify --all,
    2026-12-07): a timing is compared through its check's verdict, never as a number. Its ratio of two timings
    is one because the experiment declares it (meta.timing_metrics), not by a rule in verify."""
    old = entry("linear_attention_cost")
    new = copy.deepcopy(old)
    declared = verify.declared_timings("linear_attention_cost")
    assert declared == ("measured_ratio_at_longest",) and verify.declared_timings("bert_init") == ()
    timings = [k for k in new["key_numbers"] if verify.is_timing(k["name"], declared)]
    assert {k["name"].split(" [")[0] for k in timings} == {"seconds", "measured_ratio_at_longest"}
    for k in new["key_numbers"]:
        k["value"] = 2 * k["value"] + 10 * k["tolerance"] if verify.is_timing(k["name"], declared) else k["value"]
    assert verify.compare(old, new, declared) == (verify.REPRODUCED, [])
    moved = verify.compare(old, new)  # undeclared, the ratio is a number that moved
    assert moved[0] == verify.NUMBERS_MOVED and [r["what"] for r in moved[1]] == ["measured_ratio_at_longest"]
    other = next(k for k in new["key_numbers"] if not verify.is_timing(k["name"], declared))
    other["value"] += 3 * other["tolerance"]
    assert verify.compare(old, new, declared)[0] == verify.NUMBERS_MOVED
    assert verify.is_timing("wgan_gp_ms_per_iteration") and verify.is_timing("ms_per_iteration [arm=gn_iccv]")
    assert not verify.is_timing("wgan_gp_saved_kib_per_iteration") and not verify.is_timing("success_rate")


def scratch_ledger(tmp_path, names, tamper=()):
    root = tmp_path / "results"
    for name in names:
        e = entry(name)
        if name in tamper:  # a published verdict that the code at HEAD does not give
            c = e["checks"][-1]
            c["verdict"] = "FAIL" if c["verdict"] == "PASS" else "PASS"
        (root / "cpu").mkdir(parents=True, exist_ok=True)
        (root / "cpu" / f"{name}.json").write_text(json.dumps(e))
    return root


def test_verify_all_reports_each_and_resumes(tmp_path):
    root = scratch_ledger(tmp_path, ["ddpm_schedule", "reparam_argmax"], tamper=["reparam_argmax"])
    env = {"KEXUE_RESULTS_DIR": str(root)}
    outputs = tmp_path / "outputs"
    done = subprocess_cli("verify", "--all", "--outputs", str(outputs), cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    state = json.loads((outputs / "verify" / "cpu" / "all.json").read_text())
    assert state["ddpm_schedule"]["status"] == "reproduced" and state["ddpm_schedule"]["diff"] == []
    assert state["reparam_argmax"]["status"] == "verdict changed"
    changed = [r for r in state["reparam_argmax"]["diff"] if r["verdict_changed"]]
    assert changed[0]["what"] == entry("reparam_argmax")["checks"][-1]["id"]
    runs = sorted((outputs / "verify" / "cpu").glob("*/*/verify.json"))
    assert len(runs) == 2
    again = subprocess_cli("verify", "--all", "--outputs", str(outputs), cwd=tmp_path, env=env)
    assert again.returncode == 1  # the changed verdict is still on record
    assert sorted((outputs / "verify" / "cpu").glob("*/*/verify.json")) == runs  # nothing ran again


def test_verify_one_reproduces_and_bad_names_are_one_line(tmp_path):
    root = scratch_ledger(tmp_path, ["ddpm_schedule"])
    env = {"KEXUE_RESULTS_DIR": str(root)}
    done = subprocess_cli("verify", "ddpm_schedule", "--outputs", str(tmp_path / "o"), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = (tmp_path / "o" / "verify" / "cpu" / "ddpm_schedule").glob("*/verify.json")
    assert json.loads(result.read_text())["status"] == "reproduced"
    bad = subprocess_cli("verify", "no_such_thing", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and len(bad.stdout.strip().splitlines()) == 1
    assert subprocess_cli("verify", cwd=tmp_path, env=env).returncode == 2


def test_reproduce_runs_what_is_not_current_then_skips_it(tmp_path, monkeypatch):
    root = tmp_path / "results"
    monkeypatch.setenv("KEXUE_RESULTS_DIR", str(root))
    env = {"KEXUE_RESULTS_DIR": str(root)}
    outputs = tmp_path / "outputs"
    assert verify.current(None, "ddpm_schedule", "cpu") == (False, "not in the ledger")
    done = subprocess_cli("reproduce", "--only", "ddpm_schedule", "--outputs", str(outputs), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    written = ledger.read_entry("ddpm_schedule", "cpu", root)
    assert ledger.validate_entry(written) == []
    assert written["provenance"]["command"] == "kexue-run experiment=ddpm_schedule scale=cpu trainer.threads=1"
    assert verify.current(written, "ddpm_schedule", "cpu") == (True, "")
    stamp = (root / "cpu" / "ddpm_schedule.json").stat().st_mtime_ns
    runs = sorted((outputs / "runs" / "ddpm_schedule").glob("*"))
    again = subprocess_cli("reproduce", "--only", "ddpm_schedule", "--outputs", str(outputs), cwd=tmp_path, env=env)
    assert again.returncode == 0
    assert sorted((outputs / "runs" / "ddpm_schedule").glob("*")) == runs
    assert (root / "cpu" / "ddpm_schedule.json").stat().st_mtime_ns == stamp
    (root / "cpu" / "ddpm_schedule.json").unlink()  # as if killed before publishing: the finished run is reused
    third = subprocess_cli("reproduce", "--only", "ddpm_schedule", "--outputs", str(outputs), cwd=tmp_path, env=env)
    assert third.returncode == 0
    assert sorted((outputs / "runs" / "ddpm_schedule").glob("*")) == runs
    assert ledger.read_entry("ddpm_schedule", "cpu", root)["provenance"]["source"] == \
        written["provenance"]["source"]
    stale = dict(written, provenance=dict(written["provenance"], code_hash="0" * 16))
    assert verify.current(stale, "ddpm_schedule", "cpu") == (False, "its code changed")
    shutil.rmtree(outputs)
