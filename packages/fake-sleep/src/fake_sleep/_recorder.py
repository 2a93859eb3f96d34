"""The mock-mode fake: a compact recorder that answers the AsyncMock assertion API."""

from __future__ import annotations

import asyncio
import math
import numbers
import sys
import time
import types
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, Final
from unittest.mock import AsyncMock

import anyio

__all__ = ["SleepRecorder"]

# Real time for `assert_sleeps_for`'s tolerance, captured before anyone can patch `time`.
_perf_counter: Final = time.perf_counter


def sleep(delay: float) -> float:
    """Bind arguments exactly like `anyio.sleep(delay)` does, with the same TypeErrors."""
    return delay


# Named `sleep` above so that binding errors read "sleep() missing 1 required ...".
_bind_delay: Final = sleep
del sleep


# Marks "no positional argument" so that `sleep(delay=1)` can be told from `sleep(1)`.
_NO_DELAY: Final[Any] = object()


# -- the checkpoint and the judge, through no name a patch can replace ------------------------
#
# The recorder may replace `anyio.sleep`, `asyncio.sleep`, `trio.sleep` or a user's function,
# and `anyio.sleep` calls the backend's sleep by name: a recorder that checkpointed with
# `anyio.sleep(0)` would call itself under a `trio.sleep` patch. So it checkpoints with the
# backends' own primitives, and hands odd arguments to real functions captured before patching.


@types.coroutine
def _asyncio_checkpoint() -> Generator[None, None, None]:
    """One turn of the asyncio loop: exactly what `asyncio.sleep(0)` does, without its name."""
    yield


# trio's `lowlevel.checkpoint` and `lowlevel.in_trio_task`, read once trio is imported.
_trio: tuple[Callable[[], Awaitable[None]], Callable[[], bool]] | None = None


def _trio_hooks() -> tuple[Callable[[], Awaitable[None]], Callable[[], bool]] | None:
    """trio's checkpoint and "am I in a trio task?", or None while trio is not imported."""
    global _trio
    if _trio is None:
        lowlevel = getattr(sys.modules.get("trio"), "lowlevel", None)
        if lowlevel is not None:
            in_trio_task = getattr(lowlevel, "in_trio_task", None)  # trio 0.27 and later
            if in_trio_task is None:
                current_task = lowlevel.current_task

                def in_trio_task() -> bool:
                    try:
                        current_task()
                    except RuntimeError:  # "must be called from async context"
                        return False
                    return True

            _trio = (lowlevel.checkpoint, in_trio_task)
    return _trio


def _checkpoint() -> Awaitable[None]:
    """A checkpoint on the running backend (trio's, or asyncio's) that no patch can reach."""
    trio = _trio or _trio_hooks()
    if trio is not None and trio[1]():
        return trio[0]()
    return _asyncio_checkpoint()


def _unwrapped(value: Any, attribute: str) -> Any:
    """`value`, or what the recorder(s) it is had captured under `attribute` before patching."""
    while isinstance(value, SleepRecorder):
        value = getattr(value, attribute)
    return value


# True while a recorder lets the real `anyio.sleep` judge odd arguments: if that hands them on
# to a backend sleep the recorder replaced, the recorder is entered again and asks the real one.
_judging: ContextVar[bool] = ContextVar("fake_sleep_judging", default=False)


class SleepRecorder:
    """An instant, recording stand-in for `anyio.sleep`.

    Awaiting it validates the delay like the installed `anyio.sleep`, records it, adds it to
    the virtual shift that patched clocks follow, and awaits one checkpoint of the running
    backend (what `anyio.sleep(0)` awaits, reached through no patchable name, so it can stand
    in for `trio.sleep` or `asyncio.sleep` too): it returns at once but stays a checkpoint
    (other tasks run, cancellation is delivered).

    A recorder that `patch_sleep` yielded refuses to be awaited once its block has ended
    (`RuntimeError`, naming what it replaced); its recorded calls and assertions keep working.
    Thread-safety: awaiting it from tasks of several threads at once may lose a delay; the
    assertions are read-only and safe.

    It answers the `unittest.mock.AsyncMock` assertion and inspection API with the results
    and messages an `AsyncMock` gives for the same awaits. Only delays are stored (plus the
    arguments of calls that were not a single positional delay); call objects are built on
    the first inspection, from the compact record.

    A call is recorded when it is awaited (for an `AsyncMock`, `call_count` also counts calls
    that were never awaited).
    """

    __slots__ = (
        "_asyncio_sleep",
        "_delays",
        "_ended",
        "_judge",
        "_mock",
        "_odd",
        "_replayed",
        "_shift",
        "_trio_sleep",
    )

    def __init__(self) -> None:
        # The real functions, captured before any patch this recorder is part of: anyio's
        # sleep judges odd arguments; the backends' sleeps answer when anyio hands them on.
        self._judge: Callable[..., Awaitable[None]] = _unwrapped(anyio.sleep, "_judge")
        self._asyncio_sleep: Callable[..., Awaitable[Any]] = _unwrapped(
            asyncio.sleep, "_asyncio_sleep"
        )
        trio = sys.modules.get("trio")
        self._trio_sleep: Callable[..., Awaitable[None]] | None = (
            None if trio is None else _unwrapped(trio.sleep, "_trio_sleep")
        )
        # Why awaiting must fail, once the patch that installed this recorder has ended.
        self._ended: str | None = None
        self._delays: list[Any] = []
        # Calls that were not `sleep(delay)`: index -> (args, kwargs). Usually empty.
        self._odd: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        # The virtual shift patched clocks add; only ever grows (reset_mock keeps it).
        self._shift: float = 0.0
        self._mock: AsyncMock | None = None
        self._replayed = 0

    async def __call__(self, delay: Any = _NO_DELAY, /, *args: Any, **kwargs: Any) -> None:
        """Sleep for no real time: record the delay, then let other tasks run once."""
        if self._ended is not None:
            raise RuntimeError(self._ended)
        if args or kwargs or delay is _NO_DELAY:
            await self._odd_call((() if delay is _NO_DELAY else (delay, *args)), kwargs)
            return
        try:
            # `float + delay` fails where the loops' own clock arithmetic fails (Decimal, 10**400).
            shift = self._shift + delay if delay >= 0 else None
        except (TypeError, OverflowError):
            shift = None
        if shift is None:
            await self._ask_real((delay,), kwargs)
            return
        self._shift = shift
        self._delays.append(delay)
        await _checkpoint()

    async def _odd_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A call that is not `sleep(delay)`: the same, keeping its arguments for inspection."""
        try:
            delay = _bind_delay(*args, **kwargs)
            shift = self._shift + delay if delay >= 0 else None
        except (TypeError, OverflowError):
            shift = None
        if shift is None:
            await self._ask_real(args, kwargs)
            return
        self._shift = shift
        self._odd[len(self._delays)] = (args, kwargs)
        self._delays.append(delay)
        await _checkpoint()

    async def _ask_real(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Let the real `anyio.sleep` judge arguments that are not a plain duration.

        In an already cancelled scope it either raises its own error at once (the same type
        and message a caller of the real function gets, whatever anyio and backend are
        installed) or accepts and is cancelled at its first checkpoint: it never blocks.
        """
        if _judging.get():
            # Entered again: the real anyio.sleep handed the call on to the backend's sleep,
            # which this recorder replaces. Let the real one judge, in the cancelled scope.
            await self._backend_sleep()(*args, **kwargs)
            return
        token = _judging.set(True)
        try:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await self._judge(*args, **kwargs)
        finally:
            _judging.reset(token)
        # Accepted (before anyio 4.16, asyncio sleeps 0 for a negative delay and forever for
        # NaN): recorded as asked; the clocks do not move, they never go backwards.
        delay = _bind_delay(*args, **kwargs)
        if len(args) != 1 or kwargs:
            self._odd[len(self._delays)] = (args, kwargs)
        self._delays.append(delay)
        await _checkpoint()

    def _backend_sleep(self) -> Callable[..., Awaitable[Any]]:
        """The running backend's real sleep (trio's or asyncio's)."""
        trio = _trio_hooks()
        if trio is not None and trio[1]():
            real = self._trio_sleep
            if real is None:  # trio was imported after this recorder was made
                real = _unwrapped(sys.modules["trio"].sleep, "_trio_sleep")
            return real
        return self._asyncio_sleep

    def _end(self, replaced: Sequence[str]) -> None:
        """Refuse awaits from now on: the patch that installed this recorder has ended."""
        names = ", ".join(repr(path) for path in replaced)
        self._ended = (
            f"this SleepRecorder (faking {names}) was awaited after its patch_sleep() block"
            " ended: something kept a reference to the fake past the block, such as a module"
            " imported inside the block that did `from ... import sleep`. Import such modules"
            " before the block, or name their own paths in targets= (for example"
            " 'mypkg.worker.sleep'). The recorded sleeps and assertions still work."
        )

    def __repr__(self) -> str:
        return f"<SleepRecorder: {len(self._delays)} sleeps, {self.total} s>"

    # -- what was slept ---------------------------------------------------------------------

    @property
    def delays(self) -> list[Any]:
        """Every recorded delay, in await order (a copy)."""
        return list(self._delays)

    @property
    def total(self) -> float:
        """Virtual seconds slept since creation or the last `reset_mock()`."""
        return math.fsum(self._delays)

    @property
    def shift(self) -> float:
        """Seconds patched clocks are moved forward by; never goes back, even on reset."""
        return self._shift

    def assert_sleeps(self, expected: Iterable[float]) -> None:
        """Assert the full list of recorded delays equals `expected`, in order."""
        __tracebackhide__ = True
        wanted = list(expected)
        if self._delays != wanted:
            raise AssertionError(f"Expected sleeps {wanted}; got {self._delays}")

    def assert_sleeps_for(
        self, seconds: float, extra_tolerance: float = 0
    ) -> AbstractContextManager[None]:
        """Assert the fake sleeps inside the block total `seconds`.

        The block's real runtime is the upper tolerance (rounded up to a whole second,
        `int(runtime) + 1`, when `seconds` is an int), so the rule is
        `slept - extra <= seconds <= slept + runtime + extra`. A failure reads
        `Sleep was called for {slept}; expected {seconds} with tolerance of
        +{runtime + extra}, -{extra}`.

        Raises:
            TypeError: `seconds` or `extra_tolerance` is not a number.
            ValueError: `seconds` or `extra_tolerance` is negative or NaN.
        """
        _check_seconds("seconds", seconds)
        _check_seconds("extra_tolerance", extra_tolerance)
        return self._sleeps_for(seconds, extra_tolerance)

    @contextmanager
    def _sleeps_for(self, seconds: float, extra: float) -> Iterator[None]:
        run_t0 = _perf_counter()
        shift_t0 = self._shift
        yield
        runtime: float = _perf_counter() - run_t0
        slept = self._shift - shift_t0
        if isinstance(seconds, int):
            runtime = int(runtime) + 1
        if not (slept - float(extra) <= seconds <= slept + runtime + extra):
            raise AssertionError(
                f"Sleep was called for {_rounded(slept)}; expected {_rounded(seconds)} with"
                f" tolerance of +{_rounded(runtime + extra)}, -{_rounded(extra)}"
            )

    # -- the AsyncMock view -----------------------------------------------------------------

    def _view(self) -> AsyncMock:
        """An AsyncMock that has seen exactly the recorded awaits (built on demand)."""
        mock = self._mock
        if mock is None:
            mock = self._mock = AsyncMock()
        delays, odd = self._delays, self._odd
        for index in range(self._replayed, len(delays)):
            args, kwargs = odd[index] if index in odd else ((delays[index],), {})
            coro = mock(*args, **kwargs)
            try:
                coro.send(None)
            except StopIteration:
                pass
            else:  # pragma: no cover - an AsyncMock without side effect never suspends
                coro.close()
        self._replayed = len(delays)
        return mock

    @property
    def called(self) -> bool:
        """Whether the fake was awaited at least once."""
        return bool(self._delays)

    @property
    def call_count(self) -> int:
        """How many times the fake was awaited."""
        return len(self._delays)

    @property
    def await_count(self) -> int:
        """How many times the fake was awaited."""
        return len(self._delays)

    @property
    def call_args(self) -> Any:
        """The last call, as `unittest.mock.call(...)`, or None."""
        return self._view().call_args

    @property
    def await_args(self) -> Any:
        """The last await, as `unittest.mock.call(...)`, or None."""
        return self._view().await_args

    @property
    def call_args_list(self) -> Any:
        """Every call, as `unittest.mock.call(...)` objects."""
        return self._view().call_args_list

    @property
    def await_args_list(self) -> Any:
        """Every await, as `unittest.mock.call(...)` objects."""
        return self._view().await_args_list

    @property
    def mock_calls(self) -> Any:
        """Every call, as `unittest.mock.call(...)` objects."""
        return self._view().mock_calls

    @property
    def method_calls(self) -> Any:
        """Always empty: the fake has no child mocks (as for an AsyncMock awaited directly)."""
        return self._view().method_calls

    def reset_mock(self, *, return_value: bool = False, side_effect: bool = False) -> None:
        """Forget every recorded sleep. Patched clocks keep their shift: they never go back.

        `return_value` and `side_effect` are accepted for AsyncMock compatibility; the fake
        has neither.
        """
        del return_value, side_effect
        self._delays = []
        self._odd = {}
        self._mock = None
        self._replayed = 0

    def assert_called(self) -> None:
        """As `AsyncMock.assert_called`."""
        __tracebackhide__ = True
        self._view().assert_called()

    def assert_called_once(self) -> None:
        """As `AsyncMock.assert_called_once`."""
        __tracebackhide__ = True
        self._view().assert_called_once()

    def assert_called_with(self, *args: Any, **kwargs: Any) -> None:
        """As `AsyncMock.assert_called_with`."""
        __tracebackhide__ = True
        self._view().assert_called_with(*args, **kwargs)

    def assert_called_once_with(self, *args: Any, **kwargs: Any) -> None:
        """As `AsyncMock.assert_called_once_with`."""
        __tracebackhide__ = True
        self._view().assert_called_once_with(*args, **kwargs)

    def assert_any_call(self, *args: Any, **kwargs: Any) -> None:
        """As `AsyncMock.assert_any_call`."""
        __tracebackhide__ = True
        self._view().assert_any_call(*args, **kwargs)

    def assert_has_calls(self, calls: Sequence[Any], any_order: bool = False) -> None:
        """As `AsyncMock.assert_has_calls`."""
        __tracebackhide__ = True
        self._view().assert_has_calls(calls, any_order=any_order)

    def assert_not_called(self) -> None:
        """As `AsyncMock.assert_not_called`."""
        __tracebackhide__ = True
        self._view().assert_not_called()

    def assert_awaited(self) -> None:
        """As `AsyncMock.assert_awaited`."""
        __tracebackhide__ = True
        self._view().assert_awaited()

    def assert_awaited_once(self) -> None:
        """As `AsyncMock.assert_awaited_once`."""
        __tracebackhide__ = True
        self._view().assert_awaited_once()

    def assert_awaited_with(self, *args: Any, **kwargs: Any) -> None:
        """As `AsyncMock.assert_awaited_with`."""
        __tracebackhide__ = True
        self._view().assert_awaited_with(*args, **kwargs)

    def assert_awaited_once_with(self, *args: Any, **kwargs: Any) -> None:
        """As `AsyncMock.assert_awaited_once_with`."""
        __tracebackhide__ = True
        self._view().assert_awaited_once_with(*args, **kwargs)

    def assert_any_await(self, *args: Any, **kwargs: Any) -> None:
        """As `AsyncMock.assert_any_await`."""
        __tracebackhide__ = True
        self._view().assert_any_await(*args, **kwargs)

    def assert_has_awaits(self, calls: Sequence[Any], any_order: bool = False) -> None:
        """As `AsyncMock.assert_has_awaits`."""
        __tracebackhide__ = True
        self._view().assert_has_awaits(calls, any_order=any_order)

    def assert_not_awaited(self) -> None:
        """As `AsyncMock.assert_not_awaited`."""
        __tracebackhide__ = True
        self._view().assert_not_awaited()


def _rounded(value: object) -> str:
    """A float to 6 significant digits (3.8999999999999995 reads 3.9, 3.0 stays 3.0)."""
    if isinstance(value, float):
        return repr(float(f"{value:.6g}"))
    return str(value)


def _check_seconds(name: str, value: object) -> None:
    """Reject what `assert_sleeps_for` cannot compare, before the block runs."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"assert_sleeps_for() {name} must be a number of seconds (int or float),"
            f" got {type(value).__name__}: {value!r}"
        )
    if math.isnan(value) or value < 0:
        raise ValueError(
            f"assert_sleeps_for() {name} must be a non-negative number of seconds, got {value!r}"
        )
