"""server-launcher benchmark: start-to-ready and stop, against the floor and the old fixture.

Interleaved rounds, one run, medians:
  floor     spawn ``python -m uvicorn`` for the demo app, read its "running on" line, one GET
            /health (the fastest anything can know the server is ready); SIGTERM -> exit is
            uvicorn's own stop time.
  ours      ``with launch_server(DEMO_APP, ...)``: start-to-ready, then stop (to reaped).
  baseline  the documented ``hosted_api_server`` algorithm: bind port 0, close, reuse the port;
            GET /health every 0.1 s with a new ``httpx.AsyncClient``; on teardown terminate, then
            check the return code once a second for 10 s before killing.
Also the time to report a wrong import path (ours vs the baseline's 20 s timeout; ``--quick``
uses a 3 s baseline timeout instead and says so).

Targets (issue 5): ready within 10 ms of the floor; stop within 20 ms of uvicorn's own exit;
wrong import path reported in under 0.5 s.

Usage: python benchmarks/bench_launcher.py [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

import httpx

from server_launcher import DEMO_APP, ServerStartError, launch_server

HEALTH = "/api/health"


def _get_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def floor_round() -> tuple[float, float]:
    """(start-to-200, SIGTERM-to-exit) for a bare ``python -m uvicorn``."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            DEMO_APP,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    port = 0
    while True:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("uvicorn exited")
        match = re.search(rb"running on http://127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
            break
    assert _get_status(port, HEALTH) == 200
    ready = time.perf_counter() - start
    stop_start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    stopped = time.perf_counter() - stop_start
    proc.stderr.close()
    return ready, stopped


def ours_round() -> tuple[float, float]:
    launcher = launch_server(DEMO_APP, health_path=HEALTH)
    start = time.perf_counter()
    server = launcher.__enter__()
    ready = time.perf_counter() - start
    stop_start = time.perf_counter()
    launcher.__exit__(None, None, None)
    stopped = time.perf_counter() - stop_start
    assert server.returncode in (0, -signal.SIGTERM)
    return ready, stopped


async def _baseline_wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with httpx.AsyncClient() as client:
                response = await client.get(url + HEALTH)
                if response.status_code == 200:
                    return True
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    return False


def _baseline_start(app: str, timeout: float) -> tuple[subprocess.Popen[bytes], bool]:
    with socket.socket() as sock:  # the racy part: pick a port, close it, hope
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    healthy = asyncio.run(_baseline_wait_healthy(f"http://127.0.0.1:{port}", proc, timeout))
    return proc, healthy


def _baseline_stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    for _ in range(10):
        time.sleep(1)
        if proc.poll() is not None:
            return
    proc.kill()
    proc.wait()


def baseline_round() -> tuple[float, float]:
    start = time.perf_counter()
    proc, healthy = _baseline_start(DEMO_APP, 20.0)
    ready = time.perf_counter() - start
    assert healthy
    stop_start = time.perf_counter()
    _baseline_stop(proc)
    return ready, time.perf_counter() - stop_start


def wrong_import_ours() -> float:
    start = time.perf_counter()
    try:
        with launch_server("no_such_module_for_bench:create_app", health_path=HEALTH):
            pass
    except ServerStartError as exc:
        elapsed = time.perf_counter() - start
        if exc.log_path:
            os.unlink(exc.log_path)
        return elapsed
    raise RuntimeError("a wrong import path started")


def wrong_import_floor() -> float:
    """How long a bare ``python -m uvicorn`` takes to exit on the wrong import path."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "no_such_module_for_bench:create_app"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - start


def wrong_import_baseline(timeout: float) -> float:
    start = time.perf_counter()
    proc, healthy = _baseline_start("no_such_module_for_bench:create_app", timeout)
    assert not healthy
    _baseline_stop(proc)
    return time.perf_counter() - start


def ms(value: float) -> str:
    return f"{value * 1000:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--quick", action="store_true", help="3 s baseline timeout for the bad path"
    )
    args = parser.parse_args()

    floor_ready, floor_stop, our_ready, our_stop, base_ready, base_stop = ([] for _ in range(6))
    floor_round(), ours_round()  # warm the page cache
    for index in range(args.rounds):
        for _name, func, ready_list, stop_list in (
            ("floor", floor_round, floor_ready, floor_stop),
            ("ours", ours_round, our_ready, our_stop),
            ("baseline", baseline_round, base_ready, base_stop),
        )[index % 3 :] + (
            ("floor", floor_round, floor_ready, floor_stop),
            ("ours", ours_round, our_ready, our_stop),
            ("baseline", baseline_round, base_ready, base_stop),
        )[: index % 3]:
            ready, stop = func()
            ready_list.append(ready)
            stop_list.append(stop)
        print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)

    med = statistics.median
    print(f"\nserver-launcher benchmark: {args.rounds} interleaved rounds, medians")
    print(f"{'':28}{'floor/uvicorn':>14}{'ours':>14}{'baseline':>14}")
    print(
        f"{'start to ready':28}{ms(med(floor_ready)):>14}{ms(med(our_ready)):>14}"
        f"{ms(med(base_ready)):>14}"
    )
    print(
        f"{'stop (SIGTERM to exit)':28}{ms(med(floor_stop)):>14}{ms(med(our_stop)):>14}"
        f"{ms(med(base_stop)):>14}"
    )
    ready_over = med(our_ready) - med(floor_ready)
    stop_over = med(our_stop) - med(floor_stop)
    print(
        f"\nready: ours - floor = {ready_over * 1000:+.1f} ms (target <= +10 ms); "
        f"baseline - floor = {(med(base_ready) - med(floor_ready)) * 1000:+.1f} ms; "
        f"baseline/ours = {med(base_ready) / med(our_ready):.2f}x"
    )
    print(
        f"stop:  ours - uvicorn's own exit = {stop_over * 1000:+.1f} ms (target <= +20 ms); "
        f"baseline/ours = {med(base_stop) / med(our_stop):.1f}x"
    )

    bad_pairs = [(wrong_import_floor(), wrong_import_ours()) for _ in range(5)]
    floor_bad = med([pair[0] for pair in bad_pairs])
    ours_bad = med([pair[1] for pair in bad_pairs])
    timeout = 3.0 if args.quick else 20.0
    base_bad = wrong_import_baseline(timeout)
    note = " (--quick: baseline timeout shortened from 20 s to 3 s)" if args.quick else ""
    print(
        f"wrong import path: uvicorn itself exits after {ms(floor_bad)}; reported by ours "
        f"{(ours_bad - floor_bad) * 1000:+.1f} ms after that"
    )
    print(
        f"wrong import path reported: ours {ms(ours_bad)} (target < 500 ms), "
        f"baseline {ms(base_bad)} without uvicorn's message{note}; "
        f"baseline/ours = {base_bad / ours_bad:.0f}x"
    )
    print(
        f"\nverdict: ready {'OK' if ready_over <= 0.010 else 'MISSED'}, "
        f"stop {'OK' if stop_over <= 0.020 else 'MISSED'}, "
        f"wrong import {'OK' if ours_bad < 0.5 else 'MISSED'} "
        f"({'OK' if ours_bad - floor_bad < 0.5 else 'MISSED'} counted from uvicorn's own exit)"
    )


if __name__ == "__main__":
    main()
