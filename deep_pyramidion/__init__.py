"""deep_pyramidion: long-document summarization with trainable representation pooling.

The package has layers that a reader can take one at a time (docs/architecture.md):

    core (torch only)    config.py, schedule.py, topk/, modules/
    fairseq adapter      fairseq_plugin/ (model, criterion, hub, CLI, the patches of fairseq)
    evaluation, data     eval/, data/ (neither torch nor fairseq)
    analysis             analysis/ (what the poolers keep; torch only)

How ``--user-dir deep_pyramidion`` registers the model while ``import deep_pyramidion.topk`` stays
free of fairseq: fairseq imports this package itself (``fairseq.utils.import_user_module``),
always after fairseq is loaded. So this file loads the fairseq adapter, which registers the model,
its architectures and the criterion and applies the patches of fairseq (logged once at INFO),
exactly when ``fairseq`` is already in ``sys.modules``; it never imports fairseq itself. Code that
uses the core alone imports nothing of fairseq or transformers and changes nothing in them. Code
that wants the plugin in a process where fairseq is not loaded yet imports
``deep_pyramidion.fairseq_plugin`` (``deep_pyramidion.hub`` does).
"""
import sys

if "fairseq" in sys.modules:
    from deep_pyramidion import fairseq_plugin  # noqa: F401  (registers with fairseq)
