"""@pytest.mark.virtual_clock: a whole module in virtual time, no fixture argument needed."""

import time

import anyio
import pytest

from fake_sleep import VirtualClock

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_clock(end=30 * 86_400)]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_week_of_hourly_polls_takes_no_real_time() -> None:
    polls = 0
    started = time.monotonic()
    with anyio.move_on_after(7 * 86_400 + 1800):
        while True:
            await anyio.sleep(3600)
            polls += 1
    assert polls == 7 * 24
    assert time.monotonic() - started < 60


@pytest.mark.virtual_clock(end=60)  # closest wins: this test may not pass a virtual minute
async def test_the_clock_is_still_there_to_read(virtual_clock: VirtualClock) -> None:
    await anyio.sleep(30)
    assert virtual_clock.time() == pytest.approx(30)


def test_sync_tests_run_as_usual() -> None:
    assert time.monotonic() > 0
