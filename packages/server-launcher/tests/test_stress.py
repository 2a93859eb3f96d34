"""Many launches at once: no port collision, never ready against someone else's server, and
nothing (thread, process, file descriptor) left behind."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from server_launcher import launch_server

Get = Callable[..., tuple[int, bytes]]


def _settle(resources: Callable[[], dict[str, int]], before: dict[str, int]) -> dict[str, int]:
    """Give exited daemon threads a moment to be unregistered, then count."""
    import time

    end = time.monotonic() + 30  # a bound against a leak, not a speed check
    now = resources()
    while now != before and time.monotonic() < end:
        time.sleep(0.05)
        now = resources()
    return now


@pytest.mark.slow
def test_200_launches_8_at_a_time_never_collide_or_leak(
    fdserver_command: list[str], get: Get, resources: Callable[[], dict[str, int]]
) -> None:
    """A cheap fd-taking stdlib server keeps 200 launches short; the parent's port handling is
    the same as for uvicorn (see the uvicorn variant below)."""
    before = resources()

    def one(_: int) -> tuple[int, int]:
        with launch_server(command=fdserver_command, shutdown_timeout=5) as server:
            status, body = get(server.url + "/health")
            assert status == 200
            assert int(body) == server.pid  # our own child answered, nobody else
            port = server.port
        assert server.returncode in (0, -signal.SIGTERM)
        return port, server.pid

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(200)))
    assert len(results) == 200
    assert len({pid for _, pid in results}) == 200
    assert _settle(resources, before) == before


@pytest.mark.slow
def test_concurrent_uvicorn_launches_each_reach_their_own_server(
    testapp: Callable[..., Any], get: Get, resources: Callable[[], dict[str, int]]
) -> None:
    before = resources()

    def one(index: int) -> None:
        token = f"launch-{index}"
        with testapp(env={"LAUNCH_TOKEN": token}, startup_timeout=60) as server:
            assert json.loads(get(server.url + "/env/LAUNCH_TOKEN")[1]) == token
            assert json.loads(get(server.url + "/pid")[1]) == server.pid

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(8)))
    assert _settle(resources, before) == before


@pytest.mark.slow
def test_100_start_stop_cycles_leave_nothing_behind(
    fdserver_command: list[str], resources: Callable[[], dict[str, int]]
) -> None:
    before = resources()

    def cycles(_: int) -> None:
        for _ in range(25):
            with launch_server(command=fdserver_command):
                pass

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(cycles, range(4)))  # 100 cycles, 4 at a time
    assert _settle(resources, before) == before


@pytest.mark.anyio
async def test_async_cycles_with_uvicorn_leave_nothing_behind(
    testapp: Callable[..., Any], resources: Callable[[], dict[str, int]]
) -> None:
    before = resources()
    for _ in range(2):
        async with testapp() as server:
            await anyio.lowlevel.checkpoint()
        assert server.returncode in (0, -signal.SIGTERM)
    assert _settle(resources, before) == before
