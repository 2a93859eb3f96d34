"""Servers pooled by environment against hand-written session fixtures, in one run.

The suite: 200 tests over 3 server environments (test ``i`` needs environment ``i % 3``, so the
environments interleave), each asking its server for ``GET /api/env/FLAVOUR``. The pool runs it
with ``@pytest.mark.hosted_api_env(FLAVOUR=...)`` and ``use_hosted_api_server``; the baseline
runs the same tests with three hand-written session fixtures that each ``launch_server`` one
environment, with the plugin switched off. Each session is a real pytest subprocess; sessions
alternate, medians are printed side by side with their ratio, and the pool's own summary line
says how many servers it started (it must be exactly 3).

Usage: hatch run bench:pool [--rounds N] [--tests N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLAVOURS = ("a", "b", "c")

COMMON = """
import httpx
import pytest


@pytest.fixture(scope="session")
def client():
    # One client for the session: a new httpx client costs 30-75 ms (its SSL context).
    with httpx.Client() as client:
        yield client


def check(client, url, flavour):
    assert client.get(url + "/env/FLAVOUR").json()["value"] == flavour
"""

BASELINE_CONFTEST = '''
"""Three hand-written session fixtures, one per environment, as a suite would write them."""
import pytest
from server_launcher import launch_server


def _server(flavour):
    launcher = launch_server(
        "server_launcher.demo:create_app", health_path="/api/health", env={"FLAVOUR": flavour}
    )
    with launcher as server:
        yield server.url + "/api"


@pytest.fixture(scope="session")
def server_a():
    yield from _server("a")


@pytest.fixture(scope="session")
def server_b():
    yield from _server("b")


@pytest.fixture(scope="session")
def server_c():
    yield from _server("c")
'''


def _pool_tests(count: int) -> str:
    tests = [COMMON]
    for n in range(count):
        flavour = FLAVOURS[n % len(FLAVOURS)]
        tests.append(
            f"\n@pytest.mark.hosted_api_env(FLAVOUR={flavour!r})\n"
            f"def test_{n}(use_hosted_api_server, client):\n"
            f"    check(client, use_hosted_api_server, {flavour!r})\n"
        )
    return "".join(tests)


def _baseline_tests(count: int) -> str:
    tests = [COMMON]
    for n in range(count):
        flavour = FLAVOURS[n % len(FLAVOURS)]
        tests.append(
            f"\ndef test_{n}(server_{flavour}, client):\n"
            f"    check(client, server_{flavour}, {flavour!r})\n"
        )
    return "".join(tests)


def _session(folder: Path, *extra: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            f"--basetemp={folder / 'basetemp'}",  # the pool's logs go with the folder
            *extra,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"session failed in {folder}:\n{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout


def _servers_started(stdout: str) -> int:
    found = re.search(r"pytest-bundle: (\d+) hosted API servers? started", stdout)
    if found is None:
        raise SystemExit(f"no pytest-bundle summary line in the pool's session:\n{stdout}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tests", type=int, default=200)
    args = parser.parse_args()
    pool_times: list[float] = []
    base_times: list[float] = []
    starts: set[int] = set()
    with tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp, "pool")
        base = Path(tmp, "baseline")
        for folder in (pool, base):
            folder.mkdir()
        (pool / "test_suite.py").write_text(_pool_tests(args.tests))
        (base / "test_suite.py").write_text(_baseline_tests(args.tests))
        (base / "conftest.py").write_text(BASELINE_CONFTEST)
        for round_ in range(args.rounds):
            # Alternate which goes first, so neither always runs on a warmer machine.
            order = [("pool", pool), ("base", base)]
            if round_ % 2:
                order.reverse()
            for name, folder in order:
                if name == "pool":
                    elapsed, stdout = _session(folder)
                    pool_times.append(elapsed)
                    starts.add(_servers_started(stdout))
                else:
                    elapsed, _ = _session(folder, "-p", "no:pytest_bundle")
                    base_times.append(elapsed)
            print(
                f"round {round_ + 1}: pool {pool_times[-1]:.2f} s, "
                f"hand-written fixtures {base_times[-1]:.2f} s",
                flush=True,
            )
    pool_med, base_med = statistics.median(pool_times), statistics.median(base_times)
    ratio = pool_med / base_med
    print()
    print(f"suite: {args.tests} tests over {len(FLAVOURS)} environments, interleaved")
    print(
        f"  3 hand-written session fixtures (baseline) {base_med:7.2f} s (median of {args.rounds})"
    )
    print(f"  hosted_api_env markers, one pool           {pool_med:7.2f} s")
    print(
        f"  ratio pool / baseline                      {ratio:7.3f}x   target: <= 1.10 "
        f"[{'met' if ratio <= 1.10 else 'NOT met'}]"
    )
    shown = ", ".join(str(n) for n in sorted(starts))
    print(
        f"  servers the pool started per session       {shown:>7}    target: exactly 3 "
        f"[{'met' if starts == {3} else 'NOT met'}]"
    )


if __name__ == "__main__":
    main()
