"""The defects a review of the launcher's code found, each reproduced first."""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server_launcher import ServerStopWarning, launch_server

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"health_path": "/café"}, ValueError, "must be ASCII"),
        ({"env": {"TOKEN": "s3cr3t\0tail"}}, ValueError, "TOKEN contains a NUL byte"),
        ({"server_args": ["--x", "a\0b"]}, ValueError, "NUL byte"),
        ({"command": ["srv\0", "{port}"]}, ValueError, "NUL byte"),
    ],
)
def test_non_ascii_health_path_and_nul_bytes_are_refused_before_anything_starts(
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
    resources: Callable[[], dict[str, int]],
) -> None:
    before = resources()
    with pytest.raises(error, match=match) as caught:
        launch_server(**kwargs)
    assert "s3cr3t" not in str(caught.value)  # no secret value in the message
    assert resources() == before


def test_a_brace_in_server_args_with_a_command_is_passed_literally(
    fdserver_command: list[str],
) -> None:
    launcher = launch_server(command=fdserver_command, server_args=["{literal}", "}{", "{"])
    assert "{literal}" in repr(launcher)  # repr used to raise KeyError
    with launcher as server:
        assert server.command[-3:] == ["{literal}", "}{", "{"]
        assert server.command[:-3] != fdserver_command  # the command's own placeholders filled


# A server that says it got SIGTERM and keeps serving: its stop takes the whole grace.
STUBBORN = (
    "import signal, sys, runpy\n"
    "signal.signal(signal.SIGTERM, lambda *a: print('got SIGTERM', flush=True))\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0])\n"
)


def _thread_cpu_seconds(thread: threading.Thread) -> float | None:
    """One thread's CPU time (Linux /proc), None once it has ended or without /proc."""
    if thread.native_id is None:
        return None
    try:
        stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_a_second_stop_while_stopping_does_not_spin(apps_dir: Any) -> None:
    """The supervisor drains its control socket: it used to select() ~500k times per second."""
    grace = 6.0
    launcher = launch_server(
        command=["{python}", "-I", "-S", "-c", STUBBORN, str(apps_dir / "fdserver.py"), "{fd}"],
        shutdown_timeout=grace,
    )
    codes: list[int | None] = []
    with launcher as server, warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        first = threading.Thread(target=lambda: codes.append(server.stop()))
        first.start()
        deadline = time.monotonic() + 60
        while "got SIGTERM" not in server.output():  # the stop is under way
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.01)
        # The supervisor's own CPU time where /proc tells it (other tests' threads in this
        # xdist worker must not count), sampled until it ends; else the whole process's.
        supervisor = server._sup._thread
        before = _thread_cpu_seconds(supervisor)
        process_before = _process_cpu_seconds()
        second = threading.Thread(target=lambda: codes.append(server.stop()))
        second.start()  # the second stop, during the grace
        latest = before
        while first.is_alive() or second.is_alive():
            now = _thread_cpu_seconds(supervisor)
            latest = latest if now is None else now
            time.sleep(0.05)
        first.join(60)
        second.join(60)
        if before is not None and latest is not None:
            cpu_used = latest - before
        else:
            cpu_used = _process_cpu_seconds() - process_before
    assert codes == [-signal.SIGKILL, -signal.SIGKILL]
    assert [w.category for w in warned] == [ServerStopWarning]  # once, though stopped twice
    # Waiting out the grace is idle: a spinning supervisor burned about a core all along.
    assert cpu_used < grace / 6, f"{cpu_used:.2f} CPU seconds while waiting {grace} s"


NO_WAITID = """
import json, os, subprocess, sys, time
del os.waitid  # as on macOS
from server_launcher import _platform, launch_server, pid_alive

child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                         stdin=subprocess.PIPE)
running = pid_alive(child.pid)
child.stdin.close()
while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
    time.sleep(0.005)  # exited; unreaped (a zombie) until we wait for it
exited = pid_alive(child.pid)
child.wait()
with launch_server(health_path="/api/health") as server:
    served = pid_alive(server.pid)
stopped = server.returncode
with launch_server(health_path="/api/health") as server:
    os.kill(server.pid, 9)
    on_its_own = server.wait(timeout=60)
print(json.dumps({"running": running, "exited": exited, "served": served, "stopped": stopped,
                  "on_its_own": on_its_own, "has_waitid": _platform.HAS_WAITID}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="simulates macOS on Linux")
@pytest.mark.filterwarnings("ignore::server_launcher.ServerStopWarning")
def test_without_waitid_an_exited_child_is_gone_and_exits_are_seen() -> None:
    """macOS has no ``os.waitid``: pid_alive called the caller's own exited child alive."""
    env = {**os.environ, "SERVER_LAUNCHER_PORTABLE": "nowaitid"}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", NO_WAITID],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {
        "running": True,
        "exited": False,
        "served": True,
        "stopped": seen["stopped"],
        "on_its_own": -signal.SIGKILL,
        "has_waitid": False,
    }
    assert seen["stopped"] in (0, -signal.SIGTERM)


def test_the_nowaitid_switch_takes_the_portable_paths() -> None:
    probe = "from server_launcher import _platform as p; print(p.HAS_WAITID, p.FORCE_PORTABLE)"
    for value, expected in (("nowaitid", "False True"), ("1", f"{hasattr(os, 'waitid')} True")):
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, "SERVER_LAUNCHER_PORTABLE": value},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert done.stdout.strip() == expected


_SUBREAPER = pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or os.environ.get("SERVER_LAUNCHER_PORTABLE", "") not in ("", "0"),
    reason="Linux only (PR_SET_CHILD_SUBREAPER and /proc); the portable paths kill the group",
)


class _Stream(io.StringIO):
    """The caller's ``output=`` stream."""


def _session_helper(server: Any) -> int:
    deadline = time.monotonic() + 60
    while "helper tick" not in server.output():  # the helper runs and writes to our pipe
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.01)
    return int(server.output().split("session helper pid ")[1].split()[0])


@_SUBREAPER
def test_a_helper_the_server_starts_in_its_own_session_dies_with_the_stop(
    testapp: Callable[..., Any],
    resources: Callable[[], dict[str, int]],
    wait_gone: Callable[[int, float], bool],
) -> None:
    """start_new_session=True escaped the group's signals: it outlived the stop, kept the
    output pipe (a 2 s wait, a thread and 2 fds leaked) and kept writing to ``output=``."""
    stream = _Stream()
    before = resources()
    with testapp(env={"TESTAPP_SPAWN_SESSION": "1"}, output=stream) as server:
        helper = _session_helper(server)
    written = stream.getvalue()
    try:
        assert wait_gone(helper, 30), "the helper outlived the server"
        assert resources() == before  # the output thread ended; its pipe and log are closed
        assert stream.getvalue() == written  # nothing reached the stream after the stop
        assert "helper tick" in written
    finally:
        if not wait_gone(helper, 0):
            os.kill(helper, signal.SIGKILL)


KILLED_PARENT = """
import json, sys, time
from server_launcher import launch_server

launcher = launch_server(
    "launcher_testapp:create_app",
    server_args=["--app-dir", sys.argv[1]],
    env={"TESTAPP_SPAWN_SESSION": "1"},
)
with launcher as server:
    deadline = time.monotonic() + 60
    while "helper tick" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.01)
    helper = int(server.output().split("session helper pid ")[1].split()[0])
    print(json.dumps({"pid": server.pid, "helper": helper}), flush=True)
    time.sleep(120)
"""


@_SUBREAPER
def test_a_helper_in_its_own_session_dies_with_a_killed_launcher(
    apps_dir: Any, wait_gone: Callable[[int, float], bool]
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", KILLED_PARENT, str(apps_dir)], stdout=subprocess.PIPE, text=True
    )
    info: dict[str, int] = {}
    try:
        assert parent.stdout is not None
        info = json.loads(parent.stdout.readline())
        assert not wait_gone(info["helper"], 0.0)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        assert wait_gone(info["pid"], 30.0), "the server outlived its launcher"
        assert wait_gone(info["helper"], 30.0), "the server's own-session helper outlived it"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        for pid in info.values():
            if not wait_gone(pid, 0.0):
                os.kill(pid, signal.SIGKILL)
