"""The same sync fixture works under pytest-asyncio (skipped where it is not installed)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anyio
import pytest

pytest.importorskip("pytest_asyncio")

from fake_sleep import SleepRecorder, patch_sleep


@pytest.fixture
def mock_sleep() -> Iterator[SleepRecorder]:
    with patch_sleep(targets=["anyio.sleep"], clocks=["pendulum.now"]) as recorder:
        yield recorder


@pytest.mark.asyncio
async def test_sync_fixture_under_pytest_asyncio(mock_sleep: SleepRecorder) -> None:
    ran = asyncio.Event()

    async def other() -> None:
        ran.set()

    task = asyncio.ensure_future(other())
    await anyio.sleep(60)
    assert ran.is_set()  # the fake sleep was a checkpoint on pytest-asyncio's loop
    await task
    mock_sleep.assert_awaited_once_with(60)
    with mock_sleep.assert_sleeps_for(2):
        await anyio.sleep(2)
