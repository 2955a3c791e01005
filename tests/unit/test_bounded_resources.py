"""Resource use follows the input, not a number written in it or passed as a flag: binarized
index headers, sample ids, bootstrap resamples, worker counts."""
import struct
import time

import pytest

from deep_pyramidion.data.binarize import binarized_length
from deep_pyramidion.data.cli import preprocess_main
from deep_pyramidion.data.io import DataError
from deep_pyramidion.eval.generate_output import _gaps
from deep_pyramidion.eval.rouge import usable_workers


def write_index(prefix, sizes, count=None, code=4, itemsize=4):
    """An mmap index as fairseq's MMapIndexedDataset.Index.writer writes it, and its .bin."""
    count = len(sizes) if count is None else count
    pointers, address = [], 0
    for size in sizes:
        pointers.append(address)
        address += size * itemsize
    with open(f"{prefix}.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", code) + struct.pack("<Q", count))
        f.write(struct.pack(f"<{len(sizes)}i", *sizes) + struct.pack(f"<{len(sizes)}q", *pointers))
    with open(f"{prefix}.bin", "wb") as f:
        f.write(b"\x00" * address)


def test_index_header_count_is_checked_against_the_file_not_trusted(tmp_path):
    prefix = str(tmp_path / "x")
    write_index(prefix, [3, 5, 1])
    assert binarized_length(prefix) == 3
    write_index(prefix, [3, 5, 1], count=2**62)  # a header claiming 4.6e18 documents
    start = time.perf_counter()
    with pytest.raises(DataError, match="damaged"):
        binarized_length(prefix)
    assert time.perf_counter() - start < 1.0
    write_index(prefix, [3, 5], code=99)
    with pytest.raises(DataError, match="dtype code 99"):
        binarized_length(prefix)
    write_index(prefix, [2, 2], code=8, itemsize=2)  # uint16 tokens
    assert binarized_length(prefix) == 2


def test_gaps_are_found_without_walking_up_to_the_largest_id():
    start = time.perf_counter()
    assert _gaps([0, 1, 10**15]) == list(range(2, 33))
    assert _gaps([0, 1, 2]) == []
    assert time.perf_counter() - start < 1.0


def test_worker_counts_are_bounded_by_cpus_and_jobs():
    assert usable_workers(10**6, 3) <= 3
    assert usable_workers(1, 100) == 1


@pytest.mark.parametrize("flags, message", [
    (["--vocab-size", str(10**12)], "--vocab-size must be between 8 and 1000000"),
    (["--seed", "-1"], "--seed must be between 0 and 2^32-1"),
    (["--seed", str(2**40)], "--seed must be between 0 and 2^32-1"),
    (["--spm-input-sentences", str(10**12)], "--spm-input-sentences must be between 0 and 2^31-1"),
    (["--character-coverage", "nan"], "--character-coverage must be in (0, 1]"),
    (["--splits", "train,../escape"], "is not a split name"),
])
def test_preprocess_numbers_out_of_range_are_usage_errors(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        preprocess_main(["--data", str(tmp_path), "--out", str(tmp_path / "o")] + flags)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
