"""fairseq checkpoints under torch's safe loader, with errors a user can act on.

torch >= 2.6 loads with ``weights_only=True``: only tensors, containers and allowlisted classes are
unpickled, so a checkpoint cannot run code on load. fairseq checkpoints hold a few plain
configuration classes besides tensors; we allowlist exactly those instead of turning the safe
loader off. A checkpoint holding anything else is refused with a message saying how to allow the
class if the file is trusted; a truncated or corrupted file gets a one-line error, not a stack trace
from inside pickle.

The pieces here are used by two patches of fairseq (patches.py: ``safe_checkpoint_loading``,
``atomic_checkpoint_copy``) and by the CLIs:
- :func:`checked_loader` wraps fairseq's ``checkpoint_utils.load_checkpoint_to_cpu``: it first
  checks the file (empty, truncated zip archive, CRC mismatch of any member: torch itself reads a
  bit-flipped tensor without noticing) and turns failures inside the unpickler into
  :class:`CheckpointError`;
- :func:`atomic_copy` wraps fairseq's ``PathManager.copy`` so that local copies are atomic (copy
  beside the destination, then rename: plumbing/files.py, ``copy_file_atomic``): fairseq writes ``checkpoint_1_400.pt`` atomically but then
  *copies* it to ``checkpoint_last.pt``, and a job killed during that copy left a truncated
  ``checkpoint_last.pt``.
"""
import argparse
import collections
import functools
import importlib
import logging
import os
import pickle
import re
import typing
import zipfile

import torch

from deep_pyramidion.plumbing.errors import CheckpointError, TrustedGlobalsError
from deep_pyramidion.plumbing.files import copy_file_atomic

logger = logging.getLogger(__name__)

TRUSTED_GLOBALS_ENV = "DEEP_PYRAMIDION_TRUSTED_GLOBALS"
_NO_WEIGHTS_ONLY_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def _fairseq_checkpoint_classes():
    classes = [argparse.Namespace]
    # fairseq < 0.12 and some tools stored the config as omegaconf containers; fairseq's trainer
    # also re-pickles a loaded state (cfg as a DictConfig) to broadcast it from rank 0 to the other
    # workers on resume, and they unpickle it with the safe loader. A DictConfig's metadata refers
    # to these type objects (referenced, not called with attacker-chosen code: each is a plain
    # constructor or a typing marker).
    try:
        from omegaconf import DictConfig, ListConfig
        from omegaconf.base import ContainerMetadata, Metadata
        from omegaconf.nodes import AnyNode

        classes += [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode,
                    typing.Any, dict, list, int, collections.defaultdict]
    except ImportError:  # pragma: no cover - omegaconf comes with fairseq
        pass
    try:  # broadcast_object stands a frozen dataclass in for each tensor it sends separately
        from fairseq.distributed.utils import _TensorPlaceholder

        classes.append(_TensorPlaceholder)
    except ImportError:  # pragma: no cover - other fairseq versions
        pass
    return classes


def _import_global(dotted: str):
    dotted = dotted.strip()
    module, _, name = dotted.rpartition(".")
    if not module:
        raise TrustedGlobalsError(f"{TRUSTED_GLOBALS_ENV}: {dotted!r} is not a dotted 'module.Class' "
                              f"name (builtins are named like 'builtins.set')")
    try:
        return getattr(importlib.import_module(module), name)
    except Exception as err:  # whatever importing the named module raises
        raise TrustedGlobalsError(f"{TRUSTED_GLOBALS_ENV}: cannot import {dotted!r} "
                              f"({type(err).__name__}: {err})") from None


def trusted_globals():
    """The allowlist: fairseq's config classes plus what the user named in the environment."""
    extra = [g for g in os.environ.get(TRUSTED_GLOBALS_ENV, "").split(",") if g.strip()]
    return _fairseq_checkpoint_classes() + [_import_global(g) for g in extra]


_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _first_sentence(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.split(". ")[0]


def _restart_hint(path) -> str:
    """For a broken checkpoint_last.pt: name the newest other checkpoint beside it."""
    path = str(path)
    if os.path.basename(path) != "checkpoint_last.pt":
        return ""
    folder = os.path.dirname(path) or "."
    try:
        others = [os.path.join(folder, f) for f in os.listdir(folder)
                  if f.startswith("checkpoint") and f.endswith(".pt") and f != "checkpoint_last.pt"]
    except OSError:
        return ""
    if not others:
        return ""
    newest = max(others, key=os.path.getmtime)
    return (f"; if training was killed while writing it, resume from the newest intact "
            f"checkpoint with --restore-file {newest}")


def explain_load_error(path, err: Exception) -> CheckpointError:
    text = str(err)
    match = _UNSUPPORTED.search(text)
    if match:
        name = match.group(1)
        if "." not in name:  # torch prints builtins bare ("dict")
            name = f"builtins.{name}"
        return CheckpointError(
            f"{path}: refused to load: the checkpoint holds {name}, which is not among the classes "
            f"fairseq checkpoints contain, and unpickling it could run code. If you trust this file, "
            f"allow the class with {TRUSTED_GLOBALS_ENV}={name} (comma-separated for several)")
    return CheckpointError(
        f"{path}: cannot read the checkpoint; it is truncated or corrupted, or not a torch checkpoint "
        f"({type(err).__name__}: {_first_sentence(text)}){_restart_hint(path)}")


def check_checkpoint_file(path) -> None:
    """Cheap structural checks of a local checkpoint file; raises CheckpointError.

    torch checkpoints are uncompressed zip archives whose members carry CRC-32 checksums; torch
    does not verify them, so a bit-flipped tensor would load silently. Reading the file once more
    costs about a second per GB (the loader then reads it from the page cache).
    """
    path = str(path)
    if not os.path.isfile(path):
        return  # missing files: fairseq's own error ("Model file not found") is clear
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: cannot read the checkpoint; the file is empty"
                              f"{_restart_hint(path)}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        if not zipfile.is_zipfile(path):
            raise CheckpointError(
                f"{path}: cannot read the checkpoint; it is truncated (a zip archive whose "
                f"directory at the end of the file is missing){_restart_hint(path)}")
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except Exception as err:  # zipfile raises many kinds (e.g. NotImplementedError for an
            # unsupported compression method): each means the file is not what torch wrote
            raise CheckpointError(
                f"{path}: cannot read the checkpoint; it is truncated or corrupted (zip archive: "
                f"{type(err).__name__}: {_first_sentence(str(err))}){_restart_hint(path)}") from None
        if bad is not None:
            raise CheckpointError(
                f"{path}: cannot read the checkpoint; it is corrupted (checksum mismatch in "
                f"{bad}){_restart_hint(path)}")
    elif head[:1] != b"\x80":  # neither a zip archive nor a legacy (pre-1.6) torch pickle
        raise CheckpointError(f"{path}: cannot read the checkpoint; it is not a torch checkpoint "
                              f"(starts with {head!r})")


def _unpickler_files():
    import torch._weights_only_unpickler as weights_only

    return {os.path.realpath(m.__file__) for m in (torch.serialization, weights_only, pickle)}


def _raised_while_unpickling(err: BaseException) -> bool:
    """Whether err came out of torch.load / pickle (a bad file), not from fairseq's code after it."""
    if isinstance(err, (pickle.UnpicklingError, EOFError)):
        return True
    files = _unpickler_files()
    tb = err.__traceback__
    while tb is not None:
        if os.path.realpath(tb.tb_frame.f_code.co_filename) in files:
            return True
        tb = tb.tb_next
    return False


def _local_path(path):
    try:
        from fairseq.file_io import PathManager

        if PathManager.path_requires_pathmanager(str(path)):
            return None
    except ImportError:  # pragma: no cover
        pass
    return path


# A checkpoint fairseq wrote holds a configuration of a few hundred entries and one entry per
# parameter (model and optimizer state): far below these. A crafted pickle can reference one small
# list from many places (a few bytes that stand for an exponentially large tree), or nest deeper
# than any recursive walk survives; fairseq and omegaconf walk the loaded object as a tree.
MAX_TREE_NODES = 10_000_000
MAX_DEPTH = 100


def check_structure(obj, path, max_nodes: int = MAX_TREE_NODES, max_depth: int = MAX_DEPTH) -> None:
    """Refuse an object whose tree (as a recursive walk sees it) is larger or deeper than a
    checkpoint's, or cyclic; linear in the objects actually stored (shared ones counted once)."""
    sizes, depths = {}, {}
    stack = [(obj, False)]
    on_path = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            depths[key] = 1 + max((depths[id(c)] for c in children), default=0)
            if sizes[key] > max_nodes or depths[key] > max_depth:
                raise CheckpointError(
                    f"{path}: refused: its structure would be walked as more than "
                    f"{min(sizes[key], max_nodes):,} objects nested {depths[key]} deep; fairseq "
                    "checkpoints hold far fewer (a crafted or damaged file?)")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise CheckpointError(f"{path}: refused: its structure contains a cycle, which no "
                                  "fairseq checkpoint does (a crafted or damaged file?)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _children(node):
    if isinstance(node, dict):
        return list(node.keys()) + list(node.values())
    if isinstance(node, (list, tuple, set, frozenset)):
        return list(node)
    if isinstance(node, argparse.Namespace):
        return list(vars(node).values())
    content = getattr(node, "__dict__", None)
    if isinstance(content, dict) and not isinstance(node, torch.Tensor):
        # an omegaconf node points back at its parent container: a link up, not a child
        return [v for k, v in content.items() if k != "_parent"]
    return []


def preload_and_check(path) -> None:
    """Unpickle the file once with torch's safe loader, tensors memory-mapped (not read), and check
    its structure before fairseq and omegaconf walk it. Every failure is a CheckpointError."""
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except CheckpointError:
        raise
    except Exception as err:  # anything the unpickler raises for a bad file
        raise explain_load_error(path, err) from None
    check_structure(state, path)
    del state


def checked_loader(load):
    """``load(path, ...)`` that checks a local file first and raises :class:`CheckpointError` for
    a file that cannot be read (the original's result is returned unchanged otherwise)."""
    @functools.wraps(load)
    def wrapper(path, *args, **kwargs):
        local = _local_path(path)
        if local is not None:
            check_checkpoint_file(local)
            if os.path.isfile(local) and \
                    os.environ.get(_NO_WEIGHTS_ONLY_ENV, "0") in ("", "0"):
                preload_and_check(local)
        try:
            return load(path, *args, **kwargs)
        except CheckpointError:
            raise
        except Exception as err:
            if not _raised_while_unpickling(err):
                raise
            raise explain_load_error(path, err) from None

    return wrapper


def atomic_copy(copy):
    """fairseq's ``PathManager.copy(src, dst, overwrite)`` made atomic for local files, and nothing
    else changed: the bytes go to a temporary file beside the *real* destination (a symlinked
    ``checkpoint_last.pt`` stays a link and its target is replaced), which is then renamed onto it.
    Return value and ``overwrite`` follow fairseq's own backends: without iopath fairseq calls
    ``shutil.copyfile`` (overwrites, returns the destination); with iopath, its copy (refuses to
    overwrite unless asked, returns True/False)."""
    @functools.wraps(copy)
    def wrapper(src_path, dst_path, overwrite=False):
        from fairseq.file_io import IOPathManager, PathManager

        if PathManager.path_requires_pathmanager(str(src_path)) or \
                PathManager.path_requires_pathmanager(str(dst_path)):
            return copy(src_path, dst_path, overwrite=overwrite)
        if IOPathManager and not overwrite and os.path.exists(dst_path):
            return copy(src_path, dst_path, overwrite=overwrite)   # iopath's refusal, as it is
        copy_file_atomic(src_path, dst_path)
        return True if IOPathManager else dst_path

    return wrapper


def warn_if_safe_loading_is_off() -> None:
    if os.environ.get(_NO_WEIGHTS_ONLY_ENV, "0") not in ("", "0"):
        logger.warning("%s is set: torch loads checkpoints with full pickle, which can run code "
                       "stored in them; load only files you trust", _NO_WEIGHTS_ONLY_ENV)
