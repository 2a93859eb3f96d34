"""The happy paths: sync and async launches, the URL, env, output, commands and the CLI."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import server_launcher
from server_launcher import DEMO_APP, RunningServer, launch_server

Get = Callable[..., tuple[int, bytes]]


def test_sync_launch_serves_the_demo_app_and_stops_cleanly(get: Get) -> None:
    with launch_server(DEMO_APP, health_path="/api/health") as server:
        assert isinstance(server, RunningServer)
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.host == "127.0.0.1"
        assert get(server.url + "/api/health") == (200, b"true")
        status, body = get(server.url + "/api/echo?x=1")
        assert status == 200
        assert json.loads(body)["query"] == "x=1"
        log_path = server.log_path
        assert log_path is not None
        assert os.path.exists(log_path)
        assert stat.S_IMODE(os.stat(log_path).st_mode) == 0o600
        assert server.returncode is None
    assert server.returncode in (0, -signal.SIGTERM)
    assert not os.path.exists(log_path)  # removed after a clean stop
    assert server.log_path is None
    assert "Application startup complete" in server.output()  # output kept after the stop


def test_keep_alive_requests_do_not_stall(get: Get) -> None:
    """Requests on one kept-alive connection answer at once (no Nagle + delayed-ACK stall).

    A stall holds *every* request for the 40 ms delayed-ACK timer, so even the fastest third of
    them would take 40 ms or more; working, they take a few milliseconds. Looking at the fast
    end, not the total, keeps a busy machine (which slows some requests) from failing the test.
    """
    import time

    import httpx

    with (
        launch_server(DEMO_APP, health_path="/api/health") as server,
        httpx.Client(base_url=server.url) as client,
    ):
        client.get("/api/health")
        times = []
        for _ in range(30):
            started = time.perf_counter()
            assert client.get("/api/echo").status_code == 200
            times.append(time.perf_counter() - started)
    fast_third = sorted(times)[10]
    assert fast_third < 0.038, f"a third of the requests took {fast_third * 1000:.0f} ms or more"


def test_default_app_is_the_demo(get: Get) -> None:
    with launch_server(env={"DEMO_API_PREFIX": "/v2"}, health_path="/v2/health") as server:
        assert get(server.url + "/v2/health")[0] == 200


def test_env_is_merged_over_os_environ_and_none_removes(
    get: Get, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAUNCHER_KEEP", "kept")
    monkeypatch.setenv("LAUNCHER_DROP", "dropped")
    env = {"LAUNCHER_NEW": "new", "LAUNCHER_DROP": None}
    with launch_server(env=env, health_path="/api/health") as server:
        values = {
            name: json.loads(get(f"{server.url}/api/env/{name}")[1])["value"]
            for name in ("LAUNCHER_KEEP", "LAUNCHER_DROP", "LAUNCHER_NEW")
        }
    assert values == {"LAUNCHER_KEEP": "kept", "LAUNCHER_DROP": None, "LAUNCHER_NEW": "new"}
    assert os.environ["LAUNCHER_DROP"] == "dropped"  # the parent's environment is untouched


def test_pid_is_the_server_process_and_output_is_live(
    testapp: Callable[..., Any], get: Get
) -> None:
    with testapp() as server:
        assert json.loads(get(server.url + "/pid")[1]) == server.pid
        get(server.url + "/print?n=12")
        assert "y" * 12 in server.output()  # while it runs


def test_output_is_streamed_to_a_text_or_binary_file(testapp: Callable[..., Any]) -> None:
    text, binary = io.StringIO(), io.BytesIO()
    with testapp(output=text):
        pass
    with testapp(output=binary):
        pass
    assert "Application startup complete" in text.getvalue()
    assert b"Application startup complete" in binary.getvalue()


def test_stop_is_idempotent_and_returns_the_exit_status(testapp: Callable[..., Any]) -> None:
    with testapp() as server:
        assert server.stop() in (0, -signal.SIGTERM)
        assert server.stop() == server.returncode
    assert server.returncode in (0, -signal.SIGTERM)


def test_a_launcher_can_be_reused_after_it_stopped(testapp: Callable[..., Any], get: Get) -> None:
    launcher = testapp()
    for _ in range(2):
        with launcher as server:
            assert get(server.url + "/health")[0] == 200
            with pytest.raises(RuntimeError, match="already running"):
                launcher.__enter__()


@pytest.mark.anyio
async def test_async_launch_on_asyncio_and_trio(testapp: Callable[..., Any], get: Get) -> None:
    async with testapp() as server:
        status, body = await anyio.to_thread.run_sync(get, server.url + "/pid")
        assert (status, json.loads(body)) == (200, server.pid)
    assert server.returncode in (0, -signal.SIGTERM)


@pytest.mark.anyio
async def test_async_launches_run_concurrently(testapp: Callable[..., Any], get: Get) -> None:
    servers: list[RunningServer] = []

    async def one() -> None:
        async with testapp() as server:
            servers.append(server)
            await anyio.sleep(0.2)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(one)
    assert len({s.port for s in servers}) == 3
    assert all(s.returncode in (0, -signal.SIGTERM) for s in servers)


@pytest.mark.anyio
async def test_cancelling_an_async_start_leaves_nothing(
    testapp: Callable[..., Any], resources: Callable[[], dict[str, int]]
) -> None:
    before = resources()
    with anyio.move_on_after(1.0) as scope:
        async with testapp(env={"TESTAPP_STARTUP": "hang"}, shutdown_timeout=0.5):
            pytest.fail("a hanging start-up must not become ready")
    assert scope.cancelled_caught
    assert resources()["children"] == before["children"]


def test_command_with_fd_placeholder(fdserver_command: list[str], get: Get) -> None:
    with launch_server(command=fdserver_command) as server:
        status, body = get(server.url + "/health")
        assert (status, int(body)) == (200, server.pid)
        assert server.command[0] == sys.executable


def test_hypercorn_serves_a_passed_socket(get: Get) -> None:
    pytest.importorskip("hypercorn")
    command = ["{python}", "-m", "hypercorn", "--bind", "fd://{fd}", "{app}"]
    with launch_server(
        "server_launcher.demo:create_app()", command=command, health_path="/api/health"
    ) as server:
        assert get(server.url + "/api/echo")[0] == 200


def test_command_with_port_placeholder_gets_a_reserved_port(get: Get) -> None:
    command = ["{python}", "-m", "http.server", "--bind", "{host}", "{port}"]
    with launch_server(command=command, health_path="/", shutdown_timeout=5) as server:
        assert get(server.url + "/")[0] == 200
        assert f"port {server.port}" in server.output() or server.port > 0


def test_port_read_from_the_output_when_the_command_picks_it(
    testapp: Callable[..., Any], get: Get, apps_dir: Any
) -> None:
    """The Windows path: uvicorn binds port 0 and the parent reads the port it reports."""
    command = [
        "{python}", "-m", "uvicorn", "--factory", "launcher_testapp:create_app",
        "--app-dir", str(apps_dir), "--host", "{host}", "--port", "0",
    ]  # fmt: skip
    with launch_server(command=command) as server:
        assert get(server.url + "/health")[0] == 200
        assert f"127.0.0.1:{server.port}" in server.output()


def test_public_api_is_exported() -> None:
    assert set(server_launcher.__all__) >= {
        "launch_server",
        "RunningServer",
        "ServerStartError",
        "ServerStartTimeout",
        "ServerStopWarning",
        "DEMO_APP",
    }
    assert DEMO_APP == "server_launcher.demo:create_app"


def test_command_line_prints_the_url_and_stops_on_ctrl_c(get: Get) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server_launcher", DEMO_APP, "--health-path", "/api/health"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert get(url + "/api/health")[0] == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        with pytest.raises(ConnectionRefusedError):
            get(url + "/api/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_command_line_reports_a_bad_app() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server_launcher", "no_such_module_x:app"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "no_such_module_x" in result.stderr
    assert "before it was ready" in result.stderr
