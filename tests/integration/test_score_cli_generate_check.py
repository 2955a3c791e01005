"""The completeness check of fairseq-generate outputs on real fairseq output: scripts/generate.sh
counts documents, not H- lines (so --nbest 2 is complete), names the missing ones, and score.py and
the checker refuse the same output cut off or written twice."""
import random
import subprocess
import sys

import pytest

from tests.support.paths import REPO, SCRIPTS, console_script

PREMOVE = REPO / "tests" / "data" / "premove"
RECIPE = """--task translation
--source-lang src
--target-lang tgt
--dataset-impl mmap
--gen-subset test-A
--max-len-b 6
--batch-size 2
--cpu
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("gencheck")
    rng = random.Random(0)
    with open(root / "test-A.src", "w") as src, open(root / "test-A.tgt", "w") as tgt:
        for _ in range(5):
            words = [f"w{rng.randrange(40)}" for _ in range(rng.randint(10, 40))]
            src.write(" ".join(words) + "\n")
            tgt.write(" ".join(words[:6]) + "\n")
    data = root / "bin"
    subprocess.run([console_script("fairseq-preprocess"), "--source-lang", "src", "--target-lang", "tgt",
                    "--testpref", str(root / "test-A"), "--destdir", str(data), "--srcdict",
                    str(PREMOVE / "dict.src.txt"), "--joined-dictionary", "--dataset-impl", "mmap"],
                   check=True, capture_output=True)
    for f in data.glob("test.src-tgt.*"):
        f.rename(data / ("test-A" + f.name[len("test"):]))
    (data / "test-A.ids").write_text("".join(f"doc{i}\n" for i in range(5)))
    (root / "recipe.args").write_text(RECIPE)
    results = root / "results"
    proc = subprocess.run(["bash", str(SCRIPTS / "generate.sh"), str(root / "recipe.args"), str(data),
                           str(PREMOVE / "topk.pt"), str(results), "--beam", "2", "--nbest", "2"],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    return root, data, results, proc


def test_nbest_two_is_complete_for_generate_sh(generated):
    _, _, results, proc = generated
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = (results / "generate-test-A.txt").read_text()
    assert out.count("\nH-") + out.startswith("H-") == 10  # what the old H- count compared with 5
    assert "generate: ok:" in proc.stderr and "5 documents, 2 hypotheses each" in proc.stderr


def test_generate_sh_names_the_documents_without_a_summary(generated):
    root, data, results, _ = generated
    ids = data / "test-A.ids"
    ids.write_text(ids.read_text() + "doc5\n")  # the split lists one more document than was generated
    try:
        proc = subprocess.run(["bash", str(SCRIPTS / "generate.sh"), str(root / "recipe.args"), str(data),
                               str(PREMOVE / "topk.pt"), str(root / "again"), "--beam", "2", "--nbest", "2"],
                              capture_output=True, text=True, timeout=600, cwd=REPO)
    finally:
        ids.write_text("".join(f"doc{i}\n" for i in range(5)))
    assert proc.returncode == 3
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "ids 5 (doc5)" in last


def check(path, *args):
    return subprocess.run([sys.executable, "-m", "deep_pyramidion.eval.generate_output", "--check", str(path), *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def score(path, ref):
    return subprocess.run([sys.executable, str(SCRIPTS / "score.py"), "--generate-output", str(path), "--ref",
                           str(ref), "--bootstrap", "0"], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_real_output_cut_off_or_doubled_is_refused_by_both(generated):
    root, _, results, _ = generated
    whole = (results / "generate-test-A.txt").read_bytes()
    assert check(results / "generate-test-A.txt", "--expected", "5").returncode == 0
    assert score(results / "generate-test-A.txt", root / "test-A.tgt").returncode == 0
    lines = whole.splitlines(keepends=True)
    damaged = {
        "cut inside the last line": whole[:-3],
        "cut before the closing line": b"".join(lines[:-1]),
        "cut after a hypothesis": b"".join(lines[: len(lines) // 2]),
        "two runs": whole + whole,
        "restarted after a cut": b"".join(lines[: len(lines) // 2]) + whole,
    }
    for name, data in damaged.items():
        path = root / "damaged.txt"
        path.write_bytes(data)
        for proc in (check(path, "--expected", "5"), score(path, root / "test-A.tgt")):
            assert proc.returncode == 1, (name, proc.stderr)
            last = proc.stderr.strip().splitlines()[-1]
            assert last.startswith(f"error: {path}") and "Traceback" not in proc.stderr, (name, last)
