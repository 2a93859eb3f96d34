"""Fixtures shared by the cross-package tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"


@pytest.fixture
def shopapp(pytester: pytest.Pytester) -> Path:
    """Copy the realistic application into the pytester project; return its folder."""
    target = pytester.path / "shopapp"
    shutil.copytree(APPS / "shopapp", target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


class Processes:
    """Looks at this machine's processes through /proc (Linux), and cleans up after a test."""

    def __init__(self) -> None:
        self.to_kill: list[int] = []

    @staticmethod
    def alive(pid: int) -> bool:
        """True while the process exists and is not a zombie."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    @staticmethod
    def _pids() -> Iterator[int]:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                yield int(entry.name)

    def mentioning(self, marker: str) -> list[int]:
        """Live pids whose command line or environment contain the marker."""
        found = []
        for pid in self._pids():
            try:
                blob = Path(f"/proc/{pid}/cmdline").read_bytes()
                blob += Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if marker.encode() in blob and self.alive(pid):
                found.append(pid)
        return found

    def children_of(self, parent: int) -> list[int]:
        children = []
        for pid in self._pids():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                children.append(pid)
        return children

    def wait_gone(self, pid: int, within: float) -> bool:
        """Wait (bounded) until the pid is gone; remember it for killing if it is not."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.alive(pid):
                return True
            time.sleep(0.02)
        self.to_kill.append(pid)
        return False


@pytest.fixture
def processes() -> Iterator[Processes]:
    if not Path("/proc/self/stat").exists():
        pytest.skip("finds processes through /proc (Linux); the macOS leg skips it by design")
    watcher = Processes()
    yield watcher
    for pid in watcher.to_kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _start_session_until_up(pytester: pytest.Pytester) -> subprocess.Popen[bytes]:
    """Run pytest in pytester's folder as a real process; return once a test wrote up.txt."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not (pytester.path / "up.txt").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(process.communicate()[0].decode())
        time.sleep(0.02)
    return process


@pytest.fixture
def start_session_until_up() -> Callable[[pytest.Pytester], subprocess.Popen[bytes]]:
    """``start_session_until_up(pytester)``: a pytest process whose test wrote up.txt."""
    return _start_session_until_up
