"""restart() / arestart(): the server stops and starts again on the same address."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from server_launcher import DEMO_APP, launch_server

Get = Callable[..., tuple[int, bytes]]


def test_restart_serves_the_same_port_from_a_new_process(
    get: Get, wait_gone: Callable[[int, float], bool]
) -> None:
    with launch_server(DEMO_APP, health_path="/api/health") as server:
        url, port, first_pid = server.url, server.port, server.pid
        with httpx.Client(base_url=url) as client:  # a kept-alive connection across the restart
            assert client.get("/api/health").status_code == 200
            server.restart()
            assert (server.url, server.port) == (url, port)
            assert server.pid != first_pid
            assert wait_gone(first_pid, 30)
            assert server.returncode is None  # the new one runs
            assert client.get("/api/echo?after=restart").json()["query"] == "after=restart"
        assert get(url + "/api/health") == (200, b"true")
        assert "Application startup complete" in server.output()
        server.restart()  # again: the port (with connections in TIME_WAIT) is free to bind
        assert get(url + "/api/health")[0] == 200
        last_pid = server.pid
    assert server.returncode is not None
    assert wait_gone(last_pid, 30)


@pytest.mark.anyio
async def test_arestart_from_async_code(wait_gone: Callable[[int, float], bool]) -> None:
    async with launch_server(DEMO_APP, health_path="/api/health") as server:
        first_pid = server.pid
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/api/health")).status_code == 200
            await server.arestart()
            assert server.pid != first_pid
            assert (await client.get("/api/health")).status_code == 200
    assert wait_gone(first_pid, 30)
    assert wait_gone(server.pid, 30)


def test_restart_keeps_the_unix_socket() -> None:
    folder = tempfile.mkdtemp(prefix="sl-", dir="/tmp")
    try:
        path = str(Path(folder) / "r.sock")
        with launch_server(DEMO_APP, uds=path, health_path="/api/health") as server:
            server.restart()
            assert server.uds == path
            with httpx.Client(transport=httpx.HTTPTransport(uds=path)) as client:
                assert client.get(server.url + "/api/health").status_code == 200
        assert not Path(path).exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_restart_of_a_command_with_a_fd_keeps_the_port(
    get: Get, fdserver_command: list[str]
) -> None:
    with launch_server(command=fdserver_command) as server:
        port = server.port
        server.restart()
        assert server.port == port
        assert get(server.url + "/health") == (200, str(server.pid).encode())


def test_restart_refuses_a_command_that_cannot_be_told_its_port(get: Get) -> None:
    """A command that reports its own port could come back on another one: refused before the
    server is stopped."""
    command = [
        "{python}",
        "-m",
        "uvicorn",
        "--factory",
        "server_launcher.demo:create_app",
        "--port",
        "0",
    ]
    with launch_server(command=command, health_path="/api/health") as server:
        with pytest.raises(RuntimeError, match=r"restart\(\) needs a command with \{fd\}"):
            server.restart()
        assert server.returncode is None
        assert get(server.url + "/api/health")[0] == 200
