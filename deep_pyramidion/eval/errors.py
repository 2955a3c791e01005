"""The errors of the evaluation code under their earlier import path: bad input
(:class:`DataError`, exit 1 in the CLIs) and hypotheses that are not the reference documents
(:class:`MismatchError`, exit 3). Both are defined in plumbing/errors.py."""
from deep_pyramidion.plumbing.errors import DataError, MismatchError  # noqa: F401  (re-exported)

__all__ = ["DataError", "MismatchError"]
