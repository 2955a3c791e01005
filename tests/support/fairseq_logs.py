"""Reading fairseq-train's ``--log-format simple`` output.

    stats = train_inner(log)        # {num_updates: {"loss": 5.12, "bsz": 16.0, "wps": ...}}
    losses = losses_by_update(log)  # {num_updates: loss}

A ``train_inner`` line (one per ``--log-interval`` updates) reads::

    ... | INFO | train_inner | epoch 001:      2 / 8 loss=9.484, nll_loss=9.48, ..., bsz=16, num_updates=2, ...

Its fields are read by name, so a field is never taken for another whose name ends the same way
(``loss=`` inside ``nll_loss=``). Values are floats, ``nan`` and ``inf`` included, so a test can
assert that they are finite; a value that is not a number is kept as its text.
"""
import re
from typing import Dict, Union

_LINE = re.compile(r"\btrain_inner\b(.*)$", re.M)
_FIELD = re.compile(r"(?:^|[\s,])(\w+)=([^,\s]+)")


def _value(text: str) -> Union[float, str]:
    try:
        return float(text)
    except ValueError:
        return text


def train_inner(log: str) -> Dict[int, Dict[str, Union[float, str]]]:
    """``{num_updates: {field: value}}`` of every train_inner line in ``log`` (a later line for
    the same update, as a resumed run prints, replaces the earlier one)."""
    found = {}
    for line in _LINE.finditer(log):
        fields = {name: _value(value) for name, value in _FIELD.findall(line.group(1))}
        if "num_updates" in fields:
            found[int(fields["num_updates"])] = fields
    return found


def losses_by_update(log: str) -> Dict[int, float]:
    """``{num_updates: loss}`` of fairseq's train_inner lines."""
    return {update: fields["loss"] for update, fields in train_inner(log).items()}
