"""Worker threads: which ones run a counted call, and when a busy one is stuck on a plain thread.

Virtual time stands still while a task waits for a worker thread started through a counted
entry point (``anyio.to_thread.run_sync``, ``asyncio.to_thread``, ``loop.run_in_executor``,
``trio.to_thread.run_sync``): the thread does real work, and a timer must not fire early.

One case would freeze time for ever: a worker blocked in ``Thread.join()`` on a plain
``threading.Thread`` (which virtual time does not track) while that thread itself waits, for
example for an event that a task sets after a virtual sleep. The worker keeps the clock still,
so the sleep never ends, so the thread never finishes. `Workers.hold` spots it: when every
busy worker has been joining such a waiting plain thread, unchanged, for `STALL_GRACE` real
seconds, the workers stop holding the clock, and time moves on as it would for the plain
thread alone.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

__all__ = ["STALL_GRACE", "Workers"]

#: Real seconds a busy worker must stay joined to a waiting plain thread before it stops
#: holding the clock (longer than any hand-over between threads, short next to a hang).
STALL_GRACE = 1.0

#: Innermost frames that mean "blocked waiting for another thread": (module, function).
_WAITS = frozenset(
    {
        ("threading", "wait"),  # Condition.wait, Event.wait, Barrier.wait
        ("threading", "wait_for"),
        ("threading", "acquire"),  # Semaphore.acquire
        ("threading", "join"),
        ("threading", "_wait_for_tstate_lock"),
        ("queue", "get"),
        ("queue", "put"),
        ("queue", "join"),
        ("concurrent.futures._base", "result"),
        ("concurrent.futures._base", "exception"),
        ("concurrent.futures._base", "wait"),
        ("concurrent.futures._base", "as_completed"),
    }
)
_JOIN_CODE = threading.Thread.join.__code__
_MAX_CHAIN = 8

T = TypeVar("T")


def _joined_thread(frame: FrameType | None) -> threading.Thread | None:
    """The thread that the thread running `frame` waits for in ``Thread.join()``, if any."""
    while frame is not None:
        if frame.f_code is _JOIN_CODE:
            target = frame.f_locals.get("self")
            return target if isinstance(target, threading.Thread) else None
        frame = frame.f_back
    return None


def _waiting(frame: FrameType) -> bool:
    return (frame.f_globals.get("__name__"), frame.f_code.co_name) in _WAITS


class Workers:
    """Threads currently running a counted call, and the stuck-join check."""

    __slots__ = ("_checked", "_signature", "_since", "_verdict", "idents")

    def __init__(self) -> None:
        #: Thread idents running a counted call right now (set and read under the GIL).
        self.idents: set[int] = set()
        self._signature: tuple[tuple[int, int, object, int], ...] = ()
        self._since = 0.0
        self._checked = -1.0
        self._verdict = True

    def wrap(self, func: Callable[..., T]) -> Callable[..., T]:
        """`func` run so that its thread is known as a counted worker while it runs."""
        idents = self.idents

        def counted(*args: Any, **kwargs: Any) -> T:
            ident = threading.get_ident()
            idents.add(ident)
            try:
                return func(*args, **kwargs)
            finally:
                idents.discard(ident)

        return counted

    def hold(self, busy: int, now: float) -> bool:
        """Whether `busy` counted calls keep the clock still (False only for a stuck join)."""
        if busy <= 0:
            return False
        if self._verdict and now - self._checked < 0.05:
            return True  # paced: stacks are looked at a few times a second at most
        self._checked = now
        self._verdict = self._look(busy, now)
        return self._verdict

    def _look(self, busy: int, now: float) -> bool:
        idents = set(self.idents)
        if len(idents) < busy:  # a call queued or handing back: real work in flight
            self._signature = ()
            return True
        frames = sys._current_frames()
        signature: list[tuple[int, int, object, int]] = []
        for ident in idents:
            stuck = self._stuck(frames, ident, idents)
            if stuck is None:
                self._signature = ()
                return True
            signature.append(stuck)
        current = tuple(sorted(signature, key=lambda item: (item[0], item[1])))
        if current != self._signature:
            self._signature = current
            self._since = now
            return True
        return now - self._since < STALL_GRACE

    @staticmethod
    def _stuck(
        frames: dict[int, FrameType], ident: int, idents: set[int]
    ) -> tuple[int, int, object, int] | None:
        """(worker, plain thread, where it waits) if this worker joins a waiting plain thread."""
        target = _joined_thread(frames.get(ident))
        for _ in range(_MAX_CHAIN):
            if target is None or target.ident is None or target.ident in idents:
                return None
            frame = frames.get(target.ident)
            if frame is None or not _waiting(frame):
                return None  # finished, or doing its own work: wait for it
            deeper = _joined_thread(frame)
            if deeper is None:
                return ident, target.ident, frame.f_code, frame.f_lineno
            target = deeper
        return None
