"""GPT-2's byte-level BPE (the tokenizer of BART, RoBERTa, GPT-2), without torch or fairseq.

A pretrained BART comes with its BPE as two files: ``encoder.json`` (fairseq's name; Hugging Face
calls it ``vocab.json``): token string -> id, and ``vocab.bpe`` (``merges.txt``): the merges in rank
order. Text is cut into words by GPT-2's regular expression, each word's UTF-8 bytes become
printable characters (:func:`byte_alphabet`), the merges are applied lowest rank first, and each
resulting token is looked up in the vocabulary. fairseq's ``--bpe gpt2`` does the same (its
``gpt2_bpe_utils``), so the ids written here decode with ``fairseq-generate --bpe gpt2
--gpt2-encoder-json ... --gpt2-vocab-bpe ...``; tests/integration compares the two on text.

fairseq's dictionaries for BART hold these ids *as strings* ("13", "1250", ...): :meth:`encode_line`
returns that form, one document per line, for ``fairseq-preprocess``.
"""
import heapq
import json
import logging
from collections import Counter
from functools import lru_cache
from typing import Dict, Iterable, List, Tuple

from deep_pyramidion.plumbing.errors import BpeError

logger = logging.getLogger(__name__)

# GPT-2's word splitter: contractions, letters, digits, other symbols, whitespace
_WORD_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


# words longer than this are not cached (a 10 MB line of base64 is one word: keeping it would
# double its memory for a word that will hardly come again)
_CACHED_WORD_LENGTH = 1000


@lru_cache(maxsize=1)
def byte_alphabet() -> Dict[int, str]:
    """Every byte as one printable character, so that a BPE over text covers any byte sequence:
    printable Latin-1 bytes stand for themselves, the others for the characters from U+0100 up."""
    kept = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = {b: chr(b) for b in kept}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def merge_word(word: str, ranks: Dict[Tuple[str, str], int]) -> Tuple[str, ...]:
    """GPT-2's merge of one word (its characters, each a symbol) in O(n log n) for n characters.

    The result is that of GPT-2's own loop (``gpt2_bpe_utils.Encoder.bpe``): a round finds the
    adjacent pair of lowest rank and merges every occurrence of it, left to right without
    overlap; rounds repeat until no adjacent pair has a rank. That loop rescans the whole word
    every round, so a 100k-letter word (base64, a URL, DNA) costs rounds x letters. Here the
    symbols are a linked list and the ranked adjacent pairs a heap of (rank, position): a round
    pops every entry of the lowest rank, in position order, and merges those still present (an
    entry is stale when either of its symbols has been merged since it was pushed); the pairs a
    merge creates are pushed after the round, as the next round of the loop would see them. A pair
    a merge creates never has the rank being merged (its merged symbol is longer than either half),
    so a round ends where the loop's round ends. Ranks must be unique per pair (both readers of
    merge files give each distinct pair its own rank).
    """
    n = len(word)
    if n < 2:
        return (word,) if word else ()
    symbols = list(word)
    nxt = list(range(1, n + 1))
    nxt[-1] = -1
    prev = list(range(-1, n - 1))
    heap = []
    for i in range(n - 1):
        rank = ranks.get((symbols[i], symbols[i + 1]))
        if rank is not None:
            heap.append((rank, i))
    heapq.heapify(heap)
    while heap:
        rank = heap[0][0]
        # every occurrence of this rank's pair, left to right (a heap of (rank, position) pops
        # one rank's entries in position order)
        positions = []
        while heap and heap[0][0] == rank:
            positions.append(heapq.heappop(heap)[1])
        pair, touched = None, []
        for i in positions:
            j = nxt[i]
            if symbols[i] is None or j < 0:
                continue
            if pair is None:
                pair = (symbols[i], symbols[j])
                if ranks.get(pair) != rank:      # stale: these symbols have changed since
                    pair = None
                    continue
            elif (symbols[i], symbols[j]) != pair:
                continue
            symbols[i] = symbols[i] + symbols[j]
            symbols[j] = None
            k = nxt[j]
            nxt[i] = k
            if k >= 0:
                prev[k] = i
            touched.append(i)
        for i in touched:
            if symbols[i] is None:
                continue
            p, k = prev[i], nxt[i]
            if p >= 0:
                left = ranks.get((symbols[p], symbols[i]))
                if left is not None:
                    heapq.heappush(heap, (left, p))
            if k >= 0:
                right = ranks.get((symbols[i], symbols[k]))
                if right is not None:
                    heapq.heappush(heap, (right, i))
    out, i = [], 0
    while i >= 0:
        out.append(symbols[i])
        i = nxt[i]
    return tuple(out)


class Gpt2Bpe:
    """``Gpt2Bpe(vocab_path, merges_path)``; ``encode(text) -> ids``, ``decode(ids) -> text``."""

    def __init__(self, vocab_path: str, merges_path: str):
        import regex  # fairseq's dependency too; only the BPE needs it

        self.vocab = read_vocab(vocab_path)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.ranks = read_merges(merges_path)
        self.byte_to_char = byte_alphabet()
        self.char_to_byte = {c: b for b, c in self.byte_to_char.items()}
        self.pattern = regex.compile(_WORD_PATTERN)
        self._cache: Dict[str, Tuple[str, ...]] = {}
        self.vocab_path, self.merges_path = vocab_path, merges_path

    def _merge(self, word: str) -> Tuple[str, ...]:
        """The BPE tokens of one word (already in the byte alphabet)."""
        if word in self._cache:
            return self._cache[word]
        result = merge_word(word, self.ranks)
        if len(self._cache) < 100_000 and len(word) <= _CACHED_WORD_LENGTH:
            self._cache[word] = result
        return result

    def encode(self, text: str) -> List[int]:
        ids = []
        for word in self.pattern.findall(text):
            chars = "".join(self.byte_to_char[b] for b in word.encode("utf-8"))
            for token in self._merge(chars):
                if token not in self.vocab:
                    raise BpeError(f"{self.vocab_path}: no id for the BPE token {token!r} (from "
                                   f"{word!r}); vocabulary and merges do not belong together")
                ids.append(self.vocab[token])
        return ids

    def encode_line(self, text: str) -> str:
        """One document as fairseq's BART dictionaries spell it: its ids as decimal strings."""
        return " ".join(str(i) for i in self.encode(text))

    def decode(self, ids: List[int]) -> str:
        data = bytes(self.char_to_byte[c] for i in ids for c in self.id_to_token[i])
        return data.decode("utf-8", errors="replace")


def read_vocab(path: str) -> Dict[str, int]:
    """encoder.json / vocab.json: token string -> integer id; BpeError naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            vocab = json.load(handle)
    except FileNotFoundError:
        raise BpeError(f"{path}: BPE vocabulary not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BpeError(f"{path}: not a JSON BPE vocabulary ({err})") from None
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and isinstance(v, int)
                                              and not isinstance(v, bool) for k, v in vocab.items()):
        raise BpeError(f"{path}: expected a JSON object mapping token strings to integer ids")
    return vocab


def read_merges(path: str) -> Dict[Tuple[str, str], int]:
    """vocab.bpe / merges.txt: (first, second) -> rank; BpeError naming the file and line."""
    ranks = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except FileNotFoundError:
        raise BpeError(f"{path}: BPE merges file not found") from None
    except UnicodeDecodeError as err:
        raise BpeError(f"{path}: not UTF-8 text ({err})") from None
    for lineno, line in enumerate(lines, 1):
        if not line or (lineno == 1 and line.startswith("#version")):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise BpeError(f"{path}:{lineno}: expected two tokens per merge, got {line[:60]!r}")
        ranks.setdefault((parts[0], parts[1]), len(ranks))
    if not ranks:
        raise BpeError(f"{path}: no merges")
    return ranks


def learn_merges(texts: Iterable[str], merges: int) -> Tuple[List[str], List[Tuple[str, str]]]:
    """A byte-level BPE learned from ``texts``: (tokens in id order: the 256 byte characters, then
    one per merge; the merges in rank order). The most frequent adjacent pair within GPT-2's words
    is merged, ``merges`` times (ties by the pair's characters, so the result is deterministic).
    For tests and measurements that need a model's tokenizer when none can be downloaded."""
    import regex

    alphabet = byte_alphabet()
    counted: Counter = Counter()
    for text in texts:
        for word in regex.findall(_WORD_PATTERN, text):
            counted[tuple(alphabet[b] for b in word.encode("utf-8"))] += 1
    words, counts = [list(w) for w in counted], list(counted.values())
    # pair counts kept up to date merge by merge: only the words holding the merged pair change
    pairs: Counter = Counter()
    holders: Dict[Tuple[str, str], set] = {}
    for index, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pairs[pair] += counts[index]
            holders.setdefault(pair, set()).add(index)
    heap = [(-count, pair) for pair, count in pairs.items()]  # stale entries skipped when popped
    heapq.heapify(heap)
    tokens = [alphabet[b] for b in range(256)]
    ranks: List[Tuple[str, str]] = []
    while len(ranks) < merges and heap:
        negative, best = heapq.heappop(heap)
        if pairs.get(best, 0) != -negative or negative == 0:
            continue
        ranks.append(best)                     # most frequent; ties: the smallest pair
        tokens.append(best[0] + best[1])
        for index in sorted(holders.pop(best)):
            word, count = words[index], counts[index]
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            changed = set()
            for pair in zip(word, word[1:]):
                pairs[pair] -= count
                changed.add(pair)
                if pair != best:
                    holders.get(pair, set()).discard(index)
            for pair in zip(out, out[1:]):
                pairs[pair] += count
                changed.add(pair)
                holders.setdefault(pair, set()).add(index)
            for pair in changed:
                if pairs[pair] > 0:
                    heapq.heappush(heap, (-pairs[pair], pair))
            words[index] = out
        pairs.pop(best, None)
    return tokens, ranks


def write_bpe_files(vocab: Dict[str, int], ranks: List[Tuple[str, str]], vocab_path: str,
                    merges_path: str) -> None:
    """The two files of a byte-level BPE: the vocabulary (JSON) and the merges, rank order."""
    with open(vocab_path, "w", encoding="utf-8") as out:
        json.dump(vocab, out)
    with open(merges_path, "w", encoding="utf-8", newline="\n") as out:
        out.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in ranks))
