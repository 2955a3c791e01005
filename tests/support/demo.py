"""scripts/demo.sh (`make demo`) from the e2e tests: the command line the Makefile runs, a run with
DEMO_* settings, and what to look for in its console and in the files it wrote."""
import os
import re
import shutil
from typing import List, Optional

from tests.support.paths import REPO
from tests.support.processes import run_process, subprocess_env

# a warning as the tools print it: python's ("file:line: UserWarning: ..."), logging's WARNING level
# (fairseq's "| WARNING |" lines), hydra's deprecation messages and their continuation lines
WARNING = re.compile(r"Warning:|\bWARNING\b|deprecat")


def make_demo_command(pretrained: Optional[str] = None) -> Optional[str]:
    """The line ``make demo [PRETRAINED=DIR]`` runs after its set-up, as ``make -n`` prints it (make
    runs nothing, so the venv is not rebuilt); None when there is no make."""
    if shutil.which("make") is None:
        return None
    argv = ["make", "--no-print-directory", "-n", "demo"] + ([f"PRETRAINED={pretrained}"] if pretrained else [])
    # under `make test` the environment says "make level 1", which makes a nested make print
    # "Entering/Leaving directory" lines: run it as a user's own make would run
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    proc = run_process(argv, cwd=REPO, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def run_demo(env_extra: dict, command: Optional[str] = None, timeout: float = 600):
    """scripts/demo.sh with these settings (or ``command``, a shell line that runs it)."""
    argv = ["bash", "-c", command] if command else ["bash", str(REPO / "scripts" / "demo.sh")]
    return run_process(argv, cwd=REPO, env=subprocess_env(**env_extra), timeout=timeout)


def warning_lines(text: str) -> List[str]:
    return [line for line in text.splitlines() if WARNING.search(line)]


def repeated_trigrams(generate_output: str) -> List[str]:
    """The H- lines of a fairseq-generate output (the hypotheses' tokens: dictionary symbols, BPE
    ids for a BART) in which a token trigram occurs twice."""
    bad = []
    for line in generate_output.splitlines():
        if line.startswith("H-"):
            tokens = line.split("\t")[2].split() if line.count("\t") >= 2 else []
            trigrams = list(zip(tokens, tokens[1:], tokens[2:]))
            if len(set(trigrams)) < len(trigrams):
                bad.append(line)
    return bad
