"""Parse operator-friendly durations such as ``90s``, ``15m``, ``2h``, ``3d``."""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str) -> timedelta:
    match = _PATTERN.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; use a number and a unit, e.g. 90s, 15m, 2h, 3d."
        )
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def format_duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
