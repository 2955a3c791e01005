"""``deep_pyramidion.models.pyramidion``: where the README placed the fairseq model before the
package was reshaped (``from deep_pyramidion.models.pyramidion import PyramidionModel``). The
names now live in the fairseq adapter; using one through this module still works, imports the
adapter (and fairseq) at that moment, and warns with a DeprecationWarning naming the new import
path. Importing this module alone imports nothing of fairseq."""
import importlib
import warnings

NEW_MODULE = "deep_pyramidion.fairseq_plugin.model"
MOVED = ("PyramidionModel", "PyramidionEncoder", "PyramidionDecoder", "rows_per_source")


def __getattr__(name):
    if name in MOVED:
        warnings.warn(f"deep_pyramidion.models.pyramidion.{name} is deprecated; import it from its "
                      f"new place: from {NEW_MODULE} import {name}", DeprecationWarning,
                      stacklevel=2)
        return getattr(importlib.import_module(NEW_MODULE), name)
    raise AttributeError(
        f"module {__name__!r} has no attribute {name!r}: this module only forwards "
        f"{', '.join(MOVED)} to {NEW_MODULE}; the model's options are deep_pyramidion.config."
        "PyramidionConfig, the architectures deep_pyramidion.fairseq_plugin.model.ARCHITECTURES")


def __dir__():
    return sorted(MOVED)
