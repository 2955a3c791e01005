"""fairseq's binarized data without importing fairseq: ``fairseq-preprocess`` run in a subprocess,
and the document count read from an mmap index.

File names: ``{split}.{src}-{tgt}.{lang}.{bin,idx}``. fairseq-preprocess names the subsets
``train``, ``valid``, ``valid1``, ...; :func:`run_fairseq_preprocess` renames them to our split
names (``train``, ``dev-0``, ``test-A``), which is what ``--valid-subset dev-0`` and
``--gen-subset test-A`` load.

``.idx`` layout (``fairseq.data.indexed_dataset.MMapIndexedDataset.Index``), little-endian::

    magic     9 bytes   b"MMIDIDX\\x00\\x00"
    version   <Q        1
    dtype     <B        code of the token dtype (1-10, see _IDX_ITEMSIZE)
    count     <Q        number of documents
    sizes     count x <i4   tokens per document
    pointers  count x <i8   byte offset of each document in the .bin
"""

import logging
import os
import shutil
import struct
import subprocess
import sys
from typing import Dict, List, Sequence

from deep_pyramidion.plumbing.errors import DataError

# the log lines of preprocessing keep the logger name they were written under before this module
# was split from binarize.py, so the command prints what it always printed
logger = logging.getLogger("deep_pyramidion.data.binarize")


def fairseq_names(splits: Sequence[str]) -> Dict[str, str]:
    """Our split -> the subset name fairseq-preprocess gives it (train first, then valid, valid1,
    ... in the order given: every split other than train is passed as a --validpref)."""
    names = {}
    others = [s for s in splits if s != "train"]
    if "train" in splits:
        names["train"] = "train"
    for k, split in enumerate(others):
        names[split] = "valid" if k == 0 else f"valid{k}"
    return names


def binary_files(prefix_dir: str, name: str, src: str = "src", tgt: str = "tgt") -> List[str]:
    return [
        os.path.join(prefix_dir, f"{name}.{src}-{tgt}.{lang}.{ext}") for lang in (src, tgt) for ext in ("bin", "idx")
    ]


def run_fairseq_preprocess(
    pieces_dir: str,
    dest_dir: str,
    dict_path: str,
    splits: Sequence[str],
    workers: int = 1,
    src: str = "src",
    tgt: str = "tgt",
) -> None:
    """Binarize the piece files of ``splits`` into ``dest_dir`` under our split names."""
    scratch = os.path.join(dest_dir, ".fairseq-preprocess")
    shutil.rmtree(scratch, ignore_errors=True)
    names = fairseq_names(splits)
    cmd = [
        sys.executable, "-m", "fairseq_cli.preprocess",
        "--source-lang", src, "--target-lang", tgt,
        "--destdir", scratch,
        "--joined-dictionary", "--srcdict", dict_path,
        "--dataset-impl", "mmap",
        "--workers", str(max(1, workers)),
    ]  # fmt: skip
    if "train" in names:
        cmd += ["--trainpref", os.path.join(pieces_dir, "train")]
    others = [s for s in splits if s != "train"]
    if others:
        cmd += ["--validpref", ",".join(os.path.join(pieces_dir, s) for s in others)]
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        logger.error("fairseq-preprocess output:\n%s\n%s", proc.stdout[-2000:], proc.stderr[-3000:])
        last = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["(no message)"]
        raise DataError(f"fairseq-preprocess failed (exit {proc.returncode}): {last[0].strip()[:300]}")
    for split, name in names.items():
        for old, new in zip(binary_files(scratch, name, src, tgt), binary_files(dest_dir, split, src, tgt)):
            if not os.path.isfile(old):
                raise DataError(f"fairseq-preprocess did not write {old}")
            os.replace(old, new)
    for extra in (f"dict.{src}.txt", f"dict.{tgt}.txt", "preprocess.log"):
        if os.path.isfile(os.path.join(scratch, extra)):
            os.replace(os.path.join(scratch, extra), os.path.join(dest_dir, extra))
    shutil.rmtree(scratch, ignore_errors=True)


_IDX_MAGIC = b"MMIDIDX\x00\x00"  # fairseq.data.indexed_dataset.MMapIndexedDataset.Index._HDR_MAGIC
_IDX_HEADER = struct.Struct("<9sQBQ")  # magic, version (1), dtype code, number of documents
_IDX_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 8, 7: 8, 8: 2, 9: 4, 10: 8}  # fairseq's _code_to_dtype


def binarized_length(prefix: str) -> int:
    """Number of documents in a binarized mmap dataset (``prefix`` without ``.bin``/``.idx``).

    Read from the ``.idx`` header (module docstring), without importing fairseq (and so torch).
    The header is checked against the file sizes, so a truncated ``.idx`` or ``.bin`` is an
    error, not a wrong count.
    """
    idx, data = prefix + ".idx", prefix + ".bin"
    if not (os.path.isfile(idx) and os.path.isfile(data)):
        raise DataError(f"{idx}/.bin: binarized dataset not found")
    with open(idx, "rb") as handle:
        header = handle.read(_IDX_HEADER.size)
        if len(header) < _IDX_HEADER.size or not header.startswith(_IDX_MAGIC):
            raise DataError(f"{idx}: not a fairseq mmap index (--dataset-impl mmap)")
        _, version, code, count = _IDX_HEADER.unpack(header)
        if version != 1 or code not in _IDX_ITEMSIZE:
            raise DataError(f"{idx}: unsupported mmap index (version {version}, dtype code {code})")
        size = os.fstat(handle.fileno()).st_size
        if size != _IDX_HEADER.size + 12 * count:
            raise DataError(f"{idx}: damaged: its header says {count} documents, its size does not match")
        tokens = 0
        left = count
        while left:  # sum of the int32 sizes, in bounded chunks
            n = min(left, 1 << 20)
            chunk = handle.read(4 * n)
            tokens += sum(struct.unpack(f"<{n}i", chunk))
            left -= n
    if os.path.getsize(data) != tokens * _IDX_ITEMSIZE[code]:
        raise DataError(f"{data}: damaged: holds {os.path.getsize(data)} bytes, its index says {tokens} tokens")
    return count
