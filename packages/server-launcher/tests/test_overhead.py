"""What a launch adds to the server's process tree: the server is our own child, and its only
companion is a small watchdog (our child too, in a session of its own) that holds none of its
files.

Speed and memory against a bare ``python -m uvicorn`` are measured by ``hatch run bench:launcher``;
these tests only pin the structure those numbers rely on, with generous bounds.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server_launcher import RunningServer, launch_server

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/smaps_rollup"), reason="reads the process tree from /proc"
)

Get = Callable[..., tuple[int, bytes]]


def _session(pid: int) -> list[int]:
    sid = os.getsid(pid)
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
                members.append(int(name))
    return members


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def _pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise AssertionError(f"no Pss line for {pid}")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as children:
            found += [int(child) for child in children.read().split()]
    return found


def _helpers(server: RunningServer) -> list[int]:
    return [pid for pid in _session(server.pid) if pid != server.pid]


def test_a_module_server_is_our_child_and_its_pid_is_its_own(
    testapp: Callable[..., Any], get: Get
) -> None:
    with testapp() as server:
        assert get(server.url + "/pid") == (200, str(server.pid).encode())
        assert _parent(server.pid) == os.getpid()


def test_a_command_server_is_our_child_and_its_pid_is_its_own(
    fdserver_command: list[str], get: Get
) -> None:
    with launch_server(command=fdserver_command) as server:
        assert get(server.url + "/health") == (200, str(server.pid).encode())
        assert _parent(server.pid) == os.getpid()


@pytest.mark.skipif(not os.path.exists("/bin/sh"), reason="the watchdog is /bin/sh")
def test_the_only_companion_is_a_small_watchdog_holding_nothing_of_the_servers(
    testapp: Callable[..., Any],
) -> None:
    with testapp() as server:
        assert _helpers(server) == []  # the server's session is the server alone
        # The watchdog is our child, in a session of its own, watching the server's pid.
        (watchdog,) = [
            pid
            for pid in _children(os.getpid())
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-3:-1]
            == [b"sh", str(server.pid).encode()]
        ]
        assert os.getsid(watchdog) == watchdog
        # A shell, not a second Python: a few hundred KiB where a Python process costs ~3 MiB.
        assert _pss_kib(watchdog) < 2048
        assert sys.executable.encode() not in Path(f"/proc/{watchdog}/cmdline").read_bytes()
        # Only the launcher's pipe on stdin: not the listening socket, not the status pipe.
        fds = sorted(int(fd) for fd in os.listdir(f"/proc/{watchdog}/fd"))
        assert fds == [0, 1, 2]
        assert os.readlink(f"/proc/{watchdog}/fd/0").startswith("pipe:")
        assert os.readlink(f"/proc/{watchdog}/fd/1") == os.devnull
        # And the server's stdin is not that pipe.
        assert os.readlink(f"/proc/{server.pid}/fd/0") == os.devnull
