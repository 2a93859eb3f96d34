"""The hosted server under real pytest-xdist workers: one per worker, or one shared by all."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

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

def test_2_owner_dies(hosted_api_server, tmp_path_factory):
    owner = _owner_pid(tmp_path_factory)
    if owner == os.getpid():
        os.kill(os.getpid(), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while _alive(owner):  # the other worker waits until the owner is gone
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
