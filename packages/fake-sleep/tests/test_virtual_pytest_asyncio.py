"""virtual_time() under pytest-asyncio, on a loop shared by several tests (skipped without it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import anyio
import pytest

pytest.importorskip("pytest_asyncio")

import pytest_asyncio

from fake_sleep import VirtualClockDeadlock, virtual_time

#: Loop times seen at the end of each test: the next test's loop time must not be smaller.
_SEEN: list[float] = []


@pytest_asyncio.fixture(loop_scope="module")
async def real_time_fixture() -> AsyncIterator[float]:
    """Set-up and teardown run on the same loop, in real time, around the virtual block."""
    loop = asyncio.get_running_loop()
    assert loop.time() >= max(_SEEN, default=float("-inf"))
    await asyncio.sleep(0.01)
    yield loop.time()
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.sleep(0.01), 5)
    assert time.perf_counter() - started < 5
    _SEEN.append(loop.time())


@pytest.mark.asyncio(loop_scope="module")
async def test_virtual_block_inside_a_pytest_asyncio_test(real_time_fixture: float) -> None:
    loop = asyncio.get_running_loop()
    async with virtual_time() as clock:
        await asyncio.sleep(3600)
        await anyio.sleep(60)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 30)
        assert clock.time() == 3690
        inside = loop.time()
    assert inside >= real_time_fixture + 3690
    assert loop.time() >= inside


@pytest.mark.asyncio(loop_scope="module")
async def test_second_test_on_the_same_loop(real_time_fixture: float) -> None:
    loop = asyncio.get_running_loop()
    async with virtual_time() as clock:
        await asyncio.sleep(86400)
        assert clock.time() == 86400
    assert loop.time() >= real_time_fixture + 86400


@pytest.mark.asyncio(loop_scope="module")
async def test_deadlock_on_a_shared_loop(real_time_fixture: float) -> None:
    async def body() -> None:
        async with virtual_time():
            await asyncio.Event().wait()

    with pytest.raises(VirtualClockDeadlock, match=r"test_virtual_pytest_asyncio.py:\d+ in body"):
        await body()
