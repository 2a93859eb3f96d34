"""Reprs that never raise.

pytest and the traceback module call `repr()` on the locals of every frame they show, including
`self` in an `__init__` that failed part-way. A repr that raises there (an attribute not set yet,
an environment value that does not parse) hides the real error behind
`<[AttributeError(...) raised in repr()]>`; these reprs fall back to a short placeholder instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

__all__ = ["safe_repr"]

T = TypeVar("T")


def safe_repr(method: Callable[[T], str]) -> Callable[[T], str]:
    """Wrap a `__repr__` so that an exception gives `<Name at 0x... (repr unavailable: Error)>`."""

    @functools.wraps(method)
    def wrapper(self: T) -> str:
        try:
            return method(self)
        except Exception as exc:
            # Only the exception's type: its message could quote a secret value.
            name = type(self).__name__
            return f"<{name} at {id(self):#x} (repr unavailable: {type(exc).__name__})>"

    return wrapper
