"""virtual_clock: the event loop's own clock runs in virtual time."""

import anyio
import pytest

from fake_sleep import VirtualClock


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_timeouts_fire_in_virtual_time(
    virtual_clock: VirtualClock,
) -> None:
    start = anyio.current_time()
    with anyio.move_on_after(5) as scope:
        await anyio.sleep(10)  # an hour would take no longer
    assert scope.cancelled_caught
    assert anyio.current_time() - start == pytest.approx(5)


@pytest.mark.anyio
async def test_sleepers_wake_in_deadline_order(
    virtual_clock: VirtualClock,
) -> None:
    woke: list[int] = []

    async def sleeper(seconds: int) -> None:
        await anyio.sleep(seconds)
        woke.append(seconds)

    async with anyio.create_task_group() as group:
        group.start_soon(sleeper, 10)
        group.start_soon(sleeper, 1)
    assert woke == [1, 10]
    assert virtual_clock.time() == pytest.approx(10)
