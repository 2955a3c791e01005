"""Wrote expected.json with the code of the commit it names (kept as a record: rerunning it with
later code would only compare that code with itself).

Every run of tests/support/binarize_reference.py is made twice, in two fresh folders, and the
digests are recorded only when both agree, so what is recorded does not depend on the run.

    python -m tests.data.binarize_reference.make_reference [COMMIT]

It was run in a clean export of the commit (``git archive COMMIT | tar -x``, this folder and
tests/support/binarize_reference.py copied in), so that no uncommitted work entered the record;
COMMIT names it there (default: ``git rev-parse HEAD``).
"""
import json
import sys
import subprocess
import tempfile
from pathlib import Path

from tests.support.binarize_reference import EXPECTED, REFERENCE, inputs_digest, run_all


def main() -> None:
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        digests = run_all(Path(first))
        again = run_all(Path(second))
    if digests != again:
        differ = sorted(f"{run}/{f}" for run in digests for f in set(digests[run]) | set(again[run])
                        if digests[run].get(f) != again[run].get(f))
        raise SystemExit(f"two runs differ, nothing recorded: {differ}")
    commit = sys.argv[1] if len(sys.argv) > 1 else subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REFERENCE, capture_output=True, text=True, check=True).stdout.strip()
    EXPECTED.write_text(json.dumps({"made_with_commit": commit, "inputs": inputs_digest(), "runs": digests},
                                   indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
