"""The engine shared by both backends, the public `VirtualClock` and `virtual_time()`."""

from __future__ import annotations

import math
import time
from numbers import Real
from types import TracebackType
from typing import TYPE_CHECKING

from ._errors import VirtualClockDeadlock, VirtualClockError, VirtualTimeLimitExceeded

if TYPE_CHECKING:
    import anyio

__all__ = ["DEADLOCK_GRACE", "VirtualClock", "VirtualTime", "virtual_time"]

#: Real seconds with nothing runnable, no timer and no busy worker thread before a deadlock.
DEADLOCK_GRACE = 0.5
#: Real seconds to wait for a busy worker thread before looking again (its result wakes the
#: loop anyway; this only bounds a missed wake-up).
THREAD_POLL = 0.1


class Driver:
    """What both backends share: the virtual time, the limit, busy threads and failure.

    ``now`` is in the event loop's own clock units (the value ``loop.time()`` or
    ``trio.current_time()`` returns); ``start`` is that value on entry.
    """

    backend = "?"

    def __init__(self, end: float | None) -> None:
        self.now = 0.0
        self.start = 0.0
        self.end = end
        self.limit = math.inf
        #: Worker threads a task is waiting for (maintained by the backend's wrappers).
        self.busy = 0
        self.failure: VirtualClockError | None = None
        self.idle_since: float | None = None
        self.scope: anyio.CancelScope | None = None

    def begin(self, start: float) -> None:
        self.now = self.start = start
        self.limit = math.inf if self.end is None else start + self.end

    # -- backend hooks ---------------------------------------------------------------------
    def install(self) -> None:
        raise NotImplementedError

    def uninstall(self) -> None:
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
                f" run, no timer is pending and no tracked worker thread is busy (waited"
                f" {DEADLOCK_GRACE:g} s of real time). Waiting tasks:\n{self.waiting_tasks()}\n"
                "Something awaits an event that nothing will set. Note that outside I/O and"
                " threads not started through anyio.to_thread.run_sync, asyncio.to_thread,"
                " loop.run_in_executor or trio.to_thread.run_sync are not waited for."
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
        seconds = _check_seconds(seconds, "seconds")
        if math.isinf(seconds):
            raise ValueError("advance(seconds): seconds must be finite")
        target = self.now + seconds
        if target > self.limit:
            raise VirtualTimeLimitExceeded(
                f"advance({seconds:g}) would move virtual time to"
                f" {target - self.start:g} s, past end={self.end:g}"
            )
        self.now = target


def _check_seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    result = float(value)
    if math.isnan(result) or result < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return result


class VirtualClock:
    """The handle `virtual_time()` yields: read and move the virtual time.

    Virtual time stands still between jumps: it moves only when every task is idle (straight
    to the nearest timer) or when you call `advance`. Code that busy-waits on the loop clock
    therefore never sees it advance.
    """

    __slots__ = ("_bound",)

    def __init__(self, driver: Driver | None = None) -> None:
        self._bound = driver

    @property
    def _driver(self) -> Driver:
        if self._bound is None:
            raise RuntimeError(
                "this VirtualClock is not running yet: it comes alive when its virtual_time()"
                " block is entered (`async with`)"
            )
        return self._bound

    def time(self) -> float:
        """Virtual seconds since `virtual_time()` was entered (to the nanosecond)."""
        return self._driver.elapsed()

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by `seconds` at once.

        Timers that fall due fire at the next checkpoint (e.g. ``await anyio.sleep(0)``).

        Raises:
            ValueError: `seconds` is negative, NaN or infinite.
            TypeError: `seconds` is not a number.
            VirtualTimeLimitExceeded: the move would pass ``end=``.
        """
        self._driver.advance(seconds)

    @property
    def end(self) -> float | None:
        """The ``end=`` limit in virtual seconds since entry, or None."""
        return self._driver.end

    @property
    def backend(self) -> str:
        """``"asyncio"`` or ``"trio"``."""
        return self._driver.backend

    def __repr__(self) -> str:
        if self._bound is None:
            return "<VirtualClock not started>"
        return f"<VirtualClock {self.backend} time={self.time():g}>"


class VirtualTime:
    """The async context manager `virtual_time()` returns; see there."""

    def __init__(self, *, end: float | None, time_time: bool, datetime_now: bool) -> None:
        self._end = end
        self._time_time = time_time
        self._datetime_now = datetime_now
        self._driver: Driver | None = None
        self._scope: anyio.CancelScope | None = None
        self._wall: object | None = None
        self._clock = VirtualClock()

    @property
    def clock(self) -> VirtualClock:
        """The clock this block yields, available before it is entered (e.g. to a fixture).

        Reading or moving it raises `RuntimeError` until the block is entered.
        """
        return self._clock

    async def __aenter__(self) -> VirtualClock:
        if self._driver is not None:
            raise RuntimeError("this virtual_time() object is already in use; create a new one")
        import anyio

        from ._wall import follow_wall_clocks

        driver = _make_driver(self._end)
        driver.install()  # raises (changing nothing) if the loop cannot be driven
        try:
            scope = anyio.CancelScope()
            scope.__enter__()
        except BaseException:
            driver.uninstall()
            raise
        driver.scope = scope
        self._driver = driver
        self._wall = follow_wall_clocks(
            driver, time_time=self._time_time, datetime_now=self._datetime_now
        )
        self._clock._bound = driver
        return self._clock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        from ._wall import stop_following

        driver = self._driver
        assert driver is not None
        assert driver.scope is not None
        try:
            swallowed = bool(driver.scope.__exit__(exc_type, exc, tb))
        finally:
            try:
                driver.uninstall()
            finally:
                stop_following(self._wall)
                driver.scope = None
        failure = driver.failure
        if failure is not None and (swallowed or exc is not None):
            if exc is not None and not swallowed:
                failure.__cause__ = exc
            raise failure
        return swallowed


def _current_library() -> str | None:
    """The async library running this task (sniffio when installed, as anyio does)."""
    try:
        import sniffio
    except ImportError:  # pragma: no cover - trio depends on sniffio; plain asyncio may not
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None
        return "asyncio"
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return None


def _make_driver(end: float | None) -> Driver:
    library = _current_library()
    if library is None:
        raise RuntimeError(
            "virtual_time() must be entered inside running async code:"
            " `async with virtual_time() as clock:` in an async test or task"
        )
    if library == "asyncio":
        from ._asyncio import AsyncioDriver

        return AsyncioDriver(end)
    if library == "trio":
        from ._trio import make_trio_driver

        return make_trio_driver(end)
    raise RuntimeError(
        f"virtual_time() supports asyncio and trio, not {library!r}; run the code under anyio"
        " with the asyncio or trio backend"
    )


def virtual_time(
    *, end: float | None = None, time_time: bool = False, datetime_now: bool = False
) -> VirtualTime:
    """Run the current event loop's clock in virtual time inside ``async with``.

    Enter it inside running async code (an async test), on asyncio or trio::

        async with virtual_time() as clock:
            await anyio.sleep(3600)  # returns at once
            assert clock.time() == 3600

    Every wait on the loop clock completes at once, in deadline order: time jumps, straight
    to the nearest timer, only when no task can run and no worker thread started through
    ``anyio.to_thread.run_sync``, ``asyncio.to_thread``, ``loop.run_in_executor`` or
    ``trio.to_thread.run_sync`` is busy. Nothing is patched by name, so early-imported
    sleeps and every timeout are covered. On exit the loop clock goes on at real speed from
    the virtual time it reached, never backwards.

    ``pendulum.now`` (if pendulum is installed) follows the virtual time while the block
    runs: it returns the real time plus the virtual seconds jumped so far.

    Args:
        end: Virtual seconds since entry that time may not pass. A jump past it raises
            `VirtualTimeLimitExceeded` from the ``async with`` (a livelock guard).
        time_time: Also shift ``time.time()`` and ``time.time_ns()``.
        datetime_now: Also shift ``datetime.datetime.now()``, ``utcnow()`` and ``today()``
            (through the ``datetime`` module's attribute, see the docs).

    Raises:
        VirtualClockDeadlock: from the ``async with`` when nothing can ever run again.
        VirtualTimeLimitExceeded: from the ``async with`` when time would pass ``end``.
        RuntimeError: not inside async code, already active in this loop, or a loop that
            cannot be driven (uvloop, Windows' Proactor loop).
    """
    if end is not None:
        end = _check_seconds(end, "end")
        if math.isinf(end):
            end = None
    for name, flag in (("time_time", time_time), ("datetime_now", datetime_now)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    return VirtualTime(end=end, time_time=time_time, datetime_now=datetime_now)
