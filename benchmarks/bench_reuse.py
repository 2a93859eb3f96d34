"""Kept servers (``hosted_api_reuse``) against a fresh server per run, in one run.

The suite: 10 tests against an app whose import takes 2 s (a sleep at import, standing in for a
real app's imports and database set-up). Each round runs the suite four times as real pytest
subprocesses: without reuse (first run, second run) and with ``--hosted-api-reuse`` (first run:
the server starts and is kept; second run: it is adopted). Medians of the whole session's wall
time are printed side by side with the ratio to the run without reuse. Kept servers are stopped
(``--hosted-api-stop-kept``) before each round and at the end.

Usage: hatch run bench:reuse [--rounds N] [--import-seconds S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = """
import os
import time

time.sleep(float(os.environ["SLOW_IMPORT_SECONDS"]))  # a real app's imports and database


def create_app():
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"].endswith("shutdown"):
                    return
        body = b"ok" if scope["path"] in ("/api/health", "/api/items") else b""
        await send({"type": "http.response.start", "status": 200 if body else 404,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app
"""

TESTS = """
import time
from pathlib import Path

import httpx
import pytest


@pytest.fixture(scope="session")
def client():
    with httpx.Client() as client:
        yield client


@pytest.fixture(scope="session")
def server(request):
    started = time.perf_counter()
    url = request.getfixturevalue("hosted_api_server")
    (Path(__file__).parent / "setup.txt").write_text(str(time.perf_counter() - started))
    return url


@pytest.mark.parametrize("n", range(10))
def test_items(server, client, n):
    assert client.get(server + "/items").text == "ok"
"""

INI = """[pytest]
hosted_api_app = slowapp:create_app
hosted_api_server_env = SLOW_IMPORT_SECONDS={seconds}
"""


def _session(folder: Path, *args: str) -> tuple[float, float]:
    """(the session's wall time, the hosted_api_server fixture's set-up time)."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pytest {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    setup = folder / "setup.txt"
    seconds = float(setup.read_text()) if setup.exists() else 0.0
    setup.unlink(missing_ok=True)
    return elapsed, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--import-seconds", type=float, default=2.0)
    options = parser.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {
        "no reuse, first run": [],
        "no reuse, second run": [],
        "reuse, first run (started, kept)": [],
        "reuse, second run (adopted)": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-reuse-") as tmp:
        folder = Path(tmp)
        (folder / "slowapp.py").write_text(APP)
        (folder / "test_items.py").write_text(TESTS)
        (folder / "pytest.ini").write_text(INI.format(seconds=options.import_seconds))
        try:
            for _ in range(options.rounds):
                _session(folder, "--hosted-api-stop-kept")
                runs["no reuse, first run"].append(_session(folder))
                runs["no reuse, second run"].append(_session(folder))
                runs["reuse, first run (started, kept)"].append(
                    _session(folder, "--hosted-api-reuse")
                )
                runs["reuse, second run (adopted)"].append(_session(folder, "--hosted-api-reuse"))
        finally:
            _session(folder, "--hosted-api-stop-kept")
    baseline = [statistics.median(t[i] for t in runs["no reuse, second run"]) for i in (0, 1)]
    print(
        f"10 tests, app import {options.import_seconds:g} s, {options.rounds} rounds, medians; "
        "session = the whole pytest process, server = hosted_api_server's set-up"
    )
    for name, times in runs.items():
        session = statistics.median(t[0] for t in times)
        server = statistics.median(t[1] for t in times)
        print(
            f"  {name:<34} session {session:6.2f} s (x{session / baseline[0]:.2f})   "
            f"server {server * 1000:8.1f} ms (x{server / baseline[1]:.3f})"
        )


if __name__ == "__main__":
    main()
