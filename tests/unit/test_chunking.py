"""Chunking (modules/chunking.py): exact round trip, tail kept, all-padding chunks never computed."""
import random

import pytest
import torch

from deep_pyramidion.modules.chunking import merge_chunks, pad_to_blocks, run_blockwise, split_chunks


def lengths_mask(lengths, T):
    return torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]  # (B, T) True = pad


@pytest.mark.parametrize("seed", range(20))
def test_round_trip_is_exact(seed):
    rng = random.Random(seed)
    B, T, C = rng.randint(1, 4), rng.randint(1, 70), rng.randint(1, 5)
    chunk = rng.randint(1, 80)
    lengths = [rng.randint(1, T) for _ in range(B)]
    lengths[0] = T
    x = torch.randn(B, T, C)
    mask = lengths_mask(lengths, T)
    chunks = split_chunks(x, mask, chunk)
    c = min(chunk, T)
    assert chunks.x.shape[1] == c and chunks.padding_mask.shape[1] == c
    # every live chunk holds a real token; no dead chunk is kept
    assert (~chunks.padding_mask).any(dim=1).all()
    expected_live = sum(-(-length // c) for length in lengths)
    assert chunks.x.shape[0] == expected_live
    back = merge_chunks(chunks.x, chunks)
    real = ~mask.unsqueeze(-1)  # (B, T, 1)
    assert back.shape == x.shape
    assert torch.equal(back * real, x * real)


def test_chunks_are_independent_and_tail_is_kept():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).eval()

    def run(x, mask):
        return layer(x, src_key_padding_mask=mask)

    T, chunk = 23, 8  # 3 chunks, the last one 7 tokens long
    x = torch.randn(1, T, 8)
    out = run_blockwise(run, x, torch.zeros(1, T, dtype=torch.bool), chunk)
    for start in range(0, T, chunk):
        piece = x[:, start:start + chunk]
        torch.testing.assert_close(out[:, start:start + chunk], run(piece, None))


def test_all_padding_chunks_are_not_computed():
    seen = []

    def layer(x, mask):
        seen.append(x.shape[0])
        assert not mask.all(dim=1).any(), "an all-padding row reached attention"
        return x * 2

    # a 1k-token and an 8k-token document in one batch, chunks of 512
    T = 8192
    mask = lengths_mask([1000, 8192], T)
    x = torch.randn(2, T, 4)
    out = run_blockwise(layer, x, mask, 512)
    assert seen == [2 + 16]  # 2 live chunks for the short document, 16 for the long one
    assert torch.equal(out[0, :1000], x[0, :1000] * 2)
    assert torch.equal(out[0, 1024:], torch.zeros_like(out[0, 1024:]))  # dead chunks: zeros
    assert torch.equal(out[1], x[1] * 2)


def test_a_tuple_of_outputs_comes_back_per_token():
    x = torch.randn(2, 11, 3)
    mask = lengths_mask([11, 4], 11)
    y, per_token, nothing = run_blockwise(lambda xc, mc: (xc + 1, xc.sum(-1), None), x, mask, 4)
    real = ~mask
    assert nothing is None
    torch.testing.assert_close(y[real], (x + 1)[real])
    torch.testing.assert_close(per_token[real], x.sum(-1)[real])
    assert torch.equal(per_token[~real], torch.zeros_like(per_token[~real]))


def test_gradients_flow_through_chunks():
    x = torch.randn(3, 37, 4, requires_grad=True)
    mask = lengths_mask([37, 20, 5], 37)
    out = run_blockwise(lambda xc, mc: xc.tanh(), x, mask, 8)
    out.sum().backward()
    assert (x.grad[~mask] != 0).all()


@pytest.mark.parametrize("T, block, blocks, N", [(10, 3, None, 4), (9, 3, None, 3), (9, 3, 4, 4),
                                                 (1, 5, None, 1)])
def test_pad_to_blocks_pads_with_masked_zeros(T, block, blocks, N):
    x = torch.randn(2, T, 3)
    mask = lengths_mask([T, 1], T)
    xp, mp, n = pad_to_blocks(x, mask, block, blocks)
    assert n == N and xp.shape == (2, N * block, 3) and mp.shape == (2, N * block)
    assert torch.equal(xp[:, :T], x) and torch.equal(mp[:, :T], mask)
    assert mp[:, T:].all() and not xp[:, T:].any()


def test_bad_block_length():
    with pytest.raises(ValueError, match="block length"):
        pad_to_blocks(torch.randn(1, 4, 2), torch.zeros(1, 4, dtype=torch.bool), 0)
