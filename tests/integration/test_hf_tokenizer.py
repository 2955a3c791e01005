"""The export's tokenizer gives the ids of fairseq's pipeline and decodes as it does.

fairseq's side is built from fairseq's own pieces, as the hub's ``encode_document`` / ``decode``
chain them: whitespace collapsed, ``--bpe sentencepiece`` or ``--bpe gpt2``, the dictionary's
``encode_line`` (end of sentence appended), and on the way back ``Dictionary.string``, the BPE's
decode and the ``<q>`` marker replaced as pyramidion-summarize does. Texts: ACLSum papers (the
installed ``aclsum`` package) and odd Unicode.
"""
import json
import os
import re
from argparse import Namespace

import pytest

from deep_pyramidion.data.aclsum import _load_paper, aclsum_data_dir
from deep_pyramidion.data.gpt2_bpe import learn_merges, write_bpe_files
from tests.support.bart import corpus
from tests.support.hf import export_built, sentencepiece_data, tiny_pyramidion

ODD = [
    "emoji 👩‍🔬🧪 and flags 🇪🇺 in a sentence",
    "zero\u200bwidth\u200cjoiners\u200dhere and a soft\u00adhyphen",
    "right to left: مرحبا بالعالم and עברית mixed with English",
    "a NUL \x00 byte, a lone CR \r in the middle, tabs\t\tand\u00a0nbsp",
    "line\u2028separator, combining e\u0301 and fullwidth ＡＢＣ１２３",
    "literal specials <pad> </s> <unk> <s> and the marker <q> inside",
    "   leading and trailing spaces   ",
]
MARKER_RE = re.compile(r"\s*<q>\s*")


def aclsum_texts(n=3):
    folder = os.path.join(aclsum_data_dir(), "paper_jsons")
    texts = []
    for name in sorted(os.listdir(folder))[:n]:
        doc = _load_paper(os.path.join(folder, name))
        texts.append(doc.source)
        texts.append(" <q> ".join(doc.sentences))
    assert all(t.strip() for t in texts)
    return texts


class FairseqPipeline:
    """The hub's encode and decode, from fairseq's parts."""

    def __init__(self, dictionary, bpe):
        self.dictionary, self.bpe = dictionary, bpe

    def encode(self, text):
        line = self.bpe.encode(" ".join(text.split()))
        return self.dictionary.encode_line(line, add_if_not_exist=False, append_eos=True).tolist()

    def decode(self, ids, separator=" <q> "):
        import torch

        text = self.bpe.decode(self.dictionary.string(torch.tensor(ids)))
        return MARKER_RE.sub(separator, text).strip()


@pytest.fixture(scope="module")
def sentencepiece_case(tmp_path_factory):
    from fairseq.data import Dictionary, encoders

    from deep_pyramidion.hf import PyramidionTokenizer  # noqa: F401  (registers AutoTokenizer)
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("tok-spm")
    data = sentencepiece_data(root)
    out = export_built(tiny_pyramidion(data), data, root / "export")
    bpe = encoders.build_bpe(Namespace(bpe="sentencepiece", sentencepiece_model=str(data / "spm.model"),
                                       sentencepiece_enable_sampling=False,
                                       sentencepiece_alpha=None))
    return AutoTokenizer.from_pretrained(str(out)), \
        FairseqPipeline(Dictionary.load(str(data / "dict.src.txt")), bpe)


@pytest.fixture(scope="module")
def gpt2_case(tmp_path_factory):
    """A BART-family vocabulary: a byte-level BPE and a dictionary of its ids as strings (the
    form of fairseq's BART dict.txt), in the dictionary's own (shuffled) order."""
    from fairseq.data import Dictionary, encoders

    from deep_pyramidion.hf import PyramidionTokenizer

    root = tmp_path_factory.mktemp("tok-gpt2")
    tokens, ranks = learn_merges(corpus(200) + aclsum_texts(1), merges=300)
    write_bpe_files({t: i for i, t in enumerate(tokens)}, ranks, str(root / "encoder.json"),
                    str(root / "vocab.bpe"))
    ids = [str(i) for i in range(len(tokens))]
    ids = ids[::2] + ids[1::2]                    # dictionary order is not the BPE's id order
    dictionary = Dictionary()
    # a BART's dictionary ends in fillers for rows without a BPE token, and <mask>
    for symbol in ids + ["madeupword0000", "madeupword0001", "<mask>"]:
        dictionary.add_symbol(symbol)
    (root / "fairseq_dict.json").write_text(json.dumps(dictionary.symbols))
    tokenizer = PyramidionTokenizer(str(root / "fairseq_dict.json"),
                                    gpt2_encoder_json=str(root / "encoder.json"),
                                    gpt2_vocab_bpe=str(root / "vocab.bpe"))
    bpe = encoders.build_bpe(Namespace(bpe="gpt2", gpt2_encoder_json=str(root / "encoder.json"),
                                       gpt2_vocab_bpe=str(root / "vocab.bpe")))
    return tokenizer, FairseqPipeline(dictionary, bpe)


@pytest.mark.parametrize("case", ["sentencepiece_case", "gpt2_case"])
def test_ids_and_text_are_fairseqs(case, request):
    tokenizer, fairseq = request.getfixturevalue(case)
    texts = aclsum_texts() + ODD
    unknown = 0
    for text in texts:
        expected = fairseq.encode(text)
        ids = tokenizer(text)["input_ids"]
        assert ids == expected, text[:80]
        assert ids[-1] == tokenizer.eos_token_id and tokenizer.bos_token_id not in ids
        unknown += ids.count(tokenizer.unk_token_id)
        assert tokenizer.decode(ids) == fairseq.decode(ids), text[:80]
        assert tokenizer.decode(ids, sentence_separator=" ") == fairseq.decode(ids, " ")
    if case == "sentencepiece_case":
        assert unknown > 0    # the tiny model's pieces miss some of ACLSum: <unk> is exercised


def test_marker_and_batches(sentencepiece_case):
    tokenizer, fairseq = sentencepiece_case
    text = "the model reads long documents.<q>  results show that pooling keeps quality."
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == \
        "the model reads long documents. <q> results show that pooling keeps quality."
    assert tokenizer.decode(ids, sentence_separator=" ") == \
        "the model reads long documents. results show that pooling keeps quality."
    batch = tokenizer([text, "short"], padding=True)
    # padded on the left, as fairseq's translation task pads sources
    assert batch["input_ids"][1][0] == tokenizer.pad_token_id
    assert batch["input_ids"][1][-1] == tokenizer.eos_token_id
    assert batch["input_ids"][0] == fairseq.encode(text)
    # truncation keeps the first tokens and </s>, as pyramidion-summarize cuts a long document
    cut = tokenizer(text, truncation=True, max_length=5)["input_ids"]
    assert cut == ids[:4] + [tokenizer.eos_token_id]


def test_fillers_and_mask_decode_as_fairseq_decodes_them(gpt2_case):
    """madeupwordNNNN stands for no text (the gpt2_decode_fillers patch), <mask> for itself."""
    tokenizer, fairseq = gpt2_case
    ids = fairseq.encode("the model reads long documents")
    fillers = [tokenizer.convert_tokens_to_ids(t) for t in ("madeupword0000", "<mask>")]
    assert tokenizer.unk_token_id not in fillers
    mixed = ids[:2] + fillers[:1] + ids[2:4] + fillers[1:] + ids[4:]
    assert tokenizer.decode(mixed) == fairseq.decode(mixed)
    assert "madeupword" not in tokenizer.decode(mixed) and "<mask>" in tokenizer.decode(mixed)
