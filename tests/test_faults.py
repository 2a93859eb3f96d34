"""Faults a real suite meets: broken apps, Ctrl-C, a killed pytest, a failing test.

Every case checks what the user sees (a clear message, the server's output in the report) and
that no server process is left behind (found by a marker unique to the test in its command line
or environment).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Processes  # type: ignore[import-not-found]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes via /proc"),
]


TWO_SERVER_TESTS = """
def test_one(hosted_api_server):
    pass

def test_two(hosted_api_server):
    pass
"""


@pytest.mark.parametrize(
    ("module_source", "expected"),
    [
        ("import leftpad_that_does_not_exist\n", "leftpad_that_does_not_exist"),
        (
            "def create_app():\n    raise RuntimeError('database unreachable at start-up')\n",
            "database unreachable at start-up",
        ),
    ],
    ids=["unimportable", "crashes-at-start-up"],
)
def test_a_broken_app_errors_every_test_fast_with_its_output(
    pytester: pytest.Pytester, processes: Processes, module_source: str, expected: str
) -> None:
    name = f"brokenapp_{uuid.uuid4().hex[:8]}"
    pytester.makepyfile(**{name: module_source})
    # A long start-up deadline: reporting well before it proves nobody waited for it.
    pytester.makeini(
        f"[pytest]\nhosted_api_app = {name}:create_app\nhosted_api_startup_timeout = 120\n"
    )
    pytester.makepyfile(test_broken=TWO_SERVER_TESTS)
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    elapsed = time.monotonic() - started
    result.assert_outcomes(errors=2)
    text = result.stdout.str()
    assert "hosted_api_server could not start" in text
    assert expected in text
    assert elapsed < 60, f"a child that exits at once took {elapsed:.1f}s to report"
    assert processes.mentioning(name) == []


def test_a_health_endpoint_that_never_answers_200_times_out_with_the_status(
    pytester: pytest.Pytester, processes: Processes
) -> None:
    name = f"sickapp_{uuid.uuid4().hex[:8]}"
    pytester.makepyfile(
        **{
            name: """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    print("health check refused", flush=True)
    await send({"type": "http.response.start", "status": 503, "headers": []})
    await send({"type": "http.response.body", "body": b"not yet"})
"""
        }
    )
    pytester.makeini(
        f"[pytest]\nhosted_api_app = {name}:app\nhosted_api_factory = false\n"
        "hosted_api_startup_timeout = 6\n"
    )
    pytester.makepyfile(test_sick=TWO_SERVER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    result.assert_outcomes(errors=2)
    text = result.stdout.str()
    assert "hosted_api_server could not start" in text
    assert "503" in text
    # The report carries the server's output in its own section, not only in the message.
    section = text.split("hosted API server output", 1)
    assert len(section) == 2, text
    assert "health check refused" in section[1]
    assert processes.mentioning(name) == []


def test_a_failing_test_inside_use_hosted_api_server_still_restores(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_restore="""
import os

def test_fails_inside(use_hosted_api_server):
    assert os.environ["API_URL"] == use_hosted_api_server
    raise AssertionError("boom inside the fixture")

def test_after():
    assert "API_URL" not in os.environ
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    result.assert_outcomes(passed=1, failed=1)
    assert "boom inside the fixture" in result.stdout.str()
    # The failing test's report carries the server's output.
    assert "hosted API server output" in result.stdout.str()


StartSession = Callable[[pytest.Pytester], "subprocess.Popen[bytes]"]

SLOW_SESSION = """
import time

def test_server_up(hosted_api_server):
    import pathlib
    pathlib.Path("up.txt").write_text(hosted_api_server)

def test_long(hosted_api_server):
    time.sleep(60)
"""


def _server_and_watchdog(processes: Processes, pytest_pid: int) -> tuple[int, int]:
    """The session's one server and its watchdog: both pytest's children; the watchdog's last
    argument is the pid of the server it watches."""
    children = processes.children_of(pytest_pid)
    watchdogs = [pid for pid in children if _last_argument(pid) in {str(c) for c in children}]
    servers = [pid for pid in children if pid not in watchdogs]
    assert len(servers) == 1, children
    assert len(watchdogs) == 1, children
    return servers[0], watchdogs[0]


def _last_argument(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-2].decode()
    except (OSError, IndexError):
        return ""


def test_ctrl_c_mid_session_stops_the_server(
    pytester: pytest.Pytester, processes: Processes, start_session_until_up: StartSession
) -> None:
    pytester.makepyfile(test_slow=SLOW_SESSION)
    process = start_session_until_up(pytester)
    server, watchdog = _server_and_watchdog(processes, process.pid)
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=30)[0].decode()
    assert "KeyboardInterrupt" in output
    assert processes.wait_gone(server, 30.0), f"server {server} survived Ctrl-C"
    assert processes.wait_gone(watchdog, 30.0), f"watchdog {watchdog} survived Ctrl-C"


def test_sigkill_of_pytest_leaves_no_server(
    pytester: pytest.Pytester, processes: Processes, start_session_until_up: StartSession
) -> None:
    pytester.makepyfile(test_slow=SLOW_SESSION)
    process = start_session_until_up(pytester)
    server, watchdog = _server_and_watchdog(processes, process.pid)
    process.kill()
    process.communicate(timeout=30)
    assert processes.wait_gone(server, 30.0), f"server {server} outlived the killed pytest"
    # Its work done (the server's group killed), the watchdog exits too.
    assert processes.wait_gone(watchdog, 30.0), f"watchdog {watchdog} outlived the killed pytest"


@pytest.mark.parametrize(
    ("ini", "app_source", "expected"),
    [
        (
            "hosted_api_prefix = /v2\n",
            "from server_launcher.demo import create_app\n",  # serves /api, not /v2
            "its health path /v2/health answered 404 after the app's start-up completed",
        ),
        (
            "",
            "def create_app():\n    return {'not': 'an ASGI app'}\n",
            "every request failed with 'Exception in ASGI application' (TypeError: ",
        ),
    ],
    ids=["wrong-prefix", "not-asgi"],
)
def test_a_start_the_output_already_settles_fails_fast_with_a_hint(
    pytester: pytest.Pytester, processes: Processes, ini: str, app_source: str, expected: str
) -> None:
    name = f"wrongapp_{uuid.uuid4().hex[:8]}"
    pytester.makepyfile(**{name: app_source})
    # A long start-up deadline: failing well before it proves nobody waited for it.
    pytester.makeini(
        f"[pytest]\nhosted_api_app = {name}:create_app\nhosted_api_startup_timeout = 120\n{ini}"
    )
    pytester.makepyfile(test_wrong=TWO_SERVER_TESTS)
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=110)
    elapsed = time.monotonic() - started
    result.assert_outcomes(errors=2)
    text = result.stdout.str()
    assert f"hosted_api_server could not start: {expected}" in text, text
    assert elapsed < 60, f"took {elapsed:.1f}s: the start-up timeout was waited out"
    assert processes.mentioning(name) == []
