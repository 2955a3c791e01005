"""The errors deep_pyramidion raises for expected failures, every one of them in this file.

An expected failure is bad input, a bad flag or a bad file: its message is one line that names the
flag, file or line and says what is wrong. The command lines print ``error: <message>`` and exit
non-zero instead of a traceback (cli.py: ``run_cli``); fairseq's own command lines (fairseq-train,
fairseq-generate, ...) do the same for these errors through the ``one_line_errors`` patch
(fairseq_plugin/patches.py). Anything else is a bug and keeps its traceback.

They live here, below every room, so that each room raises and catches them without importing
another room. The modules that defined them before still offer them under the old names
(``deep_pyramidion.data.io.DataError``, ``deep_pyramidion.eval.errors.MismatchError``, ...).
"""


class PyramidionError(Exception):
    """Base of the expected failures."""


class ConfigError(PyramidionError, ValueError):
    """A model option (a fairseq flag) with a bad value or in conflict with another one."""


class DataError(PyramidionError):
    """Bad input data. The message names the file and, where there is one, the 1-based line."""


class MismatchError(DataError):
    """The hypotheses do not cover exactly the reference documents (exit 3 in the commands that
    compare them)."""


class BpeError(PyramidionError):
    """A vocabulary or merges file that cannot be used; the message names the file."""


class HighlightError(PyramidionError):
    """A model or document that cannot be highlighted (no pooling layers, an empty document)."""


class ConversionError(PyramidionError):
    """The source cannot become a pyramidion; the message names the file and what is wrong."""


class ExportError(PyramidionError):
    """A checkpoint, dictionary or option the export cannot carry; the message names it."""


class CheckpointError(PyramidionError, RuntimeError):
    """A checkpoint that cannot or must not be loaded; the message names the file."""


class TrustedGlobalsError(CheckpointError, ValueError):
    """A bad entry in DEEP_PYRAMIDION_TRUSTED_GLOBALS (a ValueError, as it always was)."""


# A traceback (and pickle) names a class by its __module__: each class keeps the module users have
# always imported it from (which re-exports it), so tracebacks read as they did before the floor
# held the classes, e.g. fairseq-generate's last line
# "deep_pyramidion.fairseq_plugin.checkpoint_safety.CheckpointError: ..." when the one-line patch
# is off. The collections.abc classes do the same (defined in _collections_abc).
_PUBLIC_MODULE = {
    PyramidionError: "deep_pyramidion.errors",
    ConfigError: "deep_pyramidion.errors",
    DataError: "deep_pyramidion.data.io",
    MismatchError: "deep_pyramidion.eval.errors",
    BpeError: "deep_pyramidion.data.gpt2_bpe",
    HighlightError: "deep_pyramidion.analysis.highlight",
    ConversionError: "deep_pyramidion.bart",
    ExportError: "deep_pyramidion.hf.export",
    CheckpointError: "deep_pyramidion.fairseq_plugin.checkpoint_safety",
    TrustedGlobalsError: "deep_pyramidion.fairseq_plugin.checkpoint_safety",
}
for _cls, _module in _PUBLIC_MODULE.items():
    _cls.__module__ = _module
del _cls, _module
