"""Wrote the inputs in this folder once (kept as a record; rerunning it rewrites them, and the
recorded digests then no longer apply):

- aclsum/: the first 24 / 4 / 4 documents of ACLSum's train / dev-0 / test-A as
  ``pyramidion-prepare aclsum --max-source-words 200`` wrote them (aclsum 0.1.2);
- bart/: a stand-in for pyramidion-convert's OUT_DIR, as far as ``--pretrained`` reads it: a
  byte-level BPE of 400 merges learned on aclsum/train.* (encoder.json, vocab.bpe) and a fairseq
  dict.txt of the token ids counted in aclsum/train.*, its 5 rarest left out so that some tokens
  become <unk>.

    python tests/data/binarize_reference/make_inputs.py PREPARED_ACLSUM_DIR
"""
import shutil
import sys
from collections import Counter
from pathlib import Path

from deep_pyramidion.data.gpt2_bpe import Gpt2Bpe, learn_merges, write_bpe_files

HERE = Path(__file__).resolve().parent
SIZES = {"train": 24, "dev-0": 4, "test-A": 4}


def main(prepared: Path) -> None:
    text = HERE / "aclsum"
    text.mkdir(exist_ok=True)
    for split, n in SIZES.items():
        for lang in ("src", "tgt", "ids"):
            lines = (prepared / f"{split}.{lang}").read_bytes().split(b"\n")[:n]
            (text / f"{split}.{lang}").write_bytes(b"".join(line + b"\n" for line in lines))
    docs = [line for lang in ("src", "tgt")
            for line in (text / f"train.{lang}").read_text(encoding="utf-8").split("\n")[:-1]]
    tokens, ranks = learn_merges(docs, merges=400)
    bart = HERE / "bart"
    shutil.rmtree(bart, ignore_errors=True)
    bart.mkdir()
    write_bpe_files({t: i for i, t in enumerate(tokens)}, ranks, str(bart / "encoder.json"),
                    str(bart / "vocab.bpe"))
    bpe = Gpt2Bpe(str(bart / "encoder.json"), str(bart / "vocab.bpe"))
    counts = Counter(tok for doc in docs for tok in bpe.encode_line(doc).split())
    entries = sorted(counts.items(), key=lambda kv: (-kv[1], int(kv[0])))[:-5]
    (bart / "dict.txt").write_text("".join(f"{tok} {n}\n" for tok, n in entries), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
