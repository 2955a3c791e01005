"""The command-line harness under its earlier import path: it lives in plumbing/cli.py (exit
codes, one-line errors, logging set-up, ``run_cli``), below every room. Kept for the code that
imports it from here (``from deep_pyramidion.data.cli_common import run_cli``)."""
from deep_pyramidion.plumbing.cli import (
    EXIT_BAD_INPUT, EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_MISMATCH, EXIT_OK, EXIT_PIPE,
    EXIT_USAGE, LOG_FORMAT, exit_codes_help, fail, one_line, run_cli, setup_logging,
)

__all__ = [
    "EXIT_BAD_INPUT", "exit_codes_help", "EXIT_CODES_HELP", "EXIT_INTERRUPTED", "EXIT_MISMATCH",
    "EXIT_OK", "EXIT_PIPE", "EXIT_USAGE", "fail", "LOG_FORMAT", "one_line", "run_cli",
    "setup_logging"
]
