"""What the clock reads of threading, queue and concurrent.futures beyond their public API.

There is no public way to see what another thread is doing, so the worker-thread check
(`_threads`) and the other-loop check (`_others`) read every thread's innermost Python
frame and recognise waits by (module, function) name. Everything here is bound once at
import: the hot path reads module constants, never a name lookup through these modules.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

from ._private import PrivateName, describe

__all__ = [
    "ACTIVE_THREADS",
    "JOIN_CODE",
    "NAMES",
    "WAIT_FRAMES",
    "current_frames",
]

NAMES: tuple[PrivateName, ...] = (
    PrivateName(
        "sys._current_frames",
        "every thread's innermost frame: the only way to see what another thread waits for",
        "used without a fallback (every CPython has it; other Pythons are not supported)",
    ),
    PrivateName(
        "threading._active",
        "the table of running threads, its size read without a lock on every jump",
        "threading.active_count() is used instead (slower: it takes a lock)",
    ),
    PrivateName(
        "threading.Thread._wait_for_tstate_lock",
        "the innermost frame of Thread.join() on Python 3.10 to 3.12 (WAIT_FRAMES)",
        "not needed (3.13 waits in C under Thread.join, which WAIT_FRAMES also names)",
    ),
    PrivateName(
        "concurrent.futures._base",
        "the module Future.result(), Future.exception(), wait() and as_completed() run in"
        " (WAIT_FRAMES)",
        "a worker blocked there is not seen as stuck and holds the clock until it returns",
    ),
)

#: sys._current_frames, bound once (its name is private; it is in every CPython).
current_frames: Callable[[], dict[int, FrameType]] = sys._current_frames

#: threading's table of running threads, read without its lock on the hot path (one jump);
#: None where it is missing (then ``threading.active_count()``).
ACTIVE_THREADS: dict[int, Any] | None = getattr(threading, "_active", None)

#: Innermost frames that mean "blocked waiting for another thread": (module, function).
WAIT_FRAMES: frozenset[tuple[str, str]] = frozenset(
    {
        ("threading", "wait"),  # Condition.wait, Event.wait, Barrier.wait
        ("threading", "wait_for"),
        ("threading", "acquire"),  # Semaphore.acquire
        ("threading", "join"),
        ("threading", "_wait_for_tstate_lock"),  # Thread.join on 3.10 to 3.12
        ("queue", "get"),
        ("queue", "put"),
        ("queue", "join"),
        ("concurrent.futures._base", "result"),
        ("concurrent.futures._base", "exception"),
        ("concurrent.futures._base", "wait"),
        ("concurrent.futures._base", "as_completed"),
    }
)

#: ``Thread.join``'s code: a frame running it has the joined thread as its ``self`` local.
JOIN_CODE: CodeType = threading.Thread.join.__code__

__doc__ = describe(__doc__, NAMES)
