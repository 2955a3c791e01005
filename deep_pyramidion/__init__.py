"""deep_pyramidion: long-document summarization with trainable representation pooling.

The package has layers that a reader can take one at a time (docs/architecture.md):

    floor (stdlib only)  plumbing/ (errors, line readers, safe writing, the command-line harness)
    core (torch only)    config.py, schedule.py, topk/, modules/
    fairseq adapter      fairseq_plugin/ (model, criterion, hub, CLIs, the patches of fairseq)
    evaluation, data     eval/, data/ (neither torch nor fairseq)
    analysis             analysis/ (what the poolers keep; torch only)

How ``--user-dir deep_pyramidion`` registers the model while ``import deep_pyramidion.topk`` stays
free of fairseq. fairseq imports this package itself (``fairseq.utils.import_user_module``), always
after fairseq is loaded, and only the first time: a package already in ``sys.modules`` is not
imported again. The rule is therefore "the fairseq adapter is loaded as soon as both this package
and fairseq are": if fairseq is loaded when this file runs, the adapter is imported here; if not,
a finder on ``sys.meta_path`` waits for fairseq's own import to finish and imports the adapter then
(a notebook that used the core first and then fairseq's --user-dir still gets the model), and
removes itself. This file never imports fairseq. The adapter registers the model, its
architectures and the criterion and applies the patches of fairseq (logged once at INFO). Code
that wants the plugin explicitly imports ``deep_pyramidion.fairseq_plugin`` (``deep_pyramidion.hub``
does).
"""
import sys


def _load_fairseq_adapter() -> None:
    from deep_pyramidion import fairseq_plugin  # noqa: F401  (registers with fairseq)


if "fairseq" in sys.modules:
    _load_fairseq_adapter()
else:
    import importlib.abc
    import importlib.machinery

    class _AdapterAfterFairseq(importlib.abc.MetaPathFinder):
        """Finds nothing itself: wraps the loading of ``fairseq`` so the adapter follows it."""

        def find_spec(self, name, path, target=None):
            if name != "fairseq":
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                _load_fairseq_adapter()

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _AdapterAfterFairseq())
