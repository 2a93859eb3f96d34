"""The contract every backend driver keeps, and the logic all drivers share.

A driver runs one event loop's own clock in virtual time while a `virtual_time()` block is
active. Every driver keeps these promises, and the rest of the package relies on nothing else:

1. Loop time equals the driver's time. While installed, the loop's clock (``loop.time()``,
   ``trio.current_time()``) returns ``driver.now``, in the loop's own units; ``driver.start``
   is the value on entry. Between jumps ``now`` stands still.
2. Timers are kept in virtual time. The driver never copies or reorders the loop's timers: the
   loop compares its own deadlines against ``now``, so they fall due in deadline order.
3. A jump happens only when the loop is about to wait and all of these hold: no task can run
   (a non-blocking I/O poll found nothing and no thread handed work back); no worker thread
   started through a counted entry point is busy (`Workers.hold`); and no outside I/O is in
   progress (`OutsideIO.hold`). Then ``now`` moves straight to the nearest deadline, never
   past ``end=``. With no deadline at all, a real-time grace passes before a deadlock error.
   While something real is pending the loop waits for it in real time, and ``now`` stands
   still.
4. Installing changes nothing until every private hook has been looked up (the driver's
   constructor does that and raises `VirtualClockError` naming a missing one). ``install``
   pushes one undo per change onto the given `contextlib.ExitStack`, so a failure halfway,
   or the end of the block, takes every change back in reverse order. On exit the loop clock
   goes on at real speed from the virtual time reached, never backwards.
"""

from __future__ import annotations

import math
import sys
import time
from contextlib import ExitStack, suppress
from numbers import Real
from typing import TYPE_CHECKING, ClassVar

from ._errors import VirtualClockDeadlock, VirtualClockError, VirtualTimeLimitExceeded
from ._io import OutsideIO
from ._threads import Workers

if TYPE_CHECKING:
    import anyio

__all__ = [
    "DEADLOCK_GRACE",
    "IO_GRACE",
    "SUPPORTED",
    "THREAD_POLL",
    "Driver",
    "check_seconds",
    "unsupported",
]

#: Real seconds with nothing runnable, no timer and nothing real pending before a deadlock.
DEADLOCK_GRACE = 0.5
#: Real seconds to wait for a busy worker thread before looking again (its result wakes the
#: loop anyway; this only bounds a missed wake-up and paces the stuck-thread check).
THREAD_POLL = 0.1
#: Default real seconds of silence after which a wait on outside I/O no longer holds the clock.
IO_GRACE = 2.0
#: What the private hooks were written for and tested with.
SUPPORTED = (
    "Python 3.10 to 3.13 (asyncio selector event loops), anyio 4.4 to 4.x, trio 0.26 to 0.35"
)


def _installed() -> str:
    from importlib import metadata

    found = [f"Python {sys.version.split()[0]}"]
    for name in ("anyio", "trio"):
        with suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def unsupported(subject: str, missing: str) -> VirtualClockError:
    """The one error for a loop the driver cannot drive: what is missing, what is supported."""
    return VirtualClockError(
        f"virtual_time() cannot drive {subject}: {missing}. It drives the event loop through"
        f" private hooks written for {SUPPORTED}; installed: {_installed()}. Nothing was"
        " changed. Use a supported version, or run this code without virtual time."
    )


def check_seconds(value: object, name: str) -> float:
    """A non-negative number of seconds as a float, or a TypeError/ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    result = float(value)
    if math.isnan(result) or result < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return result


class Driver:
    """What every backend shares: the virtual time, the limit, threads, outside I/O, failure.

    ``now`` is in the event loop's own clock units (what ``loop.time()`` or
    ``trio.current_time()`` returns); ``start`` is that value on entry.
    """

    backend: ClassVar[str] = "?"

    def __init__(self, end: float | None, io_grace: float) -> None:
        self.now = 0.0
        self.start = 0.0
        self.end = end
        self.limit = math.inf
        #: Counted worker-thread calls in flight (maintained by the backend's wrappers).
        self.busy = 0
        self.workers = Workers()
        self.io = OutsideIO(io_grace)
        self.failure: VirtualClockError | None = None
        self.idle_since: float | None = None
        self.scope: anyio.CancelScope | None = None

    def begin(self, start: float) -> None:
        self.now = self.start = start
        self.limit = math.inf if self.end is None else start + self.end

    # -- backend hooks ---------------------------------------------------------------------
    def install(self, stack: ExitStack) -> None:
        """Make the loop's clock virtual, pushing one undo per change onto `stack`."""
        raise NotImplementedError

    def schedule_cancel(self) -> None:
        """Arrange for ``self.scope`` to be cancelled from inside the event loop, soon."""
        raise NotImplementedError

    def waiting_tasks(self) -> str:
        raise NotImplementedError

    # -- shared logic ----------------------------------------------------------------------
    def elapsed(self) -> float:
        # Rounded to nanoseconds: the loop clock's large epoch would otherwise show float
        # noise (1000.0000000000002) in a sum of exact delays.
        return round(self.now - self.start, 9)

    def threads_hold(self) -> bool:
        """Whether busy worker threads keep the clock still (see `Workers.hold`)."""
        return self.workers.hold(self.busy, time.perf_counter())

    def cancel_scope(self) -> None:
        if self.scope is not None:
            self.scope.cancel()

    def fail(self, error: VirtualClockError) -> None:
        if self.failure is None:
            self.failure = error
        self.schedule_cancel()

    def deadlock(self) -> None:
        self.idle_since = None
        self.fail(
            VirtualClockDeadlock(
                f"virtual_time(): deadlock at {self.elapsed():g} virtual seconds: no task can"
                " run, no timer is pending, no tracked worker thread is busy and no outside"
                f" I/O is in progress (waited {DEADLOCK_GRACE:g} s of real time). Waiting"
                f" tasks:\n{self.waiting_tasks()}\nSomething awaits an event that nothing will"
                " set. Threads not started through anyio.to_thread.run_sync, asyncio.to_thread,"
                " loop.run_in_executor or trio.to_thread.run_sync are not waited for, and a"
                f" socket silent for io_grace={self.io.grace:g} s no longer counts as busy."
            )
        )

    def exceed(self, deadline: float) -> None:
        self.fail(
            VirtualTimeLimitExceeded(
                f"virtual_time(end={self.end:g}): the next timer is due at"
                f" {deadline - self.start:g} virtual seconds, past end={self.end:g}. Timers keep"
                " firing but the awaited work never completes (a livelock), or end= is too"
                f" small for this code. Waiting tasks:\n{self.waiting_tasks()}"
            )
        )

    def grace_left(self) -> float:
        """Real seconds of deadlock grace left (starting the grace period if needed)."""
        now_real = time.perf_counter()
        if self.idle_since is None:
            self.idle_since = now_real
        return self.idle_since + DEADLOCK_GRACE - now_real

    def advance(self, seconds: float) -> None:
        seconds = check_seconds(seconds, "seconds")
        if math.isinf(seconds):
            raise ValueError("advance(seconds): seconds must be finite")
        target = self.now + seconds
        if target > self.limit:
            raise VirtualTimeLimitExceeded(
                f"advance({seconds:g}) would move virtual time to"
                f" {target - self.start:g} s, past end={self.end:g}"
            )
        self.now = target
