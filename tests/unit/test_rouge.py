"""ROUGE scoring: known values, sentence recovery for Lsum (markers, and the sentence splitter for
plain text), Lead baseline, bootstrap, the evaluation of files and its refusals."""
import pytest

from deep_pyramidion.data.io import DataError
from deep_pyramidion.data.sentences import split_sentences
from deep_pyramidion.eval.errors import MismatchError
from deep_pyramidion.eval.evaluate import evaluate_files
from deep_pyramidion.eval.lead import lead_baseline, lead_summary
from deep_pyramidion.eval.rouge import (
    BY_MARKER,
    BY_SPLITTER,
    MAX_BOOTSTRAP,
    bootstrap_interval,
    rouge_text,
    score_pairs,
    score_system,
)
from tests.support.generate_logs import GENERATE_LOG, REFS, write


def f1(hyp, ref, metric):
    return score_pairs([hyp], [ref])[metric][0][2]


# --------------------------------------------------------------------------- known values


def test_identical_is_100_and_disjoint_is_0():
    same = score_system("m", REFS, REFS, bootstrap=0)
    assert all(abs(v - 100.0) < 1e-9 for v in same.f1.values())
    disjoint = score_system("m", ["zebra giraffe okapi"] * 3, REFS, bootstrap=0)
    assert all(v == 0.0 for v in disjoint.f1.values())


def test_hand_checked_case():
    hyp, ref = "the cat sat on the mat", "the cat lay on the mat"
    # unigrams: the x2, cat, on, mat shared -> 5/6; bigrams: the-cat, on-the, the-mat -> 3/5;
    # LCS: the cat on the mat -> 5/6
    assert f1(hyp, ref, "rouge1") == pytest.approx(5 / 6)
    assert f1(hyp, ref, "rouge2") == pytest.approx(3 / 5)
    assert f1(hyp, ref, "rougeL") == pytest.approx(5 / 6)
    # stemming is on: "pooled"/"pooling" -> "pool"
    assert f1("tokens pooled", "token pooling", "rouge1") == pytest.approx(1.0)


def test_lsum_recovers_sentences_from_marker():
    ref = "alpha beta <q> gamma delta"
    hyp = "gamma delta.<q>alpha beta"  # marker glued as a detokenizer may leave it
    assert rouge_text(hyp) == "gamma delta.\nalpha beta"
    # one sequence: LCS of [gamma delta alpha beta] and [alpha beta gamma delta] is 2 of 4
    assert f1(hyp, ref, "rougeL") == pytest.approx(0.5)
    # sentence level: each reference sentence is matched in full by some hypothesis sentence
    assert f1(hyp, ref, "rougeLsum") == pytest.approx(1.0)
    # the marker itself is never scored as a word ("q")
    assert f1("alpha <q> beta", "alpha q beta", "rouge1") == pytest.approx(0.8)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = [0.1, 0.9, 0.4, 0.6, 0.3, 0.7, 0.5, 0.2]
    a = bootstrap_interval(values, 500, seed=3)
    assert a == bootstrap_interval(values, 500, seed=3)
    assert a != bootstrap_interval(values, 500, seed=4)
    assert a[0] < sum(values) / len(values) < a[1]
    assert bootstrap_interval([0.5] * 5, 100, seed=0) == (0.5, 0.5)


def test_bootstrap_refuses_a_number_of_resamples_beyond_the_bound():
    with pytest.raises(ValueError, match=str(MAX_BOOTSTRAP)):
        bootstrap_interval([0.5, 0.6], MAX_BOOTSTRAP + 1, seed=0)
    with pytest.raises(ValueError, match="bootstrap"):
        evaluate_files(hyp="unused", ref="unused", bootstrap=10**12)


# --------------------------------------------------------------------------- R-Lsum on plain text


PLAIN_REFS = [
    "The encoder pools tokens. The decoder reads the kept ones. Long papers get cheap.",
    "We train on arXiv. Results improve on PubMed too.",
]
PLAIN_HYPS = [
    "The decoder reads the kept ones. The encoder pools tokens.",
    "Results improve on PubMed. We train on arXiv too.",
]


def test_plain_summaries_are_split_into_sentences_before_rouge_lsum():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeLsum", "rougeL"], use_stemmer=True)
    ours = score_system("plain", PLAIN_HYPS, PLAIN_REFS, bootstrap=0)
    expected_lsum = [
        scorer.score("\n".join(split_sentences(r)), "\n".join(split_sentences(h)))["rougeLsum"].fmeasure
        for h, r in zip(PLAIN_HYPS, PLAIN_REFS)
    ]
    unsplit_lsum = [scorer.score(r, h)["rougeLsum"].fmeasure for h, r in zip(PLAIN_HYPS, PLAIN_REFS)]
    assert ours.f1["rougeLsum"] == pytest.approx(100 * sum(expected_lsum) / len(expected_lsum))
    # the mistake this guards against: without sentences R-Lsum is R-L
    assert sum(unsplit_lsum) / 2 == pytest.approx(ours.f1["rougeL"] / 100)
    assert ours.f1["rougeLsum"] > ours.f1["rougeL"] + 1.0
    assert ours.sentences == {"hypotheses": BY_SPLITTER, "references": BY_SPLITTER}


def test_marked_text_keeps_its_markers_and_the_choice_is_per_side():
    marked_refs = [" <q> ".join(split_sentences(r)) for r in PLAIN_REFS]
    plain = score_system("p", PLAIN_HYPS, marked_refs, bootstrap=0)
    assert plain.sentences == {"hypotheses": BY_SPLITTER, "references": BY_MARKER}
    both_plain = score_system("p", PLAIN_HYPS, PLAIN_REFS, bootstrap=0)
    assert plain.f1["rougeLsum"] == pytest.approx(both_plain.f1["rougeLsum"])
    # a marked side is never re-split: "fig . 3 ." stays inside its marked sentence
    marked = ["we use fig . 3 . it works <q> done"]
    assert rouge_text(marked[0], marked=True) == "we use fig . 3 . it works\ndone"
    assert score_system("m", marked, marked, bootstrap=0).sentences["hypotheses"] == BY_MARKER


def test_report_header_says_how_lsum_sentences_were_found(tmp_path):
    ref = write(tmp_path / "r.tgt", REFS[:2])
    hyp = write(tmp_path / "h.txt", PLAIN_HYPS)
    report = evaluate_files(hyp=hyp, ref=ref, bootstrap=0, name="other")
    header = report.table().splitlines()
    line = [h for h in header if h.startswith("R-Lsum sentences")]
    assert line and "<q> markers for references" in line[0] and "sentence splitter" in line[0]
    assert "other" in line[0].split("sentence splitter", 1)[1]
    assert report.as_dict()["systems"]["other"]["rougeLsum_sentences"]["hypotheses"] == BY_SPLITTER


# --------------------------------------------------------------------------- Lead


def test_lead_summary_and_budget():
    source = "First sentence here. Second one is longer than that. Third."
    assert lead_summary(source, 3) == "First sentence here."
    assert lead_summary(source, 5) == "First sentence here. <q> Second one"
    assert lead_summary(source, 100) == "First sentence here. <q> Second one is longer than that. <q> Third."
    leads, budget = lead_baseline([source] * 3, ["a b <q> c", "a b c d e", "a b c d e f g"])
    assert budget == 5  # median words, marker excluded
    assert leads[0] == "First sentence here. <q> Second one"
    with pytest.raises(MismatchError):
        lead_baseline([source], REFS)


# --------------------------------------------------------------------------- files -> report


def test_evaluate_generate_output_with_ref_and_lead(tmp_path):
    gen = tmp_path / "generate-test-A.txt"
    gen.write_text(GENERATE_LOG)
    ref = write(tmp_path / "test-A.tgt", REFS)
    src = write(tmp_path / "test-A.src", ["The pooling layer selects tokens. It is fast."] + ["Other text here."] * 2)
    report = evaluate_files(generate_output=str(gen), ref=ref, lead_source=src, bootstrap=50, seed=1)
    assert [s.name for s in report.systems] == ["model", "lead"]
    model = report.systems[0]
    # doc 0 exact; doc 1 hyp is a prefix (P=1, R=4/8); doc 2 P=1, R=4/6 for unigrams
    expected_r1 = (1.0 + 2 * 1 * 0.5 / 1.5 + 2 * 1 * (4 / 6) / (1 + 4 / 6)) / 3
    assert model.f1["rouge1"] == pytest.approx(100 * expected_r1)
    table = report.table()
    assert "lead" in table and "R-Lsum" in table
    assert report.lead_budget == 10  # median of 12, 10 and 7 words


def test_refuses_hyp_ref_count_mismatch_naming_lines(tmp_path):
    ref = write(tmp_path / "r.tgt", REFS)
    hyp = write(tmp_path / "h.txt", REFS[:1])
    with pytest.raises(MismatchError, match=r"2 of 3 references have no hypothesis: lines 2, 3"):
        evaluate_files(hyp=hyp, ref=ref, bootstrap=0)
    hyp = write(tmp_path / "h.txt", REFS + ["extra"])
    with pytest.raises(MismatchError, match=r"1 hypotheses have no reference: lines 4"):
        evaluate_files(hyp=hyp, ref=ref, bootstrap=0)


def test_refuses_gaps_without_ref(tmp_path):
    lines = [line for line in GENERATE_LOG.splitlines() if not line[2:3] == "1" or not line[1:2] == "-"]
    assert not any(line.startswith(("S-1", "T-1", "H-1", "D-1")) for line in lines)
    gen = tmp_path / "gen.txt"
    gen.write_text("\n".join(lines) + "\n")
    with pytest.raises(MismatchError, match=r"no lines at all for ids 1\b"):
        evaluate_files(generate_output=str(gen), bootstrap=0)
    # a T- line without any hypothesis
    gen.write_text("T-0\ta b\nH-0\t-1\ta b\nP-0\t-1 -1 -1\nT-1\tc d\nGenerate test-A with beam=1: BLEU4 = 0.00\n")
    with pytest.raises(MismatchError, match=r"1 of 2 references have no hypothesis: ids 1"):
        evaluate_files(generate_output=str(gen), bootstrap=0)


def test_refuses_wrong_reference_file(tmp_path):
    gen = tmp_path / "gen.txt"
    gen.write_text(GENERATE_LOG)
    ref = write(tmp_path / "other.tgt", ["entirely different words", "nothing shared at all", "no overlap"])
    with pytest.raises(MismatchError, match="do not match"):
        evaluate_files(generate_output=str(gen), ref=ref, bootstrap=0)


def test_refuses_lead_source_of_other_length(tmp_path):
    ref = write(tmp_path / "r.tgt", REFS)
    src = write(tmp_path / "s.src", ["one source ."])
    with pytest.raises(MismatchError, match="Lead baseline.*1 documents for 3 references"):
        evaluate_files(hyp=ref, ref=ref, lead_source=src, bootstrap=0)


def test_empty_reference_names_file_and_line_and_empty_hypothesis_scores_zero(tmp_path):
    ref = write(tmp_path / "r.tgt", REFS)
    empty_ref = write(tmp_path / "e.tgt", [REFS[0], "", REFS[2]])
    with pytest.raises(DataError, match=r"e\.tgt:2: empty reference"):
        evaluate_files(hyp=ref, ref=empty_ref, bootstrap=0)
    # an empty hypothesis is a legitimate output that scores 0
    hyp = write(tmp_path / "h2.txt", [REFS[0], "", REFS[2]])
    report = evaluate_files(hyp=hyp, ref=ref, bootstrap=0)
    assert report.systems[0].f1["rouge1"] == pytest.approx(200 / 3)


def test_lone_carriage_return_is_part_of_a_document_not_a_line_end(tmp_path):
    ref = tmp_path / "r.tgt"
    ref.write_bytes(b"alpha beta\rgamma\r\ndelta epsilon\n")
    hyp = write(tmp_path / "h.txt", ["alpha beta gamma", "delta epsilon"])
    report = evaluate_files(hyp=hyp, ref=str(ref), bootstrap=0)
    assert report.n == 2 and report.systems[0].f1["rouge1"] == pytest.approx(100.0)
