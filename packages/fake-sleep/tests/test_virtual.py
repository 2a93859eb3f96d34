"""virtual_time(): the event loop's own clock in virtual time, on asyncio and trio."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import socket
import sys
import threading
import time
from asyncio import sleep as early_asyncio_sleep
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio import sleep as early_sleep

from fake_sleep import (
    VirtualClock,
    VirtualClockDeadlock,
    VirtualTimeLimitExceeded,
    virtual_time,
)

pytestmark = pytest.mark.anyio

#: Generous real-time bound: catches a real wait of the virtual delays, never flaky.
REAL_BOUND = 5.0


async def backend_sleep(backend: str, seconds: float) -> None:
    """The backend's own sleep, not anyio's."""
    if backend == "trio":
        import trio

        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


async def test_sleep_completes_at_once_with_exact_virtual_time(anyio_backend_name: str) -> None:
    started = time.perf_counter()
    loop_before = anyio.current_time()
    async with virtual_time() as clock:
        assert isinstance(clock, VirtualClock)
        assert clock.backend == anyio_backend_name
        await anyio.sleep(1000)
        assert clock.time() == 1000
        assert anyio.current_time() == pytest.approx(loop_before + 1000, abs=0.5)
        await anyio.sleep_until(anyio.current_time() + 500)
        assert clock.time() == 1500
        await backend_sleep(anyio_backend_name, 250)
        assert clock.time() == 1750
        await early_sleep(250)
        assert clock.time() == 2000
    assert time.perf_counter() - started < REAL_BOUND


async def test_early_imported_asyncio_sleep(anyio_backend_name: str) -> None:
    if anyio_backend_name != "asyncio":
        pytest.skip("asyncio.sleep needs an asyncio loop")
    async with virtual_time() as clock:
        await early_asyncio_sleep(3600)
        assert clock.time() == 3600


async def test_wakes_in_deadline_order_and_time_jumps_to_each_deadline() -> None:
    woke: list[tuple[int, float]] = []
    async with virtual_time() as clock:

        async def sleeper(seconds: int) -> None:
            await anyio.sleep(seconds)
            woke.append((seconds, clock.time()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper, 10)
            tg.start_soon(sleeper, 1)
        assert woke == [(1, 1.0), (10, 10.0)]
        assert clock.time() == 10


async def test_move_on_after_cancels_at_exactly_its_deadline() -> None:
    async with virtual_time() as clock:
        before = anyio.current_time()
        with anyio.move_on_after(5) as scope:
            await anyio.sleep(10)
        assert scope.cancelled_caught
        assert clock.time() == 5
        assert anyio.current_time() - before == pytest.approx(5)


async def test_fail_after_fires() -> None:
    async with virtual_time() as clock:
        with pytest.raises(TimeoutError):
            with anyio.fail_after(5):
                await anyio.sleep(10)
        assert clock.time() == 5


async def test_event_wait_under_timeouts(anyio_backend_name: str) -> None:
    async with virtual_time() as clock:
        event = anyio.Event()
        with anyio.move_on_after(3):
            await event.wait()
        assert clock.time() == 3
        if anyio_backend_name == "asyncio":
            with pytest.raises(asyncio.TimeoutError):  # TimeoutError's alias since 3.11
                await asyncio.wait_for(asyncio.Event().wait(), 2)
            assert clock.time() == 5
            if sys.version_info >= (3, 11):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(4):
                        await asyncio.Event().wait()
                assert clock.time() == 9
        else:
            import trio

            with pytest.raises(trio.TooSlowError):
                with trio.fail_after(2):
                    await trio.Event().wait()
            assert clock.time() == 5


async def test_timeout_that_is_not_reached_does_not_move_time() -> None:
    async with virtual_time() as clock:
        with anyio.fail_after(100):
            await anyio.sleep(1)
        assert clock.time() == 1


async def test_advance_moves_time_and_fires_due_timers() -> None:
    async with virtual_time(end=100) as clock:
        woke: list[float] = []

        async def sleeper() -> None:
            await anyio.sleep(3)
            woke.append(clock.time())

        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            for _ in range(3):  # let the sleeper reach its sleep (trio shuffles each batch)
                await anyio.lowlevel.checkpoint()
            clock.advance(5)
            assert clock.time() == 5
        assert woke == [5]
        with pytest.raises(ValueError, match=">= 0"):
            clock.advance(-1)
        with pytest.raises(TypeError, match="number"):
            clock.advance("1")  # type: ignore[arg-type]
        with pytest.raises(VirtualTimeLimitExceeded, match="end=100"):
            clock.advance(200)
        assert clock.time() == 5


async def test_worker_thread_busy_blocks_the_jump(anyio_backend_name: str) -> None:
    """A thread doing real work finishes before a pending virtual sleep wakes."""
    done: list[str] = []

    def work(name: str) -> str:
        time.sleep(0.2)
        done.append(name)
        return name

    async def run_in_thread(how: str) -> None:
        if how == "anyio":
            await anyio.to_thread.run_sync(work, how)
        elif how == "asyncio.to_thread":
            await asyncio.to_thread(work, how)
        elif how == "run_in_executor":
            await asyncio.get_running_loop().run_in_executor(None, work, how)
        else:
            import trio

            await trio.to_thread.run_sync(work, how)

    ways = ["anyio"]
    ways += (
        ["asyncio.to_thread", "run_in_executor"] if anyio_backend_name == "asyncio" else ["trio"]
    )
    async with virtual_time() as clock:
        for how in ways:
            seen: list[list[str]] = []

            async def sleeper() -> None:
                await anyio.sleep(1)
                seen.append(list(done))  # noqa: B023 - read at once

            async with anyio.create_task_group() as tg:
                tg.start_soon(sleeper)
                tg.start_soon(run_in_thread, how)
            assert seen == [done], f"the sleep woke before the {how} thread finished"
            assert clock.time() == pytest.approx(ways.index(how) + 1)


async def test_busy_thread_without_timers_is_not_a_deadlock() -> None:
    async with virtual_time() as clock:
        # Longer than the deadlock grace period, with nothing else to wait for.
        await anyio.to_thread.run_sync(time.sleep, 0.7)
        assert clock.time() == 0


async def test_deadlock_raises_naming_the_stuck_task() -> None:
    started = time.perf_counter()
    never = anyio.Event()

    async def stuck_waiter() -> None:
        await never.wait()  # the line the error must name

    async def body() -> None:
        async with virtual_time():
            async with anyio.create_task_group() as tg:
                tg.start_soon(stuck_waiter, name="stuck-waiter")
                await anyio.sleep(1)

    with pytest.raises(VirtualClockDeadlock) as caught:
        await body()
    message = str(caught.value)
    assert "stuck-waiter" in message
    assert f"{__file__}:" in message
    assert "in stuck_waiter" in message
    assert time.perf_counter() - started < REAL_BOUND


async def test_code_after_a_deadlock_error_runs_in_real_time() -> None:
    with pytest.raises(VirtualClockDeadlock):
        async with virtual_time():
            await anyio.Event().wait()
    before = anyio.current_time()
    await anyio.sleep(0.01)
    assert anyio.current_time() >= before + 0.01


async def test_end_turns_a_livelock_into_an_error() -> None:
    ticks: list[float] = []
    clock_seen: list[VirtualClock] = []

    async def ticker() -> None:
        while True:
            await anyio.sleep(1)
            ticks.append(clock_seen[0].time())

    started = time.perf_counter()

    async def body() -> None:
        async with virtual_time(end=30) as clock:
            clock_seen.append(clock)
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                await anyio.Event().wait()

    with pytest.raises(VirtualTimeLimitExceeded, match=r"end=30") as caught:
        await body()
    assert ticks[-1] == 30
    assert "waiting at" in str(caught.value)
    assert time.perf_counter() - started < REAL_BOUND


async def test_sleep_past_end_is_an_error_and_within_end_is_fine() -> None:
    async with virtual_time(end=10) as clock:
        await anyio.sleep(10)
        assert clock.time() == 10
    with pytest.raises(VirtualTimeLimitExceeded):
        async with virtual_time(end=10):
            await anyio.sleep(11)


async def test_pendulum_now_follows_virtual_time_every_way_of_calling_it() -> None:
    pendulum = pytest.importorskip("pendulum")
    from pendulum import now as early_now

    real_before = pendulum.now("UTC")
    async with virtual_time() as clock:
        await anyio.sleep(3600)
        readings = [
            pendulum.now(),
            pendulum.now("UTC"),
            pendulum.now(tz="UTC"),
            pendulum.now("Europe/Paris"),
            pendulum.now(tz=pendulum.timezone("Asia/Tokyo")),
            pendulum.now(datetime.timezone.utc),
            pendulum.DateTime.now(),
            early_now(tz="UTC"),
            await anyio.to_thread.run_sync(pendulum.now, "UTC"),
            await anyio.to_thread.run_sync(lambda: pendulum.now(tz="America/New_York")),
        ]
        for reading in readings:
            assert isinstance(reading, pendulum.DateTime)
            shift = (reading - real_before).total_seconds()
            assert 3600 <= shift < 3600 + REAL_BOUND, reading
        assert pendulum.now("Europe/Paris").timezone_name == "Europe/Paris"
        assert clock.time() == 3600
    after = pendulum.now("UTC")
    assert (after - real_before).total_seconds() < REAL_BOUND  # real again on exit


async def test_pendulum_from_a_plain_thread_never_goes_backwards() -> None:
    pendulum = pytest.importorskip("pendulum")
    readings: list[Any] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            readings.append(pendulum.now("UTC"))
            time.sleep(0.001)

    thread = threading.Thread(target=reader)
    async with virtual_time():
        thread.start()
        try:
            for _ in range(20):
                await anyio.sleep(60)
                await anyio.to_thread.run_sync(time.sleep, 0.005)
        finally:
            stop.set()
            thread.join()
    assert len(readings) > 2
    assert all(a <= b for a, b in itertools.pairwise(readings))
    assert (readings[-1] - readings[0]).total_seconds() >= 60


async def test_time_time_and_datetime_now_follow_only_when_asked() -> None:
    before = time.time()
    async with virtual_time():
        await anyio.sleep(600)
        assert time.time() - before < REAL_BOUND  # not asked: time.time did not move 600 s
        assert abs(datetime.datetime.now().timestamp() - time.time()) < REAL_BOUND
    real_wall = time.time()
    real_monotonic = time.monotonic()
    real_functions = (time.time, time.time_ns, datetime.datetime)
    async with virtual_time(time_time=True, datetime_now=True):
        await anyio.sleep(600)
        assert 600 <= time.time() - real_wall < 600 + REAL_BOUND
        assert 600 <= time.time_ns() / 1e9 - real_wall < 600 + REAL_BOUND
        now = datetime.datetime.now()
        assert isinstance(now, datetime.datetime)
        assert type(now) is type(datetime.datetime(2020, 1, 1))
        assert 600 <= now.timestamp() - real_wall < 600 + REAL_BOUND
        aware = datetime.datetime.now(datetime.timezone.utc)
        assert 600 <= aware.timestamp() - real_wall < 600 + REAL_BOUND
        assert time.monotonic() - real_monotonic < REAL_BOUND  # never patched
    assert abs(time.time() - real_wall) < REAL_BOUND
    assert abs(datetime.datetime.now().timestamp() - real_wall) < REAL_BOUND
    assert (time.time, time.time_ns, datetime.datetime) == real_functions


async def test_loop_time_never_goes_backwards_after_exit() -> None:
    async with virtual_time() as clock:
        await anyio.sleep(1000)
        inside = anyio.current_time()
        assert clock.time() == 1000
    after = anyio.current_time()
    assert after >= inside
    started = time.perf_counter()
    with anyio.fail_after(REAL_BOUND):
        await anyio.sleep(0.05)  # real time again, from the virtual time reached
    assert anyio.current_time() >= after + 0.05
    assert time.perf_counter() - started < REAL_BOUND
    async with virtual_time() as second:
        assert anyio.current_time() >= after
        await anyio.sleep(5)
        assert second.time() == 5
    assert anyio.current_time() >= inside + 5


async def test_block_without_jumps_restores_the_loop_exactly(anyio_backend_name: str) -> None:
    if anyio_backend_name == "asyncio":
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        had = ("time" in loop.__dict__, "select" in selector.__dict__)
        async with virtual_time():
            await anyio.lowlevel.checkpoint()
        assert ("time" in loop.__dict__, "select" in selector.__dict__) == had
        assert "run_in_executor" not in loop.__dict__
    else:
        import trio

        before = trio.lowlevel.current_clock()
        async with virtual_time():
            await anyio.lowlevel.checkpoint()
        assert trio.lowlevel.current_clock() is before


async def test_real_io_gets_through_before_a_jump() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        right.sendall(b"x")
        async with virtual_time() as clock:
            got: list[float] = []

            # anyio >= 4.7 calls it wait_readable; older releases wait_socket_readable.
            wait_readable: Any = getattr(anyio, "wait_readable", None)
            wait_readable = wait_readable or anyio.wait_socket_readable

            async def receiver() -> None:
                await wait_readable(left)
                got.append(clock.time())

            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.sleep, 10)
                tg.start_soon(receiver)
            assert got == [0]
            assert clock.time() == 10


async def test_nested_virtual_time_is_refused() -> None:
    async with virtual_time() as clock:
        with pytest.raises(RuntimeError, match="already active"):
            async with virtual_time():
                pass  # pragma: no cover
        await anyio.sleep(1)
        assert clock.time() == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"end": -1}, ValueError, "end must be a number of seconds >= 0"),
        ({"end": float("nan")}, ValueError, "end must be"),
        ({"end": "10"}, TypeError, "end must be a number"),
        ({"end": True}, TypeError, "end must be a number"),
        ({"time_time": "yes"}, TypeError, "time_time must be True or False"),
        ({"datetime_now": 1}, TypeError, "datetime_now must be True or False"),
    ],
)
def test_bad_arguments_are_refused_before_anything_changes(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        virtual_time(**kwargs)


def test_outside_async_code_is_a_clear_error() -> None:
    manager = virtual_time()
    coro = manager.__aenter__()
    with pytest.raises(RuntimeError, match="inside running async code"):
        coro.send(None)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_works_under_plain_anyio_run(backend: str) -> None:
    async def main() -> float:
        async with virtual_time() as clock:
            with anyio.move_on_after(30):
                await anyio.sleep(60)
            return clock.time()

    assert anyio.run(main, backend=backend) == 30


def test_shared_asyncio_loop_before_and_after() -> None:
    """As under pytest-asyncio: fixtures ran on the loop before, teardown runs after."""
    loop = asyncio.new_event_loop()
    try:

        async def fixture_setup() -> float:
            await asyncio.sleep(0.01)
            return loop.time()

        async def test_body() -> float:
            async with virtual_time() as clock:
                await asyncio.sleep(86400)
                assert clock.time() == 86400
                return loop.time()

        async def teardown() -> float:
            await asyncio.wait_for(asyncio.sleep(0.01), 5)
            return loop.time()

        before = loop.run_until_complete(fixture_setup())
        inside = loop.run_until_complete(test_body())
        after = loop.run_until_complete(teardown())
        assert before + 86400 <= inside <= after
    finally:
        loop.close()


def _mock_clock_backend() -> Any:
    try:
        from trio.testing import MockClock
    except ImportError:  # pragma: no cover - trio is the `trio` extra
        return pytest.param("trio", marks=pytest.mark.skip(reason="trio is not installed"))
    return pytest.param(("trio", {"clock": MockClock(autojump_threshold=0)}), id="trio-mockclock")


@pytest.mark.parametrize("anyio_backend", [_mock_clock_backend()])
async def test_trio_mock_clock_from_anyio_options_is_driven_and_kept() -> None:
    import trio
    from trio.testing import MockClock

    mock = trio.lowlevel.current_clock()
    assert isinstance(mock, MockClock)
    start = mock.current_time()
    async with virtual_time() as clock:
        await trio.sleep(100)
        assert clock.time() == 100
    assert trio.lowlevel.current_clock() is mock
    assert mock.current_time() >= start + 100


def test_trio_mock_clock_run() -> None:
    """A run whose clock is trio's MockClock (autojump on): driven, then handed back."""
    trio = pytest.importorskip("trio")
    from trio.testing import MockClock

    mock = MockClock(autojump_threshold=0)

    async def main() -> tuple[float, float, bool, float]:
        start = trio.current_time()
        async with virtual_time() as clock:
            with trio.move_on_after(7):
                await trio.sleep(100)
            inside = clock.time()
        kept = trio.lowlevel.current_clock() is mock
        await trio.sleep(1)  # MockClock's own autojump works again
        return inside, trio.current_time() - start, kept, mock.autojump_threshold

    inside, total, kept, threshold = trio.run(main, clock=mock)
    assert inside == 7
    assert total >= 8
    assert kept
    assert threshold == 0


async def test_the_clock_is_handed_out_before_entry_and_comes_alive_inside() -> None:
    block = virtual_time()
    clock = block.clock
    with pytest.raises(RuntimeError, match="not running yet"):
        clock.time()
    assert repr(clock) == "<VirtualClock not started>"
    async with block as entered:
        assert entered is clock
        await anyio.sleep(30)
        assert clock.time() == 30
