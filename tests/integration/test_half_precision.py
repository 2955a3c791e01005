"""Half precision through fairseq: every pooling option's model cast to bf16 / fp16 runs forward and
backward with finite values, and plain fairseq-train --bf16 trains on the CPU.

fairseq's --bf16 runs on the CPU once its "--bf16 implies --tpu" rule is lifted (the adapter's
bf16_without_tpu patch, deep_pyramidion/fairseq_plugin/patches.py; see docs/distributed.md);
--fp16 needs CUDA in fairseq, so its numerics are checked here on the CPU with a half-precision
model. The top-k operator and pooler alone: tests/unit/test_half_precision_topk.py.
"""
import math
import re
import sys

import pytest
import torch

from deep_pyramidion.modules.poolers import POOLERS
from tests.support.paths import USER_DIR
from tests.support.fairseq_logs import losses_by_update
from tests.support.models import build_model, decoder_batch, right_padded_batch
from tests.support.processes import run

HALF = [torch.bfloat16, torch.float16]


# ---------------------------------------------------------------------------------------------
# whole models in half precision, every pooling option

@pytest.mark.parametrize("pooling", sorted(POOLERS))
def test_half_precision_model_forward_backward_is_finite(copy_data, pooling):
    """What fairseq --bf16 / --fp16 do to the model: cast it, run it. Loss and every gradient finite;
    the encoder's pooled output keeps the model's dtype."""
    model, task, _ = build_model(copy_data, "--encoder-pooling", pooling)
    lengths = [100, 70, 7]
    tokens, _ = right_padded_batch(task, lengths, seed=3)
    prev, target = decoder_batch(task, 3, 6)
    for dtype in HALF:
        half = model.to(dtype)
        half.zero_grad(set_to_none=True)
        enc = half.encoder(tokens, torch.tensor(lengths))
        assert enc["encoder_out"][0].dtype == dtype
        assert torch.isfinite(enc["encoder_out"][0]).all()
        logits, _ = half(tokens, torch.tensor(lengths), prev)
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), target.view(-1))
        assert torch.isfinite(loss)
        loss.backward()
        bad = [n for n, p in half.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        assert not bad, f"{dtype}: non-finite gradients in {bad}"


# ---------------------------------------------------------------------------------------------
# fairseq's training loop in bf16 on the CPU

# plain fairseq-train (fairseq 0.12 turns --bf16 into --tpu; the plugin lifts that when torch_xla
# is absent), reporting the dtype of the model the trainer holds
BF16_LAUNCHER = r"""
import sys
import fairseq.trainer

_init = fairseq.trainer.Trainer.__init__
def init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    print("MODEL_DTYPES", sorted({str(p.dtype) for p in self.model.parameters()}), flush=True)
fairseq.trainer.Trainer.__init__ = init

from fairseq_cli.train import cli_main
sys.argv[0] = "fairseq-train"
cli_main()
"""


@pytest.mark.slow
def test_fairseq_train_bf16_on_cpu_has_finite_losses(copy_data, tmp_path):
    argv = [sys.executable, "-c", BF16_LAUNCHER, str(copy_data), "--user-dir", USER_DIR,
            "--task", "translation", "--arch", "pyramidion_tiny", "--source-lang", "src",
            "--target-lang", "tgt", "--share-all-embeddings", "--dataset-impl", "mmap",
            "--optimizer", "adam", "--lr", "1e-3", "--max-sentences", "8", "--max-update", "3",
            "--cpu", "--bf16", "--seed", "3", "--num-workers", "0", "--log-format", "simple",
            "--log-interval", "1", "--valid-subset", "dev-0", "--criterion",
            "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--max-source-positions", "256", "--save-dir", str(tmp_path / "ckpt"),
            "--no-epoch-checkpoints"]
    log = run(argv, cwd=tmp_path, timeout=600)
    assert "MODEL_DTYPES ['torch.bfloat16']" in log
    losses = losses_by_update(log)
    assert sorted(losses) == [1, 2, 3]
    assert all(math.isfinite(v) for v in losses.values()), losses
    valid = re.search(r"valid on 'dev-0' subset \| loss ([-\w.]+)", log)
    assert valid and math.isfinite(float(valid.group(1)))
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").exists()
