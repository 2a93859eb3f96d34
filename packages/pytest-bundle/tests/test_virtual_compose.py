"""mock_anyio_sleep and virtual_clock in one test are refused, in every order, through pytest."""

from __future__ import annotations

import importlib.util

import pytest

pytest_plugins = ["pytester"]

BACKENDS = ["asyncio", "trio"] if importlib.util.find_spec("trio") else ["asyncio"]

BOTH_BACKENDS = f"""
import pytest

@pytest.fixture(params={BACKENDS!r})
def anyio_backend(request):
    return request.param
"""

#: What the refusal must say: both fixture names, and when to use which.
REFUSAL = [
    "*uses both mock_anyio_sleep and virtual_clock; use one of them.",
    "*mock_anyio_sleep replaces anyio.sleep with a recorder that returns at once*",
    "- mock_anyio_sleep: to assert which sleeps happened*",
    "- virtual_clock: to make every sleep and timeout of an async test complete at once*",
]


@pytest.mark.parametrize(
    "signature",
    ["mock_anyio_sleep, virtual_clock", "virtual_clock, mock_anyio_sleep"],
)
def test_both_fixtures_in_one_test_are_refused(pytester: pytest.Pytester, signature: str) -> None:
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(
        test_both=f"""
        import anyio
        import pytest

        @pytest.mark.anyio
        async def test_timeout({signature}):
            with anyio.fail_after(5):
                await anyio.sleep(10)  # with the mock winning, this would pass silently
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=len(BACKENDS))
    result.stdout.fnmatch_lines(REFUSAL)
    assert "test_both.py::test_timeout" in result.stdout.str()


def test_a_fixture_that_asks_for_the_mock_at_run_time_is_refused_too(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        BOTH_BACKENDS
        + """
@pytest.fixture(autouse=True)
def everything_mocked(request):
    request.getfixturevalue("mock_anyio_sleep")
"""
    )
    pytester.makepyfile(
        test_dynamic="""
        import anyio
        import pytest

        @pytest.mark.anyio
        async def test_timeout(virtual_clock):
            with anyio.fail_after(5):
                await anyio.sleep(10)
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=len(BACKENDS))
    result.stdout.fnmatch_lines(REFUSAL)


def test_patch_sleep_inside_a_virtual_clock_test_fails_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(
        test_inside="""
        import pytest
        from fake_sleep import patch_sleep

        @pytest.mark.anyio
        async def test_mixes_by_hand(virtual_clock):
            with patch_sleep():
                pass
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=len(BACKENDS))
    result.stdout.fnmatch_lines(["*patch_sleep() cannot start while virtual_time() is active*"])


def test_each_fixture_alone_still_works_in_the_same_session(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(BOTH_BACKENDS)
    pytester.makepyfile(
        test_alone="""
        import anyio
        import pytest

        @pytest.mark.anyio
        async def test_mock(mock_anyio_sleep):
            await anyio.sleep(10)
            mock_anyio_sleep.assert_awaited_once_with(10)

        @pytest.mark.anyio
        async def test_virtual(virtual_clock):
            with anyio.move_on_after(5):
                await anyio.sleep(10)
            assert virtual_clock.time() == 5

        @pytest.mark.anyio
        async def test_mock_again(mock_anyio_sleep):
            await anyio.sleep(1)
            mock_anyio_sleep.assert_awaited_once_with(1)
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3 * len(BACKENDS))
