"""The benchmarks' memory estimate (benchmarks/memory.py) follows what the benchmarks measured:
every configuration with a measured peak in docs/bench/*_cpu.json is estimated within a factor
that still tells what fits (0.7x-1.4x), and the long inputs that once were skipped are not."""
import glob
import json
import os

import pytest

from benchmarks.memory import estimate_gib, layer_widths
from benchmarks.models import FULL_SIZES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measured_rows():
    rows = []
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "bench", "*_cpu.json"))):
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict) or "results" not in data:
            continue
        sizes = data["meta"].get("sizes")
        for row in data["results"]:
            if sizes and row.get("peak_mib") and row.get("table") in (
                    "train", "encoder", "generate", "decoder"):
                rows.append((os.path.basename(path), sizes, row))
    return rows


def test_there_are_measurements_to_follow():
    rows = measured_rows()
    assert len(rows) >= 40
    assert {row["table"] for _, _, row in rows} >= {"train", "encoder", "generate"}
    assert {row["model"] for _, _, row in rows} >= {"pyramidion", "blockwise", "full", "led"}


@pytest.mark.parametrize("name, sizes, row", measured_rows(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_estimate_follows_the_measured_peak(name, sizes, row):
    estimated = estimate_gib(row, sizes) * 1024
    ratio = estimated / row["peak_mib"]
    assert 0.7 <= ratio <= 1.4, (
        f"{name}: {row['table']} {row['model']} {row['length']} tokens: estimated "
        f"{estimated:.0f} MiB, measured {row['peak_mib']:.0f} MiB")


def test_long_inputs_are_estimated_by_the_measured_slope():
    """Without gradients one layer's activations are alive at a time: the pyramidion's 131,072
    tokens measured 3.8 GiB, and the blockwise model reads the same first layer."""
    for model in ("pyramidion", "blockwise"):
        spec = dict(table="encoder", model=model, length=131072)
        assert 3.0 < estimate_gib(spec, FULL_SIZES) < 5.0
    generate = dict(table="generate", length=262144, beam=4)
    assert estimate_gib(dict(generate, model="pyramidion"), FULL_SIZES) < 12
    # the blockwise beam search carries every input token per beam; LED's buffers grow faster
    assert (estimate_gib(dict(generate, model="blockwise"), FULL_SIZES)
            > estimate_gib(dict(generate, model="pyramidion"), FULL_SIZES))
    assert estimate_gib(dict(table="encoder", model="led", length=65536), FULL_SIZES) > 24


def test_layer_widths_follow_the_schedule():
    assert layer_widths(8192, 6, {0: 2048, 1: 512}) == [8192, 2048, 512, 512, 512, 512]
    assert layer_widths(1024, 3, {0: 2048}) == [1024, 1024, 1024]
