"""Describe where waiting tasks are stuck, for the deadlock and time-limit messages."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any

__all__ = ["describe_waiters"]

# Frames from these top-level packages are plumbing, not the place a user wants to look at.
_LIBRARY_ROOTS = frozenset(
    {
        "anyio",
        "asyncio",
        "contextlib",
        "fake_sleep",
        "outcome",
        "pytest_asyncio",
        "sniffio",
        "trio",
        "_pytest",
    }
)


def _await_chain(coro: Any) -> Iterator[FrameType]:
    """Yield the frames of a coroutine and of everything it awaits, outermost first."""
    seen = 0
    while coro is not None and seen < 200:  # a guard against odd self-referencing objects
        seen += 1
        frame = (
            getattr(coro, "cr_frame", None)
            or getattr(coro, "gi_frame", None)
            or getattr(coro, "ag_frame", None)
        )
        if frame is None:
            return
        yield frame
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "gi_yieldfrom", None)
            or getattr(coro, "ag_await", None)
        )


def _is_library(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return isinstance(name, str) and name.partition(".")[0] in _LIBRARY_ROOTS


def _where(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"


def describe_waiters(tasks: Iterable[tuple[str, Any]]) -> str:
    """One line per task that waits in user code: its name and its innermost user frame.

    ``tasks`` are ``(name, coroutine)`` pairs. Tasks that wait only inside library code
    (event-loop system tasks) are left out unless no task waits in user code at all.
    """
    user_lines: list[str] = []
    other_lines: list[str] = []
    for name, coro in tasks:
        frames = list(_await_chain(coro))
        user = [frame for frame in frames if not _is_library(frame)]
        if user:
            leaf = frames[-1]
            line = f"  - task {name!r} waiting at {_where(user[-1])}"
            if leaf is not user[-1]:
                line += f" (inside {leaf.f_code.co_name})"
            user_lines.append(line)
        elif frames:
            other_lines.append(f"  - task {name!r} waiting at {_where(frames[-1])}")
    lines = sorted(user_lines) or sorted(other_lines)
    if not lines:
        return "  (no waiting task found)"
    return "\n".join(lines)
