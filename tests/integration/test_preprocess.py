"""scripts/preprocess.py: sentencepiece + fairseq-preprocess into train / dev-0 / test-A, the
dictionary / model consistency check, and bad inputs."""
import random
from pathlib import Path

import pytest

from deep_pyramidion.data import binarize
from deep_pyramidion.data.cli import preprocess_main
from deep_pyramidion.data.io import DataError
from deep_pyramidion.data.sentences import MARKER

SPLITS = ("train", "dev-0", "test-A")
SIZES = {"train": 40, "dev-0": 7, "test-A": 5}
WORDS = (
    "pooling attention encoder decoder token summary document model layer chunk score select "
    "paper result long sparse dense training inference memory speed"
).split()


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_corpus(root: Path, seed=0):
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in SIZES.items():
        with open(root / f"{split}.src", "w") as src, open(root / f"{split}.tgt", "w") as tgt, open(
            root / f"{split}.ids", "w"
        ) as ids:
            for i in range(n):
                src.write(" ".join(sentence(rng, rng.randint(5, 15)) for _ in range(rng.randint(5, 30))) + "\n")
                tgt.write(f" {MARKER} ".join(sentence(rng, rng.randint(4, 9)) for _ in range(rng.randint(1, 4))) + "\n")
                ids.write(f"{split}-{i}\n")
    return root


@pytest.fixture(scope="module")
def binarized(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    data = write_corpus(root / "text")
    out = root / "bin"
    # a vocabulary far larger than this corpus can fill: must not fail, only warn
    rc = preprocess_main(["--data", str(data), "--out", str(out), "--vocab-size", "5000", "--workers", "2"])
    assert rc == 0
    return data, out


def test_binarized_splits_are_named_for_the_seed_command_lines(binarized):
    data, out = binarized
    for split in SPLITS:
        for lang in ("src", "tgt"):
            for ext in ("bin", "idx"):
                assert (out / f"{split}.src-tgt.{lang}.{ext}").is_file()
            assert binarize.binarized_length(str(out / f"{split}.src-tgt.{lang}")) == SIZES[split]
        assert (out / f"{split}.ids").read_text() == (data / f"{split}.ids").read_text()
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(("valid", "test.")) or p.name.startswith(".")]
    assert leftovers == []
    assert (out / "spm.model").is_file()


def test_fairseq_loads_dev0_and_testA_and_text_round_trips(binarized):
    from fairseq.data import Dictionary
    from fairseq.tasks.translation import load_langpair_dataset

    data, out = binarized
    dictionary = Dictionary.load(str(out / "dict.src.txt"))
    assert (out / "dict.src.txt").read_text() == (out / "dict.tgt.txt").read_text()
    assert len(dictionary) % 8 == 0
    for split in ("dev-0", "test-A"):  # what --valid-subset dev-0 / --gen-subset test-A load
        ds = load_langpair_dataset(
            str(out), split, "src", dictionary, "tgt", dictionary, combine=False, dataset_impl="mmap",
            upsample_primary=1, left_pad_source=False, left_pad_target=False,
            max_source_positions=100000, max_target_positions=100000,
        )  # fmt: skip
        assert len(ds) == SIZES[split]
        targets = (data / f"{split}.tgt").read_text().splitlines()
        for i in (0, len(ds) - 1):
            pieces = dictionary.string(ds[i]["target"])
            assert "<unk>" not in pieces
            assert pieces.replace(" ", "").replace("\u2581", " ").strip() == targets[i]


def test_marker_is_one_piece_and_dictionary_matches_model(binarized):
    import sentencepiece as spm

    _, out = binarized
    sp = spm.SentencePieceProcessor(model_file=str(out / "spm.model"))
    assert MARKER in sp.encode(f"Pooling works. {MARKER} Decoder attends.", out_type=str)
    assert sp.get_piece_size() < 5000  # capped by the corpus, not failed
    report = binarize.check_spm_dictionary(str(out / "spm.model"), str(out / "dict.src.txt"))
    assert report.missing == [] and report.unknown == [] and report.marker_is_piece
    assert preprocess_main(["--check", str(out)]) == 0


def test_reuse_spm_model_and_refuse_to_overwrite(binarized, tmp_path, capsys):
    data, out = binarized
    assert preprocess_main(["--data", str(data), "--out", str(out), "--vocab-size", "100"]) == 1
    assert "already holds preprocessed data" in capsys.readouterr().err
    again = tmp_path / "again"
    rc = preprocess_main(["--data", str(data), "--out", str(again), "--spm-model", str(out / "spm.model")])
    assert rc == 0
    assert (again / "spm.model").read_bytes() == (out / "spm.model").read_bytes()
    assert sorted(binarize.read_dictionary(str(again / "dict.src.txt"))) == sorted(
        binarize.read_dictionary(str(out / "dict.src.txt"))
    )


def test_mismatched_spm_model_is_detected_naming_both_files(binarized, tmp_path, capsys):
    _, out = binarized
    other_text = tmp_path / "other.txt"
    rng = random.Random(1)
    other_text.write_text(
        "\n".join(" ".join(rng.choice(["zyx", "qwv", "kjh", "mnb", "plo"]) for _ in range(12)) for _ in range(200))
    )
    other = binarize.train_spm([str(other_text)], str(tmp_path / "other"), vocab_size=60)
    with pytest.raises(DataError) as err:
        binarize.check_spm_dictionary(other, str(out / "dict.src.txt"))
    assert other in str(err.value) and str(out / "dict.src.txt") in str(err.value)
    rc = preprocess_main(["--check", str(out), "--spm-model", other])
    assert rc == 1
    assert "does not match dictionary" in capsys.readouterr().err


def test_bad_text_splits_name_file_and_line(tmp_path):
    data = write_corpus(tmp_path / "d")
    assert binarize.check_text_splits(str(data), SPLITS) == SIZES

    (data / "test-A.tgt").unlink()
    with pytest.raises(DataError, match=r"test-A\.tgt: missing split file"):
        binarize.check_text_splits(str(data), SPLITS)
    write_corpus(data)

    lines = (data / "dev-0.src").read_text().splitlines()
    lines[3] = "   "
    (data / "dev-0.src").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"dev-0\.src:4: empty document"):
        binarize.check_text_splits(str(data), SPLITS)
    write_corpus(data)

    (data / "train.tgt").write_text("\n".join((data / "train.tgt").read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataError, match=r"train\.src has 40 documents but .*train\.tgt has 39"):
        binarize.check_text_splits(str(data), SPLITS)
    write_corpus(data)

    with open(data / "train.src", "ab") as f:
        f.write(b"caf\xe9 latin-1\n")
    with pytest.raises(DataError, match=r"train\.src:41: not valid UTF-8"):
        binarize.check_text_splits(str(data), SPLITS)


def test_preprocess_script_reports_bad_input(tmp_path, capsys):
    data = write_corpus(tmp_path / "d")
    (data / "dev-0.src").unlink()
    rc = preprocess_main(["--data", str(data), "--out", str(tmp_path / "o"), "--vocab-size", "100"])
    assert rc == 1
    assert f"{data / 'dev-0.src'}: missing split file" in capsys.readouterr().err
    assert not (tmp_path / "o" / "spm.model").exists()


def test_fairseq_names_follow_split_order():
    assert binarize.fairseq_names(["train", "dev-0", "test-A", "test-B"]) == {
        "train": "train",
        "dev-0": "valid",
        "test-A": "valid1",
        "test-B": "valid2",
    }


def test_binarized_length_reads_the_index_header_as_fairseq_counts_it(binarized, tmp_path):
    import shutil

    from fairseq.data import indexed_dataset

    _, out = binarized
    for split in SPLITS:
        for lang in ("src", "tgt"):
            prefix = str(out / f"{split}.src-tgt.{lang}")
            assert binarize.binarized_length(prefix) == len(indexed_dataset.MMapIndexedDataset(prefix)) == SIZES[split]
    # a damaged copy is an error naming the file, never a wrong count
    prefix = tmp_path / "train.src-tgt.src"
    for ext in ("bin", "idx"):
        shutil.copyfile(out / f"train.src-tgt.src.{ext}", f"{prefix}.{ext}")
    idx = Path(f"{prefix}.idx")
    full = idx.read_bytes()
    idx.write_bytes(full[:-4])
    with pytest.raises(DataError, match=r"train\.src-tgt\.src\.idx: damaged"):
        binarize.binarized_length(str(prefix))
    idx.write_bytes(b"NOTMAGIC!" + full[9:])
    with pytest.raises(DataError, match="not a fairseq mmap index"):
        binarize.binarized_length(str(prefix))
    idx.write_bytes(full)
    data = Path(f"{prefix}.bin")
    data.write_bytes(data.read_bytes()[:-2])
    with pytest.raises(DataError, match=r"train\.src-tgt\.src\.bin: damaged"):
        binarize.binarized_length(str(prefix))


def test_binarize_module_does_not_import_fairseq_or_torch():
    import subprocess
    import sys

    code = ("import sys, deep_pyramidion.data.binarize as b, deep_pyramidion.data.cli, deep_pyramidion.eval.cli; "
            "print('torch' in sys.modules, 'fairseq' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_lone_carriage_returns_do_not_split_documents(tmp_path):
    """fairseq reads the piece files with universal newlines; the text splits are read by the
    project's rule (only \\n ends a line). A \\r inside a document must not change any count."""
    data = write_corpus(tmp_path / "d")
    for split in SPLITS:
        for lang in ("src", "tgt"):
            path = data / f"{split}.{lang}"
            rows = path.read_text().splitlines()
            rows = [row.replace(" ", " \r", 1) if i % 2 else row for i, row in enumerate(rows)]
            path.write_bytes("".join(row + ("\r\n" if i % 3 == 0 else "\n") for i, row in enumerate(rows)).encode())
    assert binarize.check_text_splits(str(data), SPLITS) == SIZES
    out = tmp_path / "bin"
    assert preprocess_main(["--data", str(data), "--out", str(out), "--vocab-size", "200"]) == 0
    for split in SPLITS:
        for lang in ("src", "tgt"):
            assert binarize.binarized_length(str(out / f"{split}.src-tgt.{lang}")) == SIZES[split]
