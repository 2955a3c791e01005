"""Pyramidion models built in-process the way fairseq-train builds them, and batches for them.

    model, task, args = build_model(data, "--encoder-pooling", "avg")   # options -> task -> model
    tokens, lengths = right_padded_batch(task, [300, 130, 5])           # (B, T), (B,)
    tokens, lengths = left_padded_batch(task, [300, 130, 5])            # as the translation task
    prev, target = decoder_batch(task, rows=3, length=6)                # teacher forcing

``right_padded_batch`` pads like fairseq's collater with ``left_pad=False`` (tokens, then eos,
then padding); ``left_padded_batch`` like the translation task's source side
(``left_pad_source=True``: padding, then tokens, then eos). The encoder must give the same
answers for both; tests name which one they use.
"""
from typing import List, NamedTuple, Sequence, Tuple

import torch
from torch import Tensor

from fairseq import options, tasks

import deep_pyramidion.fairseq_plugin  # noqa: F401  (registers the model even if deep_pyramidion was imported before fairseq)
from tests.support.paths import USER_DIR


class Built(NamedTuple):
    model: torch.nn.Module
    task: object
    args: object


def training_args(data, *flags: str, arch: str = "pyramidion_tiny",
                  max_source_positions: int = 1024):
    """fairseq-train's parse of ``DATA --user-dir ... --arch ARCH ... FLAGS`` (dropout off; later
    flags win, so FLAGS may override any of these)."""
    parser = options.get_training_parser()
    return options.parse_args_and_arch(parser, [
        str(data), "--user-dir", USER_DIR, "--task", "translation", "--arch", arch,
        "--source-lang", "src", "--target-lang", "tgt", "--share-all-embeddings",
        "--max-source-positions", str(max_source_positions), "--dropout", "0", *flags,
    ])


def build_model(data, *flags: str, arch: str = "pyramidion_tiny", max_source_positions: int = 1024,
                seed: int = 0) -> Built:
    """options -> task -> model, as fairseq-train does; parameters initialised from ``seed``."""
    args = training_args(data, *flags, arch=arch, max_source_positions=max_source_positions)
    task = tasks.setup_task(args)
    torch.manual_seed(seed)
    return Built(task.build_model(args), task, args)


def _random_documents(task, lengths: Sequence[int], generator) -> List[Tensor]:
    d = task.source_dictionary
    docs = []
    for n in lengths:
        body = torch.randint(d.nspecial, len(d), (n - 1,), generator=generator)
        docs.append(torch.cat([body, torch.tensor([d.eos()])]))
    return docs


def right_padded_batch(task, lengths: Sequence[int], seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Random documents of the given lengths (eos included), padded on the right: (B, T), (B,)."""
    g = torch.Generator().manual_seed(seed)
    d = task.source_dictionary
    tokens = torch.full((len(lengths), max(lengths)), d.pad())
    for row, doc in enumerate(_random_documents(task, lengths, g)):
        tokens[row, :doc.numel()] = doc
    return tokens, torch.tensor(list(lengths))


def left_padded_batch(task, lengths: Sequence[int], seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Random documents of the given lengths (eos included), padded on the left: (B, T), (B,)."""
    g = torch.Generator().manual_seed(seed)
    d = task.source_dictionary
    T = max(lengths)
    tokens = torch.full((len(lengths), T), d.pad())
    for row, doc in enumerate(_random_documents(task, lengths, g)):
        tokens[row, T - doc.numel():] = doc
    return tokens, torch.tensor(list(lengths))


def decoder_batch(task, rows: int, length: int, seed: int = 1) -> Tuple[Tensor, Tensor]:
    """Random targets (rows, length) and the decoder's teacher-forced input (eos, then the target
    shifted right): ``prev, target``."""
    d = task.target_dictionary
    target = torch.randint(d.nspecial, len(d), (rows, length),
                           generator=torch.Generator().manual_seed(seed))
    prev = torch.cat([torch.full((rows, 1), d.eos()), target[:, :-1]], dim=1)
    return prev, target
