"""Wall clocks that follow the recorder's virtual shift."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["shift_value", "shifted_clock"]


def shift_value(value: object, shift: float, path: str) -> Any:
    """Move a clock reading `shift` seconds forward.

    Datetimes get a timedelta, counted in elapsed seconds (aware ones through UTC, so a DST
    change inside the shift does not add or drop an hour); floats get seconds.
    """
    if not shift:
        return value
    if isinstance(value, datetime):
        if math.isinf(shift):
            raise OverflowError(
                f"{path}() cannot be shifted past an infinite fake sleep: a datetime cannot"
                " be infinitely far in the future (the sleep itself was recorded)"
            )
        delta = timedelta(seconds=shift)
        if value.tzinfo is None or value.utcoffset() is None:
            return value + delta
        return (value.astimezone(timezone.utc) + delta).astimezone(value.tzinfo)
    if isinstance(value, float):
        return value + shift
    raise TypeError(
        f"clock {path!r} returned {type(value).__name__} {value!r}; patch_sleep can shift"
        " clocks returning datetimes (moved by a timedelta) or floats (moved by seconds)."
        " Remove it from clocks=."
    )


def shifted_clock(original: Callable[..., Any], shift: Callable[[], float], path: str) -> Any:
    """Wrap `original` so every reading is moved forward by `shift()` seconds.

    All positional and keyword arguments pass through (`pendulum.now("UTC")`,
    `pendulum.now(tz="UTC")`).
    """

    @functools.wraps(original)
    def clock(*args: Any, **kwargs: Any) -> Any:
        return shift_value(original(*args, **kwargs), shift(), path)

    return clock
