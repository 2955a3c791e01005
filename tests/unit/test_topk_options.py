"""The top-k's learning options beside the paper's operator (modules/poolers/topk.py):
--topk-straight-through 1 (the forward pass keeps each output's leader alone, the backward pass is
the paper's soft operator's) and --topk-normalize-scores 1 (logits standardised per document)."""
import pytest
import torch

from deep_pyramidion.config import PyramidionConfig
from deep_pyramidion.modules.poolers import build_pooler
from deep_pyramidion.modules.poolers.topk import leaders_straight_through
from deep_pyramidion.topk import successive_halving_assignment


def poolers(D=5, width=4):
    """The paper's pooler and the straight-through one, with the same scorer weights."""
    torch.manual_seed(0)
    soft = build_pooler("topk", D, width, PyramidionConfig().validate())
    torch.manual_seed(0)
    hard = build_pooler("topk", D, width, PyramidionConfig(topk_straight_through=1).validate())
    return soft, hard


@pytest.mark.parametrize("n, lengths", [(16, [16, 16]), (23, [23, 9]), (13, [13, 2])])
def test_forward_is_the_leader_of_every_output(n, lengths):
    soft, hard = poolers()
    x = torch.randn(len(lengths), n, 5)
    mask = torch.arange(n)[None, :] >= torch.tensor(lengths)[:, None]
    out = hard(x, mask, with_assignment=True)
    index, weight, _, y_mask = successive_halving_assignment(hard.score(x), 4, mask=mask)
    leader = index.gather(-1, weight.argmax(-1, keepdim=True)).squeeze(-1)      # (B, k)
    expected = x.gather(1, leader.clamp(min=0).unsqueeze(-1).expand(-1, -1, 5))
    expected = expected.masked_fill(y_mask.unsqueeze(-1), 0.0)
    assert torch.equal(out.mask, y_mask)
    assert torch.allclose(out.x, expected)
    # an output that holds only padding stays zero; one with a real member has weight 1 on it
    assert torch.equal(out.assignment.weight.detach().sum(-1), (~y_mask).float())


def test_the_scorer_gets_the_soft_operators_gradient():
    """d loss / d w_jm = <upstream_j, x_m> for every member in both passes, and w is the same
    function of the scores: the scorer's gradient is the paper's, only the forward differs."""
    soft, hard = poolers()
    x = torch.randn(2, 19, 5)
    mask = torch.zeros(2, 19, dtype=torch.bool)
    mask[1, 15:] = True
    upstream = torch.randn(2, 4, 5)
    grads, outputs = {}, {}
    for name, pooler in (("soft", soft), ("hard", hard)):
        y = pooler(x, mask).x
        (y * upstream).sum().backward()
        grads[name] = [p.grad.clone() for p in pooler.scorer.parameters()]
        outputs[name] = y.detach()
    assert not torch.allclose(outputs["soft"], outputs["hard"])
    for g_soft, g_hard in zip(grads["soft"], grads["hard"]):
        assert g_soft.abs().sum() > 0
        assert torch.allclose(g_soft, g_hard, atol=1e-6)


def test_weights_are_one_hot_forward_and_identity_backward():
    weight = torch.tensor([[[0.1, 0.6, 0.2, 0.1], [0.0, 0.0, 0.0, 0.0]]], requires_grad=True)
    st = leaders_straight_through(weight)
    assert st.tolist() == [[[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]
    (st * torch.arange(4.0)).sum().backward()
    assert torch.equal(weight.grad, torch.arange(4.0).expand(1, 2, 4))


def test_the_flag_is_checked():
    with pytest.raises(ValueError, match="--topk-straight-through"):
        PyramidionConfig(topk_straight_through=2).validate()
    with pytest.raises(ValueError, match="--topk-normalize-scores"):
        PyramidionConfig(topk_normalize_scores=-1).validate()


def test_normalized_scores_straddle_one_half_with_a_fixed_spread_whatever_the_scorer():
    torch.manual_seed(0)
    config = PyramidionConfig(topk_normalize_scores=1).validate()
    pooler = build_pooler("topk", 5, 4, config)
    with torch.no_grad():
        pooler.scorer.net.bias.fill_(100.0)      # the paper's scores would all be 1.0
        pooler.scorer.net.weight.mul_(1000.0)    # and its logits spread far into saturation
    x = torch.randn(2, 12, 5)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[1, 7:] = True
    mask_padding_values = x.clone()
    mask_padding_values[1, 7:] = 1e3             # padding never moves the centre
    scores = pooler.score(x, mask)
    assert torch.allclose(scores[~mask], pooler.score(mask_padding_values, mask)[~mask])
    for row in range(2):
        logits = torch.logit(scores[row][~mask[row]] - 1e-5)
        assert abs(logits.mean()) < 1e-4 and abs(logits.std(unbiased=False) - 1) < 1e-3
    # the gradient still reaches the scorer's weights
    pooler(x, mask).x.sum().backward()
    assert pooler.scorer.net.weight.grad.abs().sum() > 0
    paper = build_pooler("topk", 5, 4, PyramidionConfig().validate())
    with torch.no_grad():
        paper.scorer.net.bias.fill_(100.0)
    assert torch.allclose(paper.score(x, mask), torch.full((2, 12), 1.0 + 1e-5))


# ---------------------------------------------------------------- --topk-base-warmup, --topk-scorer-gain
def test_base_warmup_starts_with_even_mixes_and_ends_with_the_base():
    torch.manual_seed(0)
    config = PyramidionConfig(topk_base_warmup=100).validate()
    pooler = build_pooler("topk", 5, 4, config)
    x, mask = torch.randn(2, 16, 5), torch.zeros(2, 16, dtype=torch.bool)
    full = PyramidionConfig().validate()
    torch.manual_seed(0)
    paper = build_pooler("topk", 5, 4, full)

    pooler.train()
    pooler.set_num_updates(0)
    assert pooler.current_base() == 1.0
    weight = pooler(x, mask, with_assignment=True).assignment.weight      # (B, k, M)
    assert torch.allclose(weight, torch.full_like(weight, 0.25))          # 2 rounds of 0.5 / 0.5
    pooler.set_num_updates(50)
    assert pooler.current_base() == pytest.approx(20.0 ** 0.5)
    for n in (100, 1000):  # at and after the end of the warm-up: the paper's operator
        pooler.set_num_updates(n)
        assert torch.equal(pooler(x, mask).x, paper(x, mask).x)
    pooler.set_num_updates(0)  # without fairseq's trainer, each training forward pass counts
    pooler(x, mask)
    pooler(x, mask)
    assert pooler.num_updates == 2
    pooler.set_num_updates(0)
    pooler.eval()  # evaluation and inference never see the warm-up (nor count)
    pooler(x, mask)
    assert pooler.num_updates == 0
    assert torch.equal(pooler(x, mask).x, paper(x, mask).x)


def test_scorer_gain_sets_the_logit_spread():
    torch.manual_seed(0)
    zero = build_pooler("topk", 64, 4, PyramidionConfig(topk_scorer_gain=0.0).validate())
    x = torch.randn(3, 40, 64)
    assert torch.equal(zero.score(x), torch.full((3, 40), 0.5 + 1e-5))
    for gain in (1.0, 4.0):
        pooler = build_pooler("topk", 4096, 4, PyramidionConfig(topk_scorer_gain=gain).validate())
        logits = pooler.scorer(torch.randn(8, 64, 4096))
        assert pooler.scorer.net.bias.detach().abs().sum() == 0
        assert logits.std().item() == pytest.approx(gain, rel=0.1)
    hard = build_pooler("hard-topk", 8, 4, PyramidionConfig(topk_scorer_gain=0.0).validate())
    assert hard.scorer.net.weight.abs().sum() == 0
    ffn = build_pooler("topk", 8, 4, PyramidionConfig(topk_scorer_gain=0.0,
                                                     encoder_pooling_arch="ffn").validate())
    assert ffn.scorer.net[-1].weight.abs().sum() == 0 and ffn.scorer.net[0].weight.abs().sum() > 0


@pytest.mark.parametrize("field, value, flag", [
    ("topk_base_warmup", -1, "--topk-base-warmup"), ("topk_base_warmup", 1.5, "--topk-base-warmup"),
    ("topk_scorer_gain", -1.0, "--topk-scorer-gain"),
    ("topk_scorer_gain", float("nan"), "--topk-scorer-gain")])
def test_the_learning_flags_are_checked(field, value, flag):
    with pytest.raises(ValueError, match=flag):
        PyramidionConfig(**{field: value}).validate()
