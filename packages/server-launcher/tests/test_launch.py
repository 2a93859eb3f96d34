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
    # -u: http.server prints its "Serving HTTP on ... port N" line unbuffered, before serving.
    command = ["{python}", "-u", "-m", "http.server", "--bind", "{host}", "{port}"]
    with launch_server(command=command, health_path="/", shutdown_timeout=5) as server:
        assert get(server.url + "/")[0] == 200
        assert f"port {server.port} " in server.output()  # it bound the port we reserved


def test_port_read_from_the_output_when_the_command_picks_it(
    testapp: Callable[..., Any], get: Get, apps_dir: Any
) -> None:
    """The reported-port path: uvicorn binds port 0 and the parent reads the port it prints."""
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
        "pid_alive",
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


PORTABLE_PROBE = """
import json, os, selectors, sys
from server_launcher import _platform, launch_server, pid_alive

with launch_server(health_path="/api/health") as server:
    print(json.dumps({
        "command": server.command,
        "alive": pid_alive(server.pid),
        "has_proc": _platform.HAS_PROC,
        "poll": isinstance(_platform.new_selector(), selectors.PollSelector),
    }), flush=True)
print(json.dumps({"alive_after_stop": pid_alive(server.pid)}), flush=True)
"""


@pytest.mark.parametrize("portable", ["1", "0"])
def test_portable_switch_takes_the_paths_other_systems_take(portable: str) -> None:
    """SERVER_LAUNCHER_PORTABLE=1 runs macOS's paths on Linux: no /proc, poll, a reported port."""
    env = {**os.environ, "SERVER_LAUNCHER_PORTABLE": portable}
    done = subprocess.run(
        [sys.executable, "-c", PORTABLE_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    running, stopped = (json.loads(line) for line in done.stdout.splitlines())
    assert running["alive"] is True
    assert stopped == {"alive_after_stop": False}
    if portable == "1":
        assert running["has_proc"] is False
        assert running["poll"] is True
        assert running["command"][-4:] == ["--host", "127.0.0.1", "--port", "0"]
    else:
        assert "--fd" in running["command"]
        assert running["has_proc"] is sys.platform.startswith("linux")


def test_defaults_work_together(get: Get) -> None:
    """launch_server() with no arguments serves the demo app and finds its health check."""
    with launch_server(startup_timeout=60) as server:
        assert get(server.url + "/health")[0] == 200
        assert get(server.url + "/api/echo")[0] == 200


def test_the_command_line_serves_the_demo_with_its_defaults(get: Get) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server_launcher"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        assert get(url + "/api/health")[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.anyio
async def test_astop_from_many_tasks_and_stop_from_threads_at_once(
    testapp: Callable[..., Any],
) -> None:
    import threading

    async with testapp() as server:
        statuses: list[int | None] = []

        async def stop_in_task() -> None:
            statuses.append(await server.astop())

        def stop_in_thread() -> None:
            statuses.append(server.stop())

        threads = [threading.Thread(target=stop_in_thread) for _ in range(3)]
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(stop_in_task)
            for thread in threads:
                thread.start()
        for thread in threads:
            await anyio.to_thread.run_sync(thread.join)
    assert len(statuses) == 8
    assert set(statuses) == {server.returncode}
    assert server.returncode in (0, -signal.SIGTERM)


def test_env_is_read_when_the_server_starts_not_when_launch_server_is_called(
    get: Get, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = launch_server(env={"LAUNCHER_GIVEN": "given"}, health_path="/api/health")
    monkeypatch.setenv("LAUNCHER_LATE", "set after launch_server()")
    with launcher as server:
        late = json.loads(get(f"{server.url}/api/env/LAUNCHER_LATE")[1])["value"]
        given = json.loads(get(f"{server.url}/api/env/LAUNCHER_GIVEN")[1])["value"]
    assert (late, given) == ("set after launch_server()", "given")


def test_no_secret_reaches_a_repr(testapp: Callable[..., Any]) -> None:
    launcher = testapp(env={"DB_PASSWORD": "hunter2-secret"})
    with launcher as server:
        shown = [repr(launcher), repr(server), repr(launcher._spec)]  # the spec too
    assert not any("hunter2-secret" in text for text in shown), shown
