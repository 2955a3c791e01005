"""deep_pyramidion/data/gpt2_bpe.py: the byte-level BPE of pretrained BARTs, and learn_merges, which
makes one for tests and benchmarks (nothing can be downloaded): its incremental pair counts must
pick exactly the merges that recounting every pair after every merge picks."""
from collections import Counter

import pytest
import regex

from deep_pyramidion.data.gpt2_bpe import (
    Gpt2Bpe, _WORD_PATTERN, byte_alphabet, learn_merges, write_bpe_files,
)
from tests.support.bart import corpus


def recounting_merges(texts, merges):
    """The definition: count every adjacent pair within every word, merge the most frequent
    (ties: the smallest pair), again."""
    alphabet = byte_alphabet()
    words = Counter(tuple(alphabet[b] for b in w.encode("utf-8"))
                    for t in texts for w in regex.findall(_WORD_PATTERN, t))
    ranks = []
    for _ in range(merges):
        pairs = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        ranks.append(best)
        merged = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if word[i:i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return ranks


@pytest.mark.parametrize("texts", [
    corpus(60, seed=1),
    ["aaaa aaa aa a bbb abab ababab", "zzz zz z"],     # overlapping pairs, repeats in one word
    ["héllo wörld ünïcode 日本語 テキスト"] * 3,          # multi-byte characters
    ["", " "],                                           # no pairs at all
])
@pytest.mark.parametrize("merges", [0, 1, 40, 400])
def test_learned_merges_are_the_recounting_definition(texts, merges):
    tokens, ranks = learn_merges(texts, merges)
    assert ranks == recounting_merges(texts, merges)
    assert tokens[256:] == [a + b for a, b in ranks] and len(tokens) == 256 + len(ranks)


def test_learned_bpe_round_trips_text(tmp_path):
    texts = corpus(40, seed=2) + ["héllo wörld 日本語, tabs\tand  spaces"]
    tokens, ranks = learn_merges(texts, 200)
    write_bpe_files({t: i for i, t in enumerate(tokens)}, ranks, str(tmp_path / "encoder.json"),
                    str(tmp_path / "vocab.bpe"))
    bpe = Gpt2Bpe(str(tmp_path / "encoder.json"), str(tmp_path / "vocab.bpe"))
    for text in texts:
        ids = bpe.encode(text)
        assert bpe.decode(ids) == text
    assert len(bpe.encode(texts[0])) < len(texts[0].encode("utf-8"))   # the merges are used
