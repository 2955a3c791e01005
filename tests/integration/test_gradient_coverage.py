"""Every parameter of every encoder option (each --encoder-pooling with each --encoder-attention)
gets a finite gradient in one backward pass, also when a batch is too short for any pooler to
select: an unused parameter stops pytorch_ddp without --find-unused-parameters."""
import pytest
import torch

from deep_pyramidion.config import ENCODER_ATTENTIONS
from deep_pyramidion.modules.poolers import POOLERS
from tests.support.models import build_model, decoder_batch, right_padded_batch


POOLINGS = sorted(POOLERS) + ["none"]


@pytest.mark.parametrize("attention", ENCODER_ATTENTIONS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_every_parameter_gets_a_gradient(copy_data, pooling, attention):
    model, task, _ = build_model(copy_data, "--encoder-pooling", pooling, "--encoder-attention", attention)
    model.train()
    # 150/100 tokens: both poolers select (64 -> 16); 10/8 tokens: shorter than every width, so
    # nothing is selected and the scorers must still be in the graph
    for lengths in ([150, 100], [10, 8]):
        model.zero_grad(set_to_none=True)
        tokens, src_lengths = right_padded_batch(task, lengths)
        prev, target = decoder_batch(task, len(lengths), 6, seed=1)
        logits, _ = model(tokens, src_lengths, prev)
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)),
                                                 target.view(-1))
        loss.backward()
        params = dict(model.named_parameters())
        missing = [n for n, p in params.items() if p.requires_grad and p.grad is None]
        assert not missing, f"lengths {lengths}: no gradient for {missing}"
        bad = [n for n, p in params.items() if p.grad is not None and not torch.isfinite(p.grad).all()]
        assert not bad, f"lengths {lengths}: non-finite gradient for {bad}"
        if lengths[0] > 64 and pooling != "none":
            # a trainable selection must learn where it selects (not only get the zero-valued
            # keep-in-graph term); poolers without a scorer (most-used) have nothing to check here
            scorers = {n: p for n, p in params.items() if ".scorer." in n}
            assert all(p.grad.abs().sum() > 0 for p in scorers.values()), sorted(scorers)
