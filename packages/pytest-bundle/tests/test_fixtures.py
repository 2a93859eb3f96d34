"""mock_anyio_sleep and virtual_clock as a user meets them, through real pytest sessions."""

from __future__ import annotations

import importlib.util

import pytest

pytest_plugins = ["pytester"]

BACKENDS = ["asyncio", "trio"] if importlib.util.find_spec("trio") else ["asyncio"]

# Every installed backend (trio is optional: the bundle does not depend on it).
BOTH_BACKENDS = f"""
import pytest

@pytest.fixture(params={BACKENDS!r})
def anyio_backend(request):
    return request.param
"""


def test_mock_anyio_sleep_keeps_the_documented_contract(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(
        """
        import re

        import anyio
        import pendulum
        import pytest

        @pytest.mark.anyio
        async def test_contract(mock_anyio_sleep):
            before = pendulum.now("UTC")
            with mock_anyio_sleep.assert_sleeps_for(30):
                await anyio.sleep(10)
                await anyio.sleep(20)
            mock_anyio_sleep.assert_has_awaits([((10,),), ((20,),)])
            assert mock_anyio_sleep.await_count == 2
            assert mock_anyio_sleep.call_args_list[0].args == (10,)
            assert pendulum.now(tz="UTC") - before >= pendulum.duration(seconds=30)

        @pytest.mark.anyio
        async def test_wrong_total_fails_with_the_documented_message(mock_anyio_sleep):
            expected = "Sleep was called for 5.0; expected 3 with tolerance of +1, -0"
            with pytest.raises(AssertionError, match=re.escape(expected)):
                with mock_anyio_sleep.assert_sleeps_for(3):
                    await anyio.sleep(5)

        def test_unpatched_after_the_test():
            import anyio
            assert type(anyio.sleep).__name__ == "function"
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2 * len(BACKENDS) + 1)


def test_mock_anyio_sleep_targets_and_clocks_come_from_the_ini(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        worker="""
        import time
        from anyio import sleep  # bound early: only a dotted target reaches it

        async def nap():
            await sleep(120)
            return time.time()
        """
    )
    pytester.makeini(
        """
        [pytest]
        mock_anyio_sleep_targets =
            anyio.sleep
            worker.sleep
        mock_anyio_sleep_clocks = time.time
        """
    )
    pytester.makepyfile(
        test_worker="""
        import time
        import pytest
        import worker

        @pytest.mark.anyio
        async def test_nap(mock_anyio_sleep):
            before = time.time()
            stamped = await worker.nap()
            assert stamped - before >= 120
            mock_anyio_sleep.assert_awaited_once_with(120)
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(BACKENDS))


def test_virtual_clock_runs_only_the_test_body_in_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(
        """
        import time
        import anyio
        import pytest

        @pytest.fixture
        async def real_time_fixture():
            started = time.monotonic()
            await anyio.sleep(0.05)  # real time: the fixture is outside virtual time
            assert time.monotonic() - started >= 0.04
            yield
            await anyio.sleep(0.05)
            assert time.monotonic() - started >= 0.09

        @pytest.mark.anyio
        async def test_cancelled_at_exactly_five(real_time_fixture, virtual_clock):
            from fake_sleep import VirtualClock
            assert isinstance(virtual_clock, VirtualClock)
            started = time.monotonic()
            start = anyio.current_time()
            with anyio.move_on_after(5) as scope:
                await anyio.sleep(10)
            assert scope.cancelled_caught
            assert anyio.current_time() - start == pytest.approx(5)
            assert virtual_clock.time() == pytest.approx(5)
            assert time.monotonic() - started < 5  # a real 10 s sleep would take 10
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=len(BACKENDS))


@pytest.mark.parametrize("loop_scope", ["function", "module"])
def test_virtual_clock_under_pytest_asyncio(pytester: pytest.Pytester, loop_scope: str) -> None:
    pytest.importorskip("pytest_asyncio")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        f"""
        import asyncio
        import pytest

        @pytest.mark.asyncio(loop_scope="{loop_scope}")
        async def test_real_time_before():
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.sleep(0.01)
            assert loop.time() - start >= 0.01

        @pytest.mark.asyncio(loop_scope="{loop_scope}")
        async def test_wait_for_times_out_in_virtual_time(virtual_clock):
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(asyncio.TimeoutError):  # TimeoutError itself from 3.11 on
                await asyncio.wait_for(asyncio.sleep(3600), timeout=30)
            assert loop.time() - start == pytest.approx(30)
            assert virtual_clock.time() == pytest.approx(30)

        @pytest.mark.asyncio(loop_scope="{loop_scope}")
        async def test_real_time_after():
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.sleep(0.01)
            assert loop.time() - start >= 0.01
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:anyio")
    result.assert_outcomes(passed=3)


def test_a_deadlock_fails_the_test_with_the_stuck_line(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(
        test_stuck="""
        import anyio
        import pytest

        @pytest.mark.anyio
        async def test_waits_for_ever(virtual_clock):
            event = anyio.Event()
            await event.wait()  # nobody will ever set it
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--timeout=60")
    result.assert_outcomes(failed=len(BACKENDS))
    text = result.stdout.str()
    assert "VirtualClockDeadlock" in text
    assert "test_stuck.py:7" in text


def test_virtual_clock_end_turns_a_livelock_into_a_failure(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvirtual_clock_end = 60\n")
    pytester.makepyfile(
        test_livelock="""
        import anyio
        import pytest

        @pytest.mark.anyio
        async def test_polls_for_ever(virtual_clock):
            while True:
                await anyio.sleep(1)
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--timeout=60")
    result.assert_outcomes(failed=len(BACKENDS))
    assert "VirtualTimeLimitExceeded" in result.stdout.str()


def test_a_livelock_without_virtual_clock_end_fails_and_names_the_option(
    pytester: pytest.Pytester,
) -> None:
    """Contract 4 under the bundle: no virtual_clock_end anywhere, a loop of one-day sleeps."""
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(
        test_livelock="""
        import anyio
        import pytest

        @pytest.mark.anyio
        async def test_polls_daily_for_ever(virtual_clock):
            while True:
                await anyio.sleep(86400)

        def test_after_it():
            pass
        """
    )
    # The timeout is only a hang bound; the default horizon (ten virtual years) ends each test.
    result = pytester.runpytest("-p", "no:randomly", "--timeout=300", "-rf")
    result.assert_outcomes(failed=len(BACKENDS), passed=1)
    text = result.stdout.str()
    assert "Timeout" not in text
    failures = [line for line in result.outlines if line.startswith("FAILED")]
    assert len(failures) == len(BACKENDS), result.outlines
    assert all("test_polls_daily_for_ever" in line for line in failures), failures
    # Each failure's report: the error, the limit it hit, and the bundle's option to raise it.
    reported = [
        line
        for line in result.outlines
        if line.startswith("E ")
        and "fake_sleep.VirtualTimeLimitExceeded:" in line
        and "past the default limit of ten virtual years" in line
        and "virtual_clock_end" in line
    ]
    assert len(reported) == len(BACKENDS), text


def test_virtual_clock_in_a_sync_test_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_sync(virtual_clock):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*virtual_clock works only in async test functions*"])
