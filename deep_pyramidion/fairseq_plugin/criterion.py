"""Label-smoothed cross-entropy + an auxiliary loss the model computes in training.

    fairseq-train ... --encoder-attention blockwise-memory --memory-compression conv \
        --criterion label_smoothed_cross_entropy_with_reconstruction --reconstruction-weight 1.0
    fairseq-train ... --encoder-pooling topk --selection-loss 1 \
        --criterion label_smoothed_cross_entropy_with_selection --selection-weight 1.0

reconstruction: the model computes it in training whenever ``--memory-compression`` names a
pooler with parameters (conv, dilated-conv, seqpool, topk, hard-topk): for each compressed chunk,
the mean squared difference between the layer's attention over the chunk and over its compression,
with the attention's weights frozen, so the loss trains only the compression network
(modules/memory.py, BlockwiseMemoryAttention). It arrives in the decoder's extra output as
``reconstruction_loss`` (a per-element mean, summed over layers).

selection: with ``--selection-loss 1`` the model computes, in training, the binary cross-entropy
of every token scorer against which source tokens the target uses (modules/poolers/selection.py),
as ``selection_loss`` (a per-token mean, summed over poolers).

Scale: fairseq sums the token loss over the batch and divides the gradient by the sample size, so
the term added here is ``weight * term * sample_size``: after that division it weighs ``weight``
against the per-token cross-entropy. The logged ``loss`` includes it; the logged term is the
unweighted mean.

A criterion chosen for a term the model does not compute is refused when the model is built
(``PyramidionConfig.validate(criterion=...)``, called by ``PyramidionModel.build_model`` with the
run's ``--criterion``); the check at the first training step here is the last guard, for a model
built some other way.
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

from deep_pyramidion.config import (
    RECONSTRUCTION_CRITERION, SELECTION_CRITERION, missing_loss_message,
)
from deep_pyramidion.plumbing.errors import ConfigError

NAME = RECONSTRUCTION_CRITERION
SELECTION_NAME = SELECTION_CRITERION


@dataclass
class ReconstructionCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    reconstruction_weight: float = field(
        default=1.0,
        metadata={"help": "weight of the attention-reconstruction loss of the compressed memory "
                          "(blockwise-memory with a trainable --memory-compression)"},
    )


class _WithAuxiliaryLoss(LabelSmoothedCrossEntropyCriterion):
    """Label-smoothed cross-entropy + ``weight`` x the model's ``TERM`` (in its extra output),
    which must be there in training: a criterion chosen for a term the model never computes
    would otherwise train without it, silently."""

    CRITERION = ""   # its --criterion name
    TERM = ""

    def __init__(self, task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy,
                 weight, flag):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy)
        if not (math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"{flag} must be a finite number >= 0, got {weight}")
        self.weight = weight

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
        terms = extra.get(self.TERM)
        if terms:
            term = terms[0]
            loss = loss + self.weight * term * sample_size
            logging_output["loss"] = loss.data
            logging_output[self.TERM] = term.data
        elif model.training:
            raise ConfigError(missing_loss_message(self.CRITERION))
        if self.report_accuracy:
            n_correct, total = self.compute_accuracy(model, net_output, sample)
            logging_output["n_correct"] = utils.item(n_correct.data)
            logging_output["total"] = utils.item(total.data)
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        values = [log[cls.TERM] for log in logging_outputs if cls.TERM in log]
        if values:
            metrics.log_scalar(cls.TERM, float(sum(values)) / len(values), len(values), round=4)


@register_criterion(NAME, dataclass=ReconstructionCriterionConfig)
class LabelSmoothedCrossEntropyWithReconstruction(_WithAuxiliaryLoss):
    CRITERION = NAME
    TERM = "reconstruction_loss"

    def __init__(self, task, sentence_avg, label_smoothing, ignore_prefix_size=0,
                 report_accuracy=False, reconstruction_weight=1.0):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy,
                         reconstruction_weight, "--reconstruction-weight")
        self.reconstruction_weight = reconstruction_weight


@dataclass
class SelectionCriterionConfig(LabelSmoothedCrossEntropyCriterionConfig):
    selection_weight: float = field(
        default=1.0,
        metadata={"help": "weight of the token scorers' selection loss (--selection-loss 1)"},
    )


@register_criterion(SELECTION_NAME, dataclass=SelectionCriterionConfig)
class LabelSmoothedCrossEntropyWithSelection(_WithAuxiliaryLoss):
    CRITERION = SELECTION_NAME
    TERM = "selection_loss"

    def __init__(self, task, sentence_avg, label_smoothing, ignore_prefix_size=0,
                 report_accuracy=False, selection_weight=1.0):
        super().__init__(task, sentence_avg, label_smoothing, ignore_prefix_size, report_accuracy,
                         selection_weight, "--selection-weight")
