"""The pooling-schedule parser: a literal, never code; every bad value named by its flag."""
import logging

import pytest

from deep_pyramidion.schedule import FLAG, inactive_pooling_layers, parse_pooling_schedule


@pytest.mark.parametrize("text, expected", [
    ("{0: 2048, 1: 512}", {0: 2048, 1: 512}),
    ("{1: 512, 0: 2048}", {0: 2048, 1: 512}),
    ("[(0, 2048), (1, 512)]", {0: 2048, 1: 512}),
    ("{3: 64}", {3: 64}),
    ("{0: 512, 1: 512}", {0: 512, 1: 512}),
    ("", {}),
    ("{}", {}),
    (None, {}),
])
def test_valid_schedules(text, expected):
    parsed = parse_pooling_schedule(text, num_layers=4)
    assert parsed == expected
    assert list(parsed) == sorted(parsed)


@pytest.mark.parametrize("text, needle", [
    ("{0: 2048, 1: 4096}", "cannot grow"),
    ("{4: 512}", "outside the encoder"),
    ("{-1: 512}", "outside the encoder"),
    ("{0: 0}", "positive"),
    ("{0: -5}", "positive"),
    ("{'0': 512}", "integers"),
    ("{0: 512.0}", "integers"),
    ("{0: True}", "integers"),
    ("{0: 2048, 1: 512", "cannot parse"),
    ("2048", "expected a dict"),
    ("[(0, 1, 2)]", "pairs"),
    ("[(0, 512), (0, 256)]", "twice"),
    ("{0: " * 2000, "cannot parse"),      # deep nesting: the parser's recursion, caught
    ("{0: " * 5000, "characters long"),  # longer than any schedule: refused before parsing
])
def test_invalid_schedules_name_the_flag(text, needle):
    with pytest.raises(ValueError) as err:
        parse_pooling_schedule(text, num_layers=4)
    assert FLAG in str(err.value)
    assert needle in str(err.value)


def test_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [
        f"__import__('pathlib').Path({str(marker)!r}).touch()",
        f"{{0: __import__('pathlib').Path({str(marker)!r}).touch()}}",
        f"[x for x in [__import__('pathlib').Path({str(marker)!r}).touch()]]",
        "(lambda: 1)()",
    ]
    for payload in payloads:
        with pytest.raises(ValueError, match=FLAG):
            parse_pooling_schedule(payload, num_layers=4)
    assert not marker.exists()


def test_inactive_layers_are_the_ones_that_never_shrink():
    schedule = parse_pooling_schedule("{0: 2048, 1: 512}", num_layers=2)
    assert inactive_pooling_layers(schedule, 8192) == []
    # trained at 1024: layer 0 (2048) never sees more than 1024; layer 1 still pools 1024 -> 512
    assert inactive_pooling_layers(schedule, 1024) == [(0, 2048, 1024)]
    assert inactive_pooling_layers(schedule, 512) == [(0, 2048, 512), (1, 512, 512)]
