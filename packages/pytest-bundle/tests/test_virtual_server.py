"""virtual_clock beside hosted_api_server: requests wait for the real server, sleeps still jump."""

from __future__ import annotations

import importlib.util

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

BACKENDS = ["asyncio", "trio"] if importlib.util.find_spec("trio") else ["asyncio"]

TESTS = f"""
import time

import anyio
import httpx
import pytest


@pytest.fixture(params={BACKENDS!r})
def anyio_backend(request):
    return request.param


@pytest.mark.anyio
async def test_requests_with_virtual_sleeps_between(hosted_api_server, virtual_clock):
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(20):
            response = await client.get(hosted_api_server + "/health")  # no ReadTimeout
            assert response.json() is True
            await anyio.sleep(60)
    assert virtual_clock.time() == 20 * 60  # the server's answers took no virtual time


@pytest.mark.anyio
async def test_timeouts_fire_at_once_beside_an_open_client(hosted_api_server, virtual_clock):
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(hosted_api_server + "/health")).json() is True
        started = time.perf_counter()
        with anyio.move_on_after(5) as scope:  # beside an idle keep-alive connection
            await anyio.sleep(10)
        assert scope.cancelled_caught
        for _ in range(1000):
            await anyio.sleep(60)
        assert time.perf_counter() - started < 1.5  # holding would take seconds
    assert virtual_clock.time() == 5 + 60_000
"""


def test_virtual_clock_composes_with_the_hosted_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_server=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=120)
    result.assert_outcomes(passed=2 * len(BACKENDS))
