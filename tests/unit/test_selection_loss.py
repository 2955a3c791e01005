"""--selection-loss (modules/poolers/selection.py): the labels say which source tokens the target
uses; the loss teaches every scorer to rank them high, through the pooled outputs' labels for the
scorers after the first."""
import pytest
import torch
import torch.nn.functional as F

from deep_pyramidion.config import PyramidionConfig
from deep_pyramidion.modules.poolers import build_pooler
from deep_pyramidion.modules.poolers.selection import selection_labels, selection_loss
from deep_pyramidion.modules.pyramid import PoolingRecord

PAD, EOS = 1, 2


def test_labels_mark_the_source_tokens_whose_ids_the_target_holds():
    src = torch.tensor([[PAD, 5, 6, 7, 5, EOS], [8, 9, 10, 11, 12, EOS]])
    tgt = torch.tensor([[EOS, 5, 7, PAD], [EOS, 12, 13, 9]])
    labels = selection_labels(src, tgt, ignore={PAD, EOS})
    assert labels.tolist() == [[0, 1, 0, 1, 1, 0], [0, 1, 0, 0, 1, 0]]
    assert labels.dtype == torch.float32


def records_of(pooler_specs, x, mask):
    """Run poolers one after another (no layers between), recording them as run_pyramid does."""
    records, poolers = [], {}
    for layer, (name, width, flags) in enumerate(pooler_specs):
        pooler = build_pooler(name, x.size(-1), width, PyramidionConfig(**flags).validate())
        poolers[str(layer)] = pooler
        out = pooler(x, mask, with_assignment=True)
        records.append(PoolingRecord(layer, x, mask, out))
        x, mask = out.x, out.mask
    return records, poolers


def test_loss_is_the_first_scorers_bce_plus_the_next_ones_on_pooled_labels():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[1, 12:] = True
    labels = (torch.rand(2, 16) < 0.3).float()
    records, poolers = records_of([("topk", 8, {}), ("topk", 2, {})], x, mask)
    loss = selection_loss(records, poolers, labels)

    real = ~mask
    first = F.binary_cross_entropy_with_logits(poolers["0"].scorer(x)[real], labels[real])
    a = records[0].pooled.assignment
    member = labels.gather(1, a.index.clamp(min=0).flatten(1)).view_as(a.weight)
    pooled = (a.weight * member).sum(-1) / a.weight.sum(-1).clamp(min=1e-9)    # (B, 8)
    x1, m1 = records[1].x, ~records[1].mask
    second = F.binary_cross_entropy_with_logits(poolers["1"].scorer(x1)[m1], pooled[m1])
    assert torch.allclose(loss, first + second)
    # padding counts for nothing: changing a padded position's label changes nothing
    labels2 = labels.clone()
    labels2[1, 13] = 1 - labels2[1, 13]
    assert torch.allclose(selection_loss(records, poolers, labels2), loss)


def test_the_scorer_learns_to_rank_the_labelled_tokens_first():
    """A few steps of the loss alone move the labelled tokens to the top of the ranking."""
    torch.manual_seed(0)
    D, n = 64, 64      # 50 ids in 64 dimensions: a linear scorer can separate any 5 of them
    vocab = torch.randn(50, D)
    ids = torch.randint(0, 50, (8, n))
    x = vocab[ids]
    labels = (ids < 5).float()                                   # ~10% of the tokens
    mask = torch.zeros(8, n, dtype=torch.bool)
    pooler = build_pooler("topk", D, 8, PyramidionConfig().validate())
    optimizer = torch.optim.Adam(pooler.parameters(), lr=0.05)
    for _ in range(60):
        records = [PoolingRecord(0, x, mask, pooler(x, mask, with_assignment=True))]
        loss = selection_loss(records, {"0": pooler}, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    scores = pooler.score(x)
    assert scores[labels == 1].min() > scores[labels == 0].max()


def test_the_flag_needs_a_scorer():
    assert PyramidionConfig(selection_loss=1, encoder_pooling="hard-topk").validate()
    with pytest.raises(ValueError, match="--selection-loss 1 .* avg has none"):
        PyramidionConfig(selection_loss=1, encoder_pooling="avg").validate()
    with pytest.raises(ValueError, match="--selection-loss"):
        PyramidionConfig(selection_loss=2).validate()
