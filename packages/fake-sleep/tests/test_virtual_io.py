"""virtual_time() beside real I/O: outside waits hold the clock, idle and inner sockets do not."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketStream

from fake_sleep import VirtualClockDeadlock, virtual_time

pytestmark = pytest.mark.anyio

#: Generous real-time bound that still catches a wait of the virtual delays or of io_grace.
REAL_BOUND = 5.0


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    """A real server in another process that answers each line after a real delay."""
    script = Path(__file__).with_name("slow_server.py")
    process = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a stuck child
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]


async def ask(stream: SocketStream, request: bytes) -> bytes:
    await stream.send(request + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        reply += await stream.receive()
    return reply


async def test_requests_to_a_slow_server_are_not_timed_out(server_port: int) -> None:
    """The clock stands still while the server answers; the sleeps in between jump."""
    async with await anyio.connect_tcp("127.0.0.1", server_port) as stream:
        started = time.perf_counter()
        async with virtual_time() as clock:
            for _ in range(5):
                with anyio.fail_after(5):  # the server takes 0.2 s of real time
                    assert await ask(stream, b"0.2") == b"ok\n"
                await anyio.sleep(60)
            assert clock.time() == 300  # outside I/O took no virtual time
        assert time.perf_counter() - started < 1 + REAL_BOUND


async def test_a_reply_in_two_packets_is_read_whole(server_port: int) -> None:
    async with await anyio.connect_tcp("127.0.0.1", server_port) as stream:
        async with virtual_time() as clock:
            with anyio.fail_after(1):
                assert await ask(stream, b"split 0.2") == b"ok\n"
            assert clock.time() == 0


async def test_timeouts_fire_at_once_beside_an_idle_connection(server_port: int) -> None:
    """An open keep-alive connection nobody reads from holds nothing (io_grace=30 would show)."""
    async with await anyio.connect_tcp("127.0.0.1", server_port) as stream:
        assert await ask(stream, b"0") == b"ok\n"  # used once, then idle
        started = time.perf_counter()
        async with virtual_time(io_grace=30) as clock:
            with anyio.move_on_after(5) as scope:
                await anyio.sleep(10)
            assert scope.cancelled_caught
            for _ in range(1000):
                await anyio.sleep(60)
            assert clock.time() == 5 + 60_000
        assert time.perf_counter() - started < REAL_BOUND


async def test_a_silent_server_meets_the_timeout_after_io_grace(server_port: int) -> None:
    async with await anyio.connect_tcp("127.0.0.1", server_port) as stream:
        started = time.perf_counter()
        async with virtual_time(io_grace=0.3) as clock:
            with pytest.raises(TimeoutError):
                with anyio.fail_after(5):
                    await ask(stream, b"30")  # the server would answer after 30 s
            assert clock.time() == 5
        waited = time.perf_counter() - started
        assert 0.3 <= waited < REAL_BOUND


async def test_io_grace_zero_ignores_outside_io(server_port: int) -> None:
    """The old behaviour on request: the timeout fires at once, the server is not waited for."""
    async with await anyio.connect_tcp("127.0.0.1", server_port) as stream:
        started = time.perf_counter()
        async with virtual_time(io_grace=0) as clock:
            with pytest.raises(TimeoutError):
                with anyio.fail_after(5):
                    await ask(stream, b"3")
            assert clock.time() == 5
        assert time.perf_counter() - started < 2.5


async def test_waiting_only_for_a_silent_server_is_a_deadlock_after_io_grace(
    server_port: int,
) -> None:
    async with await anyio.connect_tcp("127.0.0.1", server_port) as stream:
        started = time.perf_counter()
        with pytest.raises(VirtualClockDeadlock, match=r"io_grace=0\.3"):
            async with virtual_time(io_grace=0.3):
                await ask(stream, b"30")
        assert 0.3 <= time.perf_counter() - started < REAL_BOUND


async def test_an_in_process_server_is_inner_io(anyio_backend_name: str) -> None:
    """Client and server in this loop: the server's virtual sleep jumps, nothing is held."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def handle(stream: SocketStream) -> None:
            async with stream:
                while request := await stream.receive():
                    await anyio.sleep(float(request.strip()))
                    await stream.send(b"ok\n")

        started = time.perf_counter()
        async with virtual_time(io_grace=30) as clock, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                for _ in range(3):
                    with anyio.fail_after(100):
                        assert await ask(stream, b"60") == b"ok\n"
            assert clock.time() == 180
            tg.cancel_scope.cancel()
        assert time.perf_counter() - started < REAL_BOUND


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_streams_that_read_all_the_time(server_port: int) -> None:
    """asyncio's own transports read continuously: a write marks a request in flight."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    try:
        started = time.perf_counter()
        async with virtual_time(io_grace=30) as clock:
            for request in (b"0.2\n", b"split 0\n"):
                writer.write(request)
                assert await asyncio.wait_for(reader.readline(), 5) == b"ok\n"
                await asyncio.sleep(60)
            # Idle now: a timeout fires at once (a hold would last io_grace=30 s).
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.sleep(10), 5)
            assert clock.time() == 125
        assert time.perf_counter() - started < REAL_BOUND
    finally:
        writer.close()
        await writer.wait_closed()


async def receive_line(stream: anyio.abc.ByteReceiveStream) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        line += await stream.receive()
    return line


async def test_a_subprocess_pipe_is_outside_io(anyio_backend_name: str) -> None:
    """A child that answers after 0.2 s of real time is waited for under a 1 s timeout."""
    code = (
        "import sys, time; print('ready', flush=True); sys.stdin.readline(); time.sleep(0.2);"
        " print('done', flush=True)"
    )
    async with await anyio.open_process([sys.executable, "-c", code]) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        assert await receive_line(process.stdout) == b"ready\n"  # started, in real time
        async with virtual_time() as clock:
            await process.stdin.send(b"go\n")
            with anyio.fail_after(1):
                assert await receive_line(process.stdout) == b"done\n"
            assert clock.time() == 0


def test_listeners_and_in_process_connections_are_inner_socket_pairs_outside() -> None:
    """The classification itself, on real sockets of this process.

    A socket pair's other end may have gone to a child (multiprocessing.Pipe()), so it is
    outside: uncertain waits hold the clock up to the grace, never jump at once.
    """
    from fake_sleep._virtual._io import OutsideIO

    io = OutsideIO(grace=10)
    left, right = socket.socketpair()
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    # A listener this OutsideIO never sees stands for a server in another process.
    elsewhere = socket.create_server(("127.0.0.1", 0))
    outside = socket.create_connection(elsewhere.getsockname())
    with left, right, listener, client, accepted, elsewhere, outside:
        watched = [(s.fileno(), object(), False) for s in (listener, client, accepted)]
        assert io.hold(watched, now=0.0) == 0  # all inner: nothing holds the clock
        held = io.hold([*watched, (outside.fileno(), object(), False)], now=1.0)
        assert held == pytest.approx(10)
        assert io.hold([(left.fileno(), object(), False)], now=2.0) == pytest.approx(10)
        read, write = os.pipe()
        try:
            assert io.hold([(read, object(), True)], now=2.0) == pytest.approx(10)
        finally:
            os.close(read)
            os.close(write)
