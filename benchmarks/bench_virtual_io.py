"""fake-sleep's virtual clock beside a real server, against the clock before (issue 17).

Measures, on asyncio and trio (issue 10), each run in a fresh event loop as a test would be:

(a) a test body in virtual time doing 20 requests with ``httpx.AsyncClient(timeout=5)`` to
    server-launcher's demo app (``launch_server(health_path="/api/health")``) with a 60 s
    virtual sleep between them: how many runs pass (no timeout), out of ``--runs``;
(b) ``move_on_after(5)`` around ``sleep(10)`` beside an open client with an idle keep-alive
    connection: the real time it takes;
(d) the same idle connection open while doing 1,000 virtual 60 s sleeps: the real time
    (target: under 50 ms).

(b) and (d) show the median of `IDLE_RUNS` runs.

(d) on trio is also run under `_JumpingClock`, a trio clock that jumps to every deadline at
once and checks nothing: what 1,000 timeouts cost trio itself (each is a cancel scope whose
deadline delivers ``Cancelled``), the floor under any virtual clock for trio.

The clock before (``--before``, read from git by ``bench_sleep.load_before``) runs the same
bodies side by side; it gets ``--before-runs`` runs of (a), enough to show its failure rate.
Measure (c), pure-sleep throughput against that clock, is ``hatch run bench:sleep``.

    python benchmarks/bench_virtual_io.py [--runs 100] [--before-runs 20]
"""

from __future__ import annotations

import argparse
import contextlib
import ssl
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import trio.abc
from bench_sleep import BEFORE, load_before

import fake_sleep
from server_launcher import launch_server

VirtualTime = Callable[[], contextlib.AbstractAsyncContextManager[Any]]

REQUESTS = 20
SLEEP = 60
TIMEOUT = 5
IDLE_SLEEPS = 1000
#: Runs of (b) and (d) per clock and backend; the median is shown.
IDLE_RUNS = 7
#: The name of the (d) run on trio under `_JumpingClock`.
FLOOR = "trio's floor"

#: One SSL context for every client: building one costs 30-75 ms and is not what is measured.
_SSL = ssl.create_default_context()


async def requests_run(url: str, virtual_time: VirtualTime) -> tuple[int, float]:
    """(a): timeouts seen in 20 requests with virtual sleeps between; real seconds taken."""
    timeouts = 0
    started = time.perf_counter()
    async with virtual_time():
        async with httpx.AsyncClient(timeout=TIMEOUT, verify=_SSL) as client:
            for _ in range(REQUESTS):
                try:
                    response = await client.get(url)
                    assert response.status_code == 200, response
                except httpx.TimeoutException:
                    timeouts += 1
                await anyio.sleep(SLEEP)
    return timeouts, time.perf_counter() - started


async def beside_an_idle_client(url: str, virtual_time: VirtualTime) -> tuple[float, float]:
    """(b) and (d): real seconds for a timeout around a sleep, and for 1,000 sleeps."""
    async with httpx.AsyncClient(timeout=TIMEOUT, verify=_SSL) as client:
        assert (await client.get(url)).status_code == 200  # a keep-alive connection, now idle
        async with virtual_time():
            started = time.perf_counter()
            with anyio.move_on_after(TIMEOUT) as scope:
                await anyio.sleep(2 * TIMEOUT)
            timeout_real = time.perf_counter() - started
            assert scope.cancelled_caught
            started = time.perf_counter()
            for _ in range(IDLE_SLEEPS):
                await anyio.sleep(SLEEP)
            sleeps_real = time.perf_counter() - started
    return timeout_real, sleeps_real


class _JumpingClock(trio.abc.Clock):
    """Jumps straight to the next deadline whenever trio would wait: no checks at all."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.pending: float | None = None

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        if self.pending is not None:
            self.now, self.pending = max(self.now, self.pending), None
        return self.now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        if deadline > self.now:
            self.pending = deadline
        return 0.0


@contextlib.asynccontextmanager
async def jumping_clock() -> AsyncIterator[None]:
    """The run's clock swapped for `_JumpingClock` (trio only; through trio's private runner)."""
    from trio._core._run import GLOBAL_RUN_CONTEXT

    runner: Any = GLOBAL_RUN_CONTEXT.runner
    saved = runner.clock
    runner.clock = _JumpingClock(saved.current_time())
    try:
        yield
    finally:
        runner.clock = saved


def measure(url: str, backend: str, virtual_time: VirtualTime, runs: int) -> dict[str, Any]:
    """(a) for one clock and backend; (b) and (d) are added by `measure_idle`."""
    passed = 0
    timeouts = 0
    seconds: list[float] = []
    for _ in range(runs):
        seen, taken = anyio.run(requests_run, url, virtual_time, backend=backend)
        passed += seen == 0
        timeouts += seen
        seconds.append(taken)
    return {
        "runs": runs,
        "passed": passed,
        "timeouts": timeouts,
        "run_median": statistics.median(seconds),
        "run_max": max(seconds),
    }


def measure_idle(url: str, cases: dict[tuple[str, str], VirtualTime]) -> dict[tuple[str, str], Any]:
    """(b) and (d) for every (clock, backend): the median of `IDLE_RUNS` round-robin runs.

    They are a few ms each: the median of several runs, so one scheduling hiccup of a busy
    machine (or the first run's warm-up) does not decide the figure, and taken in turns, so
    a change in the machine's load hits every case alike.
    """
    idle: dict[tuple[str, str], list[tuple[float, float]]] = {key: [] for key in cases}
    for _ in range(IDLE_RUNS):
        for (name, backend), virtual_time in cases.items():
            row = anyio.run(beside_an_idle_client, url, virtual_time, backend=backend)
            idle[(name, backend)].append(row)
    return {
        key: (statistics.median(row[0] for row in rows), statistics.median(row[1] for row in rows))
        for key, rows in idle.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="runs of (a) per backend")
    parser.add_argument("--before-runs", type=int, default=20, help="runs of (a), old clock")
    parser.add_argument("--before", default=BEFORE, help="git revision of the earlier clock")
    args = parser.parse_args()
    before = load_before(args.before)
    clocks: list[tuple[str, VirtualTime, int]] = [
        ("this clock", fake_sleep.virtual_time, args.runs)
    ]
    if before is not None:
        clocks.append((f"before ({args.before})", before, args.before_runs))

    results: dict[tuple[str, str], dict[str, Any]] = {}
    with launch_server(health_path="/api/health") as server:
        url = server.url + "/api/health"
        cases: dict[tuple[str, str], VirtualTime] = {}
        for backend in ("asyncio", "trio"):
            for name, virtual_time, runs in clocks:
                results[(name, backend)] = measure(url, backend, virtual_time, runs)
                cases[(name, backend)] = virtual_time
        cases[(FLOOR, "trio")] = jumping_clock
        for key, (timeout_real, sleeps_real) in measure_idle(url, cases).items():
            results.setdefault(key, {}).update(timeout_real=timeout_real, sleeps_real=sleeps_real)
        floor = results.pop((FLOOR, "trio"))["sleeps_real"]

    print(
        f"virtual time beside a real server: {REQUESTS} requests (timeout {TIMEOUT} s) with"
        f" {SLEEP} s virtual sleeps per run; {IDLE_SLEEPS} sleeps beside an idle connection"
    )
    print(
        f"{'clock':<22}{'backend':<9}{'runs passed':>13}{'timeouts':>10}{'run median':>12}"
        f"{'run max':>9}{'(b) timeout':>13}{'(d) 1000 sleeps':>17}"
    )
    for (name, backend), row in results.items():
        print(
            f"{name:<22}{backend:<9}{row['passed']:>7}/{row['runs']:<5}{row['timeouts']:>10}"
            f"{row['run_median'] * 1000:>10.0f}ms{row['run_max'] * 1000:>7.0f}ms"
            f"{row['timeout_real'] * 1000:>11.2f}ms{row['sleeps_real'] * 1000:>15.0f}ms"
        )

    print()
    print("targets:")

    def check(label: str, ok: bool, detail: str) -> None:
        print(f"  [{'ok' if ok else 'MISS'}] {label}: {detail}")

    for backend in ("asyncio", "trio"):
        row = results[("this clock", backend)]
        check(
            f"(a) {backend}: every run passes",
            row["passed"] == row["runs"],
            f"{row['passed']} of {row['runs']} ({row['timeouts']} timeouts)",
        )
        check(
            f"(b) {backend}: a timeout around a sleep fires at once beside an open client",
            row["timeout_real"] < 0.05,
            f"{row['timeout_real'] * 1000:.2f} ms of real time",
        )
        check(
            f"(d) {backend}: {IDLE_SLEEPS} sleeps beside an idle connection under 50 ms",
            row["sleeps_real"] < 0.05,
            f"{row['sleeps_real']:.3f} s",
        )
    print(
        f"  (d) trio's own floor, a clock that jumps at once and checks nothing:"
        f" {floor * 1000:.0f} ms (this clock adds"
        f" {(results[('this clock', 'trio')]['sleeps_real'] - floor) * 1000:.0f} ms)"
    )
    print("  (c) pure-sleep throughput against the clock before: hatch run bench:sleep")


if __name__ == "__main__":
    main()
