"""The model with --topk-impl triton against the torch path: the same outputs, the same gradient
for every parameter, the same beam search. On CUDA (scripts/gpu_check.sh runs it there); on the CPU
only under Triton's interpreter (TRITON_INTERPRET=1, as gpu_check.sh --dry-run sets it), skipped
otherwise."""
import importlib.util
import os

import pytest
import torch

from tests.support.models import build_model, decoder_batch, left_padded_batch

if torch.cuda.is_available():
    DEVICE = "cuda"
elif os.environ.get("TRITON_INTERPRET") == "1":
    DEVICE = "cpu"
else:
    DEVICE = None
pytestmark = pytest.mark.skipif(
    DEVICE is None or importlib.util.find_spec("triton") is None,
    reason="needs CUDA (or TRITON_INTERPRET=1) and triton")


def pair(data_bin, *flags):
    models = []
    for impl in ("torch", "triton"):
        built = build_model(data_bin, "--topk-impl", impl, *flags)
        models.append((built.model.to(DEVICE), built.task))
    models[1][0].load_state_dict(models[0][0].state_dict())
    return models


@pytest.mark.parametrize("flags", [(), ("--encoder-attention", "blockwise-memory",
                                        "--memory-compression", "topk")])
def test_triton_and_torch_paths_agree_on_outputs_and_gradients(data_bin, flags):
    (torch_model, task), (triton_model, _) = pair(data_bin, *flags)
    src, lengths = left_padded_batch(task, [300, 117, 64], seed=2)
    prev, target = decoder_batch(task, 3, 9)
    grads = []
    for model in (torch_model, triton_model):
        model.train()
        torch.manual_seed(0)              # the same dropout masks
        out = model(src.to(DEVICE), lengths.to(DEVICE), prev.to(DEVICE))[0]
        loss = torch.nn.functional.cross_entropy(out.float().transpose(1, 2), target.to(DEVICE))
        loss.backward()
        grads.append({n: p.grad.detach().float().cpu() for n, p in model.named_parameters()
                      if p.grad is not None})
    assert set(grads[0]) == set(grads[1]) and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-5,
                                   msg=lambda m: f"{name}: {m}")


def test_triton_and_torch_paths_give_the_same_beams(data_bin):
    from fairseq.sequence_generator import SequenceGenerator

    (torch_model, task), (triton_model, _) = pair(data_bin)
    src, lengths = left_padded_batch(task, [300, 80], seed=3)
    sample = {"net_input": {"src_tokens": src.to(DEVICE), "src_lengths": lengths.to(DEVICE)}}
    hypos = []
    for model in (torch_model, triton_model):
        model.eval()
        gen = SequenceGenerator([model], task.target_dictionary, beam_size=3, max_len_a=0,
                                max_len_b=10)
        with torch.no_grad():
            hypos.append([[h["tokens"].tolist() for h in hs] for hs in gen.generate([model], sample)])
    assert hypos[0] == hypos[1]
