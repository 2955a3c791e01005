"""fairseq checkpoints under torch's safe loader, with errors a user can act on.

torch >= 2.6 loads with ``weights_only=True``: only tensors, containers and allowlisted classes are
unpickled, so a checkpoint cannot run code on load. fairseq checkpoints hold a few plain
configuration classes besides tensors; we allowlist exactly those instead of turning the safe
loader off. A checkpoint holding anything else is refused with a message saying how to allow the
class if the file is trusted; a truncated or corrupted file gets a one-line error, not a stack trace
from inside pickle.
"""
import argparse
import functools
import importlib
import logging
import os
import pickle
import re

import torch

logger = logging.getLogger(__name__)

TRUSTED_GLOBALS_ENV = "DEEP_PYRAMIDION_TRUSTED_GLOBALS"


class CheckpointError(RuntimeError):
    pass


def _fairseq_checkpoint_classes():
    classes = [argparse.Namespace]
    # fairseq < 0.12 and some tools stored the config as omegaconf containers
    try:
        from omegaconf import DictConfig, ListConfig
        from omegaconf.base import ContainerMetadata, Metadata
        from omegaconf.nodes import AnyNode

        classes += [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode]
    except ImportError:  # pragma: no cover - omegaconf comes with fairseq
        pass
    return classes


def _import_global(dotted: str):
    module, _, name = dotted.strip().rpartition(".")
    if not module:
        raise ValueError(f"{TRUSTED_GLOBALS_ENV}: {dotted!r} is not a dotted 'module.Class' name")
    return getattr(importlib.import_module(module), name)


def trusted_globals():
    """The allowlist: fairseq's config classes plus what the user named in the environment."""
    extra = [g for g in os.environ.get(TRUSTED_GLOBALS_ENV, "").split(",") if g.strip()]
    return _fairseq_checkpoint_classes() + [_import_global(g) for g in extra]


_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def explain_load_error(path, err: Exception) -> CheckpointError:
    text = str(err)
    match = _UNSUPPORTED.search(text)
    if match:
        name = match.group(1)
        return CheckpointError(
            f"{path}: refused to load: the checkpoint holds {name}, which is not among the classes "
            f"fairseq checkpoints contain, and unpickling it could run code. If you trust this file, "
            f"allow the class with {TRUSTED_GLOBALS_ENV}={name} (comma-separated for several)")
    return CheckpointError(
        f"{path}: cannot read the checkpoint; it is truncated or corrupted, or not a torch checkpoint "
        f"({type(err).__name__}: {text.splitlines()[0] if text else ''})")


def _clear_errors(load):
    @functools.wraps(load)
    def wrapper(path, *args, **kwargs):
        try:
            return load(path, *args, **kwargs)
        except (pickle.UnpicklingError, EOFError, RuntimeError) as err:
            if isinstance(err, RuntimeError) and not _looks_like_bad_file(err):
                raise
            raise explain_load_error(path, err) from None

    wrapper.__deep_pyramidion_wrapped__ = True
    return wrapper


def _looks_like_bad_file(err: RuntimeError) -> bool:
    text = str(err)
    return any(s in text for s in ("PytorchStreamReader", "zip archive", "unexpected EOF",
                                   "Invalid magic number", "storage has wrong byte size"))


def install():
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(trusted_globals())
    from fairseq import checkpoint_utils

    if not getattr(checkpoint_utils.load_checkpoint_to_cpu, "__deep_pyramidion_wrapped__", False):
        checkpoint_utils.load_checkpoint_to_cpu = _clear_errors(checkpoint_utils.load_checkpoint_to_cpu)
