"""A fixed port: bound by the launcher before the server starts; a port in use is refused."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from server_launcher import DEMO_APP, RunningServer, ServerLauncher, ServerStartError, launch_server

Get = Callable[..., tuple[int, bytes]]


def _candidate_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def on_some_fixed_port(make: Callable[[int], ServerLauncher]) -> Iterator[RunningServer]:
    """Start ``make(port)`` on a fixed port; another process may take a candidate port between
    choosing and binding it, which the launcher reports, so try another one then."""
    for _ in range(20):
        port = _candidate_port()
        try:
            launcher = make(port)
            server = launcher.__enter__()
        except ServerStartError as exc:
            if "already in use" in str(exc):
                continue
            raise
        try:
            yield server
        finally:
            launcher.__exit__(None, None, None)
        return
    pytest.fail("no free port in 20 tries")


def test_serves_the_fixed_port(get: Get) -> None:
    def make(port: int) -> ServerLauncher:
        return launch_server(DEMO_APP, port=port, health_path="/api/health")

    with on_some_fixed_port(make) as server:
        assert server.port is not None
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert get(server.url + "/api/health") == (200, b"true")


@pytest.mark.anyio
async def test_serves_the_fixed_port_from_async_code(get: Get) -> None:
    for _ in range(20):
        port = _candidate_port()
        try:
            async with launch_server(DEMO_APP, port=port, health_path="/api/health") as server:
                assert server.port == port
                assert server.url.endswith(f":{port}")
                assert get(server.url + "/api/health")[0] == 200
        except ServerStartError as exc:
            if "already in use" in str(exc):
                continue
            raise
        return
    pytest.fail("no free port in 20 tries")


def test_a_command_with_a_port_placeholder_gets_the_fixed_port(get: Get, tmp_path: Path) -> None:
    """``{port}`` without ``{fd}``: the launcher holds the port until the server binds it."""
    (tmp_path / "marker.txt").write_text("served from cwd")

    def make(port: int) -> ServerLauncher:
        command = ["{python}", "-m", "http.server", "{port}", "--bind", "{host}"]
        return launch_server(command=command, port=port, health_path="/", cwd=tmp_path)

    with on_some_fixed_port(make) as server:
        assert server.url.endswith(f":{server.port}")
        assert get(server.url + "/marker.txt") == (200, b"served from cwd")


@pytest.mark.parametrize("listening", [True, False])
def test_a_port_in_use_is_an_error_naming_it_before_anything_starts(
    resources: Callable[[], dict[str, int]], tmp_path: Path, listening: bool
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        if listening:
            holder.listen()
        port = holder.getsockname()[1]
        before = resources()
        with pytest.raises(ServerStartError) as info:
            with launch_server(DEMO_APP, port=port, log_dir=tmp_path):
                pytest.fail("must not start")
        message = str(info.value)
        assert message.startswith(f"port {port} on 127.0.0.1 is already in use (port={port})")
        assert "nothing was started" in message
        assert info.value.returncode is None
        assert resources() == before
        assert list(tmp_path.iterdir()) == []  # no log either


@pytest.mark.anyio
async def test_a_port_in_use_fails_the_async_start_too() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ServerStartError, match=f"port {port} .* already in use"):
            async with launch_server(DEMO_APP, port=port):
                pytest.fail("must not start")


@pytest.mark.parametrize(
    ("arg", "keyword"),
    [
        (["--port", "8000"], "port="),
        (["--port=8000"], "port="),
        (["--host", "0.0.0.0"], "host="),
        (["--fd", "3"], "port= or uds="),
        (["--uds", "/tmp/x.sock"], "uds="),
        (["--ssl-keyfile-password", "x"], "ssl_keyfile_password="),
    ],
)
def test_launcher_owned_uvicorn_arguments_are_refused_naming_the_keyword(
    arg: list[str], keyword: str
) -> None:
    with pytest.raises(ValueError, match=r"server_args: --[a-z-]+ is set by the launcher") as info:
        launch_server(DEMO_APP, server_args=arg)
    assert f"use launch_server({keyword}) instead" in str(info.value)


def test_a_custom_command_may_take_any_argument() -> None:
    """Only uvicorn's own arguments are the launcher's; a custom command's are the user's."""
    launcher = launch_server(command=["srv", "--fd", "{fd}"], server_args=["--port", "1"])
    assert "--port 1" in repr(launcher)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"port": 0}, ValueError, "between 1 and 65535"),
        ({"port": 65536}, ValueError, "between 1 and 65535"),
        ({"port": "8000"}, TypeError, "whole number"),
        ({"port": True}, TypeError, "whole number"),
        ({"port": 8000, "command": ["srv"]}, ValueError, r"needs the \{fd\} or \{port\}"),
    ],
)
def test_bad_ports_are_refused_up_front(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        launch_server(**kwargs)
