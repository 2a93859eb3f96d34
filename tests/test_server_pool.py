"""Servers pooled by their environment: the hosted_api_env marker, hosted_api_server_factory,
the pool's bound, start failures per environment, a killed pytest, and pytest-xdist.

Every session is a real pytest subprocess running real uvicorn servers of the demo app, whose
``GET /api/env/NAME`` answers with the server's own environment. How many servers a session
started is read from the plugin's terminal summary line.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Processes  # type: ignore[import-not-found]


def _details(output: str) -> str:
    """The session's output without its short summary, whose lines repeat each error's first
    line up to the terminal width (so counts would depend on how wide the terminal is)."""
    return output.split("short test summary info", 1)[0]


pytestmark = pytest.mark.slow

ENV_HELPER = """
import httpx


def server_env(url, name):
    return httpx.get(f"{url}/env/{name}", timeout=10).json()["value"]
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:randomly", "--strict-markers", *args, timeout=120
    )


def _refuses(url: str) -> bool:
    """Whether nothing listens at the URL's port any more (a plain socket: pytester reloads
    httpcore's lazily imported modules between tests, and httpx then stops mapping its errors).
    """
    port = int(url.split(":")[2].split("/")[0])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _summary(result: pytest.RunResult) -> tuple[int, int]:
    """(servers started, servers stopped early) from the plugin's summary line."""
    text = result.stdout.str()
    found = re.search(r"pytest-bundle: (\d+) hosted API servers? started, [\d.]+ s in total", text)
    assert found, text
    early = re.search(r"; (\d+) stopped early to stay within hosted_api_pool_size", text)
    return int(found.group(1)), int(early.group(1)) if early else 0


def test_markers_on_a_module_a_class_and_a_test_choose_the_server(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(envhelper=ENV_HELPER)
    pytester.makeconftest(
        """
import pytest

@pytest.fixture(scope="session")
def hosted_api_env():
    return {"TIER": "default", "REGION": "eu", "DROPPED": "yes"}
"""
    )
    pytester.makepyfile(
        test_marked="""
import os

import pytest

from envhelper import server_env

pytestmark = pytest.mark.hosted_api_env(TIER="module", MODE="module")
URLS = {}


def test_module_marker(use_hosted_api_server, hosted_api_server):
    URLS["module"] = use_hosted_api_server
    assert os.environ["API_URL"] == use_hosted_api_server
    assert use_hosted_api_server.endswith("/api")
    assert server_env(use_hosted_api_server, "TIER") == "module"
    assert server_env(use_hosted_api_server, "MODE") == "module"
    assert server_env(use_hosted_api_server, "REGION") == "eu"  # the default env underneath
    # hosted_api_server stays the default server
    assert hosted_api_server != use_hosted_api_server
    assert server_env(hosted_api_server, "TIER") == "default"


def test_same_environment_same_server(use_hosted_api_server):
    assert use_hosted_api_server == URLS["module"]


@pytest.mark.hosted_api_env(TIER="class")
class TestClassMarker:
    def test_class_wins_over_module(self, use_hosted_api_server):
        assert server_env(use_hosted_api_server, "TIER") == "class"
        assert server_env(use_hosted_api_server, "MODE") == "module"

    @pytest.mark.hosted_api_env(TIER="test", DROPPED=None)
    def test_test_wins_over_class_and_none_removes(self, use_hosted_api_server):
        assert server_env(use_hosted_api_server, "TIER") == "test"
        assert server_env(use_hosted_api_server, "MODE") == "module"
        assert server_env(use_hosted_api_server, "DROPPED") is None
        assert server_env(use_hosted_api_server, "REGION") == "eu"
""",
        test_plain="""
from envhelper import server_env


def test_no_marker_keeps_the_default_server(use_hosted_api_server, hosted_api_server):
    assert use_hosted_api_server == hosted_api_server
    assert server_env(use_hosted_api_server, "TIER") == "default"
    assert server_env(use_hosted_api_server, "DROPPED") == "yes"
""",
    )
    result = _run(pytester)
    result.assert_outcomes(passed=5)
    # the default, the module's, the class's and the test's: each started once
    assert _summary(result) == (4, 0)
    result.stdout.fnmatch_lines(["pytest-bundle: *server pool size 4*"])


def test_the_factory_and_a_marker_reach_the_same_pooled_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(envhelper=ENV_HELPER)
    pytester.makeconftest(
        """
import pytest

@pytest.fixture(scope="session")
def beta_api(hosted_api_server_factory):
    return hosted_api_server_factory({"FEATURE": "beta"})
"""
    )
    pytester.makepyfile(
        test_factory="""
import pytest

from envhelper import server_env


def test_the_factory_serves_its_environment(beta_api):
    assert beta_api.startswith("http://127.0.0.1:") and beta_api.endswith("/api")
    assert server_env(beta_api, "FEATURE") == "beta"


@pytest.mark.hosted_api_env(FEATURE="beta")
def test_the_marker_gets_the_same_server(use_hosted_api_server, beta_api):
    assert use_hosted_api_server == beta_api


def test_no_environment_is_the_default_server(hosted_api_server_factory, hosted_api_server):
    assert hosted_api_server_factory() == hosted_api_server
    assert hosted_api_server_factory(env={}) == hosted_api_server


def test_bad_arguments_say_what_to_pass(hosted_api_server_factory):
    with pytest.raises(TypeError, match="takes a mapping of environment names to strings"):
        hosted_api_server_factory(["FEATURE=beta"])
    with pytest.raises(TypeError, match="PORT=8000 is int, but environment values are strings"):
        hosted_api_server_factory({"PORT": 8000})
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=4)
    assert _summary(result) == (2, 0)


BOUND_TESTS = """
import os
import pathlib
import time

import httpx
import pytest

from envhelper import server_env


def record(name, url):
    pathlib.Path(name + ".url").write_text(url)


@pytest.mark.hosted_api_env(SIDE="a")
def test_1_a(use_hosted_api_server):
    assert server_env(use_hosted_api_server, "SIDE") == "a"


@pytest.mark.hosted_api_env(SIDE="b")
def test_2_b(use_hosted_api_server):
    assert server_env(use_hosted_api_server, "SIDE") == "b"


@pytest.mark.hosted_api_env(SIDE="a")
def test_3_a(use_hosted_api_server):
    assert server_env(use_hosted_api_server, "SIDE") == "a"


@pytest.mark.hosted_api_env(SIDE="b")
def test_4_b(use_hosted_api_server):
    assert server_env(use_hosted_api_server, "SIDE") == "b"
    record("b", use_hosted_api_server)


@pytest.mark.hosted_api_env(SIDE="a")
def test_5_a_is_held_while_b_starts(use_hosted_api_server, hosted_api_server_factory):
    b = hosted_api_server_factory({"SIDE": "b"})  # over the bound: a is held by this test
    assert server_env(b, "SIDE") == "b"
    assert server_env(use_hosted_api_server, "SIDE") == "a"  # still running
    record("a", use_hosted_api_server)


def test_6_an_idle_server_was_stopped():
    stopped = pathlib.Path("b.url").read_text()  # b of test 4: stopped to start a in test 5
    if os.environ.get("POOL_HAS_ROOM"):  # the bound was raised: b was never stopped
        assert httpx.get(stopped + "/health", timeout=30).status_code == 200
        return
    deadline = time.monotonic() + 20  # it stops in the background: wait for that, bounded
    while True:
        try:
            httpx.get(stopped + "/health", timeout=5)
        except httpx.ConnectError:
            break
        except httpx.HTTPError:
            pass  # shutting down: the listening socket is still open
        assert time.monotonic() < deadline, "the evicted server is still serving"
        time.sleep(0.05)
"""


def test_the_bound_stops_only_idle_servers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(envhelper=ENV_HELPER, test_bound=BOUND_TESTS)
    pytester.makeini("[pytest]\nhosted_api_pool_size = 1\n")
    result = _run(pytester)
    result.assert_outcomes(passed=6)
    # a, b, a, b, a: each start stopped the other (idle) one; test 5 started b beside the held
    # a (over the bound), and one of the two was stopped when the test let go of both.
    assert _summary(result) == (6, 5)
    result.stdout.fnmatch_lines(["*stopped early to stay within hosted_api_pool_size = 1*"])
    # The command line wins over the ini file: with room for both, two starts, and test 6
    # finds b still serving.
    monkeypatch.setenv("POOL_HAS_ROOM", "1")
    roomy = _run(pytester, "--hosted-api-pool-size=2")
    roomy.assert_outcomes(passed=6)
    assert _summary(roomy) == (2, 0)
    assert "stopped early" not in roomy.stdout.str()


def test_the_default_and_a_session_fixtures_server_are_held_for_the_session(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(envhelper=ENV_HELPER)
    pytester.makeini("[pytest]\nhosted_api_pool_size = 1\n")
    pytester.makeconftest(
        """
import pytest

@pytest.fixture(scope="session")
def legacy_api(hosted_api_server_factory):
    return hosted_api_server_factory({"SIDE": "legacy"})
"""
    )
    pytester.makepyfile(
        test_held="""
import pytest

from envhelper import server_env

URLS = []


def test_default_first(hosted_api_server):
    URLS.append(hosted_api_server)


def test_legacy_first(legacy_api):
    assert server_env(legacy_api, "SIDE") == "legacy"


@pytest.mark.hosted_api_env(SIDE="a")
def test_marker_beside_them(use_hosted_api_server, hosted_api_server):
    assert server_env(use_hosted_api_server, "SIDE") == "a"
    assert server_env(hosted_api_server, "SIDE") is None


def test_default_again(use_hosted_api_server):
    assert use_hosted_api_server == URLS[0]
    assert server_env(use_hosted_api_server, "SIDE") is None


def test_legacy_still_served(legacy_api):
    assert server_env(legacy_api, "SIDE") == "legacy"
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=5)
    # Over the bound, beside the two held ones, a ran, and was stopped after its test.
    assert _summary(result) == (3, 1)


def test_a_start_failure_is_reported_once_per_environment_with_the_server_named(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        flakyapp="""
import os

from server_launcher.demo import create_app as demo_app


def create_app():
    if os.environ.get("BREAK_AT_START") == "yes":
        print("starting with API_TOKEN set", flush=True)
        raise RuntimeError("broken by BREAK_AT_START")
    return demo_app()
""",
        test_broken="""
import pytest

BROKEN = pytest.mark.hosted_api_env(BREAK_AT_START="yes", API_TOKEN="hunter2")


@BROKEN
def test_broken_0(use_hosted_api_server):
    pass


@BROKEN
def test_broken_1(use_hosted_api_server):
    pass


@BROKEN
def test_broken_2(use_hosted_api_server):
    pass


def test_default_still_works(use_hosted_api_server):
    pass


@pytest.mark.hosted_api_env(API_TOKEN="hunter2", SIDE="x")
def test_failing_under_a_marker(use_hosted_api_server):
    assert False, "the test's own failure"


def test_factory_in_the_body_points_to_the_first_error(hosted_api_server_factory):
    hosted_api_server_factory({"BREAK_AT_START": "yes", "API_TOKEN": "hunter2"})
""",
    )
    pytester.makeini("[pytest]\nhosted_api_app = flakyapp:create_app\n")
    result = _run(pytester, "--tb=short")
    result.assert_outcomes(passed=1, failed=2, errors=3)
    text = result.stdout.str()
    assert "hunter2" not in text
    label = "API_TOKEN=***, BREAK_AT_START='yes'"
    assert _details(text).count(f"the hosted API server with {label} could not start: ") == 1, text
    assert _details(text).count("RuntimeError: broken by BREAK_AT_START") == 1
    pointer = (
        f"the hosted API server with {label} could not start; see the first error, in "
        "test_broken.py::test_broken_0."
    )
    assert _details(text).count(pointer) == 3
    # The server's output, once for the failed start, and for the failing test, each named.
    details = _details(text)
    assert details.count(f"hosted API server output, server with {label} (last") == 1
    assert details.count("hosted API server output, server with API_TOKEN=***, SIDE='x' (last") == 1
    assert details.count("hosted API server output") == 2
    # The kept log of the failed start is under pytest's own temp folder.
    kept = re.search(r"full output kept in: (\S+)", text)
    assert kept, text
    assert Path(kept.group(1)).is_relative_to(pytester.path)
    started, _ = _summary(result)
    assert started == 2
    assert "; 1 failed to start" in text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes via /proc")
def test_sigkill_of_pytest_leaves_none_of_the_pooled_servers(
    pytester: pytest.Pytester,
    processes: Processes,
    start_session_until_up: Callable[[pytest.Pytester], subprocess.Popen[bytes]],
) -> None:
    marker = f"pool-{uuid.uuid4().hex}"  # only the servers' environments hold it
    pytester.makepyfile(
        test_slow=f"""
import pathlib
import time

import pytest


def test_default(hosted_api_server_factory):
    hosted_api_server_factory({{"POOL_MARK": "{marker}"}})


@pytest.mark.hosted_api_env(POOL_MARK="{marker}", SIDE="a")
def test_a(use_hosted_api_server):
    pass


@pytest.mark.hosted_api_env(POOL_MARK="{marker}", SIDE="b")
def test_long(use_hosted_api_server):
    pathlib.Path("up.txt").write_text(use_hosted_api_server)
    time.sleep(60)
"""
    )
    process = start_session_until_up(pytester)
    servers = [
        pid for pid in processes.children_of(process.pid) if pid in processes.mentioning(marker)
    ]
    assert len(servers) == 3, servers  # three environments, three servers, none stopped yet
    process.kill()
    process.communicate(timeout=30)
    for pid in servers:
        assert processes.wait_gone(pid, 30.0), f"server {pid} outlived the killed pytest"
    for pid in processes.mentioning(marker):  # nor anything the servers started
        assert processes.wait_gone(pid, 30.0), f"process {pid} outlived the killed pytest"


XDIST_TESTS = """
import json, os, pathlib
import pytest

from envhelper import server_env


def record(side, url):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    assert server_env(url, "SIDE") == (None if side == "default" else side)
    out = pathlib.Path(os.environ["RECORD_DIR"]) / f"{worker}-{side}-{os.urandom(4).hex()}.json"
    out.write_text(json.dumps({"worker": worker, "side": side, "url": url}))


@pytest.mark.parametrize("n", range(3))
@pytest.mark.hosted_api_env(SIDE="a")
def test_a(use_hosted_api_server, n):
    record("a", use_hosted_api_server)


@pytest.mark.parametrize("n", range(3))
@pytest.mark.hosted_api_env(SIDE="b")
def test_b(use_hosted_api_server, n):
    record("b", use_hosted_api_server)


@pytest.mark.parametrize("n", range(3))
def test_default(use_hosted_api_server, n):
    record("default", use_hosted_api_server)
"""


def _xdist(pytester: pytest.Pytester, records: Path, *args: str) -> pytest.RunResult:
    pytester.makepyfile(envhelper=ENV_HELPER, test_record=XDIST_TESTS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECORD_DIR", str(records))
        # --dist each: both workers run every test, so both really ask for every server.
        return _run(pytester, "-n", "2", "--dist", "each", *args)


def _urls(records: Path) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for path in records.glob("*.json"):
        record = json.loads(path.read_text())
        found.setdefault((record["worker"], record["side"]), set()).add(record["url"])
    return found


def test_xdist_workers_each_pool_their_own_servers(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    result = _xdist(pytester, tmp_path)
    result.assert_outcomes(passed=18)
    urls = _urls(tmp_path)
    assert sorted(urls) == [
        (worker, side) for worker in ("gw0", "gw1") for side in ("a", "b", "default")
    ]
    assert all(len(found) == 1 for found in urls.values())  # reused within a worker
    for side in ("a", "b", "default"):
        assert urls["gw0", side] != urls["gw1", side]
    started, _ = _summary(result)
    assert started == 6
    result.stdout.fnmatch_lines(["*(across 2 xdist workers)*"])


def test_xdist_shared_mode_shares_each_environment_and_stops_them(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    result = _xdist(pytester, tmp_path, "--hosted-api-shared")
    result.assert_outcomes(passed=18)
    urls = _urls(tmp_path)
    for side in ("a", "b", "default"):
        assert urls["gw0", side] == urls["gw1", side]
        assert len(urls["gw0", side]) == 1
    assert len({url for found in urls.values() for url in found}) == 3
    assert _summary(result) == (3, 0)
    assert all(_refuses(url) for found in urls.values() for url in found)


# Holds every worker but gw0 back until gw0 has run all its tests: gw0 starts every server,
# and the others ask for their first one only while gw0's session is ending. Under CI load one
# worker lagging the other by a few tests is the same interleaving (issue 18).
LAGGING_CONFTEST = """
import os, pathlib, time

import pytest

OUT_OF_TESTS = pathlib.Path(os.environ["RECORD_DIR"]) / "gw0-out-of-tests"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    if nextitem is None and os.environ["PYTEST_XDIST_WORKER"] == "gw0":
        OUT_OF_TESTS.write_text("")  # its session fixtures let go of its servers next


def pytest_runtest_setup(item):
    if os.environ["PYTEST_XDIST_WORKER"] != "gw0":
        deadline = time.monotonic() + 90  # only catches a hang
        while not OUT_OF_TESTS.exists():
            assert time.monotonic() < deadline, "gw0 never ran out of tests"
            time.sleep(0.01)
"""


@pytest.mark.parametrize("workers", [2, 3])
def test_xdist_shared_mode_serves_a_worker_that_asks_only_after_the_owner_ran_out_of_tests(
    pytester: pytest.Pytester, tmp_path: Path, workers: int
) -> None:
    """A worker lagging behind (here held back until gw0 has run all its tests) gets the
    servers gw0 started: gw0 waits for every worker of the run, not only for those that had
    attached to each server before it ran out of tests (issue 18)."""
    pytester.makeconftest(LAGGING_CONFTEST)
    pytester.makepyfile(envhelper=ENV_HELPER, test_record=XDIST_TESTS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECORD_DIR", str(tmp_path))
        result = _run(pytester, "-n", str(workers), "--dist", "each", "--hosted-api-shared")
    result.assert_outcomes(passed=9 * workers)
    urls = _urls(tmp_path)
    for side in ("a", "b", "default"):
        assert len({url for worker in range(workers) for url in urls[f"gw{worker}", side]}) == 1
    assert _summary(result) == (3, 0)
    assert all(_refuses(url) for found in urls.values() for url in found)


def test_xdist_shared_mode_under_a_tight_bound_leaves_nothing_running(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    result = _xdist(pytester, tmp_path, "--hosted-api-shared", "--hosted-api-pool-size=1")
    result.assert_outcomes(passed=18)
    every = {url for found in _urls(tmp_path).values() for url in found}
    assert all(_refuses(url) for url in every)


def test_a_start_failure_whose_log_was_cut_says_the_log_is_incomplete(
    pytester: pytest.Pytester,
) -> None:
    """A full disk while the kept log is written (here a 4 KiB file size limit on the session,
    which fails the write with EFBIG): the error says the log it names is incomplete, and why."""
    pytester.makepyfile(
        chattyapp="""
def create_app():
    print("x" * 20000, flush=True)
    raise RuntimeError("chatty app refuses to start")
""",
        test_chatty="""
def test_uses_it(use_hosted_api_server):
    pass
""",
    )
    pytester.makeini("[pytest]\nhosted_api_app = chattyapp:create_app\n")
    limited = (
        "import resource, signal, sys, pytest\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))\n"
        "sys.exit(pytest.main(['-p', 'no:randomly', '-p', 'no:cacheprovider', '-q']))\n"
    )
    result = pytester.run(sys.executable, "-c", limited, timeout=120)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stderr.str()[-3000:]
    text = result.stdout.str()
    cut = r"\(incomplete: File too large after 4096 bytes\)"
    kept = re.search(r"full output kept in: (\S+) " + cut, text)
    assert kept, text
    assert Path(kept.group(1)).stat().st_size == 4096
