"""A new user's first session: the bundle installed, no conftest, no configuration."""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.slow

FIRST_TESTS = """
import anyio
import httpx
import pendulum
import pytest


def test_hosted_api_server_serves_the_demo_app(hosted_api_server):
    assert hosted_api_server.startswith("http://127.0.0.1:")
    assert hosted_api_server.endswith("/api")
    assert httpx.get(hosted_api_server + "/health").json() is True


def test_use_hosted_api_server_points_api_url_at_it(use_hosted_api_server):
    import os

    assert os.environ["API_URL"] == use_hosted_api_server
    reply = httpx.post(os.environ["API_URL"] + "/echo", content=b"hi").json()
    assert reply == {"method": "POST", "path": "/api/echo", "query": "", "body": "hi"}


def test_api_url_is_gone_after_the_test():
    import os

    assert "API_URL" not in os.environ


@pytest.mark.anyio
async def test_mock_anyio_sleep(mock_anyio_sleep):
    start = pendulum.now("UTC")
    with mock_anyio_sleep.assert_sleeps_for(15):
        await anyio.sleep(5)
        await anyio.sleep(10)
    mock_anyio_sleep.assert_has_awaits([((5,),), ((10,),)])
    assert pendulum.now("UTC") - start >= pendulum.duration(seconds=15)


@pytest.mark.anyio
async def test_virtual_clock(virtual_clock):
    start = anyio.current_time()
    with anyio.move_on_after(5) as scope:
        await anyio.sleep(10)
    assert scope.cancelled_caught
    assert anyio.current_time() - start == pytest.approx(5)
    assert virtual_clock.time() >= 5
"""


def test_all_four_fixtures_work_with_no_configuration(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_first=FIRST_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-v", timeout=120)
    # anyio's plugin runs each async test on every installed backend (asyncio, and trio here).
    backends = 2 if importlib.util.find_spec("trio") else 1
    result.assert_outcomes(passed=3 + 2 * backends)
    result.stdout.fnmatch_lines(["pytest-bundle: hosted_api_app=server_launcher.demo:create_app*"])
