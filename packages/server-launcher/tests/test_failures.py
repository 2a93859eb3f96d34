"""Everything that goes wrong: fail fast, real deadlines, stubborn children, chatty children."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from server_launcher import (
    ServerStartError,
    ServerStartTimeout,
    ServerStopWarning,
    launch_server,
)

Get = Callable[..., tuple[int, bytes]]


def test_bad_import_path_fails_fast_with_uvicorn_own_error() -> None:
    start = time.monotonic()
    with pytest.raises(ServerStartError) as caught:
        with launch_server("no_such_package_xyz.app:create_app", startup_timeout=60):
            pytest.fail("must not start")
    assert time.monotonic() - start < 30  # far below startup_timeout: it did not wait for it
    error = caught.value
    assert not isinstance(error, ServerStartTimeout)
    assert error.returncode == 1
    assert any("no_such_package_xyz" in line for line in error.output_tail)
    assert error.command[:3] == [sys.executable, "-m", "uvicorn"]
    assert "no_such_package_xyz.app:create_app" in error.command
    message = str(error)
    assert "exit code 1" in message
    assert sys.executable in message
    assert "uvicorn" in message
    assert "no_such_package_xyz" in message
    assert error.log_path is not None
    assert os.path.exists(error.log_path)  # kept on failure
    os.unlink(error.log_path)


@pytest.mark.parametrize(
    ("mode", "text"),
    [("raise", "testapp refuses to start"), ("fail", "testapp: no")],
)
def test_app_failing_at_start_up_is_reported_with_its_error(
    testapp: Callable[..., Any], mode: str, text: str
) -> None:
    with pytest.raises(ServerStartError) as caught:
        with testapp(env={"TESTAPP_STARTUP": mode}, startup_timeout=60):
            pytest.fail("must not start")
    assert caught.value.returncode not in (None, 0)
    assert text in str(caught.value)
    assert len(caught.value.output_tail) <= 50
    if caught.value.log_path:
        os.unlink(caught.value.log_path)


@pytest.mark.parametrize("status", [404, 500])
def test_never_healthy_is_killed_at_the_deadline(
    testapp: Callable[..., Any], status: int, wait_gone: Callable[[int, float], bool]
) -> None:
    start = time.monotonic()
    with pytest.raises(ServerStartTimeout) as caught:
        # 8 s: uvicorn must get to answer at least once before the deadline, even on a busy
        # machine (it starts in ~0.2 s when quiet).
        with testapp(env={"TESTAPP_HEALTH_STATUS": str(status)}, startup_timeout=8):
            pytest.fail("must not start")
    assert time.monotonic() - start < 8 + 20  # the deadline held: no hang past it
    error = caught.value
    assert error.last_health_status == status
    assert error.timeout == 8
    assert error.returncode == -signal.SIGKILL  # killed before the error was raised
    assert f"last answered {status}" in str(error)
    assert "8 s" in str(error)
    if error.log_path:
        os.unlink(error.log_path)


@pytest.mark.anyio
async def test_hanging_start_up_times_out_in_async_code(testapp: Callable[..., Any]) -> None:
    start = time.monotonic()
    with pytest.raises(ServerStartTimeout) as caught:
        async with testapp(env={"TESTAPP_STARTUP": "hang"}, startup_timeout=1.5):
            pytest.fail("must not start")
    assert time.monotonic() - start < 1.5 + 20  # the deadline held: no hang past it
    assert caught.value.last_health_status is None
    assert "never answered" in str(caught.value)
    if caught.value.log_path:
        os.unlink(caught.value.log_path)


def test_sigterm_ignoring_child_is_killed_and_warned_about(
    testapp: Callable[..., Any], wait_gone: Callable[[int, float], bool]
) -> None:
    with testapp(env={"TESTAPP_IGNORE_SIGTERM": "1"}, shutdown_timeout=1) as server:
        pid = server.pid
        start = time.monotonic()
        with pytest.warns(ServerStopWarning, match="killed with SIGKILL") as record:
            server.stop()
        elapsed = time.monotonic() - start
    assert elapsed < 1 + 20  # SIGKILL came after the grace period, not never
    assert wait_gone(pid, 30)
    assert server.returncode == -signal.SIGKILL
    assert "killed with SIGKILL" in server.output()  # said in the log too
    kept = server.log_path
    assert kept is not None
    assert kept in str(record[0].message)
    os.unlink(kept)


def test_open_streaming_request_does_not_hold_the_stop(testapp: Callable[..., Any]) -> None:
    with testapp(shutdown_timeout=4) as server:
        stream = socket.create_connection(("127.0.0.1", server.port))
        try:
            stream.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while b"tick" not in received:
                chunk = stream.recv(4096)
                assert chunk, "the stream ended early"
                received += chunk
            # No ServerStopWarning (an error under filterwarnings=error): uvicorn got
            # --timeout-graceful-shutdown 3, ended the stream and exited before SIGKILL was due.
            server.stop()
        finally:
            stream.close()
    assert server.returncode in (0, -signal.SIGTERM)


def test_megabytes_of_output_never_block_the_child(testapp: Callable[..., Any], get: Get) -> None:
    size = 3 * 1024 * 1024
    with testapp(env={"TESTAPP_PRINT_BYTES": str(size)}, startup_timeout=30) as server:
        get(server.url + "/print?n=200000")
        text = server.output()
    assert f"testapp: printed {size}" in text
    assert "y" * 200000 in text


def test_server_dying_while_in_use_is_warned_about(
    testapp: Callable[..., Any], wait_gone: Callable[[int, float], bool]
) -> None:
    with testapp() as server:
        os.kill(server.pid, signal.SIGKILL)
        assert server.wait(timeout=10) == -signal.SIGKILL
        with pytest.warns(ServerStopWarning, match="exited on its own"):
            server.stop()
    assert server.returncode == -signal.SIGKILL
    if server.log_path:
        os.unlink(server.log_path)


def test_command_that_cannot_run_is_a_start_error() -> None:
    with pytest.raises(ServerStartError) as caught:
        with launch_server(command=["/no/such/server-binary", "{port}"]):
            pytest.fail("must not start")
    assert caught.value.returncode == 127
    assert "/no/such/server-binary" in str(caught.value)
    if caught.value.log_path:
        os.unlink(caught.value.log_path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"host": "0.0.0.0"}, ValueError, "allow_remote=True"),
        ({"host": "example.com"}, ValueError, "IP address"),
        ({"health_path": "health"}, ValueError, "starting with '/'"),
        ({"health_path": "/a b"}, ValueError, "spaces"),
        ({"startup_timeout": 0}, ValueError, "positive"),
        ({"shutdown_timeout": float("nan")}, ValueError, "finite"),
        ({"startup_timeout": "5"}, TypeError, "number of seconds"),
        ({"env": {"A": 1}}, TypeError, "pass a string"),
        ({"env": ["A"]}, TypeError, "mapping"),
        ({"command": "uvicorn app:app"}, TypeError, "no shell"),
        ({"command": []}, ValueError, "must not be empty"),
        ({"command": ["srv", "{prot}"]}, ValueError, "unknown placeholder"),
        ({"command": ["srv", "{port}"], "app": "a:b"}, ValueError, "no {app} placeholder"),
        ({"server_args": "--reload"}, TypeError, "list of strings"),
        ({"output": "log.txt"}, TypeError, "writable file object"),
        ({"app": "not an import string"}, ValueError, "package.module:attribute"),
        ({"factory": "yes"}, TypeError, "True or False"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
    resources: Callable[[], dict[str, int]],
) -> None:
    before = resources()
    with pytest.raises(error, match=match):
        launch_server(**kwargs)
    assert resources() == before


def test_remote_host_when_asked_for(get: Get) -> None:
    with launch_server(host="0.0.0.0", allow_remote=True, health_path="/api/health") as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.host == "0.0.0.0"
        assert get(server.url + "/api/health")[0] == 200


def test_ipv6_loopback(get: Get) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with launch_server(host="::1", health_path="/api/health") as server:
        assert server.url == f"http://[::1]:{server.port}"
        assert get(server.url + "/api/health")[0] == 200


@pytest.mark.anyio
async def test_async_start_error_is_raised_in_async_code() -> None:
    with pytest.raises(ServerStartError) as caught:
        async with launch_server("no_such_package_xyz:create_app"):
            pytest.fail("must not start")
    assert caught.value.returncode not in (None, 0)
    if caught.value.log_path:
        os.unlink(caught.value.log_path)
    await anyio.lowlevel.checkpoint()


def test_failed_binds_leave_no_descriptor_or_log(
    tmp_path: Any, resources: Callable[[], dict[str, int]], fdserver_command: list[str]
) -> None:
    """192.0.2.1 (TEST-NET-1) is on no interface here: the parent's bind fails (an ``{fd}``
    command: the parent binds on every path) before anything starts."""
    before = resources()
    for _ in range(5):
        with pytest.raises(OSError, match="assign requested address"):
            with launch_server(
                command=fdserver_command, host="192.0.2.1", allow_remote=True, log_dir=tmp_path
            ):
                pytest.fail("must not start")
    assert resources() == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("huge", [1e7, 1e9, 1e300])
def test_any_finite_timeout_works(testapp: Callable[..., Any], get: Get, huge: float) -> None:
    """Timeouts beyond what a selector takes (epoll counts milliseconds in a C int) still work."""
    with testapp(startup_timeout=huge, shutdown_timeout=huge) as server:
        assert get(server.url + "/health")[0] == 200
        assert server.stop() in (0, -signal.SIGTERM)  # a clean stop, not an instant SIGKILL


@pytest.mark.anyio
async def test_a_cancelled_start_kills_the_never_ready_server_at_once(
    testapp: Callable[..., Any], resources: Callable[[], dict[str, int]]
) -> None:
    before = resources()
    started = time.monotonic()
    with anyio.move_on_after(1.0):
        async with testapp(env={"TESTAPP_STARTUP": "hang"}, shutdown_timeout=60):
            pytest.fail("a hanging start-up must not become ready")
    assert time.monotonic() - started < 30  # not the 60 s shutdown grace
    assert resources()["children"] == before["children"]


CTRL_C_WHILE_STARTING = """
import sys
from server_launcher import launch_server

launcher = launch_server(
    "launcher_testapp:create_app",
    server_args=["--app-dir", sys.argv[1]],
    env={"TESTAPP_STARTUP": "hang"},
    shutdown_timeout=60,
    output=sys.stdout,
)
try:
    with launcher:
        pass
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_while_starting_kills_the_never_ready_server_at_once(
    apps_dir: Any, wait_gone: Callable[[int, float], bool]
) -> None:
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", CTRL_C_WHILE_STARTING, str(apps_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        server_pid = 0
        for line in proc.stdout:  # the server is up and hangs in its start-up
            if "Started server process [" in line:
                server_pid = int(line.split("[", 1)[1].split("]", 1)[0])
            if "Waiting for application startup" in line:
                break
        assert server_pid
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
        assert time.monotonic() - started < 30  # not the 60 s shutdown grace
        assert "interrupted" in rest
        assert wait_gone(server_pid, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
