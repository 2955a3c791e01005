"""Writing outputs without destroying what was there, under its earlier import path: the code
lives in plumbing/files.py (atomic file write and copy, output folders built beside the old one
and swapped in, the rule for what an output may replace), below every room. Kept for the code
that imports it from here (``from deep_pyramidion.data.output import StagedDir, owned_by``)."""
from deep_pyramidion.plumbing.errors import DataError
from deep_pyramidion.plumbing.files import (
    StagedDir, check_not_overlapping, check_output_file, check_output_folder, copy_file_atomic,
    owned_by, same_or_inside, write_file_atomic,
)

__all__ = [
    "check_not_overlapping", "check_output_file", "check_output_folder", "copy_file_atomic",
    "DataError", "owned_by", "same_or_inside", "StagedDir", "write_file_atomic"
]
