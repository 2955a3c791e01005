"""ROUGE scoring: known values, sentence recovery for Lsum, fairseq-generate parsing, refusal on
mismatched document sets, Lead baseline, bootstrap, bad inputs."""
import importlib.util
import json
from pathlib import Path

import pytest

from deep_pyramidion.data.io import DataError
from deep_pyramidion.data.rouge import (
    MismatchError,
    bootstrap_interval,
    evaluate_files,
    lead_baseline,
    lead_summary,
    read_generate_output,
    rouge_text,
    score_pairs,
    score_system,
)

REPO = Path(__file__).resolve().parents[1]


def load_score_script():
    spec = importlib.util.spec_from_file_location("script_score", REPO / "scripts" / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def f1(hyp, ref, metric):
    return score_pairs([hyp], [ref])[metric][0][2]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


REFS = [
    "the pooling layer selects tokens . <q> the decoder attends to them .",
    "long documents are expensive . <q> we make them cheap .",
    "results improve on arxiv and pubmed .",
]


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


# --------------------------------------------------------------------------- generate output


GENERATE_LOG = """\
2024-01-01 12:00:00 | INFO | fairseq_cli.generate | loading model
S-2\tresults improve on arxiv .
T-2\tresults improve on arxiv and pubmed .
H-2\t-0.51\t\u2581results \u2581improve \u2581on \u2581ar xiv \u2581.
D-2\t-0.51\tresults improve on arxiv .
P-2\t-0.1 -0.2 -0.3 -0.4 -0.5 -0.6
S-0\tthe pooling layer .
T-0\tthe pooling layer selects tokens . <q> the decoder attends to them .
H-0\t-0.20\t\u2581the \u2581pool ing \u2581layer \u2581selects \u2581tokens \u2581. \u2581 <q> \u2581the \u2581decoder \u2581attends \u2581to \u2581them \u2581.
D-0\t-0.20\tthe pooling layer selects tokens . <q> the decoder attends to them .
H-0\t-0.90\t\u2581worse \u2581second \u2581best
D-0\t-0.90\tworse second best
S-1\tlong documents .
T-1\tlong documents are expensive . <q> we make them cheap .
H-1\t-0.33\t\u2581long \u2581documents \u2581are \u2581expensive
D-1\t-0.33\tlong documents are expensive
Generate test-A with beam=4: BLEU4 = 10.00
"""


def test_read_generate_output_prefers_d_lines_sorts_ids_keeps_first_best(tmp_path):
    path = tmp_path / "generate-test-A.txt"
    path.write_text(GENERATE_LOG)
    gen = read_generate_output(str(path))
    assert gen.hyp_kind == "D"
    assert list(gen.hyps) == [0, 1, 2]
    assert gen.hyps[0] == "the pooling layer selects tokens . <q> the decoder attends to them ."
    assert gen.hyps[2] == "results improve on arxiv ."
    assert gen.refs[1] == REFS[1]
    assert gen.ref_lines[0] == 8  # 1-based line of T-0


def test_read_generate_output_detokenizes_h_lines_without_d_lines(tmp_path):
    path = tmp_path / "gen.txt"
    path.write_text("".join(line + "\n" for line in GENERATE_LOG.splitlines() if not line.startswith("D-")))
    gen = read_generate_output(str(path))
    assert gen.hyp_kind == "H"
    assert gen.hyps[2] == "results improve on arxiv ."
    assert gen.hyps[0] == "the pooling layer selects tokens . <q> the decoder attends to them ."
    # H- line with an empty hypothesis (the trailing tab may be gone)
    path.write_text("T-0\tref text\nH-0\t-1.5\n")
    assert read_generate_output(str(path)).hyps == {0: ""}


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


def test_score_script_table_and_json(tmp_path, capsys):
    ref = write(tmp_path / "r.tgt", REFS)
    hyp = write(tmp_path / "h.txt", [REFS[0], "nothing in common", REFS[2]])
    out = tmp_path / "rouge.json"
    rc = load_score_script().main(["--hyp", hyp, "--ref", ref, "--json", str(out), "--bootstrap", "20"])
    assert rc == 0
    stdout = capsys.readouterr().out
    header = [line for line in stdout.splitlines() if line.startswith("system")]
    assert header and header[0].split() == ["system", "n", "R-1", "R-2", "R-L", "R-Lsum"]
    data = json.loads(out.read_text())
    r1 = data["systems"]["model"]["rouge1"]
    assert r1["f1"] == pytest.approx(200 / 3)
    assert r1["low"] <= r1["f1"] <= r1["high"]
    assert data["n"] == 3 and data["bootstrap"] == 20


# --------------------------------------------------------------------------- refusals


def test_refuses_when_generate_output_lacks_the_last_documents(tmp_path, capsys):
    # a reference set of 5 documents; the log only has ids 0..2 (a dropped final batch)
    gen = tmp_path / "generate-test-A.txt"
    gen.write_text(GENERATE_LOG)
    ref = write(tmp_path / "test-A.tgt", REFS + ["fourth reference .", "fifth reference ."])
    write(tmp_path / "test-A.ids", ["p0", "p1", "p2", "p3", "p4"])
    rc = load_score_script().main(["--generate-output", str(gen), "--ref", ref, "--bootstrap", "0"])
    captured = capsys.readouterr()
    assert rc == 3
    assert "2 of 5 references have no hypothesis: ids 3 (p3), 4 (p4)" in captured.err
    assert "R-1" not in captured.out  # nothing scored


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
    gen.write_text("T-0\ta b\nH-0\t-1\ta b\nT-1\tc d\n")
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


# --------------------------------------------------------------------------- bad inputs


def test_non_utf8_and_empty_reference_name_file_and_line(tmp_path, capsys):
    ref = write(tmp_path / "r.tgt", REFS)
    bad = tmp_path / "h.txt"
    bad.write_bytes(b"fine\nok\nbroken \xe9t\xe9\n")
    rc = load_score_script().main(["--hyp", str(bad), "--ref", ref, "--bootstrap", "0"])
    assert rc == 1
    assert f"{bad}:3: not valid UTF-8" in capsys.readouterr().err
    empty_ref = write(tmp_path / "e.tgt", [REFS[0], "", REFS[2]])
    with pytest.raises(DataError, match=r"e\.tgt:2: empty reference"):
        evaluate_files(hyp=ref, ref=empty_ref, bootstrap=0)
    # an empty hypothesis is a legitimate output that scores 0
    hyp = write(tmp_path / "h2.txt", [REFS[0], "", REFS[2]])
    report = evaluate_files(hyp=hyp, ref=ref, bootstrap=0)
    assert report.systems[0].f1["rouge1"] == pytest.approx(200 / 3)


def test_not_a_generate_output(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("just some text\n")
    with pytest.raises(DataError, match="no H- or D- lines"):
        read_generate_output(str(path))


def test_parallel_scoring_gives_the_same_scores():
    hyps = [REFS[1], "pooling layer tokens", REFS[0], "arxiv results"]
    refs = [REFS[0], REFS[0], REFS[0], REFS[2]]
    assert score_pairs(hyps, refs, workers=2) == score_pairs(hyps, refs)
