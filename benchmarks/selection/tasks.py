"""Selection tasks on real text: the summary depends on a few places of a long document.

Both tasks are built from ACLSum's papers (the ``aclsum`` package, nothing downloaded), as
word-level text (lowercased, words and punctuation split by :func:`tokenize`) so that every model
sees the same tokens and a span either is or is not written out exactly:

    spans      K short spans of reserved tokens (``sNN``, a pool that never occurs in the text)
               dropped between sentences of a document made of ACLSum sentences; nothing marks
               them but their content. Target: the spans in document order, joined by " | ".
    sentences  one paper's body with its own abstract sentences scattered through it, in order.
               Target: the abstract sentences joined by " <q> ".

A document has ``length`` tokens (its last sentence cut), the body sentences of the spans task come
from the papers of the split (train, dev-0 or test-A follow ACLSum's lists), so test documents are
made of unseen text. ``write_task`` writes ``{train,valid,test}.{src,tgt}`` (fairseq's names) and
``needed.jsonl``: for every test document the spans (or sentences) a model must reproduce.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

from deep_pyramidion.data.aclsum import SPLIT_NAMES, aclsum_data_dir, paper_text, read_split_list
from deep_pyramidion.data.io import load_json_file
from deep_pyramidion.data.sentences import MARKER, split_sentences

logger = logging.getLogger("benchmarks.selection")

TASKS = ("spans", "sentences")
SPAN_SEPARATOR = "|"
SPAN_POOL = 100           # reserved span tokens s00 .. s99
SENTENCES_BUDGET = 160    # sentences task: abstract tokens per document, at most (the target)
_TOKEN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> List[str]:
    """Lowercased words and single punctuation marks: ``"BERT-base (2019)."`` ->
    ``bert - base ( 2019 ) .`` (sentences holding a word shaped like a reserved span token are
    left out of the corpus, :func:`_papers`)."""
    return _TOKEN.findall(text.lower().replace(MARKER, " "))


@dataclass(frozen=True)
class TaskSpec:
    task: str = "spans"
    length: int = 2048            # source tokens per document (eos not counted)
    spans: int = 8                # spans task: needed spans per document
    span_length: int = 3          # spans task: tokens per span
    train_docs: int = 2000
    valid_docs: int = 64
    test_docs: int = 64
    seed: int = 0                 # the data's seed (model seeds are separate)

    def check(self) -> "TaskSpec":
        if self.task not in TASKS:
            raise ValueError(f"--task: expected one of {TASKS}, got {self.task!r}")
        if self.length < 64:
            raise ValueError(f"--length must be >= 64, got {self.length}")
        if self.spans < 1 or self.span_length < 1:
            raise ValueError("--spans and --span-length must be >= 1")
        if self.spans * (self.span_length + 1) * 4 > self.length:
            raise ValueError(f"--spans {self.spans} x --span-length {self.span_length} does not "
                             f"leave room for text in --length {self.length}")
        return self


Paper = Tuple[List[List[str]], List[List[str]]]   # (body sentences, abstract sentences), tokenized


def _papers(split: str) -> List[Paper]:
    """Every usable paper of an ACLSum split, as tokenized sentences (body, abstract)."""
    data_dir = aclsum_data_dir()
    list_name = {v: k for k, v in SPLIT_NAMES.items()}[split]
    papers = []
    for _, doc_id in read_split_list(os.path.join(data_dir, f"{list_name}.jsonl")):
        path = os.path.join(data_dir, "paper_jsons", f"{doc_id}.json")
        if not os.path.isfile(path):
            continue
        body, abstract = paper_text(load_json_file(path))
        body_sents = [tokenize(s) for s in split_sentences(body)]
        body_sents = [s for s in body_sents if s and not any(_is_reserved(w) for w in s)]
        abstract_sents = [tokenize(s) for s in abstract]
        abstract_sents = [s for s in abstract_sents if s]
        if body_sents and abstract_sents:
            papers.append((body_sents, abstract_sents))
    if not papers:
        raise ValueError(f"no usable ACLSum paper in split {split}")
    return papers


def _is_reserved(word: str) -> bool:
    return len(word) == 3 and word[0] == "s" and word[1:].isdigit()


def span_tokens() -> List[str]:
    return [f"s{i:02d}" for i in range(SPAN_POOL)]


def _fill(sentences: Sequence[List[str]], budget: int, rng: random.Random, start: int = None
          ) -> List[List[str]]:
    """Consecutive sentences from ``start`` (random if None; wrapping) totalling ``budget`` tokens,
    the last one cut."""
    out, used = [], 0
    i = rng.randrange(len(sentences)) if start is None else start
    while used < budget:
        sentence = sentences[i % len(sentences)][: budget - used]
        out.append(sentence)
        used += len(sentence)
        i += 1
    return out


def spans_document(papers: Sequence[Paper], spec: TaskSpec, rng: random.Random
                   ) -> Tuple[List[str], List[List[str]]]:
    """(source tokens, needed spans in document order)."""
    pool = span_tokens()
    needed = [[rng.choice(pool) for _ in range(spec.span_length)] for _ in range(spec.spans)]
    body, _ = papers[rng.randrange(len(papers))]
    text = _fill(body, spec.length - spec.spans * spec.span_length, rng)
    slots = sorted(rng.sample(range(len(text) + 1), spec.spans)) if len(text) >= spec.spans \
        else sorted(rng.choice(range(len(text) + 1)) for _ in range(spec.spans))
    pieces: List[List[str]] = []
    span_iter = iter(needed)
    previous = 0
    for slot in slots:
        pieces.extend(text[previous:slot])
        pieces.append(next(span_iter))
        previous = slot
    pieces.extend(text[previous:])
    return [w for piece in pieces for w in piece], needed


def sentences_document(papers: Sequence[Paper], spec: TaskSpec, rng: random.Random
                       ) -> Tuple[List[str], List[List[str]]]:
    """(source tokens, the paper's abstract sentences that were scattered into it, in order)."""
    body, abstract = papers[rng.randrange(len(papers))]
    needed, used = [], 0
    budget = min(spec.length // 2, SENTENCES_BUDGET)
    for sentence in abstract:                 # as many abstract sentences as fit the budget
        if used + len(sentence) > budget:
            break
        needed.append(sentence)
        used += len(sentence)
    if not needed:
        needed = [abstract[0][:budget]]
        used = len(needed[0])
    text = _fill(body, spec.length - used, rng, start=0)
    slots = sorted(rng.sample(range(len(text) + 1), len(needed))) if len(text) >= len(needed) \
        else [len(text)] * len(needed)
    pieces, previous = [], 0
    for slot, sentence in zip(slots, needed):
        pieces.extend(text[previous:slot])
        pieces.append(sentence)
        previous = slot
    pieces.extend(text[previous:])
    return [w for piece in pieces for w in piece], needed


def target_text(task: str, needed: Sequence[List[str]]) -> str:
    joiner = f" {SPAN_SEPARATOR} " if task == "spans" else f" {MARKER} "
    return joiner.join(" ".join(piece) for piece in needed)


def make_split(spec: TaskSpec, split: str, count: int, rng: random.Random
               ) -> List[Tuple[List[str], List[List[str]]]]:
    papers = _papers(split)
    make = spans_document if spec.task == "spans" else sentences_document
    return [make(papers, spec, rng) for _ in range(count)]


def write_task(spec: TaskSpec, out_dir: str) -> Dict[str, int]:
    """Write the text splits of ``spec`` into ``out_dir`` (created); returns {split: documents}."""
    spec.check()
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(spec.seed)
    counts = {}
    for name, source_split, count in (("train", "train", spec.train_docs),
                                      ("valid", "dev-0", spec.valid_docs),
                                      ("test", "test-A", spec.test_docs)):
        docs = make_split(spec, source_split, count, rng)
        targets = [target_text(spec.task, needed) for _, needed in docs]
        with open(os.path.join(out_dir, f"{name}.src"), "w", encoding="utf-8") as src, \
                open(os.path.join(out_dir, f"{name}.tgt"), "w", encoding="utf-8") as tgt:
            for (tokens, _), target in zip(docs, targets):
                src.write(" ".join(tokens) + "\n")
                tgt.write(target + "\n")
        if name == "train":
            distinct = len(set(targets))
            if distinct * 4 < len(docs):
                # the sentences task has one target per training paper (ACLSum: 100): a model can
                # learn them by heart instead of learning to copy, and then ranks nothing
                logger.warning("%s: %d training documents hold only %d distinct targets; a model "
                               "can memorize them instead of learning to select", spec.task,
                               len(docs), distinct)
        if name == "test":
            with open(os.path.join(out_dir, "needed.jsonl"), "w", encoding="utf-8") as out:
                for _, needed in docs:
                    out.write(json.dumps([" ".join(piece) for piece in needed]) + "\n")
        counts[name] = len(docs)
    with open(os.path.join(out_dir, "task.json"), "w", encoding="utf-8") as out:
        json.dump(asdict(spec), out, indent=1)
    return counts
