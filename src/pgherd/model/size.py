"""Sizes as operators type them (``16MB``, ``512kB``, bytes). Pure."""

from __future__ import annotations

import re

from pgherd.errors import InvalidInput

_SIZE = re.compile(r"^\s*(\d+)\s*(B|kB|KB|MB|GB)?\s*$")
_UNITS = {None: 1, "B": 1, "kB": 1024, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def parse_size(text: str, option: str) -> int:
    """``16MB`` → 16777216; plain numbers are bytes."""
    match = _SIZE.match(text)
    if match is None:
        raise InvalidInput(f"{option} {text!r} is not a size", "write it as 16MB, 512kB or bytes")
    return int(match.group(1)) * _UNITS[match.group(2)]
