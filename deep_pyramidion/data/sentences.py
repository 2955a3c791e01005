"""The sentence marker of the target side and the sentence-splitting rule.

Targets are written as one line per document with their sentences joined by ``" <q> "``
(:data:`SEPARATOR`). ``<q>`` becomes a user-defined sentencepiece symbol (one piece), so the model
learns to emit it, and the scorer recovers sentences from it for ROUGE-Lsum. A literal ``<q>`` in
raw text is replaced by a space before joining, so the marker is never ambiguous.

Sentence rule used by :func:`split_sentences` (no nltk; simple and predictable):

1. A candidate boundary is a run of ``.``, ``!`` or ``?``, optionally followed by closing quotes or
   brackets, followed by whitespace.
2. It is a boundary when the next character is an uppercase letter, a digit or an opening
   quote/bracket. In a text without any uppercase letter (lowercased corpora such as arXiv/PubMed),
   any next character is accepted.
3. It is not a boundary when the word ending there is a known abbreviation (``e.g.``, ``i.e.``,
   ``et al.``, ``Fig.``, ``Eq.``, ``Sec.``, ``vs.``, ... see :data:`ABBREVIATIONS`) or a single
   uppercase letter (an initial, as in ``J. Smith``). ``etc.`` is deliberately not in the list: it
   usually ends a sentence.
"""

import re
from typing import Iterable, List

from deep_pyramidion.plumbing.lines import normalize_whitespace

MARKER = "<q>"
SEPARATOR = f" {MARKER} "

ABBREVIATIONS = frozenset(
    """
    e.g. i.e. al. cf. vs. viz. resp. approx. ca. ibid. fig. figs. eq. eqs. eqn. eqns. sec. secs.
    sect. tab. tbl. ch. chap. app. ref. refs. no. nos. vol. vols. pp. p. ed. eds. dr. mr. mrs. ms.
    prof. st. jr. sr. inc. ltd. co. corp. dept. univ. assoc. est. approx. min. max. avg. std. w.r.t.
    """.split()
)

_CANDIDATE = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(\s+)(?=\S)")
_OPENERS = "\"'([\u201c\u2018"
_LEADING_PUNCT = "\"'([{\u201c\u2018"
_SPLIT_MARKER = re.compile(r"\s*" + re.escape(MARKER) + r"\s*")


def _is_abbreviation(word: str) -> bool:
    """``word`` (as written, trailing closing quotes/brackets removed) is an abbreviation or an
    initial such as ``J.``."""
    bare = word.lstrip(_LEADING_PUNCT)
    if bare.lower() in ABBREVIATIONS:
        return True
    return len(bare) == 2 and bare[0].isupper() and bare[1] == "."


def split_sentences(text: str) -> List[str]:
    """Split running text into sentences with the rule in this module's docstring."""
    text = normalize_whitespace(text)
    if not text:
        return []
    any_upper = any(ch.isupper() for ch in text)
    sentences = []
    start = 0
    for match in _CANDIDATE.finditer(text):
        end = match.start(1)  # end of the sentence (before the whitespace)
        nxt = text[match.end()]
        if any_upper and not (nxt.isupper() or nxt.isdigit() or nxt in _OPENERS):
            continue
        word_start = text.rfind(" ", start, end) + 1
        word = text[word_start:end]
        if word_start > start and not any(ch.isalnum() for ch in word):
            # tokenized text ("fig . 3"): judge the punctuation together with the word before it
            word = text[text.rfind(" ", start, word_start - 1) + 1 : word_start - 1] + word
        if _is_abbreviation(word.rstrip("\"'\u201d\u2019)]")):
            continue
        sentences.append(text[start:end])
        start = match.end()
    sentences.append(text[start:])
    return [s for s in sentences if s]


def remove_marker(text: str) -> str:
    """Replace literal occurrences of the marker in raw text by a space (and normalise)."""
    return normalize_whitespace(text.replace(MARKER, " "))


def join_sentences(sentences: Iterable[str]) -> str:
    """One line: the non-empty sentences, whitespace-normalised, joined by :data:`SEPARATOR`."""
    cleaned = (remove_marker(s) for s in sentences)
    return SEPARATOR.join(s for s in cleaned if s)


def split_marked(text: str) -> List[str]:
    """Recover the sentences of a marked line (the inverse of :func:`join_sentences`).

    Tolerates the spacing a detokenizer leaves around the marker (``a.<q>b``, ``a. <q>  b``).
    """
    return [s for s in (normalize_whitespace(p) for p in _SPLIT_MARKER.split(text)) if s]


def words(text: str) -> List[str]:
    """Whitespace words of a (possibly marked) text, marker excluded."""
    return [w for s in split_marked(text) for w in s.split()]
