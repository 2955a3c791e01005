"""The fairseq adapter: everything of deep_pyramidion that imports fairseq lives in this folder.

    model.py             PyramidionModel / PyramidionEncoder / PyramidionDecoder, architectures
    encoder_layer.py     fairseq's encoder layer + external keys/values + usage; batch-first view
    criterion.py         label_smoothed_cross_entropy_with_reconstruction
    patches.py           the table of changes to fairseq's own functions (applied here)
    checkpoint_safety.py safe loading, file checks and atomic copies used by two patches
    hub.py               from_pretrained + summarize()
    cli.py               pyramidion-summarize

Importing this package registers the model, its architectures and the criterion with fairseq and
applies the patches (logged once at INFO).
"""
from deep_pyramidion.fairseq_plugin import patches

try:
    patches.apply_all()
except ValueError as _error:   # a bad DEEP_PYRAMIDION_NO_PATCHES: one line in a command
    patches.explain_switches(_error)
    raise
patches.explain_switches()

from deep_pyramidion.fairseq_plugin import criterion, model  # noqa: E402,F401  (register)
