"""The errors deep_pyramidion raises for expected failures: the names of plumbing/errors.py, where
every error class of the package is defined. This module keeps the import path that code written
against earlier versions uses (``from deep_pyramidion.errors import PyramidionError``)."""
from deep_pyramidion.plumbing.errors import (
    BpeError, CheckpointError, ConfigError, ConversionError, DataError, ExportError,
    HighlightError, MismatchError, PyramidionError, TrustedGlobalsError,
)

__all__ = [
    "BpeError", "CheckpointError", "ConfigError", "ConversionError", "DataError", "ExportError",
    "HighlightError", "MismatchError", "PyramidionError", "TrustedGlobalsError"
]
