"""scripts/score.py (deep_pyramidion.eval.cli.score_main): table and JSON, refusals, bad input,
and the failure guarantees: one-line errors with documented exit codes, --json checked before any
work and replaced only on success, bounded resources, a closed stdout."""
import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deep_pyramidion.eval.cli import score_main
from deep_pyramidion.eval.rouge import MAX_BOOTSTRAP, score_pairs
from tests.support.checksums import siblings, tree_digest
from tests.support.generate_logs import GENERATE_LOG, REFS, write
from tests.support.paths import REPO, SCRIPTS
from tests.support.processes import run_process

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def run_script(*args):
    return run_process([sys.executable, SCRIPTS / "score.py", *args], cwd=REPO, timeout=120)


def test_score_script_table_and_json(tmp_path, capsys):
    ref = write(tmp_path / "r.tgt", REFS)
    hyp = write(tmp_path / "h.txt", [REFS[0], "nothing in common", REFS[2]])
    out = tmp_path / "rouge.json"
    rc = score_main(["--hyp", hyp, "--ref", ref, "--json", str(out), "--bootstrap", "20"])
    assert rc == 0
    stdout = capsys.readouterr().out
    header = [line for line in stdout.splitlines() if line.startswith("system")]
    assert header and header[0].split() == ["system", "n", "R-1", "R-2", "R-L", "R-Lsum"]
    data = json.loads(out.read_text())
    r1 = data["systems"]["model"]["rouge1"]
    assert r1["f1"] == pytest.approx(200 / 3)
    assert r1["low"] <= r1["f1"] <= r1["high"]
    assert data["n"] == 3 and data["bootstrap"] == 20


def test_refuses_when_generate_output_lacks_the_last_documents(tmp_path, capsys):
    # a reference set of 5 documents; the log only has ids 0..2 (a dropped final batch)
    gen = tmp_path / "generate-test-A.txt"
    gen.write_text(GENERATE_LOG)
    ref = write(tmp_path / "test-A.tgt", REFS + ["fourth reference .", "fifth reference ."])
    write(tmp_path / "test-A.ids", ["p0", "p1", "p2", "p3", "p4"])
    rc = score_main(["--generate-output", str(gen), "--ref", ref, "--bootstrap", "0"])
    captured = capsys.readouterr()
    assert rc == 3
    assert "2 of 5 references have no hypothesis: ids 3 (p3), 4 (p4)" in captured.err
    assert "R-1" not in captured.out  # nothing scored


def test_non_utf8_hypothesis_names_file_and_line(tmp_path, capsys):
    ref = write(tmp_path / "r.tgt", REFS)
    bad = tmp_path / "h.txt"
    bad.write_bytes(b"fine\nok\nbroken \xe9t\xe9\n")
    rc = score_main(["--hyp", str(bad), "--ref", ref, "--bootstrap", "0"])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: not valid UTF-8" in err
    assert f"byte offset 15 of {bad}" in err  # 'fine\nok\n' is 8 bytes, 'broken ' 7 more


def test_parallel_scoring_gives_the_same_scores():
    hyps = [REFS[1], "pooling layer tokens", REFS[0], "arxiv results"]
    refs = [REFS[0], REFS[0], REFS[0], REFS[2]]
    assert score_pairs(hyps, refs, workers=2) == score_pairs(hyps, refs)
    # more workers than CPUs or documents: bounded, same scores
    assert score_pairs(hyps, refs, workers=10_000) == score_pairs(hyps, refs)


# --------------------------------------------------------------------------- outputs


def test_json_into_a_missing_folder_is_refused_before_any_work(tmp_path, capsys):
    ref = write(tmp_path / "r.tgt", REFS)
    rc = score_main(["--hyp", ref, "--ref", ref, "--json", str(tmp_path / "no" / "such" / "r.json")])
    captured = capsys.readouterr()
    assert rc == 1
    assert "--json" in captured.err and "does not exist" in captured.err
    assert "R-1" not in captured.out and captured.err.strip().count("\n") == 0


def test_json_that_is_an_input_is_refused_naming_both_flags(tmp_path, capsys):
    ref = write(tmp_path / "r.tgt", REFS)
    before = tree_digest(tmp_path)
    assert score_main(["--hyp", ref, "--ref", ref, "--json", ref]) == 1
    err = capsys.readouterr().err
    assert "--json" in err and "--hyp" in err
    assert tree_digest(tmp_path) == before


def test_failed_rerun_leaves_the_previous_json_as_it_was(tmp_path, capsys):
    ref = write(tmp_path / "r.tgt", REFS)
    out = tmp_path / "rouge.json"
    assert score_main(["--hyp", ref, "--ref", ref, "--json", str(out), "--bootstrap", "0"]) == 0
    short = write(tmp_path / "short.txt", REFS[:2])
    before = tree_digest(tmp_path)
    assert score_main(["--hyp", short, "--ref", ref, "--json", str(out), "--bootstrap", "0"]) == 3
    assert tree_digest(tmp_path) == before
    assert siblings(out) == sorted(["r.tgt", "rouge.json", "short.txt"])  # nothing half-written beside


def test_json_through_a_symlink_keeps_the_link(tmp_path, capsys):
    ref = write(tmp_path / "r.tgt", REFS)
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "rouge.json"
    target.write_text("{}")
    link = tmp_path / "rouge.json"
    link.symlink_to(target)
    assert score_main(["--hyp", ref, "--ref", ref, "--json", str(link), "--bootstrap", "0"]) == 0
    assert link.is_symlink() and json.loads(target.read_text())["n"] == 3


# --------------------------------------------------------------------------- bounded resources


def test_a_huge_sample_id_without_ref_is_refused_quickly(tmp_path, capsys):
    gen = tmp_path / "gen.txt"
    gen.write_text("T-0\ta b\nH-0\t-1\ta b\nD-0\t-1\ta b\nP-0\t-1 -1\nT-99999999999\tc\nH-99999999999\t-1\tc\n"
                   "D-99999999999\t-1\tc\nP-99999999999\t-1\nGenerate test-A with beam=1: BLEU4 = 0\n")
    assert score_main(["--generate-output", str(gen), "--bootstrap", "0"]) == 3
    err = capsys.readouterr().err
    assert "no lines at all for ids 1, 2, 3" in err and "more)" in err
    gen.write_text(GENERATE_LOG.replace("S-1\t", "S-" + "1" * 5000 + "\t"))
    assert score_main(["--generate-output", str(gen), "--bootstrap", "0"]) == 1
    assert "5000 digits" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["1e12", str(10**12), str(MAX_BOOTSTRAP + 1), "-1"])
def test_bootstrap_out_of_range_is_a_usage_error(tmp_path, capsys, value):
    ref = write(tmp_path / "r.tgt", REFS)
    with pytest.raises(SystemExit) as exit_:
        score_main(["--hyp", ref, "--ref", ref, "--bootstrap", value])
    assert exit_.value.code == 2
    assert "--bootstrap" in capsys.readouterr().err


# --------------------------------------------------------------------------- as a process


def test_help_documents_the_exit_codes():
    proc = run_script("--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for code in ("0 ok", "1 bad input", "2 usage", "3 hypotheses and references are not the same documents",
                 "141 stdout closed early"):
        assert code in text


def test_closed_stdout_ends_quietly(tmp_path):
    ref = write(tmp_path / "r.tgt", REFS * 50)
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "score.py"), "--hyp", ref, "--ref", ref,
                             "--bootstrap", "0", "--lead-source", ref],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()  # like `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_bad_input_as_a_process_is_one_line_without_traceback(tmp_path):
    ref = write(tmp_path / "r.tgt", REFS)
    gen = tmp_path / "gen.txt"
    gen.write_text(GENERATE_LOG[:-10])
    proc = run_script("--generate-output", str(gen), "--ref", ref)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"{gen}:20" in last and "cut off" in last
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- fuzz


@FUZZ
@given(hyp=st.binary(max_size=200), ref=st.binary(max_size=200), use_json=st.booleans())
def test_odd_bytes_score_or_fail_in_one_line_leaving_files_untouched(tmp_path_factory, hyp, ref, use_json):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "h.txt").write_bytes(hyp)
    (root / "r.tgt").write_bytes(ref)
    out = root / "out.json"
    out.write_text('{"earlier": true}\n')
    before = tree_digest(root)
    argv = ["--hyp", str(root / "h.txt"), "--ref", str(root / "r.tgt"), "--bootstrap", "5"]
    if use_json:
        argv += ["--json", str(out)]
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = score_main(argv)
    after = tree_digest(root)
    if rc == 0:
        if use_json:
            assert json.loads(out.read_text())["n"] >= 1
        after.pop(str(out))
        before.pop(str(out))
        assert after == before
    else:
        assert rc in (1, 3)
        assert after == before
        lines = [line for line in err.getvalue().splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and err.getvalue().rstrip().endswith(lines[0])
