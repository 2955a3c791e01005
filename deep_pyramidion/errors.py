"""The errors deep_pyramidion raises for expected failures (no torch, no fairseq).

An expected failure is bad input, a bad flag or a bad file: its message is one line that names the
flag, file or line and says what is wrong. The command lines print ``error: <message>`` and exit
non-zero instead of a traceback; fairseq's own command lines (fairseq-train, fairseq-generate, ...)
do the same for these errors through the ``one_line_errors`` patch (fairseq_plugin/patches.py).
Anything else is a bug and keeps its traceback.
"""


class PyramidionError(Exception):
    """Base of the expected failures."""


class ConfigError(PyramidionError, ValueError):
    """A model option (a fairseq flag) with a bad value or in conflict with another one."""
