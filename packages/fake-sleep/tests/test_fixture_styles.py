"""patch_sleep inside a synchronous fixture serves async tests (how pytest-bundle uses it)."""

from __future__ import annotations

from collections.abc import Iterator
from unittest.mock import call

import anyio
import pendulum
import pytest

from fake_sleep import SleepRecorder, patch_sleep

REAL_SLEEP = anyio.sleep


@pytest.fixture
def mock_sleep() -> Iterator[SleepRecorder]:
    """A sync fixture, as the plugin builds it: the patch spans the whole async test."""
    with patch_sleep(targets=["anyio.sleep"], clocks=["pendulum.now"]) as recorder:
        yield recorder
    assert anyio.sleep is REAL_SLEEP


@pytest.mark.anyio
async def test_sync_fixture_async_test(mock_sleep: SleepRecorder) -> None:
    before = pendulum.now("UTC")
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.sleep, 10)
        await anyio.sleep(20)
    assert (pendulum.now("UTC") - before).total_seconds() >= 30
    mock_sleep.assert_has_awaits([call(10), call(20)], any_order=True)
    assert mock_sleep.await_count == 2
    with mock_sleep.assert_sleeps_for(1):
        await anyio.sleep(1)
