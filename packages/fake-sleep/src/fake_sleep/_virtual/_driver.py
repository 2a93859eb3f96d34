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
   started through a counted entry point is busy (`Workers.hold`); and no outside wait is in
   progress (`OutsideIO.hold`, fed with the loop's own waits and those of other threads from
   ``_others``). Then ``now`` moves straight to the nearest deadline (`Driver.may_jump`),
   never past the limit (``end=``, ten virtual years by default) and at most ``max_jumps``
   times. With no deadline at all, a real-time grace passes before a deadlock error. While
   something real is pending the loop waits for it in real time, at most ``io_grace`` real
   seconds per wait, and ``now`` stands still.
4. Installing changes nothing until every private hook has been looked up (the driver's
   constructor does that and raises `VirtualClockError` naming a missing one). ``install``
   pushes one undo per change onto the given `contextlib.ExitStack`, so a failure halfway,
   or the end of the block, takes every change back in reverse order. On exit the loop clock
   goes on at real speed from the virtual time reached, never backwards.
"""

from __future__ import annotations

import math
import sys
import threading
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
    "DEFAULT_HORIZON",
    "DEFAULT_MAX_JUMPS",
    "GRACE_NOTE_PREFIX",
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
#: Default real seconds after which a wait on something outside no longer holds the clock.
IO_GRACE = 10.0
#: Without ``end=``, virtual time fails once it passes ten virtual years (a livelock guard).
DEFAULT_HORIZON = 10 * 365.25 * 86400
#: ... or after this many jumps, whichever comes first.
DEFAULT_MAX_JUMPS = 1_000_000
#: The first words of the note added to a timeout that fired after a grace ran out.
GRACE_NOTE_PREFIX = "virtual_time(): a grace ran out"
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
    """What every backend shares: the virtual time, the limits, threads, outside waits, failure.

    ``now`` is in the event loop's own clock units (what ``loop.time()`` or
    ``trio.current_time()`` returns); ``start`` is that value on entry.
    """

    backend: ClassVar[str] = "?"

    def __init__(
        self,
        end: float | None,
        io_grace: float,
        max_jumps: float = DEFAULT_MAX_JUMPS,
        grace_hint: str = "virtual_time(io_grace=...)",
    ) -> None:
        self.now = 0.0
        self.start = 0.0
        self.end = end
        self.limit = math.inf
        self.max_jumps = max_jumps
        self.jumps = 0
        self.grace_hint = grace_hint
        #: Counted worker-thread calls in flight (maintained by the backend's wrappers).
        self.busy = 0
        self.workers = Workers()
        self.io = OutsideIO(io_grace)
        self.failure: VirtualClockError | None = None
        self.idle_since: float | None = None
        self.scope: anyio.CancelScope | None = None
        self.ended = False
        #: One line per wait that held the clock for a whole grace before a jump.
        self.grace_notes: list[str] = []
        self.thread = threading.get_ident()
        #: Tasks of the loop that were there before the block (other than the one entering
        #: it): they are outside the block, and a stuck block never fails their waits.
        self.outside: set[object] = set()

    def begin(self, start: float) -> None:
        self.now = self.start = start
        horizon = DEFAULT_HORIZON if self.end is None else self.end
        self.limit = start + horizon

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

    def may_jump(self, deadline: float) -> bool:
        """Whether a jump to `deadline` keeps the limits; fails the block (once) if not.

        Never true past the limit: after the failure, time stays where it is and the block's
        tasks are cancelled again, so cleanup that sleeps past the limit does not run either
        (a shielded wait gets the error where it waits: `still_stuck`).
        """
        if deadline <= self.limit and self.jumps < self.max_jumps:
            self.jumps += 1
            if self.io.expired:
                self._note_expired()
            return True
        if self.failure is None:
            self.exceed(deadline)
        else:
            self.schedule_cancel()
        return False

    def _note_expired(self) -> None:
        for what, held in self.io.expired:
            self.grace_notes.append(
                f"{what} held the clock for {held:.1f} s of real time, then virtual time"
                f" jumped at {self.elapsed():g} virtual seconds"
            )
        self.io.expired.clear()

    def no_timer_grace(self) -> float:
        """Real seconds with no timer before a deadlock: longer while workers are stuck.

        A stuck worker may wait for a thread virtual time cannot see: it gets the I/O grace.
        """
        if self.busy > 0:
            return max(DEADLOCK_GRACE, self.io.grace)
        return DEADLOCK_GRACE

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
                " run, no timer is pending, no worker thread is running and no outside wait is"
                f" in progress (waited {self.no_timer_grace():g} s of real time). Waiting"
                f" tasks:\n{self.waiting_tasks()}\nSomething awaits an event that nothing will"
                " set. Threads not started through anyio.to_thread.run_sync, asyncio.to_thread,"
                " loop.run_in_executor or trio.to_thread.run_sync are not waited for, and a"
                f" wait silent for io_grace={self.io.grace:g} s no longer counts as busy."
            )
        )

    def exceed(self, deadline: float) -> None:
        if self.jumps >= self.max_jumps:
            what = (
                f"virtual_time(): {self.jumps} jumps reached max_jumps={self.max_jumps:g}"
                f" at {self.elapsed():g} virtual seconds"
            )
        elif self.end is None:
            what = (
                f"virtual_time(): the next timer is due at {deadline - self.start:g} virtual"
                f" seconds, past the default limit of ten virtual years ({DEFAULT_HORIZON:g} s)"
            )
        else:
            what = (
                f"virtual_time(end={self.end:g}): the next timer is due at"
                f" {deadline - self.start:g} virtual seconds, past end={self.end:g}"
            )
        self.fail(
            VirtualTimeLimitExceeded(
                f"{what}. Timers keep firing but the awaited work never completes (a"
                " livelock), or the limit is too small for this code: raise it with end="
                " (virtual_clock_end under pytest-bundle) or max_jumps="
                " (virtual_clock_max_jumps). Waiting tasks:\n"
                f"{self.waiting_tasks()}"
            )
        )

    def still_stuck(self) -> bool:
        """After the block failed: whether its remaining waits should now fail (no hang).

        Called when nothing can run and time may not move: either the only timers are past
        the limit, or there is no timer and the block already failed. The block's scope was
        cancelled, so a task still blocked here waits under a shield (cleanup code, a shielded
        ``fail_after``, a bare timer past ``end=``) for something nothing will do. Once this
        state lasts the deadlock grace, the backend fails those waits (`stuck_error`) so the
        block ends (rule 1).
        """
        if self.grace_left() > 0:
            return False
        self.idle_since = None
        return True

    def stuck_error(self) -> VirtualClockError:
        """A fresh error for one wait of a failed block that nothing can end any more."""
        if isinstance(self.failure, VirtualClockDeadlock):
            return VirtualClockDeadlock(
                f"virtual_time(): this wait can never end: the block failed with a deadlock"
                f" at {self.elapsed():g} virtual seconds and this task still waits (shielded"
                " from the block's cancellation) for something nothing will do; the wait fails"
                " instead of hanging."
            )
        return VirtualTimeLimitExceeded(
            f"virtual_time(): this wait can never end: virtual time reached the limit (end="
            f"{self.limit - self.start:g} virtual seconds, max_jumps={self.max_jumps:g}) and"
            " does not move past it, and nothing else can wake this task (it is shielded from"
            " the block's cancellation, e.g. cleanup code, or a timeout or timer due past the"
            " limit); the wait fails instead of hanging. Raise the limit with end="
            " (virtual_clock_end under pytest-bundle) or max_jumps= (virtual_clock_max_jumps),"
            " or do not wait past it in shielded code."
        )

    def grace_left(self) -> float:
        """Real seconds of deadlock grace left (starting the grace period if needed)."""
        now_real = time.perf_counter()
        if self.idle_since is None:
            self.idle_since = now_real
        return self.idle_since + self.no_timer_grace() - now_real

    def advance(self, seconds: float) -> None:
        if self.ended:
            raise VirtualClockError(
                "this VirtualClock's virtual_time() block has ended: it can no longer be"
                " advanced (its time() still reads the virtual time it reached)"
            )
        seconds = check_seconds(seconds, "seconds")
        if math.isinf(seconds):
            raise ValueError("advance(seconds): seconds must be finite")
        target = self.now + seconds
        if target > self.limit:
            raise VirtualTimeLimitExceeded(
                f"advance({seconds:g}) would move virtual time to"
                f" {target - self.start:g} s, past"
                + (f" end={self.end:g}" if self.end is not None else " the default limit")
                + " (raise it with end=, virtual_clock_end under pytest-bundle)"
            )
        self.now = target

    def note_for(self, error: BaseException) -> str | None:
        """The note for an error that ends the block, if it is a timeout after a grace ran out."""
        if not self.grace_notes or not _is_timeout(error):
            return None
        lines = "; ".join(self.grace_notes[-3:])
        return (
            f"{GRACE_NOTE_PREFIX} (io_grace={self.io.grace:g}): {lines}. If this timeout"
            f" fired too early, raise the grace: {self.grace_hint}."
        )


def _is_timeout(error: BaseException, depth: int = 0) -> bool:
    """Whether `error`, its group members or its causes include a timeout of any library."""
    if depth > 8:
        return False
    for cls in type(error).__mro__:
        if "Timeout" in cls.__name__ or cls.__name__ == "TooSlowError":
            return True
    for inner in getattr(error, "exceptions", ()):
        if isinstance(inner, BaseException) and _is_timeout(inner, depth + 1):
            return True
    for linked in (error.__cause__, error.__context__):
        if linked is not None and _is_timeout(linked, depth + 1):
            return True
    return False
