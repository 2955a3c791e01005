"""Upper bounds that the command lines check before any work starts (no torch, no fairseq).

A value above one of these is almost always a typo (``--max-source-positions 100000000`` for
``10000``), and taking it at its word would first allocate gigabytes: refusing it at once, with
the flag and the bound in the message, is the README's promise ("Limits are checked before work
starts").
"""

# Source tokens one document may have. The encoder's position table (learned or sinusoidal) has a
# row of d floats per position: 2**20 positions at d=1024 are 4 GiB in float32, already more than
# any run of this project reads (the longest tested is 131072 tokens, README "Long inputs"); the
# tables are allocated when the model is built, before a single token is read.
MAX_SOURCE_POSITIONS = 1 << 20


def check_max_source_positions(value, flag: str = "--max-source-positions") -> None:
    """ValueError naming ``flag`` unless ``value`` is an integer in [1, MAX_SOURCE_POSITIONS]."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{flag} must be a positive integer, got {value!r}")
    if value > MAX_SOURCE_POSITIONS:
        raise ValueError(f"{flag} {value}: at most {MAX_SOURCE_POSITIONS} source positions (the "
                         f"position table alone would take {value} rows per model dimension; a "
                         "typo?)")
