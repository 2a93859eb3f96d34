"""No server outlives its parent, even when the parent is killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from server_launcher import RunningServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

PARENT = """
import json, sys, time
import anyio
from server_launcher import launch_server

mode, apps = sys.argv[1], sys.argv[2]
launcher = launch_server(
    "launcher_testapp:create_app",
    server_args=["--app-dir", apps],
    env={"TESTAPP_SPAWN_CHILD": "1"},
)

def report(server, **extra):
    deadline = time.monotonic() + 30  # the app may print its line just after it is ready
    while "grandchild pid " not in server.output() and time.monotonic() < deadline:
        time.sleep(0.01)
    grandchild = int(server.output().split("grandchild pid ")[1].split()[0])
    info = {"pid": server.pid, "port": server.port, "grandchild": grandchild, **extra}
    print(json.dumps(info), flush=True)

if mode == "forked":  # a fork()ed copy of the launcher (a multiprocessing worker) lives on
    import os
    with launcher as server:
        copy = os.fork()
        if copy == 0:
            time.sleep(120)
            os._exit(0)
        report(server, copy=copy)
        time.sleep(120)
elif mode == "sync":
    with launcher as server:
        report(server)
        time.sleep(120)
else:
    async def main():
        async with launcher as server:
            report(server)
            await anyio.sleep(120)
    anyio.run(main, backend=mode)
"""


@pytest.mark.parametrize("mode", ["sync", "asyncio", "trio", "forked"])
def test_server_and_its_children_die_with_a_killed_parent(
    mode: str, apps_dir: Path, wait_gone: Callable[[int, float], bool]
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, mode, str(apps_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    info: dict[str, int] = {}
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line, "the parent did not start its server"
        info = json.loads(line)
        assert not wait_gone(info["pid"], 0.0)
        assert not wait_gone(info["grandchild"], 0.0)
        if mode != "sync":
            time.sleep(0.3)  # the async start is long done: its task's thread is not the anchor
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        # Generous bounds that only catch a server left running (it dies at once when quiet).
        assert wait_gone(info["pid"], 30.0), "the server outlived its parent"
        assert wait_gone(info["grandchild"], 30.0), "the server's child outlived it"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", info["port"]), timeout=1).close()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        for key in ("pid", "grandchild", "copy"):
            if key in info and not wait_gone(info[key], 0.0):
                os.kill(info[key], signal.SIGKILL)  # never leave one behind, even on failure


def test_server_outlives_the_short_lived_thread_that_started_it(
    testapp: Callable[..., Any], get: Callable[..., tuple[int, bytes]]
) -> None:
    """Nothing ties the server to the caller's thread (a PR_SET_PDEATHSIG would follow it)."""
    launcher = testapp()
    started: list[RunningServer] = []
    thread = threading.Thread(target=lambda: started.append(launcher.__enter__()))
    thread.start()
    thread.join()
    try:
        time.sleep(0.3)
        assert get(started[0].url + "/health")[0] == 200
    finally:
        launcher.__exit__(None, None, None)


@pytest.mark.anyio
async def test_async_server_outlives_a_worker_thread_start(
    testapp: Callable[..., Any], get: Callable[..., tuple[int, bytes]]
) -> None:
    launcher = testapp()
    server = await anyio.to_thread.run_sync(launcher.__enter__)
    try:
        await anyio.sleep(0.3)
        status, _ = await anyio.to_thread.run_sync(get, server.url + "/health")
        assert status == 200
    finally:
        await anyio.to_thread.run_sync(launcher.__exit__, None, None, None)


@pytest.mark.parametrize("flavour", ["sh", "sh-tree", "python"])
def test_the_watchdog_ignores_the_stop_signals_and_kills_the_group_when_the_pipe_closes(
    flavour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog kills the server's group when its pipe reaches EOF (its launcher died), and
    survives the signals a stop or a terminal sends. ``sh-tree`` is the Linux script (it walks
    ``/proc`` first); ``python`` is the one used where there is no ``/bin/sh``."""
    from server_launcher import _watchdog

    if flavour == "python":
        monkeypatch.setattr(_watchdog, "_SH", "/nonexistent/sh")
    elif not os.path.exists("/bin/sh"):
        pytest.skip("no /bin/sh")
    if flavour == "sh-tree" and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    sleeper = [sys.executable, "-I", "-S", "-c", "import time; time.sleep(60)"]
    # A process group of its own (like a server's), which a second process then joins.
    leader = subprocess.Popen(sleeper, preexec_fn=os.setpgrp)
    member = subprocess.Popen(sleeper, preexec_fn=lambda: os.setpgid(0, leader.pid))
    watchdog = _watchdog.Watchdog(leader.pid, tree=flavour == "sh-tree")
    try:
        _wait_ignoring(watchdog.pid, (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            os.kill(watchdog.pid, sig)
        assert watchdog._proc.poll() is None  # it ignored them...
        assert leader.poll() is None  # ...and did nothing
        assert member.poll() is None
        os.close(watchdog.lifeline)  # what the kernel does when the launcher dies
        assert leader.wait(timeout=30) == -signal.SIGKILL
        assert member.wait(timeout=30) == -signal.SIGKILL
        assert watchdog._proc.wait(timeout=30) == 0  # its own session: it outlives the kill
    finally:
        for proc in (leader, member, watchdog._proc):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _wait_ignoring(pid: int, signals: tuple[int, ...]) -> None:
    """Until process ``pid`` ignores ``signals`` (read from /proc; elsewhere, a second)."""
    status = f"/proc/{pid}/status"
    if not os.path.exists(status):
        time.sleep(1.0)
        return
    wanted = sum(1 << (sig - 1) for sig in signals)
    deadline = time.monotonic() + 30  # generous: only catches a watchdog that never gets there
    while time.monotonic() < deadline:
        with open(status) as lines:
            ignored = next(int(line.split()[1], 16) for line in lines if line.startswith("SigIgn:"))
        if ignored & wanted == wanted:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never ignored signals {signals}")
