"""The one rule for output folders (data/output.py: check_output_folder, applied by StagedDir):
an empty path, the current directory (or a folder holding it) and a folder holding an input are
refused before anything is written."""
import os

import pytest

from deep_pyramidion.data.io import DataError
from deep_pyramidion.data.output import StagedDir, check_output_folder, owned_by


def test_empty_path_is_refused():
    for path in ("", "   "):
        with pytest.raises(DataError, match="empty path"):
            check_output_folder("OUT_DIR", path)


def test_current_directory_and_its_parents_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("keep me")
    monkeypatch.chdir(work)
    for path in (".", str(work), str(tmp_path), os.path.join(str(work), "..")):
        with pytest.raises(DataError, match="current directory"):
            StagedDir(path, lambda name: True, "OUT_DIR")
    assert (work / "precious.txt").read_text() == "keep me"


def test_folder_holding_an_input_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="would replace the input"):
        check_output_folder("--out", str(tmp_path), [("--data", str(tmp_path / "data"))])


def test_a_folder_of_its_own_is_accepted_and_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.pt").write_text("old")
    with StagedDir("out", owned_by(names=("model.pt",)), "OUT_DIR") as stage:
        (open(os.path.join(stage, "model.pt"), "w")).write("new")
    assert (out / "model.pt").read_text() == "new"
