"""Shared helpers for the server-launcher tests (importlib mode: fixtures, not imports)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from server_launcher import ServerLauncher, launch_server, pid_alive

APPS = Path(__file__).parent / "apps"


@pytest.fixture(autouse=True)
def _logs_in_pytest_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Logs a failing launch keeps go to this test's tmp_path (pytest's retention cleans it),
    never into the system temp folder: in this process, and (TMPDIR) in the launchers the
    tests start as subprocesses, e.g. the parents the orphan tests kill."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def cpu_burners() -> Iterator[list[int]]:
    """Two busy-loop processes (one per core here) for the test's duration: a loaded machine."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", "while True: pass"], stdin=subprocess.DEVNULL
        )
        for _ in range(2)
    ]
    try:
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def apps_dir() -> Path:
    return APPS


@pytest.fixture
def testapp() -> Callable[..., ServerLauncher]:
    """``testapp(TESTAPP_X="1", ..., **launch_kwargs)``: the misbehaving test app."""

    def launch(env: dict[str, str | None] | None = None, **kwargs: Any) -> ServerLauncher:
        return launch_server(
            "launcher_testapp:create_app",
            server_args=["--app-dir", str(APPS), *kwargs.pop("server_args", ())],
            env=env,
            **kwargs,
        )

    return launch


@pytest.fixture
def fdserver_command() -> list[str]:
    """A tiny stdlib server taking the listening socket by fd; starts in milliseconds."""
    return ["{python}", "-I", "-S", str(APPS / "fdserver.py"), "{fd}"]


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def get() -> Callable[..., tuple[int, bytes]]:
    """``get(url) -> (status, body)`` with the standard library."""
    return _get


def _gone(pid: int) -> bool:
    """No such process, or only a zombie (whose reaping is up to its new parent)."""
    return not pid_alive(pid)


def _wait_gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _gone(pid):
            return True
        time.sleep(0.01)
    return _gone(pid)


@pytest.fixture
def wait_gone() -> Callable[[int, float], bool]:
    """``wait_gone(pid, timeout) -> bool``: the process is gone (or a zombie) in time."""
    return _wait_gone


def _resources() -> dict[str, int]:
    children = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                children += len(f.read().split())
        except OSError:
            pass
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        # trio's guest mode (anyio's pytest runner) keeps an I/O thread of its own: not ours
        "threads": sum(not t.name.startswith("Trio thread") for t in threading.enumerate()),
        "children": children,
    }


@pytest.fixture
def resources() -> Callable[[], dict[str, int]]:
    """A snapshot of this process's open fds, live threads and child processes (Linux)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("counts resources through /proc")
    return _resources
