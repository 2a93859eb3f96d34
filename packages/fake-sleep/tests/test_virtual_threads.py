"""Worker threads in virtual time: busy ones hold the clock, a stuck join on a plain one not."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import anyio
import anyio.from_thread
import pytest

from fake_sleep import virtual_time

pytestmark = pytest.mark.anyio

#: Generous real-time bound: each release takes about STALL_GRACE (1 s) of real time.
REAL_BOUND = 10.0


def _rescue(event: threading.Event) -> threading.Timer:
    """Sets the event after 30 s of real time, so a regression fails instead of hanging."""
    timer = threading.Timer(30, event.set)
    timer.daemon = True
    timer.start()
    return timer


async def _join_in_a_worker(how: str, thread: threading.Thread) -> None:
    if how == "anyio":
        await anyio.to_thread.run_sync(thread.join)
    else:
        await asyncio.get_running_loop().run_in_executor(None, thread.join)


@pytest.mark.parametrize(
    ("anyio_backend", "how"),
    [("asyncio", "anyio"), ("asyncio", "run_in_executor"), ("trio", "anyio")],
)
async def test_joining_a_plain_thread_that_waits_for_the_loop_does_not_hang(how: str) -> None:
    ready = threading.Event()
    rescue = _rescue(ready)
    plain = threading.Thread(target=ready.wait, name="waits-for-the-loop")
    started = time.perf_counter()
    try:
        async with virtual_time() as clock:

            async def set_later() -> None:
                await anyio.sleep(30)  # virtual: needs the clock to move
                ready.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(set_later)
                plain.start()
                await _join_in_a_worker(how, plain)
            assert clock.time() == 30
    finally:
        rescue.cancel()
        ready.set()
    assert time.perf_counter() - started < REAL_BOUND


async def test_a_joined_plain_thread_doing_real_work_still_holds_the_clock() -> None:
    """Only a *waiting* plain thread releases the clock: real work is waited for."""
    plain = threading.Thread(target=time.sleep, args=(1.5,), name="works")
    async with virtual_time() as clock:
        plain.start()
        with anyio.fail_after(1):  # 1.5 s of real work must not let this timer fire
            await anyio.to_thread.run_sync(plain.join)
        assert clock.time() == 0


@pytest.mark.timeout(60)
async def test_a_worker_calling_back_into_the_loop_does_not_hang() -> None:
    """Sync code in a worker that runs a sleeping coroutine on the loop (anyio.from_thread)."""

    def sync_code() -> str:
        anyio.from_thread.run(anyio.sleep, 30)  # virtual: needs the clock to move
        anyio.from_thread.run(anyio.sleep, 30)
        return "done"

    started = time.perf_counter()
    async with virtual_time() as clock:
        assert await anyio.to_thread.run_sync(sync_code) == "done"
        assert clock.time() == 60
    assert time.perf_counter() - started < REAL_BOUND


async def test_a_worker_working_after_its_callback_holds_the_clock_again() -> None:
    """Once the loop answered, the worker's real work is waited for again."""

    def sync_code() -> None:
        anyio.from_thread.run(anyio.sleep, 30)
        time.sleep(1.5)  # real work: the timeout due at 35 s must not fire meanwhile

    async with virtual_time() as clock:
        with anyio.fail_after(35):
            await anyio.to_thread.run_sync(sync_code)
        assert clock.time() == 30


async def test_jumps_beside_another_thread_leave_no_garbage_cycles() -> None:
    """Each jump looks at the other threads' stacks; that look leaves nothing to collect.

    It once left a cycle (its own frame and the dict of frames) per jump: thousands of
    objects per thousand jumps and a garbage collection every hundred or so.
    """
    release = threading.Event()
    other = threading.Thread(target=release.wait, name="idle-beside-the-clock")
    other.start()
    collecting = gc.isenabled()
    try:
        async with virtual_time() as clock:
            await anyio.sleep(1)  # the first jump: the other thread's stack is looked at
            gc.collect()
            gc.disable()
            for _ in range(1000):
                await anyio.sleep(60)
            garbage = gc.collect()
            assert clock.time() == 1 + 60_000
    finally:
        if collecting:
            gc.enable()
        release.set()
        other.join()
    assert garbage < 500, f"{garbage} objects in reference cycles after 1000 jumps"
