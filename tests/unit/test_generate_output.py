"""Reading fairseq-generate outputs, and refusing one that is not one whole run: cut off anywhere,
two runs in one file, damaged H-/D-/P- lines, documents missing or twice."""
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deep_pyramidion.data.io import DataError
from deep_pyramidion.eval.errors import MismatchError
from deep_pyramidion.eval.generate_output import check_main, read_generate_output
from tests.support.generate_logs import GENERATE_LOG, REFS

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


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
    assert gen.nbest == {0: 2, 1: 1, 2: 1}


def test_read_generate_output_detokenizes_h_lines_without_d_lines(tmp_path):
    path = tmp_path / "gen.txt"
    path.write_text("".join(line + "\n" for line in GENERATE_LOG.splitlines() if not line.startswith("D-")))
    gen = read_generate_output(str(path))
    assert gen.hyp_kind == "H"
    assert gen.hyps[2] == "results improve on arxiv ."
    assert gen.hyps[0] == "the pooling layer selects tokens . <q> the decoder attends to them ."
    # H- line with an empty hypothesis (the trailing tab may be gone)
    path.write_text("T-0\tref text\nH-0\t-1.5\nP-0\t-0.2\nGenerate test-A with beam=1: BLEU4 = 0.00\n")
    assert read_generate_output(str(path)).hyps == {0: ""}


def test_not_a_generate_output(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("just some text\n")
    with pytest.raises(DataError, match="no H- or D- lines"):
        read_generate_output(str(path))


# --------------------------------------------------------------------------- what "whole" means


def _lines():
    return GENERATE_LOG.splitlines(keepends=True)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda ls: ls[:-1], r"gen\.txt: no closing line .*after line 19"),
        (lambda ls: ls + ls[1:], r"gen\.txt:21: output continues after fairseq's closing line \(line 20\)"),
        (lambda ls: ls[:-1] + ls[1:], r"gen\.txt:20: document 2 appears a second time \(first at line 2\)"),
        (lambda ls: ls[:13] + ls[14:], r"gen\.txt:13: D-0 line without its P- line"),
        (lambda ls: ls[:9] + ls[10:], r"gen\.txt:9: H-0 line without its D- line"),
        (lambda ls: ls[:9] + ["H-0\tx\tbroken\n"] + ls[10:], r"gen\.txt:10: H- line without a score"),
        (lambda ls: ls[:10] + ["P-0\t-0.1 -0.\x32x\n"] + ls[11:], r"gen\.txt:11: P-0 line is not whole"),
        (lambda ls: ls[:4] + ["D-2\t-0.99\tother\n"] + ls[5:], r"gen\.txt:5: D-2 line's score -0.99 is not that of the H- line"),
        (lambda ls: ls[:-1] + [ls[-1], ls[-1]], r"gen\.txt:21: a second closing line"),
        (lambda ls: ls[:5] + ["H-" + "9" * 40 + "\t-1\tx\n"] + ls[5:], r"gen\.txt:6: sample id of 40 digits"),
    ],
    ids=["no closing line", "two runs", "restarted run", "missing P", "missing D", "bad score", "bad P",
         "D of another H", "two closing lines", "huge id"],
)
def test_damaged_outputs_are_refused_naming_file_and_line(tmp_path, edit, message):
    path = tmp_path / "gen.txt"
    path.write_text("".join(edit(_lines())))
    with pytest.raises(DataError, match=message):
        read_generate_output(str(path))


def test_expected_count_finds_documents_that_are_missing(tmp_path):
    path = tmp_path / "gen.txt"
    path.write_text(GENERATE_LOG)
    read_generate_output(str(path), expected=3)
    with pytest.raises(MismatchError, match=r"1 of 4 references have no hypothesis: ids 3 \(d3\)"):
        read_generate_output(str(path), expected=4, doc_ids=["d0", "d1", "d2", "d3"])


def test_nbest_outputs_count_documents_not_hypotheses(tmp_path, capsys):
    # what generate.sh counted before: H- lines; with --nbest 2 that is twice the documents
    nbest = "".join(
        f"S-{i}\tsource {i}\nT-{i}\tref {i}\n" + "".join(f"H-{i}\t-{k}.5\th{k}\nD-{i}\t-{k}.5\th{k}\nP-{i}\t-1 -2\n" for k in (1, 2))
        for i in range(3)
    ) + "Generate test-A with beam=2: BLEU4 = 1.00\n"
    path = tmp_path / "generate-test-A.txt"
    path.write_text(nbest)
    assert len(re.findall(r"^H-\d", nbest, re.M)) == 6
    assert check_main(["--check", str(path), "--expected", "3"]) == 0
    assert "3 documents, 2 hypotheses each" in capsys.readouterr().out
    assert check_main(["--check", str(path), "--expected", "4"]) == 3
    assert "ids 3" in capsys.readouterr().err
    path.write_text(nbest[: nbest.rindex("P-2")])  # cut off inside the last document
    assert check_main(["--check", str(path), "--expected", "3"]) == 1
    assert "generate-test-A.txt:" in capsys.readouterr().err


def test_run_without_references_ends_with_translated_line_or_a_known_count(tmp_path):
    body = "S-0\ta\nH-0\t-1\tb\nD-0\t-1\tb\nP-0\t-1 -1\nS-1\tc\nH-1\t-1\td\nD-1\t-1\td\nP-1\t-1 -1\n"
    path = tmp_path / "gen.txt"
    path.write_text(body)
    with pytest.raises(DataError, match="cannot tell that the run finished"):
        read_generate_output(str(path))
    read_generate_output(str(path), expected=2)
    path.write_text(body + "2024-01-01 | INFO | fairseq_cli.generate | Translated 2 sentences (4 tokens) in 0.1s\n")
    read_generate_output(str(path))
    path.write_text(body + "INFO:fairseq_cli.generate:Translated 3 sentences (4 tokens) in 0.1s\n")
    with pytest.raises(DataError, match="reports 3 documents translated but the file holds 2"):
        read_generate_output(str(path))


# --------------------------------------------------------------------------- properties


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(GENERATE_LOG.encode()) - 1))
def test_every_truncation_is_refused(tmp_path, cut):
    path = tmp_path / "gen.txt"
    path.write_bytes(GENERATE_LOG.encode()[:cut])
    with pytest.raises(DataError):
        read_generate_output(str(path))


@FUZZ
@given(first=st.integers(min_value=2, max_value=19), second=st.integers(min_value=2, max_value=20))
def test_any_two_runs_in_one_file_are_refused(tmp_path, first, second):
    lines = _lines()
    # a run cut after `first` lines (at least one generated line), then a second run (restarted
    # with >>), possibly cut too
    text = "".join(lines[:first] + lines[:second])
    path = tmp_path / "gen.txt"
    path.write_text(text)
    with pytest.raises(DataError):
        read_generate_output(str(path))


@FUZZ
@given(data=st.binary(max_size=300), at=st.integers(min_value=0, max_value=19))
def test_odd_bytes_inside_an_output_are_refused_or_parsed_never_crash(tmp_path, data, at):
    lines = _lines()
    path = tmp_path / "gen.txt"
    path.write_bytes("".join(lines[:at]).encode() + data + "".join(lines[at:]).encode())
    try:
        gen = read_generate_output(str(path))
    except DataError as err:
        assert "\n" not in str(err).split(": ", 1)[0]
        assert str(path) in str(err)
    else:
        assert gen.closing_line is not None and set(gen.hyps) >= {0, 1, 2}
