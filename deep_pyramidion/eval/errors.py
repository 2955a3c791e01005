"""The errors of the evaluation code: bad input (:class:`DataError`, exit 1 in the CLIs) and
hypotheses that are not the reference documents (:class:`MismatchError`, exit 3)."""

from deep_pyramidion.data.io import DataError

__all__ = ["DataError", "MismatchError"]


class MismatchError(DataError):
    """The hypotheses do not cover exactly the reference documents."""
