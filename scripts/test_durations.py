"""Measure how long each test file takes and write tests/durations.json, the order in which conftest.py hands
files to the test workers (longest first). Run by `make test-durations`; only the order depends on the numbers."""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINE = re.compile(r"\s*([\d.]+)s (?:call|setup|teardown)\s+tests/([^:\s]+)::")


def main() -> int:
    workers = sys.argv[1] if len(sys.argv) > 1 else "2"
    command = [sys.executable, "-m", "pytest", "-n", workers, "--dist", "loadfile", "--no-loadscope-reorder",
               "--durations=0", "-q", "-p", "no:cacheprovider"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = collections.Counter()
    for line in out.stdout.splitlines():
        if m := LINE.match(line):
            seconds[m.group(2)] += float(m.group(1))
    if out.returncode != 0 or not seconds:
        print(out.stdout[-3000:] + out.stderr[-2000:])
        print("test-durations: the suite did not pass; tests/durations.json left as it was", file=sys.stderr)
        return 1
    files = {name: round(s, 1) for name, s in seconds.most_common()}
    data = {"_what": "seconds per test file from one `make test-durations` run: the order in which test files are "
                     "handed to the workers, longest first, so that they finish together (conftest.py). Only the "
                     "order depends on it; a file not listed counts as the median.", "files": files}
    (REPO / "tests" / "durations.json").write_text(json.dumps(data, indent=1) + "\n")
    print(f"tests/durations.json: {len(files)} files, {sum(files.values()):.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
