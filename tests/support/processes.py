"""Running the commands the tests start (fairseq's console scripts, the project's commands and
scripts, a fresh python): one place for the environment they get and for how a failure reads.

    out = run(argv, cwd=tmp_path)              # must succeed: stdout + stderr
    proc = run_process(argv, stdin="w1 w2\\n")  # the test checks the exit status itself

Both take ``argv`` items of any type (paths are turned into strings), capture stdout and stderr as
text, and give the command :func:`subprocess_env` unless ``env`` is given. :func:`run` fails the
test with the tails of both streams, so a failure shows fairseq's own error rather than only an
exit status.
"""
import os
import subprocess
from typing import Mapping, Optional, Sequence


def subprocess_env(**extra: str) -> dict:
    """The environment for a subprocess: unbuffered output (logs interleave in order) and torch's
    safe checkpoint loader on, whatever the calling shell set; ``extra`` on top."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    return env


def run_process(argv: Sequence, cwd=None, env: Optional[Mapping[str, str]] = None,
                stdin: Optional[str] = None, timeout: Optional[float] = 300
                ) -> subprocess.CompletedProcess:
    """Run ``argv`` to its end; the exit status is the caller's to check."""
    return subprocess.run([str(a) for a in argv], cwd=cwd,
                          env=subprocess_env() if env is None else dict(env), input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def output(proc: subprocess.CompletedProcess) -> str:
    """Everything a finished command printed: stdout, then stderr."""
    return proc.stdout + proc.stderr


def failure(proc: subprocess.CompletedProcess) -> str:
    """What a failed command said, for an assertion message: the exit status and the tails."""
    return (f"{proc.args[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-5000:]}")


def run(argv: Sequence, cwd=None, env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None, timeout: Optional[float] = 900) -> str:
    """Run ``argv``, which must succeed; returns stdout + stderr."""
    proc = run_process(argv, cwd=cwd, env=env, stdin=stdin, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(failure(proc))
    return output(proc)
