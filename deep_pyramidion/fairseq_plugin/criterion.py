"""Label-smoothed cross-entropy + the Compressive Transformer's attention-reconstruction loss.

    fairseq-train ... --encoder-attention blockwise-memory --memory-compression conv \
        --criterion label_smoothed_cross_entropy_with_reconstruction --reconstruction-weight 1.0

The model computes the reconstruction loss in training whenever ``--memory-compression`` names a
pooler with parameters (conv, dilated-conv, seqpool, topk, hard-topk): for each compressed chunk,
the mean squared difference between the layer's attention over the chunk and over its compression,
with the attention's weights frozen, so the loss trains only the compression network
(modules/memory.py, BlockwiseMemoryAttention). It arrives in the decoder's extra output as
``reconstruction_loss`` (a per-element mean, summed over layers).

Scale: fairseq sums the token loss over the batch and divides the gradient by the sample size, so
the term added here is ``weight * reconstruction * sample_size``: after that division it weighs
``weight`` against the per-token cross-entropy. The logged ``loss`` includes it; the logged
``reconstruction_loss`` is the unweighted mean.
"""
import math
from dataclasses import dataclass, field

from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)
from fairseq.logging import metrics

from deep_pyramidion.config import TRAINABLE_POOLINGS
from deep_pyramidion.errors import ConfigError

NAME = "label_smoothed_cross_entropy_with_reconstruction"


@dataclass
class ReconstructionCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    reconstruction_weight: float = field(
        default=1.0,
        metadata={"help": "weight of the attention-reconstruction loss of the compressed memory "
                          "(blockwise-memory with a trainable --memory-compression)"},
    )


@register_criterion(NAME, dataclass=ReconstructionCriterionConfig)
class LabelSmoothedCrossEntropyWithReconstruction(LabelSmoothedCrossEntropyCriterion):
    def __init__(self, task, sentence_avg, label_smoothing, ignore_prefix_size=0,
                 report_accuracy=False, reconstruction_weight=1.0):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        if not (math.isfinite(reconstruction_weight) and reconstruction_weight >= 0):
            raise ConfigError(f"--reconstruction-weight must be a finite number >= 0, got "
                              f"{reconstruction_weight}")
        self.reconstruction_weight = reconstruction_weight

    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"])
        loss, nll_loss = self.compute_loss(model, net_output, sample, reduce=reduce)
        sample_size = sample["target"].size(0) if self.sentence_avg else sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["target"].size(0),
            "sample_size": sample_size,
        }
        extra = net_output[1] if isinstance(net_output[1], dict) else {}
        terms = extra.get("reconstruction_loss")
        if terms:
            reconstruction = terms[0]
            loss = loss + self.reconstruction_weight * reconstruction * sample_size
            logging_output["loss"] = loss.data
            logging_output["reconstruction_loss"] = reconstruction.data
        elif model.training:
            raise ConfigError(
                f"--criterion {NAME} needs a model that computes the reconstruction loss: "
                "--encoder-attention blockwise-memory with a trainable --memory-compression "
                f"({', '.join(TRAINABLE_POOLINGS)})")
        if self.report_accuracy:
            n_correct, total = self.compute_accuracy(model, net_output, sample)
            logging_output["n_correct"] = utils.item(n_correct.data)
            logging_output["total"] = utils.item(total.data)
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        values = [log["reconstruction_loss"] for log in logging_outputs
                  if "reconstruction_loss" in log]
        if values:
            metrics.log_scalar("reconstruction_loss", float(sum(values)) / len(values),
                               len(values), round=4)
