"""Durations as people write them in settings: ``90``, ``"30s"``, ``"10m"``, ``"2h"``, ``"3d"``."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds in ``value``; raises ``ValueError`` naming ``what`` when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number of seconds or a string like '30s', '10m', '2h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _PATTERN.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"{what} must be a number of seconds or a string like '30s', '10m', '2h', got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return seconds
