"""benchmarks.selection.labels: the selection loss's labels counted on a binarized data set, with
the model's own rule (pad, eos, bos and unk never needed; documents cut at the source limit)."""
import subprocess
import sys

from benchmarks.selection.labels import label_density
from benchmarks.selection.runs import binarize

REPO = __file__.rsplit("/tests/", 1)[0]


def _write(folder, name, lines):
    (folder / name).write_text("".join(line + "\n" for line in lines))


def test_label_density_counts_the_source_tokens_the_target_uses(tmp_path):
    text = tmp_path / "text"
    text.mkdir()
    # doc 1: 1 of 6 source words occurs in its target; doc 2: 3 of 4 (cut to 4 below: 2 of 4)
    src = ["a b c d e f", "g h g i j k"]
    tgt = ["c x", "g i z"]
    for split in ("train", "valid", "test"):
        _write(text, f"{split}.src", src)
        _write(text, f"{split}.tgt", tgt)
    data = binarize(str(text), str(tmp_path / "bin"), vocab=100)
    full = label_density(data, "train", max_source=100)
    assert full["documents"] == 2 and full["source_tokens"] == 12
    assert abs(full["needed"] - 4 / 12) < 1e-9              # c; g, g, i
    assert abs(full["covered"] - (1 / 2 + 2 / 3) / 2) < 1e-9  # x and z occur in no source
    cut = label_density(data, "train", max_source=4)        # a b c d | g h g i
    assert cut["source_tokens"] == 8 and abs(cut["needed"] - 4 / 8) < 1e-9

    proc = subprocess.run([sys.executable, "-m", "benchmarks.selection.labels", data,
                           "--max-source-positions", "100", "--enc-layers-and-token-width",
                           "{0: 50, 1: 25}"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "33.3% of source tokens" in proc.stdout
    assert "kept after layer 1: 25 = 25.0% of 100" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "benchmarks.selection.labels", data,
                          "--max-source-positions", "100", "--enc-layers-and-token-width", "512"],
                         cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "--enc-layers-and-token-width" in bad.stderr
