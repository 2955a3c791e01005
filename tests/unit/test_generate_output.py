"""Reading fairseq-generate outputs: D- lines preferred, pieces detokenized, first best kept."""
import pytest

from deep_pyramidion.data.io import DataError
from deep_pyramidion.eval.generate_output import read_generate_output
from tests.support.generate_logs import GENERATE_LOG, REFS


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
