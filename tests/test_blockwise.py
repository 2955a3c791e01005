"""Blockwise reshaping: exact round trip, tail kept, all-padding chunks never computed."""
import random

import pytest
import torch

from deep_pyramidion.modules.blockwise import merge_chunks, run_blockwise, split_chunks


def lengths_mask(lengths, T):
    return torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]  # (B, T) True = pad


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_is_exact(seed):
    rng = random.Random(seed)
    B, T, C = rng.randint(1, 4), rng.randint(1, 70), rng.randint(1, 5)
    chunk = rng.randint(1, 80)
    lengths = [rng.randint(1, T) for _ in range(B)]
    lengths[0] = T
    x = torch.randn(T, B, C)
    mask = lengths_mask(lengths, T)
    chunks = split_chunks(x, mask, chunk)
    c = min(chunk, T)
    assert chunks.x.shape[0] == c and chunks.padding_mask.shape[1] == c
    # every live chunk holds a real token; no dead chunk is kept
    assert (~chunks.padding_mask).any(dim=1).all()
    expected_live = sum(-(-length // c) for length in lengths)
    assert chunks.x.shape[1] == expected_live
    back = merge_chunks(chunks.x, chunks)
    real = ~mask.t().unsqueeze(-1)  # (T, B, 1)
    assert back.shape == x.shape
    assert torch.equal(back * real, x * real)


def test_chunks_are_independent_and_tail_is_kept():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    layer.eval()

    def fairseq_like(x, mask):
        return layer(x, src_key_padding_mask=mask)

    T, chunk = 23, 8  # 3 chunks, the last one 7 tokens long
    x = torch.randn(T, 1, 8)
    out = run_blockwise(fairseq_like, x, None, chunk)
    for start in range(0, T, chunk):
        piece = x[start:start + chunk]
        torch.testing.assert_close(out[start:start + chunk], fairseq_like(piece, None))


def test_all_padding_chunks_are_not_computed():
    seen = []

    def layer(x, mask):
        seen.append(x.shape[1])
        assert mask is None or not mask.all(dim=1).any(), "an all-padding row reached attention"
        return x * 2

    # a 1k-token and an 8k-token document in one batch, chunks of 512
    T = 8192
    mask = lengths_mask([1000, 8192], T)
    x = torch.randn(T, 2, 4)
    out = run_blockwise(layer, x, mask, 512)
    assert seen == [2 + 16]  # 2 live chunks for the short document, 16 for the long one
    assert torch.equal(out[:1000, 0], x[:1000, 0] * 2)
    assert torch.equal(out[1024:, 0], torch.zeros_like(out[1024:, 0]))  # dead chunks: zeros
    assert torch.equal(out[:, 1], x[:, 1] * 2)


def test_gradients_flow_through_chunks():
    x = torch.randn(37, 3, 4, requires_grad=True)
    mask = lengths_mask([37, 20, 5], 37)
    out = run_blockwise(lambda xc, mc: xc.tanh(), x, mask, 8)
    out.sum().backward()
    real = ~mask.t()
    assert (x.grad[real] != 0).all()


def test_bad_chunk_size():
    with pytest.raises(ValueError, match="--chunk-size"):
        split_chunks(torch.randn(4, 1, 2), None, 0)
