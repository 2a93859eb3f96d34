"""SleepRecorder: instant but a checkpoint, delays like the real anyio.sleep, sleep assertions."""

from __future__ import annotations

import math
import time
from decimal import Decimal
from fractions import Fraction
from typing import Any
from unittest.mock import call

import anyio
import pendulum
import pytest

from fake_sleep import SleepRecorder, patch_sleep

REAL_SLEEP = anyio.sleep


@pytest.mark.anyio
async def test_returns_at_once_but_other_tasks_run_during_the_sleep() -> None:
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    with patch_sleep() as sleep:
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            # Each fake sleep is a checkpoint (trio may need a few before it picks `other`);
            # a fake that never yields would loop all 100 times without `other` running.
            for _ in range(100):
                await anyio.sleep(3600)
                if ran:
                    break
        assert ran == ["other"]
        assert time.perf_counter() - start < 30
    assert sleep.delays == [3600] * len(sleep.delays)
    assert len(sleep.delays) < 100


@pytest.mark.anyio
async def test_busy_loop_of_fake_sleeps_lets_a_sibling_finish() -> None:
    done = anyio.Event()

    async def sibling() -> None:
        for _ in range(3):
            await REAL_SLEEP(0)
        done.set()

    with patch_sleep() as sleep:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sibling)
            while not done.is_set():
                await anyio.sleep(1)
    assert sleep.await_count >= 1


@pytest.mark.anyio
async def test_cancellation_is_delivered_at_the_fake_sleep() -> None:
    reached_after = False
    with patch_sleep() as sleep:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await anyio.sleep(10)
            reached_after = True  # pragma: no cover - the sleep raises
    assert scope.cancelled_caught
    assert not reached_after
    # Like the documented fake, the delay was recorded before the checkpoint.
    assert sleep.delays == [10]


@pytest.mark.anyio
async def test_cancelling_a_task_blocked_in_fake_sleeps() -> None:
    count = 0

    async def poller() -> None:
        nonlocal count
        while True:
            count += 1
            await anyio.sleep(5)

    with patch_sleep() as sleep:
        async with anyio.create_task_group() as tg:
            tg.start_soon(poller)
            while count < 3:
                await REAL_SLEEP(0)
            tg.cancel_scope.cancel()
    assert sleep.call_count >= 3
    assert set(sleep.delays) == {5}


async def _outcome(sleep: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    """What a call does: raise (type, message), or sleep ("accepted").

    A real sleep still sleeping after a moment counts as accepted (before anyio 4.16 the
    asyncio backend sleeps forever on NaN).
    """
    with anyio.move_on_after(0.2):
        try:
            await sleep(*args, **kwargs)
        except (TypeError, ValueError, OverflowError) as exc:
            return type(exc).__name__, str(exc)
    return "accepted", ""


EDGE_CASES: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((-1,), {}),
    ((-0.001,), {}),
    ((-math.inf,), {}),
    ((math.nan,), {}),
    (("1",), {}),
    ((None,), {}),
    ((1j,), {}),
    ((Decimal("0.5"),), {}),
    ((10**400,), {}),
    ((), {}),
    ((1, 2), {}),
    ((), {"seconds": 1}),
    ((), {"delay": -5}),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("args", "kwargs"), EDGE_CASES, ids=repr)
async def test_rejects_exactly_what_the_real_anyio_sleep_rejects(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    # The installed anyio is the reference (4.16 rejects negative and NaN delays itself).
    expected = await _outcome(REAL_SLEEP, *args, **kwargs)
    with patch_sleep() as sleep:
        assert await _outcome(anyio.sleep, *args, **kwargs) == expected
        if expected[0] != "accepted":
            # A rejected call is not recorded.
            assert sleep.delays == []
        # None of these moves the clocks: they never go backwards.
        assert sleep.shift == 0


@pytest.mark.anyio
async def test_what_an_older_anyio_accepts_is_recorded_without_moving_clocks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def lenient_sleep(delay: float) -> None:
        """anyio < 4.16 on asyncio: a negative delay sleeps 0, NaN forever."""
        await REAL_SLEEP(math.inf if math.isnan(delay) else max(delay, 0))

    monkeypatch.setattr(anyio, "sleep", lenient_sleep)
    recorder = SleepRecorder()  # takes the "real" sleep from anyio, as patch_sleep does
    monkeypatch.undo()
    with anyio.fail_after(10):
        await recorder(-1)
        await recorder(math.nan)
        await recorder(delay=-2)
        await recorder(3)
    assert recorder.delays[0] == -1
    assert math.isnan(recorder.delays[1])
    assert recorder.delays[2:] == [-2, 3]
    assert recorder.shift == 3
    assert recorder.call_args_list[2] == call(delay=-2)


def test_installed_anyio_rejects_negative_and_nan_like_the_fake() -> None:
    async def both(delay: float) -> list[tuple[str, str]]:
        with patch_sleep() as sleep:
            return [await _outcome(REAL_SLEEP, delay), await _outcome(sleep, delay)]

    for delay in (-1.0, math.nan):
        real, fake = anyio.run(both, delay)
        assert fake == real
        if real[0] == "ValueError":  # anyio >= 4.16 (the version the issue names)
            assert real[1] == "delay must be a non-negative number"


@pytest.mark.anyio
async def test_accepts_what_the_real_anyio_sleep_accepts() -> None:
    with patch_sleep(clocks=["time.time"]) as sleep:
        t0 = time.time()
        await anyio.sleep(0)  # noqa: ASYNC115 - the fake itself is under test
        assert sleep.shift == 0  # zero sleeps zero
        await anyio.sleep(True)
        assert sleep.shift == 1
        assert time.time() - t0 >= 1  # the shifted clock moved by the True (one second)
        await anyio.sleep(Fraction(1, 4))  # type: ignore[arg-type]
        await anyio.sleep(delay=2)
        await anyio.sleep(0.25)
    assert sleep.delays == [0, True, Fraction(1, 4), 2, 0.25]
    assert sleep.total == 3.5
    assert sleep.shift == 3.5
    sleep.assert_sleeps([0, 1, 0.25, 2, 0.25])


@pytest.mark.anyio
async def test_total_delays_and_assert_sleeps() -> None:
    with patch_sleep() as sleep:
        for delay in (1, 2, 4):
            await anyio.sleep(delay)
    assert sleep.total == 7
    assert sleep.delays == [1, 2, 4]
    sleep.delays.append(99)  # a copy: the record is untouched
    sleep.assert_sleeps([1, 2, 4])
    sleep.assert_sleeps(x for x in (1, 2, 4))
    with pytest.raises(AssertionError, match=r"^Expected sleeps \[1, 2\]; got \[1, 2, 4\]$"):
        sleep.assert_sleeps([1, 2])
    with pytest.raises(AssertionError, match=r"Expected sleeps \[4, 2, 1\]"):
        sleep.assert_sleeps([4, 2, 1])
    assert "3 sleeps" in repr(sleep)


@pytest.mark.anyio
async def test_reset_forgets_sleeps_but_clocks_never_go_back() -> None:
    with patch_sleep() as sleep:
        await anyio.sleep(100)
        shifted = pendulum.now("UTC")
        sleep.reset_mock()
        assert sleep.delays == []
        assert sleep.total == 0
        assert not sleep.called
        sleep.assert_not_awaited()
        assert sleep.shift == 100
        assert pendulum.now("UTC") >= shifted
        await anyio.sleep(1)
        sleep.assert_awaited_once_with(1)
        assert sleep.shift == 101


# -- assert_sleeps_for ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_assert_sleeps_for_passes_within_the_documented_tolerance() -> None:
    with patch_sleep() as sleep:
        with sleep.assert_sleeps_for(5):
            await anyio.sleep(2)
            await anyio.sleep(3)
        # An int: the runtime tolerance is rounded up to a whole second (int(runtime) + 1).
        with sleep.assert_sleeps_for(6):
            await anyio.sleep(5)
        # A float: the tolerance is the block's real runtime, so 5.0 after 5 s passes...
        with sleep.assert_sleeps_for(5.0):
            await anyio.sleep(5)
        # ...and the extra tolerance applies both ways.
        with sleep.assert_sleeps_for(4, extra_tolerance=1):
            await anyio.sleep(5)
        with sleep.assert_sleeps_for(0):
            pass


@pytest.mark.anyio
async def test_assert_sleeps_for_fails_with_the_documented_message() -> None:
    with patch_sleep() as sleep:
        with pytest.raises(AssertionError) as too_little:
            with sleep.assert_sleeps_for(5):
                await anyio.sleep(3)
        assert str(too_little.value) == (
            "Sleep was called for 3.0; expected 5 with tolerance of +1, -0"
        )
        with pytest.raises(AssertionError) as too_much:
            with sleep.assert_sleeps_for(5, extra_tolerance=1):
                await anyio.sleep(7)
        assert str(too_much.value) == (
            "Sleep was called for 7.0; expected 5 with tolerance of +2, -1"
        )
        with pytest.raises(AssertionError) as as_float:
            with sleep.assert_sleeps_for(6.5):
                await anyio.sleep(5)
        message = str(as_float.value)
        assert message.startswith("Sleep was called for 5.0; expected 6.5 with tolerance of +")
        assert message.endswith(", -0")
        tolerance = float(message.split("+")[1].split(",")[0])
        assert 0 < tolerance < 30  # the block's real runtime, not rounded


@pytest.mark.anyio
async def test_assert_sleeps_for_message_rounds_float_noise() -> None:
    """After an earlier sleep the block's total is a difference of shifts: 3.8999999999999995."""
    with patch_sleep() as sleep:
        await anyio.sleep(0.2)
        with pytest.raises(AssertionError) as caught:
            with sleep.assert_sleeps_for(5):
                await anyio.sleep(3.9)
        assert sleep.shift - 0.2 != 3.9  # the noise the message must not show
        assert str(caught.value) == "Sleep was called for 3.9; expected 5 with tolerance of +1, -0"
        with pytest.raises(AssertionError) as as_float:
            with sleep.assert_sleeps_for(6.5, extra_tolerance=0.1):
                await anyio.sleep(1 / 3)
        message = str(as_float.value)
        assert message.startswith("Sleep was called for 0.333333; expected 6.5 with tolerance of +")
        tolerance = message.split("+")[1].split(",")[0]
        assert len(tolerance.replace(".", "").lstrip("0")) <= 6  # 6 significant digits at most
        assert message.endswith(", -0.1")


@pytest.mark.anyio
async def test_assert_sleeps_for_lets_an_error_in_the_block_through() -> None:
    with patch_sleep() as sleep:
        with pytest.raises(KeyError):
            with sleep.assert_sleeps_for(10):
                raise KeyError("from the block")


@pytest.mark.parametrize(
    ("seconds", "extra", "error", "match"),
    [
        (-1, 0, ValueError, r"seconds must be a non-negative number of seconds, got -1"),
        (-0.5, 0, ValueError, r"got -0\.5"),
        (math.nan, 0, ValueError, r"got nan"),
        (1, -1, ValueError, r"extra_tolerance must be a non-negative"),
        ("5", 0, TypeError, r"seconds must be a number of seconds.*got str: '5'"),
        (None, 0, TypeError, r"got NoneType: None"),
        (True, 0, TypeError, r"got bool"),
        (1, "1", TypeError, r"extra_tolerance must be a number"),
    ],
)
def test_assert_sleeps_for_validates_before_the_block(
    seconds: Any, extra: Any, error: type[Exception], match: str
) -> None:
    recorder = SleepRecorder()
    with pytest.raises(error, match=match):
        recorder.assert_sleeps_for(seconds, extra)
