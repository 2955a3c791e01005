"""Highlighting (deep_pyramidion.analysis.highlight, CLI fairseq_plugin.cli.highlight_main behind
scripts/highlight.py): per pooling layer, each input token's weight in the pooled output, composed
across layers, checked against the reference top-k implementation."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.fairseq_runs import LONG_DOC_TOKENS
from deep_pyramidion.analysis.highlight import HighlightError, highlight, pooling_weights
from deep_pyramidion.fairseq_plugin.cli import highlight_main
from deep_pyramidion.hub import from_pretrained
from deep_pyramidion.topk.reference import successive_halving_topk_reference
from tests.support.paths import SCRIPTS


@pytest.fixture(scope="module")
def hub(seed_run):
    # reads 4096 tokens, so the 3000-token test document passes through both poolers
    # (layer 0: 3001 -> 2048, layer 1: 2048 -> 512)
    return from_pretrained(str(seed_run["ckpt"].parent), checkpoint_file=seed_run["ckpt"].name,
                           data_name_or_path=str(seed_run["data"]), bpe=None,
                           max_source_positions=4096)


@pytest.fixture(scope="module")
def long_doc(seed_run):
    doc = (seed_run["raw"] / "test-A.src").read_text().splitlines()[0]
    assert len(doc.split()) == LONG_DOC_TOKENS
    return doc


@pytest.fixture(scope="module")
def result(hub, long_doc, tmp_path_factory):
    return highlight(hub, long_doc, str(tmp_path_factory.mktemp("hl")), "doc-0")


def test_writes_html_png_and_json(result):
    page = Path(result["html"]).read_text()
    assert "After encoder layer 0" in page and "After encoder layer 1" in page
    assert page.count("<span class='t'") == 2 * (LONG_DOC_TOKENS + 1)  # every token, per layer
    assert "highlight.png" in page
    import matplotlib.image

    image = matplotlib.image.imread(result["png"])
    assert image.ndim == 3 and image.shape[1] > 800 and image.shape[0] > 150
    assert image[..., :3].std() > 0.05  # not a blank canvas
    saved = json.loads((Path(result["html"]).parent / "weights.json").read_text())
    assert [layer["n_out"] for layer in saved["layers"]] == [2048, 512]


def test_weights_per_layer(result):
    layers = result["layers"]
    assert [(l["layer"], l["n_in"], l["n_out"], l["pooled"]) for l in layers] == \
        [(0, LONG_DOC_TOKENS + 1, 2048, True), (1, 2048, 512, True)]
    for layer in layers:
        w = np.array(layer["weight"])
        owner = np.array(layer["owner"])
        assert w.shape == (LONG_DOC_TOKENS + 1,)
        assert (w >= 0).all() and (w <= 1 + 1e-6).all()
        assert layer["real_outputs"] == layer["n_out"]
        # the groups partition the tokens and each group's weights sum to 1
        assert abs(w.sum() - layer["real_outputs"]) < 1e-3
        assert (owner >= 0).all() and set(owner.tolist()) == set(range(layer["n_out"]))
        sums = np.bincount(owner, weights=w, minlength=layer["n_out"])
        np.testing.assert_allclose(sums, 1.0, atol=1e-4)
    # a token's weight can only shrink from one layer to the next
    assert (np.array(layers[1]["weight"]) <= np.array(layers[0]["weight"]) + 1e-9).all()


def _dense(layer, n_tokens):
    a = torch.zeros(layer["n_out"], n_tokens, dtype=torch.float64)
    a[torch.tensor(layer["owner"]), torch.arange(n_tokens)] = torch.tensor(layer["weight"], dtype=torch.float64)
    return a


def test_weights_match_the_reference_operator(hub, long_doc, result):
    """Independent check: capture the poolers' inputs, run the reference (round-by-round)
    implementation on identity features, which returns each pooler's mixing matrix W, and compose
    the layers by matrix products: A0 = W0, A1 = W1 @ W0."""
    encoder = hub.models[0].encoder
    captured = {}
    handles = [p.register_forward_hook(
        lambda m, inp, out, name=name: captured.__setitem__(name, (m, inp[0], inp[1], out[0])))
        for name, p in encoder.poolers.items()]
    tokens = hub.encode_document(long_doc)
    try:
        with torch.no_grad():
            encoder(tokens.unsqueeze(0), src_lengths=torch.tensor([tokens.numel()]))
    finally:
        for h in handles:
            h.remove()
    mixes = []
    for name in sorted(captured, key=int):
        pooler, x, mask, y = captured[name]
        n = x.size(1)
        with torch.no_grad():
            scores = pooler.score(x).double()
            eye = torch.eye(n, dtype=torch.float64).unsqueeze(0)
            w, _, _ = successive_halving_topk_reference(eye, scores, pooler.width, mask, pooler.base,
                                                        pooler.flip_right, pooler.sort_back)
            # the mixing matrix reproduces what the pooler really output
            torch.testing.assert_close((w[0].float() @ x[0].float()), y[0].float(), atol=1e-4, rtol=1e-4)
        mixes.append(w[0])
    n_tokens = tokens.numel()
    a0 = mixes[0]
    a1 = mixes[1] @ mixes[0]
    layers = result["layers"]
    torch.testing.assert_close(_dense(layers[0], n_tokens), a0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_dense(layers[1], n_tokens), a1, atol=1e-5, rtol=1e-5)


def test_short_document_passes_through_unpooled(hub, tmp_path):
    out = highlight(hub, "w1 w2 w3 w4 w5", str(tmp_path), "short")
    for layer in out["layers"]:
        assert not layer["pooled"] and layer["n_in"] == layer["n_out"] == 6
        assert layer["weight"] == [1.0] * 6


def test_command_line(seed_run, tmp_path):
    code = highlight_main(["--checkpoint", str(seed_run["ckpt"]), "--data", str(seed_run["data"]),
                           "--no-bpe", "--input", str(seed_run["raw"] / "test-A.src"), "--line", "2",
                           "--out", str(tmp_path / "cli")])
    assert code == 0
    assert (tmp_path / "cli" / "highlight.html").exists() and (tmp_path / "cli" / "highlight.png").exists()
    assert highlight_main(["--checkpoint", str(seed_run["ckpt"]), "--data", str(seed_run["data"]),
                           "--no-bpe", "--input", str(seed_run["raw"] / "test-A.src"), "--line", "99",
                           "--out", str(tmp_path / "bad")]) == 1
    assert not (tmp_path / "bad").exists()


def test_model_without_pooling_is_refused(hub):
    encoder = hub.models[0].encoder
    saved = encoder.poolers
    encoder.poolers = torch.nn.ModuleDict()
    try:
        with pytest.raises(HighlightError, match="no pooling layers"):
            pooling_weights(hub.models[0], torch.tensor([[5, 6, 2]]))
    finally:
        encoder.poolers = saved


def test_script_is_the_command_line():
    """scripts/highlight.py keeps working as the documented entry point (a thin wrapper)."""
    proc = subprocess.run([sys.executable, str(SCRIPTS / "highlight.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--checkpoint" in proc.stdout and "--line" in proc.stdout
