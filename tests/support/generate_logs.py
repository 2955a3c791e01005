"""A small but whole fairseq-generate output (the shape fairseq_cli/generate.py prints) and the
references it was made for, shared by the evaluation tests."""

REFS = [
    "the pooling layer selects tokens . <q> the decoder attends to them .",
    "long documents are expensive . <q> we make them cheap .",
    "results improve on arxiv and pubmed .",
]

# every hypothesis as H-, D-, P- lines; document 0 with --nbest 2; the closing line at the end
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
P-0\t-0.1 -0.2 -0.3 -0.1 -0.2 -0.3 -0.1 -0.2 -0.3 -0.1 -0.2 -0.3 -0.1 -0.2 -0.3
H-0\t-0.90\t\u2581worse \u2581second \u2581best
D-0\t-0.90\tworse second best
P-0\t-0.9 -0.9 -0.9 -0.9
S-1\tlong documents .
T-1\tlong documents are expensive . <q> we make them cheap .
H-1\t-0.33\t\u2581long \u2581documents \u2581are \u2581expensive
D-1\t-0.33\tlong documents are expensive
P-1\t-0.3 -0.3 -0.3 -0.3 -0.4
Generate test-A with beam=4: BLEU4 = 10.00
"""


def write(path, lines):
    """``lines`` as a one-document-per-line file; returns its path as a string."""
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)
