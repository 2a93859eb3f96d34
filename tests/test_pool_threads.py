"""The pool under threads and crashes: hosted_api_server_factory from many threads at once, a
server that dies during the session, and the errors a test can catch.

Every session is a real pytest subprocess running real uvicorn servers.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches processes via /proc"),
]


def _run(pytester: pytest.Pytester, *args: str, timeout: float = 120) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:randomly", "--strict-markers", *args, timeout=timeout
    )


def _started(result: pytest.RunResult) -> int:
    found = re.search(r"pytest-bundle: (\d+) hosted API servers? started", result.stdout.str())
    assert found, result.stdout.str()
    return int(found.group(1))


# An app whose server a test can crash: GET /api/crash ends the process with exit code 3 after
# saying so; GET /api/pid answers with its process id; BREAK_AT_START=yes refuses to start.
CRASHAPP = """
import os

from server_launcher.demo import create_app as demo_app


def create_app():
    if os.environ.get("BREAK_AT_START") == "yes":
        print("refusing to start: BREAK_AT_START", flush=True)
        raise RuntimeError("broken by BREAK_AT_START")
    demo = demo_app()

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/api/crash":
            print("crashing on purpose", flush=True)
            os._exit(3)
        if scope["type"] == "http" and scope["path"] == "/api/pid":
            body = str(os.getpid()).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        await demo(scope, receive, send)

    return app
"""

CRASH_HELPER = """
import pathlib
import time

import httpx


def alive(pid):
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def crash(url):
    \"\"\"Crash the server behind url and wait (bounded) until its process has exited.\"\"\"
    pid = int(httpx.get(url + "/pid", timeout=10).text)
    try:
        httpx.get(url + "/crash", timeout=10)
    except httpx.HTTPError:
        pass
    deadline = time.monotonic() + 30
    while alive(pid):
        assert time.monotonic() < deadline, "the server did not exit"
        time.sleep(0.01)
"""


def test_eight_threads_at_first_use_get_one_live_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_threads="""
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx


def test_same_environment_from_eight_threads(hosted_api_server_factory):
    barrier = threading.Barrier(8)

    def ask(_):
        barrier.wait(timeout=60)
        return hosted_api_server_factory({"SIDE": "x"})

    with ThreadPoolExecutor(8) as threads:
        urls = list(threads.map(ask, range(8)))
    assert len(set(urls)) == 1, urls
    assert httpx.get(urls[0] + "/env/SIDE", timeout=10).json()["value"] == "x"


def test_three_environments_from_eight_threads(hosted_api_server_factory):
    barrier = threading.Barrier(8)
    sides = ["p", "q", "r"]

    def ask(thread):
        barrier.wait(timeout=60)
        side = sides[thread % 3]
        url = hosted_api_server_factory({"SIDE": side})
        return side, url, httpx.get(url + "/env/SIDE", timeout=10).json()["value"]

    with ThreadPoolExecutor(8) as threads:
        answers = list(threads.map(ask, range(8)))
    for side, url, seen in answers:
        assert seen == side, (side, url)
    assert len({url for _, url, _ in answers}) == 3
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=2)
    assert _started(result) == 4  # x, then p, q and r: one server each, never two


def test_a_dead_server_is_reported_once_and_replaced(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(crashapp=CRASHAPP, crashhelper=CRASH_HELPER)
    pytester.makeini("[pytest]\nhosted_api_app = crashapp:create_app\n")
    pytester.makepyfile(
        test_crash="""
import os
import pathlib

import httpx
import pytest
import server_launcher

from crashhelper import crash
from pytest_bundle import HostedApiServerError


def test_1_crash_the_default_server(hosted_api_server):
    pathlib.Path("default.url").write_text(hosted_api_server)
    crash(hosted_api_server)


def test_2_the_next_user_gets_the_error(hosted_api_server):
    pass


def test_3_use_hosted_api_server_gets_the_new_server(use_hosted_api_server):
    assert httpx.get(use_hosted_api_server + "/health", timeout=10).status_code == 200
    assert os.environ["API_URL"] == use_hosted_api_server


def test_3b_the_cached_url_is_served_again_or_the_error_says_why(hosted_api_server):
    # The new server listens on the old address unless the kernel still holds it for the dead
    # server's connections (TIME_WAIT); then this test errors saying so (checked outside).
    assert hosted_api_server == pathlib.Path("default.url").read_text()
    assert httpx.get(hosted_api_server + "/health", timeout=10).status_code == 200


def test_4_crash_a_pooled_server(hosted_api_server_factory):
    crash(hosted_api_server_factory({"SIDE": "a"}))


def test_5_the_next_ask_raises_a_catchable_error(hosted_api_server_factory):
    with pytest.raises(HostedApiServerError) as caught:
        hosted_api_server_factory({"SIDE": "a"})
    error = caught.value
    assert isinstance(error, server_launcher.ServerStartError)
    assert error.test == "test_crash.py::test_4_crash_a_pooled_server"
    assert error.server == "the hosted API server with SIDE='a'"
    assert "crashing on purpose" in error.output_tail
    assert "exit code 3" in str(error)


def test_6_later_asks_get_a_fresh_server(hosted_api_server_factory):
    url = hosted_api_server_factory({"SIDE": "a"})
    assert httpx.get(url + "/env/SIDE", timeout=10).json()["value"] == "a"


def test_7_the_default_server_still_serves(hosted_api_server_factory):
    assert httpx.get(hosted_api_server_factory() + "/health", timeout=10).status_code == 200
"""
    )
    result = _run(pytester)
    text = result.stdout.str()
    if "ERROR at setup of test_3b" in text:  # the old port was still held: said so, clearly
        result.assert_outcomes(passed=6, errors=2)
        result.stdout.fnmatch_lines(
            [
                "*hosted_api_server died, and the new server could not listen on the old "
                "address http://127.0.0.1:*/api, which this test got from the session-scoped "
                "hosted_api_server fixture: *use use_hosted_api_server or "
                "hosted_api_server_factory()*"
            ]
        )
    else:
        result.assert_outcomes(passed=7, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_2_the_next_user_gets_the_error*",
            "*hosted_api_server died during test_crash.py::test_1_crash_the_default_server: "
            "it exited on its own with exit code 3.*same address*",
        ]
    )
    assert "crashing on purpose" in text.split("ERROR at setup of test_2", 1)[1]
    assert _started(result) == 4  # the default twice, the pooled one twice
    assert "ConnectError" not in text


def test_a_start_failure_from_the_factory_is_catchable_and_short_each_time(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(crashapp=CRASHAPP)
    pytester.makeini("[pytest]\nhosted_api_app = crashapp:create_app\n")
    pytester.makepyfile(
        test_catch="""
import traceback

import server_launcher

from pytest_bundle import HostedApiServerError

BROKEN = {"BREAK_AT_START": "yes", "API_TOKEN": "hunter2"}
SEEN = []


def ask(factory):
    try:
        factory(BROKEN)
    except Exception as error:  # a pytest outcome would escape this
        return error
    raise AssertionError("the broken server started")


def test_caught_with_except_exception(hosted_api_server_factory):
    error = ask(hosted_api_server_factory)
    assert isinstance(error, HostedApiServerError)
    assert isinstance(error, server_launcher.ServerStartError)
    assert "broken by BREAK_AT_START" in str(error)
    assert "hunter2" not in str(error)
    SEEN.append(error)


def test_every_later_ask_gets_a_new_short_error(hosted_api_server_factory):
    errors = [ask(hosted_api_server_factory) for _ in range(5)]
    assert all(error is not SEEN[0] for error in errors)
    assert len({id(error) for error in errors}) == 5
    depths = {len(traceback.extract_tb(error.__traceback__)) for error in errors}
    assert len(depths) == 1, depths  # the traceback never grows
    assert depths.pop() <= len(traceback.extract_tb(SEEN[0].__traceback__))


def test_uncaught_it_is_reported_without_a_traceback(hosted_api_server_factory):
    hosted_api_server_factory(BROKEN)
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    text = result.stdout.str()
    assert "hunter2" not in text
    # Caught errors were never reported: the uncaught one is, in full and once, as a plain
    # failure (no traceback through the plugin's frames).
    uncaught = text.split("test_uncaught_it_is_reported_without_a_traceback _", 1)[1]
    uncaught = uncaught.split("short test summary info", 1)[0]  # CI leaves the summary whole
    assert uncaught.count("could not start: the server exited with exit code 1") == 1
    assert "refusing to start: BREAK_AT_START" in uncaught
    assert "pytest_bundle/" not in uncaught


def test_a_hook_error_is_reported_at_the_test_not_in_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        test_unraisable="""
import gc


class Broken:
    def __del__(self):
        raise ValueError("raised in __del__")


def test_leaves_an_unraisable_exception():
    Broken()
    gc.collect()
"""
    )
    result = _run(pytester, "-p", "no:asyncio")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "raised in __del__" in text
    assert "pytest_bundle" not in text, text


@contextlib.contextmanager
def _burners(count: int) -> Iterator[None]:
    """``count`` busy-loop processes, killed and reaped on the way out."""
    procs = [
        subprocess.Popen([sys.executable, "-I", "-S", "-c", "while True: pass"])
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


# The demo app, plus: a file serving/PID while the server serves (made when its start-up is
# complete, removed when it is told to stop: uvicorn's lifespan shutdown comes only after its
# next 0.1 s tick and its connections' close, and a new server can start before that),
# GET /api/pid, and a lifespan shutdown that takes SHUTDOWN_SLEEP seconds (an app that closes
# slow resources), or with SHUTDOWN_UNTIL_RELEASED set, marks itself in stopping/ and waits
# until a test writes the file "released" (at most 100 s).
LIFEAPP = """
import os
import pathlib
import signal
import time

from server_launcher.demo import create_app as demo_app


def create_app():
    demo = demo_app()
    mark = pathlib.Path("serving") / str(os.getpid())

    def told_to_stop(handler):
        # Called by uvicorn's config.load(), after it installed its handlers: ours runs first.
        def handle(signum, frame):
            mark.unlink(missing_ok=True)
            handler(signum, frame)
        return handle

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, told_to_stop(signal.getsignal(signum)))

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    mark.parent.mkdir(exist_ok=True)
                    mark.touch()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    mark.unlink(missing_ok=True)
                    if os.environ.get("SHUTDOWN_UNTIL_RELEASED"):
                        stopping = pathlib.Path("stopping") / str(os.getpid())
                        stopping.parent.mkdir(exist_ok=True)
                        stopping.touch()
                        deadline = time.monotonic() + 100
                        while not pathlib.Path("released").exists():
                            if time.monotonic() > deadline:
                                break
                            time.sleep(0.02)
                    time.sleep(float(os.environ.get("SHUTDOWN_SLEEP", "0")))
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "http" and scope["path"] == "/api/pid":
            body = str(os.getpid()).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        await demo(scope, receive, send)

    return app
"""

STRESS = """
import pathlib
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

ENVIRONMENTS = [{"SIDE": "a"}, {"SIDE": "b"}, {"SIDE": "c"}]
THREADS = ThreadPoolExecutor(8)  # the same 8 threads make every call: 50 calls each
CLIENT = httpx.Client(timeout=30)  # one client: a new one per request costs its SSL context
PEAK = [0]
STOP = threading.Event()


def servers_alive():
    \"\"\"Servers that serve; one told to stop (its shutdown under way) serves no more.\"\"\"
    try:
        return len(list(pathlib.Path("serving").iterdir()))
    except FileNotFoundError:
        return 0


def watch():
    while not STOP.is_set():
        PEAK[0] = max(PEAK[0], servers_alive())
        STOP.wait(0.005)


@pytest.fixture(scope="module", autouse=True)
def peak():
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    yield
    STOP.set()
    watcher.join()
    pathlib.Path("peak.txt").write_text(str(PEAK[0]))


@pytest.mark.parametrize("round", range(5))
def test_round(hosted_api_server_factory, round):
    pair = [ENVIRONMENTS[round % 3], ENVIRONMENTS[(round + 1) % 3]]
    barrier = threading.Barrier(8)

    def calls(thread):
        barrier.wait(timeout=60)
        answers = []
        for call in range(10):
            env = pair[(thread + call) % 2]
            url = hosted_api_server_factory(env)
            seen = CLIENT.get(url + "/env/SIDE").json()["value"]
            answers.append((env["SIDE"], url, seen))
        return answers

    futures = [THREADS.submit(calls, thread) for thread in range(8)]
    answers = [answer for future in futures for answer in future.result(timeout=120)]
    assert len(answers) == 80
    for side, url, seen in answers:
        assert seen == side, (side, url)
    for side in {side for side, _, _ in answers}:
        assert len({url for s, url, _ in answers if s == side}) == 1
"""


def test_stress_eight_threads_three_environments_pool_of_two_under_load(
    pytester: pytest.Pytester,
) -> None:
    """8 threads x 50 factory calls over 3 environments, pool size 2, beside two CPU burners:
    every returned URL answers with its environment, and never more than 2 servers serve (an
    evicted one stops in the background: from SIGTERM on it serves nothing and is not counted).
    """
    pytester.makepyfile(test_stress=STRESS, lifeapp=LIFEAPP)
    pytester.makeini("[pytest]\nhosted_api_pool_size = 2\nhosted_api_app = lifeapp:create_app\n")
    with _burners(2):
        result = _run(pytester, "-q", timeout=110)
    result.assert_outcomes(passed=5)
    assert int((pytester.path / "peak.txt").read_text()) <= 2
    assert int((pytester.path / "peak.txt").read_text()) >= 1


SLOW_SHUTDOWN = """
import pathlib
import time

import httpx
import pytest


@pytest.mark.parametrize("side", ["a", "b"] * 5)
def test_switch(hosted_api_server_factory, side, request):
    url = hosted_api_server_factory({"SIDE": side})
    assert httpx.get(url + "/env/SIDE", timeout=30).json()["value"] == side
    pid = httpx.get(url + "/pid", timeout=30).text
    index = request.node.callspec.indices["side"]
    # Every server evicted before this test is inside its shutdown, which none can finish before
    # the last test releases them: this test ran without waiting for any of them. (Wait for each
    # evicted server to say so: its stop was only asked for.)
    deadline = time.monotonic() + 60
    while len(held := list(pathlib.Path("stopping").glob("*"))) < index:
        assert time.monotonic() < deadline, f"{len(held)} servers stopping, {index} evicted"
        time.sleep(0.02)
    with pathlib.Path("progress.txt").open("a") as progress:
        progress.write(f"{index} {pid} {len(held)}\\n")
    if index == 9:
        pathlib.Path("released").touch()
"""


@pytest.mark.parametrize(
    "mode", [[], ["-n", "1", "--hosted-api-shared"]], ids=["per-process", "shared"]
)
def test_switches_at_pool_size_one_do_not_wait_for_a_slow_shutdown(
    pytester: pytest.Pytester, mode: list[str]
) -> None:
    """Pool size 1, tests alternating two environments of an app whose shutdown lasts until the
    last test releases it: every test runs while the servers evicted before it are still
    stopping (in the background), the summary counts each stop, and the session leaves no server
    running; also in shared mode, where the worker that started a server retires it."""
    pytester.makepyfile(test_slow=SLOW_SHUTDOWN, lifeapp=LIFEAPP)
    pytester.makeini(
        "[pytest]\nhosted_api_pool_size = 1\nhosted_api_app = lifeapp:create_app\n"
        "hosted_api_server_env = SHUTDOWN_UNTIL_RELEASED=1\nhosted_api_shutdown_timeout = 110\n"
    )
    result = _run(pytester, "-q", "-p", "no:randomly", *mode, timeout=110)
    result.assert_outcomes(passed=10)
    switches = 9
    progress = [line.split() for line in (pytester.path / "progress.txt").read_text().splitlines()]
    # Waiting for a shutdown on the test's path would hang the next test until the release that
    # only the last test gives (the run's timeout would fire); instead test i sees i servers
    # still stopping.
    assert [int(held) for _, _, held in progress] == list(range(switches + 1))
    found = re.search(
        r"; (\d+) stopped early to stay within hosted_api_pool_size = 1 \(([\d.]+) s stopping "
        r"them, in the background\)",
        result.stdout.str(),
    )
    assert found, result.stdout.str()
    assert int(found.group(1)) == switches
    pids = {int(pid) for _, pid, _ in progress}
    assert len(pids) == switches + 1
    assert not [pid for pid in pids if _alive(pid)]  # session end waited for every stop


def _alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_a_shared_server_that_died_is_named_as_exited_not_its_worker(
    pytester: pytest.Pytester,
) -> None:
    """Shared mode: the server dies while the worker that started it runs on; a later test that
    asks for it fails saying the server exited (not that its worker died), and the run ends."""
    pytester.makepyfile(crashapp=CRASHAPP, crashhelper=CRASH_HELPER)
    pytester.makeini("[pytest]\nhosted_api_app = crashapp:create_app\n")
    pytester.makepyfile(
        test_shared_crash="""
from crashhelper import crash


def test_1_crash_the_shared_server(hosted_api_server):
    crash(hosted_api_server)


def test_2_the_next_user_is_told(hosted_api_server):
    pass
"""
    )
    result = _run(pytester, "-n", "1", "--hosted-api-shared", "-rf", timeout=180)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "hosted_api_server: the shared server has exited: it no longer accepts "
            "connections, though xdist worker gw0 (pid *), which started it, runs on*",
            "*exited on its own with exit code 3 while it was in use; its output is kept in*",
            "FAILED test_shared_crash.py::test_2_the_next_user_is_told*",
        ]
    )
    assert "has died (the server stops with the process" not in result.stdout.str()
