"""The command-line harness every installed command runs in (deep_pyramidion/commands.py lists
them): exit codes, the way an expected failure ends (one line on stderr, ``error: ...``, never a
traceback), the logging set-up, and ``run_cli``, which ties them together.

Exit codes (each CLI's ``--help`` lists the ones it uses):

    0    success
    1    bad input (a file missing, unreadable, not UTF-8, of the wrong shape; the message names the
         file and line), or an output that cannot be written
    2    usage: a flag missing, malformed or out of range (argparse's message)
    3    a mismatch between inputs that are each fine (score.py: hypotheses and references are not
         the same documents; a generate output without every expected document)
    130  interrupted (Ctrl-C); outputs are left as they were before the run
    141  stdout was closed early (``| head``): the command stops quietly, as other Unix tools do
"""

import contextlib
import logging
import os
import sys
import textwrap
import warnings
from typing import Callable, List, Optional

from .errors import PyramidionError

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_MISMATCH = 3
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141

EXIT_CODES_HELP = (
    "exit status: 0 ok; 1 bad input or an unwritable output (the message names the file and line); "
    "2 usage; {extra}130 interrupted; 141 stdout closed early (| head). On any failure the previous "
    "outputs are left exactly as they were."
)


def exit_codes_help(extra: str = "", note: str = "") -> str:
    """The exit-status paragraph of a CLI's ``--help`` (wrapped: the CLIs keep their epilog raw);
    ``extra`` adds codes such as ``3 ...; ``, ``note`` a sentence about the outputs."""
    text = EXIT_CODES_HELP.format(extra=extra) + (" " + note.strip() if note else "")
    return textwrap.fill(text, width=96)


LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO, take_over: bool = False) -> None:
    """A command's logging: ``LEVEL logger: message`` lines on stderr (stdout is for results).
    Called once the arguments are parsed, so ``--help`` and a usage error log nothing.
    ``take_over`` first removes the root logger's handlers: importing fairseq points the root
    logger at stdout, where the model commands print summaries (removed, not closed: ``run_cli``
    gives a Python caller its own back afterwards). Without it a handler already there is kept, as
    ``logging.basicConfig`` does."""
    if take_over:
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


def one_line(message: object) -> str:
    """A message on one line (an exception text may hold newlines from quoted input)."""
    return " ".join(str(message).split("\n")).strip()


def fail(message: object, code: int = EXIT_BAD_INPUT) -> int:
    print(f"error: {one_line(message)}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush does not
    print a second error."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


@contextlib.contextmanager
def _logging_as_found():
    """A command configures logging for its process (handlers on the root logger, levels, warning
    filters). Called from Python instead (a test, a notebook, a script of the user's) it must leave
    the caller's logging as it found it: a handler left behind would keep writing to a stream the
    caller has since closed or redirected."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: lg.level for name, lg in logging.root.manager.loggerDict.items()
              if isinstance(lg, logging.Logger)}
    with warnings.catch_warnings():
        try:
            yield
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
            for name, lg in list(logging.root.manager.loggerDict.items()):
                if isinstance(lg, logging.Logger):
                    lg.setLevel(levels.get(name, logging.NOTSET))


def run_cli(main: Callable[[Optional[List[str]]], int], argv: Optional[List[str]] = None,
            mismatch: tuple = ()) -> int:
    """Run ``main(argv)`` and turn the expected failures into an exit code and one line:
    any PyramidionError (errors.py: DataError, CheckpointError, ConfigError, ...) -> 1
    (an exception in ``mismatch`` -> 3), an OS error (disk full, permission) -> 1,
    Ctrl-C -> 130, a closed stdout -> 141 (quietly). Anything else is a bug and keeps its traceback.
    The caller's logging is as it was when this returns."""
    with _logging_as_found():
        return _run(main, argv, mismatch)


def _run(main, argv, mismatch) -> int:
    try:
        return main(argv)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except PyramidionError as err:
        return fail(err, EXIT_MISMATCH if mismatch and isinstance(err, mismatch) else EXIT_BAD_INPUT)
    except OSError as err:  # the machine's, not the input's: disk full, permissions, a vanished file
        where = f"{err.filename}: " if err.filename else ""
        return fail(f"{where}{err.strerror or err}")
