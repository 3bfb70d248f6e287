"""Typed reads of decoded JSON values, for the readers that must not import pydantic
(the quick commands' config and status readers: pgherd.config_lite,
pgherd.model.status_lite). Each returns its value with its type checked, or raises
TypeError naming what it found; ``bool`` is never taken for a number."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def optional(data: Mapping[str, Any], key: str, read: Callable[[object], T]) -> T | None:
    """``data[key]`` read with ``read``; None when it is absent or null."""
    value = data.get(key)
    return None if value is None else read(value)


def mapping(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def array(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def integer(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def number(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value
