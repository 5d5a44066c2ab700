"""Re-decide finished runs with this checkout's claim engine: the verdict each run recorded, the verdict
the current engine gives on the checks the run was written with, and on the experiment's checks as they are
now. For before/after tables when the engine's rules or the checks change.

    python scripts/rereport.py outputs/runs            # every run folder under it (newest per experiment/scale)
    python scripts/rereport.py outputs/runs --json out.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from kexue_runs import config_dir
from kexue_runs.claims import evaluate_checks, overall_reason, table_from_runs


def decide(checks: list[dict], summary: dict, config: dict) -> dict:
    rows = table_from_runs([summary | {"config": config}])
    results = evaluate_checks(checks, rows)
    out = overall_reason(results, summary.get("scale"))
    out["checks"] = {r["id"]: f"{r['verdict']}" + (f" [{r['reason']}]" if r.get("reason") else "") for r in results}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    newest: dict = {}
    for path in sorted(args.root.glob("*/*/summary.json")):
        summary = json.loads(path.read_text())
        if summary.get("status") != "ok":
            continue
        newest[(summary["experiment"], summary["scale"])] = (path.parent, summary)
    table = []
    for (name, scale), (run_dir, summary) in sorted(newest.items()):
        ran = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
        config = summary.get("config") or ran
        old_checks = ran.get("checks") or []
        now_file = config_dir() / "experiment" / f"{name}.yaml"
        now_checks = (yaml.safe_load(now_file.read_text()) or {}).get("checks") or old_checks
        row = {"experiment": name, "scale": scale, "run": str(run_dir), "recorded": summary.get("verdict", "-"),
               "recorded_checks": {c["id"]: c["verdict"] for c in summary.get("checks") or []},
               "engine_only": decide(old_checks, summary, config), "now": decide(now_checks, summary, config)}
        table.append(row)
        print(f"{name:<24}{scale:<7}{row['recorded']:<14}{row['engine_only']['text'][:70]:<72}| {row['now']['text']}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
