"""fairseq dictionary files: the one reader and the writer of preprocessing.

Format (``fairseq.data.Dictionary.add_from_file``): one ``SYMBOL COUNT`` line per entry, in index
order, optionally ending in `` #fairseq:overwrite``; fairseq's four specials (``<s> <pad> </s>
<unk>``, indices 0-3) are not in the file, so its first line is index 4. A model's embedding rows
are padded to a multiple of 8 with ``madeupwordNNNN`` entries (fairseq's ``--padding-factor``)::

    the 1204          <- index 4
    ▁of 988
    ...
    madeupword0000 0  <- padding
"""

import re
from collections import Counter
from typing import List, Sequence

from deep_pyramidion.plumbing.errors import DataError
from deep_pyramidion.plumbing.lines import iter_lines

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
_MADEUP = re.compile(r"^madeupword\d+$")


def read_dictionary_symbols(path: str) -> List[str]:
    """Every entry of a fairseq dictionary file in index order (madeupwords and <mask> included)."""
    symbols = []
    for lineno, line in iter_lines(path):
        line = line.rstrip()
        if not line:
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) == 2 and parts[1] == "#fairseq:overwrite":
            parts = parts[0].rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{path}:{lineno}: not a fairseq dictionary line ('<word> <count>'): {line[:60]!r}")
        symbols.append(parts[0])
    return symbols


def read_dictionary(path: str) -> List[str]:
    """Entries of a fairseq dictionary file (``word count [#fairseq:overwrite]``), specials and
    ``madeupword`` padding excluded."""
    return [w for w in read_dictionary_symbols(path) if w not in FAIRSEQ_SPECIALS and not _MADEUP.match(w)]


def write_dictionary(symbols: Sequence[str], counts: Counter, path: str, padding_factor: int = 8) -> int:
    """Write ``symbols`` most frequent first (ties in the order given) with their ``counts``,
    padded with ``madeupword`` entries to a multiple of ``padding_factor``; returns the
    dictionary size including fairseq's 4 special symbols."""
    order = sorted(range(len(symbols)), key=lambda i: (-counts.get(symbols[i], 0), i))
    entries = [(symbols[i], counts.get(symbols[i], 0)) for i in order]
    size = len(FAIRSEQ_SPECIALS) + len(entries)
    k = 0
    while padding_factor > 1 and size % padding_factor:
        entries.append((f"madeupword{k:04d}", 0))
        k += 1
        size += 1
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for symbol, count in entries:
            out.write(f"{symbol} {count}\n")
    return size
