"""mock_anyio_sleep: sleeps return at once, are recorded, move pendulum.now."""

import anyio
import pendulum
import pytest

from fake_sleep import SleepRecorder


async def retry_with_backoff(attempts: int) -> int:
    """Application code: waits 1, 2, 4, ... seconds between attempts."""
    delay = 1
    for _ in range(attempts - 1):
        await anyio.sleep(delay)
        delay *= 2
    return attempts


@pytest.mark.anyio
async def test_backoff_sleeps_exactly_as_designed(
    mock_anyio_sleep: SleepRecorder,
) -> None:
    with mock_anyio_sleep.assert_sleeps_for(7):
        assert await retry_with_backoff(4) == 4
    mock_anyio_sleep.assert_sleeps([1, 2, 4])
    mock_anyio_sleep.assert_has_awaits([((1,),), ((2,),), ((4,),)])


@pytest.mark.anyio
async def test_pendulum_now_follows_the_fake_sleeps(
    mock_anyio_sleep: SleepRecorder,
) -> None:
    before = pendulum.now("UTC")
    await anyio.sleep(3600)
    assert pendulum.now(tz="UTC") - before >= pendulum.duration(hours=1)
    assert mock_anyio_sleep.await_count == 1
