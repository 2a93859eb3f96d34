"""The hosted server under real pytest-xdist workers: one per worker, or one shared by all."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest


def _details(output: str) -> str:
    """The session's output without its short summary, whose lines repeat each error's first
    line up to the terminal width (so counts would depend on how wide the terminal is)."""
    return output.split("short test summary info", 1)[0]


pytestmark = pytest.mark.slow

RECORDING_TESTS = """
import json, os, pathlib
import pytest

@pytest.mark.parametrize("n", range(6))
def test_record(use_hosted_api_server, n):
    import httpx
    assert httpx.get(use_hosted_api_server + "/health").json() is True
    record = {"worker": os.environ["PYTEST_XDIST_WORKER"], "url": use_hosted_api_server}
    out = pathlib.Path(os.environ["RECORD_DIR"]) / f"{record['worker']}-{n}.json"
    out.write_text(json.dumps(record))
"""


def _records(folder: Path) -> list[dict[str, str]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def _run(pytester: pytest.Pytester, records: Path, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_record=RECORDING_TESTS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECORD_DIR", str(records))
        # --dist each: both workers run every test, so both really ask for a server.
        return pytester.runpytest_subprocess(
            "-n", "2", "--dist", "each", "-p", "no:randomly", *args, timeout=120
        )


def test_every_worker_gets_its_own_server(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = _run(pytester, tmp_path)
    result.assert_outcomes(passed=12)
    urls_by_worker: dict[str, set[str]] = {}
    for record in _records(tmp_path):
        urls_by_worker.setdefault(record["worker"], set()).add(record["url"])
    assert sorted(urls_by_worker) == ["gw0", "gw1"]
    assert all(len(urls) == 1 for urls in urls_by_worker.values())
    first, second = (urls.pop() for urls in urls_by_worker.values())
    assert first != second


def test_shared_mode_gives_all_workers_one_server_and_stops_it(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    result = _run(pytester, tmp_path, "--hosted-api-shared")
    result.assert_outcomes(passed=12)
    records = _records(tmp_path)
    assert {record["worker"] for record in records} == {"gw0", "gw1"}
    assert len({record["url"] for record in records}) == 1
    url = records[0]["url"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health", timeout=2)


def test_shared_mode_refuses_workers_with_a_different_environment(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makeconftest(
        """
import os
import pathlib
import pytest

@pytest.fixture(scope="session")
def hosted_api_env():
    return {"DATABASE": "db-for-" + os.environ["PYTEST_XDIST_WORKER"]}

def pytest_runtest_logreport(report):
    # The refused worker says so, so that the owner (whose tests run) can wait for it.
    if report.when == "setup" and report.failed:
        pathlib.Path(os.environ["BARRIER_DIR"], "refused").touch()
"""
    )
    pytester.makepyfile(
        test_env="""
import os
import pathlib
import time
import pytest

@pytest.mark.parametrize("n", range(4))
def test_uses_server(hosted_api_server, n):
    # The owner stays alive until the other worker has asked for the server (and was refused).
    deadline = time.monotonic() + 60
    while not pathlib.Path(os.environ["BARRIER_DIR"], "refused").exists():
        assert time.monotonic() < deadline, "the other worker never asked for the server"
        time.sleep(0.02)
"""
    )
    # --dist each: both workers run every test, so both ask for the shared server.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BARRIER_DIR", str(tmp_path))
        result = pytester.runpytest_subprocess(
            "-n", "2", "--dist", "each", "--hosted-api-shared", "-p", "no:randomly", timeout=120
        )
    result.assert_outcomes(passed=4, errors=4)
    assert "shared mode (--hosted-api-shared) cannot serve" in result.stdout.str()


@pytest.mark.skipif(sys.platform == "win32", reason="the test kills a worker with SIGKILL")
def test_shared_mode_fails_clearly_when_the_starting_worker_dies(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_owner_dies="""
import json, os, signal, time

def _state(tmp_path_factory):
    path = tmp_path_factory.getbasetemp().parent / "hosted_api_server.json"
    return json.loads(path.read_text())

def _owner_pid(tmp_path_factory):
    return _state(tmp_path_factory)["owner_pid"]

def test_1_attach(hosted_api_server, tmp_path_factory):
    deadline = time.monotonic() + 30
    while len(_state(tmp_path_factory)["users"]) < 2:  # both workers attached to one server
        assert time.monotonic() < deadline
        time.sleep(0.02)

def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False

def _listening(url):
    import socket
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), 5).close()
    except OSError:
        return False
    return True

def test_2_owner_dies(hosted_api_server, tmp_path_factory):
    owner = _owner_pid(tmp_path_factory)
    if owner == os.getpid():
        os.kill(os.getpid(), signal.SIGKILL)
    deadline = time.monotonic() + 60
    # The other worker waits until the owner and its server are gone.
    while _alive(owner) or _listening(hosted_api_server):
        assert time.monotonic() < deadline
        time.sleep(0.02)

def test_3_after(hosted_api_server):
    pass
"""
    )
    # --dist each: both workers run all three tests; the worker that started the server dies.
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "--dist",
        "each",
        "--hosted-api-shared",
        "--max-worker-restart=0",
        "-p",
        "no:randomly",
        timeout=120,
    )
    text = result.stdout.str()
    assert "the shared server is gone" in text
    assert "has died" in text
    assert "ConnectError" not in text


ORDER_SETTINGS = """
from settings_override import SettingsRegistry

reg = SettingsRegistry(prefix="ORD_")
API_URL = reg.define("API_URL", str, default="")
"""


@pytest.mark.parametrize("imported_by", ["test-module", "conftest"])
def test_a_misspelt_setting_stops_the_run_before_any_worker_runs_a_test(
    pytester: pytest.Pytester, imported_by: str
) -> None:
    # From a test module the registry exists only in the workers, after their collection; from
    # a conftest the controller sees it at session start.
    pytester.makepyfile(ordersettings=ORDER_SETTINGS)
    if imported_by == "conftest":
        pytester.makeconftest("import ordersettings\n")
    pytester.makepyfile(
        test_orders="""
import pathlib

import ordersettings


def test_one():
    pathlib.Path("ran.txt").write_text("ran")
"""
    )
    pytester.makeini("[pytest]\nhosted_api_url_setting = ORD_API_ULR\n")
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly", timeout=120)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert not (pytester.path / "ran.txt").exists()
    assert _details(text).count("'ORD_API_ULR' is not a registered setting") == 1, text
    assert "did you mean 'ORD_API_URL'?" in text
    assert "INTERNALERROR" not in text


def test_shared_mode_refusal_names_the_keys_that_differ_and_masks_secrets(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makeconftest(
        """
import os
import pathlib
import pytest

@pytest.fixture(scope="session")
def hosted_api_env():
    worker = os.environ["PYTEST_XDIST_WORKER"]
    return {"DATABASE": "db-for-" + worker, "API_TOKEN": "tok-for-" + worker, "SAME": "x"}

def pytest_runtest_logreport(report):
    if report.when == "setup" and report.failed:
        pathlib.Path(os.environ["BARRIER_DIR"], "refused").touch()
"""
    )
    pytester.makepyfile(
        test_env="""
import os
import pathlib
import shutil
import time
import pytest

@pytest.mark.parametrize("n", range(2))
def test_uses_server(hosted_api_server, tmp_path_factory, n):
    barrier = pathlib.Path(os.environ["BARRIER_DIR"])
    state = tmp_path_factory.getbasetemp().parent / "hosted_api_server.json"
    shutil.copy(state, barrier / "state.json")  # only the worker that owns the server gets here
    deadline = time.monotonic() + 60
    while not (barrier / "refused").exists():
        assert time.monotonic() < deadline, "the other worker never asked for the server"
        time.sleep(0.02)
"""
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BARRIER_DIR", str(tmp_path))
        result = pytester.runpytest_subprocess(
            "-n", "2", "--dist", "each", "--hosted-api-shared", "-p", "no:randomly", timeout=120
        )
    result.assert_outcomes(passed=2, errors=2)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*cannot serve xdist worker gw?: its hosted_api_env*differs*by worker gw?:*"]
    )
    assert _details(text).count("its hosted_api_env (with hosted_api_server_env) differs") == 1
    result.stdout.re_match_lines([r".*DATABASE is 'db-for-gw\d' here but 'db-for-gw\d' there.*"])
    assert "API_TOKEN is *** here but *** there" in text
    assert "SAME is" not in text
    assert "tok-for-" not in text
    state = (tmp_path / "state.json").read_text()
    assert "db-for-gw" in state  # plain values stay readable
    assert "tok-for-" not in state  # secret-looking ones are kept only as digests


def test_shared_mode_reports_a_start_failure_in_full_once(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(brokenapp="raise RuntimeError('database unreachable at start-up')\n")
    pytester.makeini("[pytest]\nhosted_api_app = brokenapp:create_app\n")
    pytester.makeconftest(
        """
import os
import pathlib
import time

import pytest

def _wait_for_both(name):
    barrier = pathlib.Path(os.environ["BARRIER_DIR"])
    (barrier / (name + "-" + os.environ["PYTEST_XDIST_WORKER"])).touch()
    deadline = time.monotonic() + 60
    while len(list(barrier.glob(name + "-*"))) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)

@pytest.fixture(scope="session", autouse=True)
def both_workers_started():
    _wait_for_both("started")  # both ask for the server, one after the other

def pytest_sessionfinish(session):
    # The worker that tried to start the server outlives the other's question.
    if hasattr(session.config, "workerinput"):
        _wait_for_both("finished")
"""
    )
    pytester.makepyfile(
        test_broken="\n".join(f"def test_{n}(hosted_api_server):\n    pass\n" for n in range(3))
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BARRIER_DIR", str(tmp_path))
        result = pytester.runpytest_subprocess(
            "-n", "2", "--dist", "each", "--hosted-api-shared", "-p", "no:randomly", timeout=120
        )
    result.assert_outcomes(errors=6)
    text = result.stdout.str()
    assert _details(text).count("RuntimeError: database unreachable at start-up") == 1, text
    assert _details(text).count("hosted API server output") == 1
    result.stdout.fnmatch_lines(
        ["*the shared server failed to start in xdist worker gw?, whose report (in *test_0)*"]
    )
    result.stdout.fnmatch_lines(
        ["*could not start; see the first error, in *test_0 on xdist worker gw?."]
    )
    assert _details(text).count("hosted_api_server could not start; see the first error, in") == 4
