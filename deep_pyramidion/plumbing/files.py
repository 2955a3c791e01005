"""Writing outputs so that a failure never destroys what was there before.

Every command that writes a folder (the prepare scripts, preprocess) builds the new folder beside
the old one (``PARENT/.NAME.partial-PID``) and swaps it in only when everything succeeded; a file
(``score.py --json``) is written beside its target and renamed onto it, and so is a copied file
(fairseq's copy of a checkpoint to ``checkpoint_last.pt``: fairseq_plugin/checkpoint_safety.py).
So:

- a failure (bad input, a crash, Ctrl-C, a full disk) leaves the previous output exactly as it was
  and removes the half-built one;
- a successful run leaves only what it wrote: nothing stale from an earlier run survives (an old
  ``{split}.ids``, a split the new run does not have);
- a folder holding files the command did not write is refused, not replaced, and so are an input
  and an output that are the same place or nested so that replacing the output would delete the
  input (:func:`check_not_overlapping`).

The swap uses Linux's ``renameat2(RENAME_EXCHANGE)`` where the kernel and file system offer it (one
atomic step); elsewhere it renames the old folder aside, renames the new one in and deletes the old
one (a crash between the two renames leaves both folders, under their names, and nothing lost).
"""

import ctypes
import ctypes.util
import errno
import logging
import os
import re
import shutil
import tempfile
from typing import Callable, Iterable, Optional, Sequence, Tuple

from .errors import DataError

logger = logging.getLogger(__name__)

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2_exchange(a: str, b: str) -> bool:
    """Atomically exchange two paths; False when the system cannot (then nothing happened)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), b)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def same_or_inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies inside it (both resolved through symlinks)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives
        return False


def check_output_folder(flag: str, path: str, inputs: Iterable[Tuple[str, Optional[str]]] = (),
                        inside_inputs: bool = True) -> None:
    """The one rule for a folder a command replaces, checked before any work: refuse an empty
    path (an unset shell variable), the current directory or a folder holding it, the file
    system's root, the home folder, and a folder that is or holds one of the ``inputs`` (or lies
    inside one, unless ``inside_inputs``: see :func:`check_not_overlapping`).
    (Foreign files inside the folder are refused by :class:`StagedDir`.)"""
    if path is None or not str(path).strip():
        raise DataError(f"{flag}: empty path (an unset variable?); name the output folder")
    real = os.path.realpath(path)
    if same_or_inside(os.getcwd(), real):
        raise DataError(f"{flag} {path}: is the current directory or holds it; refusing to "
                        f"replace it: name a folder of its own")
    if real == os.path.dirname(real) or real == os.path.realpath(os.path.expanduser("~")):
        raise DataError(f"{flag} {path}: refusing to replace {real}")
    check_not_overlapping(flag, path, inputs, inside_inputs)


def check_not_overlapping(out_flag: str, out: str, inputs: Iterable[Tuple[str, Optional[str]]],
                          inside_inputs: bool = True) -> None:
    """Refuse an output folder/file that is an input, or that holds an input (replacing the
    output would delete it); with ``inside_inputs=False`` also one that lies inside an input
    folder (the converter's rule: its output must not land among the files it reads).
    ``inputs`` are ``(flag, path)`` pairs; None paths are ignored."""
    for flag, path in inputs:
        if not path:
            continue
        if same_or_inside(path, out):
            where = "is" if os.path.realpath(path) == os.path.realpath(out) else "is inside"
            raise DataError(
                f"{flag} {path} {where} {out_flag} {out}: the output would replace the input; "
                f"choose an {out_flag} outside it"
            )
        if not inside_inputs and same_or_inside(out, path):
            raise DataError(f"{flag} {path} and {out_flag} {out} overlap: writing one would "
                            f"destroy the other; choose another {out_flag}")


class StagedDir:
    """``with StagedDir(final, owned, flag) as stage:`` build the new folder in ``stage``; on a
    clean exit it replaces ``final``, on an exception it is deleted and ``final`` is untouched.

    ``owned(name)`` says whether an entry of an existing ``final`` is one this command writes;
    any other entry makes :meth:`__enter__` refuse (a folder of someone else's files is not
    replaced). Half-built folders left by killed runs (their process is gone) are removed.
    """

    def __init__(self, final: str, owned: Callable[[str], bool], flag: str = "--out"):
        check_output_folder(flag, final)
        self.flag = flag
        self.given = final
        self.final = os.path.realpath(final)  # a symlinked folder: build next to its target
        self.parent, self.name = os.path.split(self.final)
        self.owned = owned
        self.stage: Optional[str] = None

    def _check(self) -> Optional[int]:
        if os.path.lexists(self.final) and not os.path.isdir(self.final):
            raise DataError(f"{self.flag} {self.given}: exists and is not a folder")
        if not os.path.isdir(self.final):
            return None
        foreign = sorted(n for n in os.listdir(self.final) if not self.owned(n))
        if foreign:
            shown = ", ".join(foreign[:5]) + (f", ... ({len(foreign) - 5} more)" if len(foreign) > 5 else "")
            raise DataError(
                f"{self.flag} {self.given}: holds files this command did not write ({shown}); "
                f"refusing to replace the folder: move them away or choose another {self.flag}"
            )
        return os.stat(self.final).st_mode & 0o7777

    def _clean_leftovers(self) -> None:
        pattern = re.compile(r"^\." + re.escape(self.name) + r"\.(partial|old)-(\d+)(-\w+)?$")
        for entry in os.listdir(self.parent):
            match = pattern.match(entry)
            if match and not _pid_alive(int(match.group(2))):
                logger.info("removing %s, left by an interrupted run", os.path.join(self.parent, entry))
                _remove_tree(os.path.join(self.parent, entry))

    def __enter__(self) -> str:
        if not self.name:
            raise DataError(f"{self.flag} {self.given}: not a folder that can be replaced")
        mode = self._check()
        try:
            os.makedirs(self.parent, exist_ok=True)
        except OSError as err:
            raise DataError(f"{self.flag} {self.given}: cannot create {self.parent} ({err.strerror})") from None
        self._clean_leftovers()
        try:
            self.stage = tempfile.mkdtemp(prefix=f".{self.name}.partial-{os.getpid()}-", dir=self.parent)
        except OSError as err:
            raise DataError(f"{self.flag} {self.given}: cannot write in {self.parent} ({err.strerror})") from None
        if mode is None:
            mode = 0o777 & ~umask()
        os.chmod(self.stage, mode)
        return self.stage

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            _remove_tree(self.stage)
            return
        try:
            self.commit()
        except BaseException:
            _remove_tree(self.stage)  # the old folder is still in place
            raise

    def commit(self) -> None:
        """Swap the staged folder in (called by ``__exit__``)."""
        self._check()  # nothing foreign appeared meanwhile
        if not os.path.isdir(self.final):
            os.rename(self.stage, self.final)
            return
        if _renameat2_exchange(self.stage, self.final):
            _remove_tree(self.stage)  # now holds the old folder
            return
        aside = os.path.join(self.parent, f".{self.name}.old-{os.getpid()}")
        _remove_tree(aside)
        os.rename(self.final, aside)
        try:
            os.rename(self.stage, self.final)
        except OSError:
            os.rename(aside, self.final)
            _remove_tree(self.stage)
            raise
        _remove_tree(aside)


def owned_by(names: Sequence[str] = (), patterns: Sequence[str] = ()) -> Callable[[str], bool]:
    """An ``owned`` predicate for :class:`StagedDir`: exact names or full-match regexes."""
    compiled = [re.compile(p) for p in patterns]
    exact = set(names)
    return lambda name: name in exact or any(p.fullmatch(name) for p in compiled)


def check_output_file(flag: str, path: str, inputs: Iterable[Tuple[str, Optional[str]]] = ()) -> None:
    """Before any work: ``path`` can be written (its folder exists, it is not a folder) and is
    none of the ``inputs``; :class:`DataError` naming the flag otherwise."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise DataError(f"{flag} {path}: is a folder, expected a file path")
    if not os.path.isdir(folder):
        raise DataError(f"{flag} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise DataError(f"{flag} {path}: cannot write in {folder} (permission denied)")
    for other, input_path in inputs:
        if input_path and os.path.exists(input_path) and os.path.realpath(input_path) == os.path.realpath(path):
            raise DataError(f"{flag} {path} is the same file as {other} {input_path}; choose another {flag}")


def write_file_atomic(path: str, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` (beside the target of a symlinked
    ``path``, which stays a link) and rename it onto it: readers see the old or the new content."""
    def fill(handle: int, tmp: str) -> None:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)

    _replace_atomically(path, fill, prefix=".{}.partial-")


def copy_file_atomic(src: str, dst: str) -> None:
    """Copy ``src`` to a temporary file beside ``dst`` (beside the target of a symlinked ``dst``,
    which stays a link) and rename it onto it: readers see the old file or the whole new one, never
    a part (a job killed during a plain copy leaves a truncated file)."""
    def fill(handle: int, tmp: str) -> None:
        os.close(handle)
        shutil.copyfile(src, tmp)

    _replace_atomically(dst, fill, prefix=".{}.", suffix=".tmp")


def _replace_atomically(path: str, fill: Callable[[int, str], None], prefix: str,
                        suffix: str = "") -> None:
    """``fill(handle, tmp)`` writes a new temporary file beside the real ``path``, which then gets
    the mode of the file it replaces (a new file: the umask's) and is renamed onto it; on any
    failure the temporary file is removed and ``path`` is as it was."""
    target = os.path.realpath(path)
    folder = os.path.dirname(target) or "."
    handle, tmp = tempfile.mkstemp(prefix=prefix.format(os.path.basename(target)), suffix=suffix,
                                   dir=folder)
    try:
        fill(handle, tmp)
        # writing into a new file gives it the umask's mode, not the mode of the one it replaces
        mode = os.stat(target).st_mode & 0o7777 if os.path.exists(target) else 0o666 & ~umask()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise


def umask() -> int:
    """The process's umask (reading it means setting it: it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
