"""Durations as operators type them (``90s``, ``30m``, ``2h``, ``1h30m``, ``1d``). Pure."""

from __future__ import annotations

import re

from pgherd.errors import InvalidInput

_PART = re.compile(r"(\d+(?:\.\d+)?)(d|h|m|s)")
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str, option: str = "--for") -> float:
    """Seconds in ``text``: one or more number-unit parts (``1h30m``), or plain seconds."""
    compact = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", compact):
        seconds = float(compact)
    elif compact and re.fullmatch(r"(?:\d+(?:\.\d+)?[dhms])+", compact):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(compact))
    else:
        raise InvalidInput(
            f"{option} {text!r} is not a duration", "write it as 90s, 30m, 2h, 1h30m or 1d"
        )
    if seconds <= 0:
        raise InvalidInput(
            f"{option} {text!r} is not a positive duration", "give it a length, e.g. 30m"
        )
    return seconds


def human_duration(seconds: float) -> str:
    """``5400`` → ``1h30m``; under a minute in seconds."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
