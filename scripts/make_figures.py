"""`make figures`: publish each experiment's canonical evidence at one scale, without retraining.

For an experiment with a canonical sweep (configs/sweep/<name>.yaml) that is its newest complete canonical
sweep at --scale; for one without, its newest finished run at --scale. Partial and ad-hoc sweeps and runs
at other scales are never published: they are listed as skipped, with why. Nothing is run unless asked
(--run-missing, or RUN_MISSING=1 through make). Writes outputs/figures/: the figures, index.md (one row per
experiment: post, scale, date, git sha, verdict, stability) and index.html (the static results page).
Then the ledger: results/<scale>/<experiment>.json for each experiment published here (not at scale=smoke
unless --results names a folder), and from the whole ledger the README's results table and docs/results/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from kexue_runs.claims.catalog import experiment_files
from kexue_runs.publishing.publish import collect, copy_figures, index_markdown, results_html
from kexue_runs.publishing.site import publish_results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="cpu", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--outputs", default="outputs", type=Path)
    parser.add_argument("--only", nargs="+", default=None, metavar="EXPERIMENT",
                        help="run (with --run-missing) only these; the index keeps every experiment's row")
    parser.add_argument("--run-missing", action="store_true", help="run the canonical sweep or run where none exists")
    parser.add_argument("--results", type=Path, default=None,
                        help="the ledger folder (default: the repository's results/, which also rewrites the "
                             "README's results table and docs/results/)")
    args = parser.parse_args(argv)
    known = [p.stem for p in experiment_files()]
    unknown = [n for n in args.only or [] if n not in known]
    if unknown:
        print(f"error: --only {unknown[0]}: no such experiment; allowed: {', '.join(known)}", file=sys.stderr)
        return 2
    out_dir = args.outputs / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    evidence = collect(args.outputs, args.scale)
    if args.run_missing:
        missing = [ev for ev in evidence if not ev.kind and (not args.only or ev.name in args.only)]
        for ev in missing:
            print(f"{ev.name}: nothing publishable at scale={args.scale}; running: {ev.command}", flush=True)
            subprocess.run([sys.executable, "-m", "kexue_runs.cli", *ev.command.split()[1:],
                            f"output_root={args.outputs}"], check=False)
        if missing:
            evidence = collect(args.outputs, args.scale)
    figures = copy_figures(evidence, out_dir)
    (out_dir / "index.md").write_text(index_markdown(evidence, figures, args.scale))
    (out_dir / "index.html").write_text(results_html(evidence, figures, args.scale))
    for ev in evidence:
        if ev.kind:
            print(f"{ev.name}: {ev.verdict} from the {ev.kind} {ev.path}")
        else:
            print(f"{ev.name}: not published at scale={args.scale}"
                  + (f" (skipped: {ev.skipped[0]})" if ev.skipped else "") + f"; to run it: {ev.command}")
    print(f"index: {out_dir / 'index.md'}, results page: {out_dir / 'index.html'}")
    publish_results(evidence, args.scale, args.results, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
