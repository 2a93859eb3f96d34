"""fake-sleep's virtual time composes with server-launcher and the bundle (issue 17).

fake-sleep never imports server_launcher: these tests at the root are where the two meet.
Every server is a real uvicorn child; every event loop is real.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from fake_sleep import virtual_time
from server_launcher import launch_server

#: Generous real-time bound (the servers start in about a second).
REAL_BOUND = 30.0
#: A start-up wait holds the clock for at most io_grace real seconds: on a busy machine a
#: server that starts in 1 s can take longer than the default 2 s.
GRACE = 20.0

SLOW_APP = '''
"""A server that starts in STARTUP real seconds and answers /slow after 0.5 s of real time."""
import asyncio
import os


def create_app():
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await asyncio.sleep(float(os.environ.get("SLOWAPP_STARTUP", "0")))
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"].endswith("/slow"):
            await asyncio.sleep(0.5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app
'''


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def slow_app(tmp_path: Path) -> dict[str, str]:
    """The environment that lets a launched server import ``slowapp:create_app``."""
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    return {"PYTHONPATH": str(tmp_path), "SLOWAPP_STARTUP": "1"}


@pytest.mark.anyio
async def test_async_launch_server_inside_virtual_time(slow_app: dict[str, str]) -> None:
    """A server that takes 1 s to start: no false deadlock, no early timeout."""
    started = time.perf_counter()
    async with virtual_time(io_grace=GRACE) as clock:
        with anyio.fail_after(60):
            async with launch_server(app="slowapp:create_app", env=slow_app) as server:
                async with httpx.AsyncClient() as client:
                    assert (await client.get(server.url + "/health")).text == "ok"
        assert clock.time() < 60
    assert time.perf_counter() - started < REAL_BOUND


@pytest.mark.anyio
async def test_sync_launch_server_inside_virtual_time(slow_app: dict[str, str]) -> None:
    started = time.perf_counter()
    async with virtual_time(io_grace=GRACE) as clock:
        with launch_server(app="slowapp:create_app", env=slow_app) as server:
            with anyio.fail_after(60):
                async with httpx.AsyncClient() as client:
                    assert (await client.get(server.url + "/health")).text == "ok"
            await anyio.sleep(3600)  # virtual time still works beside the running server
        assert clock.time() == pytest.approx(3600)
    assert time.perf_counter() - started < REAL_BOUND


class BackgroundLoop:
    """A thread running its own asyncio loop, as Prefect's client does."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="background-loop")
        self.thread.start()

    def get(self, url: str) -> concurrent.futures.Future[str]:
        async def fetch() -> str:
            async with httpx.AsyncClient() as client:
                return (await client.get(url)).text

        # Submitted from a fresh context: the caller's (e.g. trio's "current library") stays.
        return contextvars.Context().run(asyncio.run_coroutine_threadsafe, fetch(), self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def background_loop() -> Iterator[BackgroundLoop]:
    background = BackgroundLoop()
    yield background
    background.close()


async def _poll(future: concurrent.futures.Future[str]) -> str:
    while not future.done():
        await anyio.sleep(0.01)
    return future.result()


async def _in_a_worker(future: concurrent.futures.Future[str]) -> str:
    return await anyio.to_thread.run_sync(future.result)


@pytest.mark.anyio
@pytest.mark.parametrize("wait", [_poll, _in_a_worker])
async def test_a_background_loop_talking_to_a_server_holds_the_clock(
    slow_app: dict[str, str],
    background_loop: BackgroundLoop,
    wait: Callable[[concurrent.futures.Future[str]], Awaitable[str]],
) -> None:
    """Prefect's pattern: the test waits for another loop's request to a slow endpoint."""
    with launch_server(app="slowapp:create_app", env=slow_app) as server:
        async with virtual_time() as clock:
            with anyio.fail_after(30):
                future = background_loop.get(server.url + "/slow")
                assert await wait(future) == "ok"
            assert clock.time() < 30


BUNDLE_TEST = """
import asyncio
import contextvars
import concurrent.futures
import contextvars
import threading

import anyio
import httpx
import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.mark.anyio
async def test_waits_for_the_background_loop(hosted_api_server, virtual_clock):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:

        async def fetch():
            async with httpx.AsyncClient() as client:
                return (await client.get(hosted_api_server + "/slow")).text

        future = contextvars.Context().run(asyncio.run_coroutine_threadsafe, fetch(), loop)
        with anyio.fail_after(30):
            while not future.done():
                await anyio.sleep(0.01)
        assert future.result() == "ok"
        assert virtual_clock.time() < 30
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
"""


def test_hosted_server_virtual_clock_and_a_background_loop(pytester: pytest.Pytester) -> None:
    """The issue's proof, through the bundle's own fixtures in a real pytest session."""
    pytester.makepyfile(slowapp=SLOW_APP, test_background=BUNDLE_TEST)
    pytester.makeini("[pytest]\nhosted_api_app = slowapp:create_app\n")
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=2)
