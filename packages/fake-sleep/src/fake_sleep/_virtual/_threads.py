"""Worker threads: which ones run a counted call, and when a busy one is stuck waiting for time.

Virtual time stands still while a task waits for a worker thread started through a counted
entry point (``anyio.to_thread.run_sync``, ``asyncio.to_thread``, ``loop.run_in_executor``,
``trio.to_thread.run_sync``): the thread does real work, and a timer must not fire early.

Three cases would freeze time for ever, because the worker keeps the clock still while it
waits for something that needs the clock to move:

- the worker waits in ``threading`` (an event, lock, condition, semaphore, barrier),
  ``queue`` or ``concurrent.futures`` for something a task releases after a virtual sleep
  (a plain lock's C-level acquire is seen from the caller's frame: `_in_lock`);
- the worker is blocked in ``Thread.join()`` on a plain ``threading.Thread`` (which virtual
  time does not track) while that thread itself waits, for example for such an event;
- the worker calls back into the event loop (``anyio.from_thread.run``/``run_sync``,
  ``trio.from_thread.run``/``run_sync``) and waits for code there that sleeps.

`Workers.hold` spots all three from the threads' innermost Python frames: when every busy
worker has been stuck like that, unchanged, for `STALL_GRACE` real seconds, the workers let
the clock make one jump; while they stay stuck, another one each `STALL_GRACE` seconds. Time
moves on as it would if the worker were not there, and a worker that wakes meanwhile holds
the clock again at once.
"""

from __future__ import annotations

import dis
import functools
import inspect
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, TypeVar

from ._private_threading import JOIN_CODE, WAIT_FRAMES, current_frames
from ._private_trio import CALLBACK_FRAMES as TRIO_CALLBACK_FRAMES

__all__ = ["STALL_GRACE", "Workers"]

#: Real seconds every busy worker must stay stuck before the clock may make one jump
#: (longer than any hand-over between threads, short next to a hang).
STALL_GRACE = 1.0

#: Frames of a worker that waits for the event loop it was started from: (module, function).
_CALLBACKS = frozenset({("anyio.from_thread", "run"), ("anyio.from_thread", "run_sync")}) | (
    TRIO_CALLBACK_FRAMES
)
_WAITS = WAIT_FRAMES
_JOIN_CODE = JOIN_CODE
#: A plain ``lock.acquire()`` or ``with lock:`` blocks in C, with no frame of its own: it is
#: seen as the caller's frame standing on that instruction, with a lock as the receiver.
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_WITH_ENTRY = frozenset({"BEFORE_WITH", "SETUP_WITH"})
_NAME_LOADS = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_DEREF", "LOAD_GLOBAL", "LOAD_NAME"})
_ATTR_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
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
    return (frame.f_globals.get("__name__"), frame.f_code.co_name) in _WAITS or _in_lock(frame)


@functools.lru_cache(maxsize=256)
def _instructions(code: CodeType) -> tuple[dis.Instruction, ...]:
    return tuple(dis.get_instructions(code))


def _in_lock(frame: FrameType) -> bool:
    """Whether `frame` stands on ``x.acquire(...)`` or ``with x:`` where x is a threading lock.

    Only the receiver is looked up (names and plain attributes, read statically: no code runs).
    """
    before = [op for op in _instructions(frame.f_code) if op.offset <= frame.f_lasti]
    if not before:
        return False
    if before[-1].opname in _WITH_ENTRY:
        end = len(before) - 1
    elif "CALL" in before[-1].opname:
        calls = [
            index
            for index in range(len(before) - 2, max(len(before) - 12, 0) - 1, -1)
            if before[index].opname in _ATTR_LOADS and before[index].argval == "acquire"
        ]
        if not calls:
            return False
        end = calls[0]
    else:
        return False
    attrs: list[str] = []
    index = end - 1
    while index >= 0 and before[index].opname in _ATTR_LOADS:
        attrs.append(str(before[index].argval))
        index -= 1
    if index < 0 or before[index].opname not in _NAME_LOADS:
        return False
    name = str(before[index].argval)
    try:
        found: object = frame.f_locals[name]
    except KeyError:
        found = frame.f_globals.get(name)
    for attr in reversed(attrs):
        try:
            found = inspect.getattr_static(found, attr)
        except AttributeError:
            return False
    return isinstance(found, _LOCK_TYPES)


def _is_callback(frame: FrameType) -> bool:
    return (frame.f_globals.get("__name__"), frame.f_code.co_name) in _CALLBACKS


def _calls_back(frame: FrameType | None) -> bool:
    """Whether the thread running `frame` is inside a call back into its event loop."""
    while frame is not None:
        if _is_callback(frame):
            return True
        frame = frame.f_back
    return False


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
        """Whether `busy` counted calls keep the clock still (False: every worker is stuck)."""
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
        frames = current_frames()
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
        if now - self._since < STALL_GRACE:
            return True
        self._since = now  # one jump now; the next one only after another STALL_GRACE
        return False

    @staticmethod
    def _stuck(
        frames: dict[int, FrameType], ident: int, idents: set[int]
    ) -> tuple[int, int, object, int] | None:
        """(worker, thread waited for, where) if this worker waits for something time must move.

        That is a plain thread that itself waits (followed through nested joins), or the event
        loop (the worker is calling back into it).
        """
        own = frames.get(ident)
        # Innermost in a wait, or in trio's callback itself (it blocks in SimpleQueue.get, C).
        if own is not None and (_waiting(own) or _is_callback(own)) and _calls_back(own):
            return ident, ident, own.f_code, own.f_lineno
        target = _joined_thread(own)
        if target is None:
            if own is not None and _waiting(own):
                # Blocked on a lock, event, queue or future: what releases it may be a task
                # that needs the clock to move (or a thread virtual time cannot see).
                return ident, ident, own.f_code, own.f_lineno
            return None
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
