"""The public face of virtual time: `virtual_time()`, `VirtualTime` and `VirtualClock`.

The engine lives elsewhere: the driver contract and shared logic in ``_driver``, one driver
per backend (``_asyncio``, ``_trio``, imported only when that backend runs), outside I/O in
``_io``, worker threads in ``_threads``, wall clocks in ``_wall``. Nothing here is imported
by those modules.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from types import TracebackType

from fake_sleep import _modes

from ._driver import DEFAULT_MAX_JUMPS, IO_GRACE, Driver, check_seconds
from ._errors import VirtualClockError

__all__ = ["VirtualClock", "VirtualTime", "virtual_time"]


class VirtualClock:
    """The handle `virtual_time()` yields: read and move the virtual time.

    Virtual time stands still between jumps: it moves only when every task is idle and
    nothing real (a busy worker thread, a wait on another process, a subprocess or another
    event loop of this process, each for at most ``io_grace``) is pending, straight to the
    nearest timer, or when you call `advance`. Code that busy-waits on the loop clock
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
            VirtualClockError: the block has ended (the clock is inert then).
            ValueError: `seconds` is negative, NaN or infinite.
            TypeError: `seconds` is not a number.
            VirtualTimeLimitExceeded: the move would pass ``end=``.
        """
        self._driver.advance(seconds)

    @property
    def end(self) -> float | None:
        """The ``end=`` limit in virtual seconds since entry, or None (the default limit)."""
        return self._driver.end

    @property
    def grace_notes(self) -> list[str]:
        """One line per wait that held the clock for a whole ``io_grace`` before a jump."""
        return list(self._driver.grace_notes)

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

    def __init__(
        self,
        *,
        end: float | None,
        time_time: bool,
        datetime_now: bool,
        io_grace: float,
        max_jumps: float = DEFAULT_MAX_JUMPS,
    ) -> None:
        self._end = end
        self._max_jumps = max_jumps
        self._time_time = time_time
        self._datetime_now = datetime_now
        self._io_grace = io_grace
        self._driver: Driver | None = None
        self._undo: ExitStack | None = None
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

        from ._wall import follow_wall_clocks, stop_following

        mixed = _modes.refuse("virtual_time")
        if mixed is not None:
            raise VirtualClockError(mixed)
        # Looks up every hook the backend needs and raises, changing nothing, if one is missing.
        driver = _make_driver(self._end, self._io_grace, self._max_jumps)
        with ExitStack() as stack:
            driver.install(stack)  # one undo per change, taken back in reverse on failure
            _modes.enter("virtual_time")
            stack.callback(_modes.leave, "virtual_time")
            wall = follow_wall_clocks(
                driver, time_time=self._time_time, datetime_now=self._datetime_now
            )
            stack.callback(stop_following, wall)
            scope = anyio.CancelScope()
            scope.__enter__()
            self._undo = stack.pop_all()
        driver.scope = scope
        self._driver = driver
        self._clock._bound = driver
        return self._clock

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        driver = self._driver
        assert driver is not None
        assert driver.scope is not None
        assert self._undo is not None
        raised: BaseException | None = None
        try:
            try:
                swallowed = bool(driver.scope.__exit__(exc_type, exc, tb))
            except BaseException as error:  # trio's scope raises what it changed (a group)
                swallowed, raised, exc = False, error, error
        finally:
            driver.scope = None
            driver.ended = True
            self._undo.close()
        if exc is not None and not swallowed:
            note = driver.note_for(exc)
            if note is not None:
                _add_note(exc, note)
        failure = driver.failure
        if failure is not None and (swallowed or exc is not None):
            if exc is not None and not swallowed:
                failure.__cause__ = exc
            raise failure
        if raised is not None:
            raise raised
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


def _add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)``, also on Python 3.10 (where pytest and exceptiongroup show it)."""
    add_note = getattr(error, "add_note", None)
    if add_note is not None:
        add_note(note)
    else:  # pragma: no cover - Python 3.10
        error.__notes__ = [*getattr(error, "__notes__", ()), note]  # type: ignore[attr-defined]


def _make_driver(end: float | None, io_grace: float, max_jumps: float) -> Driver:
    library = _current_library()
    if library is None:
        raise RuntimeError(
            "virtual_time() must be entered inside running async code:"
            " `async with virtual_time() as clock:` in an async test or task"
        )
    if library == "asyncio":
        from ._asyncio import AsyncioDriver

        return AsyncioDriver(end, io_grace, max_jumps=max_jumps)
    if library == "trio":
        from ._trio import make_trio_driver

        return make_trio_driver(end, io_grace, max_jumps=max_jumps)
    raise RuntimeError(
        f"virtual_time() supports asyncio and trio, not {library!r}; run the code under anyio"
        " with the asyncio or trio backend"
    )


def virtual_time(
    *,
    end: float | None = None,
    time_time: bool = False,
    datetime_now: bool = False,
    io_grace: float = IO_GRACE,
    max_jumps: float = DEFAULT_MAX_JUMPS,
) -> VirtualTime:
    """Run the current event loop's clock in virtual time inside ``async with``.

    Enter it inside running async code (an async test), on asyncio or trio:

    ```python
    async with virtual_time() as clock:
        await anyio.sleep(3600)  # returns at once
        assert clock.time() == 3600
    ```

    Every wait on the loop clock completes at once, in deadline order. Time jumps, straight
    to the nearest timer, only when nothing real is pending: no task can run; no worker
    thread started through ``anyio.to_thread.run_sync``, ``asyncio.to_thread``,
    ``loop.run_in_executor`` or ``trio.to_thread.run_sync`` is busy (one stuck waiting on a
    lock, event, queue or future lets time make a jump each real second); and no outside wait
    is in progress: a socket or pipe to another process (socket pairs included: one end may
    be in a child), a subprocess the loop waits for, or another event loop of this process
    that runs or waits on such I/O. Each outside wait holds the clock for at most `io_grace`
    real seconds; a timeout that fires after that carries a note starting with
    `GRACE_NOTE_PREFIX`. While something real is pending, the loop waits for it in real time
    and virtual time stands still. Nothing is patched by name, so early-imported sleeps and
    every timeout are covered. On exit the loop clock goes on at real speed from the virtual
    time it reached, never backwards.

    ``pendulum.now`` (if pendulum is installed) follows the virtual time while the block
    runs: it returns the real time plus the virtual seconds jumped so far.

    Args:
        end: Virtual seconds since entry that time may not pass (a livelock guard; by
            default ten virtual years, ``math.inf`` for none). A jump past it raises
            `VirtualTimeLimitExceeded`; time never moves past it.
        time_time: Also shift ``time.time()`` and ``time.time_ns()``.
        datetime_now: Also shift ``datetime.datetime.now()``, ``utcnow()`` and ``today()``
            (through the ``datetime`` module's attribute, see the docs).
        io_grace: Real seconds one outside wait may keep the clock still (from its start or
            its last traffic); then time jumps, so a server slower than this to answer meets
            its client's timeout. ``0`` ignores outside waits; ``math.inf`` always waits.
        max_jumps: Jumps after which the block fails with `VirtualTimeLimitExceeded` (a
            livelock of short sleeps; ``math.inf`` for none).

    Raises:
        VirtualClockDeadlock: from the ``async with`` when nothing can ever run again.
        VirtualTimeLimitExceeded: from the ``async with`` when time would pass ``end`` or
            ``max_jumps`` is reached.
        VirtualClockError: on entry, changing nothing: already active in this loop, a loop
            that cannot be driven (uvloop, Windows' Proactor loop, an event loop or trio
            whose private hooks differ from the supported versions), or `patch_sleep` active.
        RuntimeError: not inside async code (`VirtualClockError` is a `RuntimeError` too).
        TypeError: an argument of the wrong type (nothing changed).
        ValueError: a negative or NaN number of seconds, ``max_jumps`` below 1 (nothing
            changed).

    A wait that the block's cancellation cannot reach (under ``anyio.CancelScope(shield=
    True)``) and that nothing can end any more once the block failed gets the same kind of
    error where it waits, instead of hanging.
    """
    if end is not None:
        end = check_seconds(end, "end")
    io_grace = check_seconds(io_grace, "io_grace")
    if isinstance(max_jumps, bool) or not (isinstance(max_jumps, int) or max_jumps == math.inf):
        raise TypeError(f"max_jumps must be a whole number or math.inf, got {max_jumps!r}")
    if max_jumps < 1:
        raise ValueError(f"max_jumps must be at least 1, got {max_jumps!r}")
    for name, flag in (("time_time", time_time), ("datetime_now", datetime_now)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    return VirtualTime(
        end=end,
        time_time=time_time,
        datetime_now=datetime_now,
        io_grace=io_grace,
        max_jumps=max_jumps,
    )
