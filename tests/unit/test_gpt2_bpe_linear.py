"""The byte-level BPE merges one word in O(n log n) (data/gpt2_bpe.py: merge_word), with exactly
the tokens of GPT-2's own loop, which rescans the word every merge round (a 100k-letter word took
85x longer per letter than the same letters as words). The loop is kept here as the reference."""
import random
import time

import pytest

from deep_pyramidion.data.gpt2_bpe import Gpt2Bpe, learn_merges, merge_word, write_bpe_files
from tests.support.bart import corpus


def rescanning_merge(word, ranks):
    """The previous implementation (GPT-2's loop): each round finds the lowest-ranked adjacent
    pair and merges all its occurrences left to right, until no pair has a rank."""
    parts = list(word)
    while len(parts) > 1:
        ranked = [(ranks.get((a, b), None), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
        ranked = [(r, i) for r, i in ranked if r is not None]
        if not ranked:
            break
        best = min(ranked)[0]
        first, second = next((parts[i], parts[i + 1]) for r, i in ranked if r == best)
        merged, i = [], 0
        while i < len(parts):
            if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
                merged.append(first + second)
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return tuple(parts)


def random_merges(rng, alphabet, count, shuffle):
    """Merges over ``alphabet`` as a merges file may hold them; ``shuffle``: ranks in any order,
    not the order in which the tokens they need were made."""
    tokens, ranks = list(alphabet), {}
    for _ in range(count):
        pair = (rng.choice(tokens), rng.choice(tokens))
        if pair not in ranks:
            ranks[pair] = len(ranks)
            tokens.append(pair[0] + pair[1])
    if shuffle:
        values = list(ranks.values())
        rng.shuffle(values)
        ranks = dict(zip(ranks, values))
    return ranks


def test_same_tokens_as_the_rescanning_loop_on_random_words_and_merges():
    rng = random.Random(0)
    for trial in range(2000):
        alphabet = "abcd"[:rng.randint(1, 4)]
        ranks = random_merges(rng, alphabet, rng.randint(0, 30), shuffle=trial % 2 == 1)
        word = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert merge_word(word, ranks) == rescanning_merge(word, ranks), (word, ranks)


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe")
    tokens, ranks = learn_merges(corpus(200, seed=0), merges=300)
    write_bpe_files({t: i for i, t in enumerate(tokens)}, ranks, str(folder / "encoder.json"),
                    str(folder / "vocab.bpe"))
    return Gpt2Bpe(str(folder / "encoder.json"), str(folder / "vocab.bpe"))


def long_word(n, seed=1):
    rng = random.Random(seed)
    return "".join(rng.choice("thequickbrownfxjmpsvlazydg") for _ in range(n))


def test_same_ids_as_the_rescanning_loop_on_text_and_long_words(bpe):
    rng = random.Random(2)
    texts = corpus(20, seed=5) + [long_word(3000), "x" * 500, "ab" * 700,
                                  " ".join(long_word(rng.randint(1, 40), s) for s in range(50))]
    for text in texts:
        ours = bpe.encode(text)
        bpe._cache.clear()
        original, bpe._merge = bpe._merge, lambda word: rescanning_merge(word, bpe.ranks)
        try:
            reference = bpe.encode(text)
        finally:
            bpe._merge = original
        assert ours == reference
        assert bpe.decode(ours) == text


def seconds(function, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def test_one_long_word_costs_about_what_its_letters_cost_as_words(bpe):
    """Per letter, a 100k-letter word may cost a few times what the same letters cost as 6-letter
    words (the heap's log factor), not the rounds x letters of the rescanning loop (16x at 20k
    letters with these 300 merges, growing with the word); no absolute time is asserted."""
    letters = long_word(100_000)
    words = " ".join(letters[i:i + 6] for i in range(0, len(letters), 6))

    def encode(text):
        bpe._cache.clear()
        return bpe.encode(text)

    ratio = seconds(lambda: encode(letters)) / seconds(lambda: encode(words))
    assert ratio < 5, f"one long word took {ratio:.1f}x the time of the same letters as words"


def test_long_words_are_not_cached(bpe):
    bpe._cache.clear()
    bpe.encode(long_word(5000) + " short")
    assert all(len(word) <= 1000 for word in bpe._cache) and bpe._cache
