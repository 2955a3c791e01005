"""The selection benchmark's tasks and scoring (benchmarks/selection/tasks.py, runs.score): every
document has the asked length, the needed pieces are in it in target order and nowhere else, and
recall counts a piece only when it is written word for word."""
import random

import pytest

from benchmarks.selection.runs import score
from benchmarks.selection.tasks import (
    SPAN_SEPARATOR, TaskSpec, make_split, span_tokens, target_text, tokenize, write_task,
)


def test_tokenize_splits_words_and_punctuation():
    assert tokenize("BERT-base (2019). <q> Done") == ["bert", "-", "base", "(", "2019", ")", ".", "done"]


@pytest.mark.parametrize("length, spans, span_length", [(256, 4, 3), (512, 8, 2), (300, 1, 5)])
def test_spans_documents_hold_their_spans_in_order_and_only_there(length, spans, span_length):
    spec = TaskSpec(length=length, spans=spans, span_length=span_length).check()
    reserved = set(span_tokens())
    for tokens, needed in make_split(spec, "test-A", 5, random.Random(3)):
        assert len(tokens) == length
        assert len(needed) == spans and all(len(p) == span_length for p in needed)
        found = [w for w in tokens if w in reserved]
        assert found == [w for piece in needed for w in piece]       # in order, nothing else
        text = " " + " ".join(tokens) + " "
        assert all(f" {' '.join(p)} " in text for p in needed)
        assert target_text("spans", needed).count(SPAN_SEPARATOR) == spans - 1


def test_sentences_documents_hold_the_abstract_sentences_in_order():
    spec = TaskSpec(task="sentences", length=1024).check()
    for tokens, needed in make_split(spec, "test-A", 4, random.Random(1)):
        assert len(tokens) == 1024
        text = " ".join(tokens)
        where = [text.find(" ".join(sentence)) for sentence in needed]
        assert -1 not in where and where == sorted(where)
        assert target_text("sentences", needed).count("<q>") == len(needed) - 1


def test_bad_specs_are_refused_naming_the_flag():
    with pytest.raises(ValueError, match="--task"):
        TaskSpec(task="nope").check()
    with pytest.raises(ValueError, match="--spans"):
        TaskSpec(length=64, spans=20).check()


def test_recall_counts_whole_pieces_only():
    refs = ["s01 s02 | s03 s04", "s05 s06 | s07 s08"]
    needed = [["s01 s02", "s03 s04"], ["s05 s06", "s07 s08"]]
    hyps = ["s01 s02 | s03 s09", "s07 s08 | s05 s06"]
    result = score(hyps, refs, needed)
    assert result["recall"] == 0.75
    assert 0 < result["rouge1"] < 100
    assert score(refs, refs, needed)["recall"] == 1.0


def test_a_task_with_few_distinct_targets_is_flagged(tmp_path, caplog):
    """The sentences task has one target per training paper: with many more documents than
    papers a model can learn the targets by heart, and the benchmark says so."""
    caplog.set_level("WARNING", logger="benchmarks.selection")
    write_task(TaskSpec(task="sentences", length=256, train_docs=600, test_docs=2, valid_docs=2),
               str(tmp_path / "sentences"))
    assert any("distinct targets" in r.getMessage() for r in caplog.records)
    caplog.clear()
    write_task(TaskSpec(task="spans", length=256, spans=2, span_length=2, train_docs=400,
                        test_docs=2, valid_docs=2), str(tmp_path / "spans"))
    assert not any("distinct targets" in r.getMessage() for r in caplog.records)
