import argparse
from datetime import timedelta

import pytest

from product.inference.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("2h", timedelta(hours=2)),
     ("1.5d", timedelta(days=1.5))],
)
def test_durations_parse(text, expected):
    assert parse_duration(text) == expected


def test_a_bad_duration_says_how_to_write_one():
    with pytest.raises(argparse.ArgumentTypeError, match="e.g. 90s"):
        parse_duration("soon")


def test_durations_format_for_people():
    assert format_duration(timedelta(seconds=42)) == "42s"
    assert format_duration(timedelta(minutes=5, seconds=3)) == "5m03s"
    assert format_duration(None) == "-"
