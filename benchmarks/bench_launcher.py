"""server-launcher benchmark: ours against the floor and the old fixture, side by side, one run.

Interleaved rounds (the order rotates every round), medians:
  floor     the fastest way to run the same server: the parent binds and listens, spawns
            ``python -m uvicorn --fd N`` for the demo app (its output to a file, as a peer like
            pytest-xprocess would), and polls ``GET /api/health`` over a raw socket every 1 ms
            until it answers 200; stop is SIGTERM -> exit, uvicorn's own stop time.
  ours      ``with launch_server(DEMO_APP, health_path=...)``: start-to-ready, then stop (to
            reaped).
  baseline  the documented ``hosted_api_server`` algorithm: bind port 0, close, reuse the port;
            GET /health every 0.1 s with a new ``httpx.AsyncClient``; on teardown terminate, then
            check the return code once a second for 10 s before killing.
Stop: after a random 0-0.1 s pause (uvicorn sees SIGTERM on its 0.1 s tick, and the pause
spreads that phase evenly over both), SIGTERM to reaped; and, through a pidfd (Linux), how long
after the server's own exit the stop returned.
For the floor and ours, each round also measures, while the server runs:
  CPU time    the CPU time the server's process tree (every process in its session, and its
              watchdog) used until it was ready (/proc schedstat, Linux): on a busy machine it
              varies far less than wall time, and shows the work ours adds.
  keep-alive  the median latency of 200 ``GET /api/health`` requests on one http.client
              connection (uvicorn writes an access-log line for each: ours drains it).
  memory      after those requests, the server's process tree: RSS summed, and PSS and USS from
              /proc/PID/smaps_rollup (Linux). RSS counts pages a forked process shares with its
              parent twice; PSS splits them; USS counts private pages only.
Start to ready varies from start to start by tens of ms on a busy machine (its quartiles are
printed), so each round also runs, three times, the child-side bootstrap alone: the CPU time of
a module that imports what uvicorn imports, under ``python -u -m`` and through our bootstrap
(paired, from ``wait4``), which resolves fractions of a millisecond.
Also: the time to report a wrong import path (ours vs the baseline's 20 s timeout; ``--quick``
uses a 3 s baseline timeout instead and says so).

Goals (issue 11): ready within 5 ms of the floor; the process tree within 2 MiB (PSS) of the
floor's; keep-alive requests at most 1.02x the floor's latency; stop within 20 ms of uvicorn's
own exit; a wrong import path reported in under 0.5 s.

Goal under load (issue 19): with ``--burners 2`` (two busy-loop processes, one per core here,
for the whole run) ready within 8 ms of the floor.

Usage: hatch run bench:launcher [--rounds N] [--quick] [--cache-bytecode] [--burners N]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from server_launcher import DEMO_APP, ServerStartError, launch_server

HEALTH = "/api/health"
REQUESTS = 200
UVICORN = [sys.executable, "-m", "uvicorn", "--factory", DEMO_APP]
HAS_SMAPS = os.path.exists("/proc/self/smaps_rollup")
HAS_SCHEDSTAT = os.path.exists("/proc/self/schedstat")
GOAL_READY = 0.005
GOAL_READY_LOADED = 0.008  # with --burners
GOAL_MEMORY = 2 * 1024 * 1024
GOAL_KEEPALIVE = 1.02
GOAL_STOP = 0.020
GOAL_BAD_PATH = 0.5


@dataclass
class Samples:
    ready: list[float] = field(default_factory=list)
    stop: list[float] = field(default_factory=list)
    after_exit: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    pss: list[float] = field(default_factory=list)
    uss: list[float] = field(default_factory=list)
    procs: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    request: list[float] = field(default_factory=list)


# -- measuring a running server -------------------------------------------------------------


def _session_pids(sid: int) -> list[int]:
    """Every process in session ``sid`` (the server and whatever runs with it)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):  # fields[3]: session id
            pids.append(int(name))
    return pids


def _tree_pids(server_pid: int) -> list[int]:
    """The server's session, plus its watchdog: our child in a session of its own, whose last
    argument is the server's pid (the floor has none)."""
    pids = _session_pids(os.getsid(server_pid))
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as children:
            for child in children.read().split():
                try:
                    with open(f"/proc/{child}/cmdline", "rb") as cmdline:
                        argv = cmdline.read().split(b"\0")
                except OSError:
                    continue
                if int(child) != server_pid and argv[-2:-1] == [str(server_pid).encode()]:
                    pids.append(int(child))
    return pids


def _rollup(pid: int) -> tuple[int, int, int]:
    """(RSS, PSS, USS) of one process, in bytes."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "kB":
                values[parts[0].rstrip(":")] = int(parts[1]) * 1024
    private = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return values.get("Rss", 0), values.get("Pss", 0), private


def _cpu_time(pid: int) -> float:
    """Seconds on a CPU so far, over all of the process's threads (ns-precise schedstat)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
            total += int(schedstat.read().split()[0])
    return total / 1e9


def measure_cpu(server_pid: int, samples: Samples) -> None:
    """Right after ready: the CPU time the server's tree has used so far."""
    if HAS_SCHEDSTAT:
        pids = _tree_pids(server_pid)
        samples.cpu.append(sum(_cpu_time(pid) for pid in pids))


def measure_memory(server_pid: int, samples: Samples) -> None:
    """After the keep-alive requests: the memory of the server's tree."""
    if not HAS_SMAPS:
        return
    pids = _tree_pids(server_pid)
    rss = pss = uss = 0
    for pid in pids:
        one = _rollup(pid)
        rss, pss, uss = rss + one[0], pss + one[1], uss + one[2]
    samples.procs.append(len(pids))
    samples.rss.append(rss)
    samples.pss.append(pss)
    samples.uss.append(uss)


def keepalive(port: int, samples: Samples) -> None:
    """Median latency of ``REQUESTS`` GETs on one connection (after 10 to warm it up)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        times = []
        for index in range(REQUESTS + 10):
            start = time.perf_counter()
            conn.request("GET", HEALTH)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - start
            assert response.status == 200
            if index >= 10:
                times.append(elapsed)
    finally:
        conn.close()
    samples.request.append(statistics.median(times))


class ExitClock:
    """When a process exited, seen from outside through a pidfd (Linux), by a waiting thread."""

    def __init__(self, pid: int) -> None:
        self.at: float | None = None
        self._fd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
        self._thread = threading.Thread(target=self._wait, daemon=True)
        if self._fd is not None:
            self._thread.start()

    def _wait(self) -> None:
        assert self._fd is not None
        select.select([self._fd], [], [])
        self.at = time.perf_counter()

    def record(self, end: float, samples: Samples) -> None:
        """How long after the exit the stop returned."""
        if self._fd is None:
            return
        self._thread.join(10)
        os.close(self._fd)
        if self.at is not None:
            samples.after_exit.append(end - self.at)


def pause_before_stop() -> None:
    """uvicorn sees SIGTERM on its next 0.1 s tick: without a random pause, the time from start
    to stop would fix that phase per contender (and flip it between runs), not the stop itself."""
    time.sleep(random.uniform(0.0, 0.1))


# -- the three contenders --------------------------------------------------------------------


def _raw_health(port: int) -> int | None:
    """One GET over a raw socket; the status, or None if the server did not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                f"GET {HEALTH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
            while sock.recv(4096):  # the whole answer, so the server never sees a reset
                pass
    except OSError:
        return None
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def floor_round(samples: Samples) -> None:
    listener = socket.socket()
    # What a passed socket needs for keep-alive (uvicorn never sets it on a socket it gets by
    # fd): without it every request stalls ~40 ms on Nagle + delayed ACK. Ours sets it too.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*UVICORN, "--timeout-graceful-shutdown", "9", "--fd", str(listener.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
            start_new_session=True,  # its own session, like ours: the tree is found by session
        )
        listener.close()  # the child holds it; if it dies, the poll sees a refused connection
        try:
            while _raw_health(port) != 200:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"uvicorn exited: {log.read().decode()[-2000:]}")
                time.sleep(0.001)
            samples.ready.append(time.perf_counter() - start)
            measure_cpu(proc.pid, samples)
            keepalive(port, samples)
            measure_memory(proc.pid, samples)
            pause_before_stop()
            clock = ExitClock(proc.pid)
            stop_start = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            end = time.perf_counter()
            samples.stop.append(end - stop_start)
            clock.record(end, samples)
            assert proc.returncode in (0, -signal.SIGTERM), proc.returncode
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def ours_round(samples: Samples) -> None:
    launcher = launch_server(DEMO_APP, health_path=HEALTH)
    start = time.perf_counter()
    server = launcher.__enter__()
    try:
        samples.ready.append(time.perf_counter() - start)
        measure_cpu(server.pid, samples)
        keepalive(server.port, samples)
        measure_memory(server.pid, samples)
        pause_before_stop()
    finally:
        clock = ExitClock(server.pid)
        stop_start = time.perf_counter()
        launcher.__exit__(None, None, None)
        end = time.perf_counter()
    samples.stop.append(end - stop_start)
    clock.record(end, samples)
    assert server.returncode in (0, -signal.SIGTERM), server.returncode


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


def baseline_round(samples: Samples) -> None:
    start = time.perf_counter()
    proc, healthy = _baseline_start(DEMO_APP, 20.0)
    samples.ready.append(time.perf_counter() - start)
    assert healthy
    stop_start = time.perf_counter()
    _baseline_stop(proc)
    samples.stop.append(time.perf_counter() - stop_start)


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


# -- the child-side bootstrap alone ------------------------------------------------------------

# What uvicorn imports anyway before it serves; a module server that imports it and exits.
_STARTUP_MODULE = "import asyncio, contextlib, logging, runpy, signal, socket, threading\n"


def _tree_cpu_of_session(sid: int) -> float:
    return sum(_cpu_time(pid) for pid in _session_pids(sid)) if HAS_SCHEDSTAT else 0.0


def bootstrap_pair(folder: str) -> tuple[float, float]:
    """CPU seconds to run a module that imports what uvicorn imports: ``python -u -m`` (the
    floor), and the same module through our child-side bootstrap, as ``launch_server`` runs it.

    CPU time from ``wait4`` (the process and what it reaped) plus whatever else is left in its
    session when it exits (our watchdog), so that machine load hardly matters."""
    from server_launcher import _platform  # private: the argv launch_server runs the server with

    results = []
    for argv in (
        [sys.executable, "-u", "-m", "bench_startup_module"],
        None,
    ):
        if argv is None:
            argv = _platform.child_argv("module", ["bench_startup_module"])
        proc = subprocess.Popen(argv, cwd=folder, stdin=subprocess.PIPE, start_new_session=True)
        assert proc.stdin is not None
        if "-c" in argv:
            _platform.send_bootstrap(proc.stdin)  # what launch_server does after spawning
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, proc.returncode
        leftover = _tree_cpu_of_session(proc.pid)  # the watchdog, until its pipe closes
        assert proc.stdin is not None
        proc.stdin.close()
        results.append(usage.ru_utime + usage.ru_stime + leftover)
    return results[0], results[1]


# -- the report ------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


def us(value: float) -> str:
    return f"{value * 1e6:.0f} us"


def mib(value: float) -> str:
    return f"{value / 1048576:.1f} MiB"


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def row(label: str, *cells: str) -> None:
    print(f"{label:30}" + "".join(f"{cell:>13}" for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 s baseline timeout for the wrong import path (instead of 20 s)",
    )
    parser.add_argument(
        "--cache-bytecode",
        action="store_true",
        help="let every child cache bytecode in a private folder (PYTHONPYCACHEPREFIX), as on "
        "an install with compiled bytecode, even where PYTHONDONTWRITEBYTECODE is set",
    )
    parser.add_argument(
        "--burners",
        type=int,
        default=0,
        metavar="N",
        help="run N busy-loop processes for the whole run: a loaded machine (the ready goal "
        f"is then floor + {GOAL_READY_LOADED * 1000:g} ms)",
    )
    args = parser.parse_args()
    if args.burners < 0:
        parser.error("--burners must be 0 or more")
    burners = [
        subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", "while True: pass"], stdin=subprocess.DEVNULL
        )
        for _ in range(args.burners)
    ]
    try:
        _run(args, parser)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    cache_folder = None
    if args.cache_bytecode:
        cache_folder = tempfile.mkdtemp(prefix="bench-launcher-pycache-")
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = cache_folder  # the children inherit both

    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    floor, ours, base = Samples(), Samples(), Samples()
    contenders: list[tuple[Callable[[Samples], None], Samples]] = [
        (floor_round, floor),
        (ours_round, ours),
        (baseline_round, base),
    ]
    floor_round(Samples())  # warm the page cache and the imports
    ours_round(Samples())
    module_folder = tempfile.mkdtemp(prefix="bench-launcher-")
    with open(os.path.join(module_folder, "bench_startup_module.py"), "w") as module:
        module.write(_STARTUP_MODULE)
    bootstrap: list[tuple[float, float]] = []
    bootstrap_pair(module_folder)  # warm up (and cache bytecode where that is on)
    for index in range(args.rounds):
        shift = index % len(contenders)
        for func, samples in contenders[shift:] + contenders[:shift]:
            func(samples)
        bootstrap.extend(bootstrap_pair(module_folder) for _ in range(3))
        print(f"round {index + 1}/{args.rounds} done", file=sys.stderr)
    shutil.rmtree(module_folder, ignore_errors=True)

    med = statistics.median
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nserver-launcher benchmark: {args.rounds} interleaved rounds (order rotated each "
        f"round); {os.cpu_count()} CPUs, load average {load:.1f} at the end; "
        f"{args.burners} CPU burners; Python {sys.version.split()[0]}"
    )
    print(
        "floor, ours, baseline: medians; ours-floor, ours/floor: medians of the per-round "
        "differences and ratios (each round runs both, so load that drifts cancels out)"
    )
    if cache_folder is not None:
        print(f"bytecode cached for every child in {cache_folder} (--cache-bytecode)")
    elif sys.flags.dont_write_bytecode:
        print(
            "bytecode cache off (PYTHONDONTWRITEBYTECODE): every start, the floor's and ours, "
            "compiles uvicorn (and our bootstrap) from source (--cache-bytecode changes that)"
        )

    def over(ours_values: list[float], floor_values: list[float]) -> float:
        return med([a - b for a, b in zip(ours_values, floor_values, strict=True)])

    def ratio(ours_values: list[float], floor_values: list[float]) -> float:
        return med([a / b for a, b in zip(ours_values, floor_values, strict=True)])

    row("", "floor", "ours", "ours-floor", "ours/floor", "baseline")
    ready_over = over(ours.ready, floor.ready)
    row(
        "start to ready",
        ms(med(floor.ready)),
        ms(med(ours.ready)),
        f"{ready_over * 1000:+.1f} ms",
        f"{ratio(ours.ready, floor.ready):.3f}x",
        ms(med(base.ready)),
    )
    stop_over = over(ours.stop, floor.stop)
    row(
        "stop (SIGTERM to reaped)",
        ms(med(floor.stop)),
        ms(med(ours.stop)),
        f"{stop_over * 1000:+.1f} ms",
        f"{ratio(ours.stop, floor.stop):.3f}x",
        ms(med(base.stop)),
    )
    if floor.after_exit and ours.after_exit:
        row(
            "  stop returned after the exit",
            ms(med(floor.after_exit)),
            ms(med(ours.after_exit)),
            f"{over(ours.after_exit, floor.after_exit) * 1000:+.1f} ms",
        )
    if floor.cpu and ours.cpu:
        row(
            "tree CPU time until ready",
            ms(med(floor.cpu)),
            ms(med(ours.cpu)),
            f"{over(ours.cpu, floor.cpu) * 1000:+.1f} ms",
            f"{ratio(ours.cpu, floor.cpu):.3f}x",
        )
    mem_over = None
    if floor.pss and ours.pss:
        row(
            "processes in the server tree",
            f"{med(floor.procs):g}",
            f"{med(ours.procs):g}",
            f"{med(ours.procs) - med(floor.procs):+g}",
        )
        for label, floor_mem, our_mem in (
            ("tree memory: RSS summed", floor.rss, ours.rss),
            ("tree memory: PSS summed", floor.pss, ours.pss),
            ("tree memory: USS summed", floor.uss, ours.uss),
        ):
            row(
                label,
                mib(med(floor_mem)),
                mib(med(our_mem)),
                f"{over(our_mem, floor_mem) / 1048576:+.2f} MiB",
                f"{ratio(our_mem, floor_mem):.3f}x",
            )
        mem_over = over(ours.pss, floor.pss)
    else:
        print("tree memory: not measured (needs /proc/PID/smaps_rollup, Linux)")
    keep_ratio = ratio(ours.request, floor.request)
    row(
        f"keep-alive GET (median of {REQUESTS})",
        us(med(floor.request)),
        us(med(ours.request)),
        f"{over(ours.request, floor.request) * 1e6:+.0f} us",
        f"{keep_ratio:.3f}x",
    )
    quartiles = statistics.quantiles(
        [a - b for a, b in zip(ours.ready, floor.ready, strict=True)], n=4
    )
    print(
        f"start to ready, ours-floor per round: quartiles {quartiles[0] * 1000:+.1f} / "
        f"{quartiles[1] * 1000:+.1f} / {quartiles[2] * 1000:+.1f} ms (the spread is the "
        "machine's noise)"
    )
    boot_over = med([ours_cpu - floor_cpu for floor_cpu, ours_cpu in bootstrap])
    print(
        f"child-side bootstrap alone ({len(bootstrap)} runs): a module importing what uvicorn "
        f"imports takes {ms(med([pair[0] for pair in bootstrap]))} of CPU under "
        f"`python -u -m`, {boot_over * 1000:+.2f} ms through ours (paired median)"
    )
    print(
        f"baseline - floor: ready {(med(base.ready) - med(floor.ready)) * 1000:+.1f} ms "
        f"(baseline/ours {med(base.ready) / med(ours.ready):.2f}x), "
        f"stop {(med(base.stop) - med(floor.stop)) * 1000:+.1f} ms "
        f"(baseline/ours {med(base.stop) / med(ours.stop):.1f}x)"
    )

    bad_pairs = [(wrong_import_floor(), wrong_import_ours()) for _ in range(5)]
    floor_bad = med([pair[0] for pair in bad_pairs])
    ours_bad = med([pair[1] for pair in bad_pairs])
    timeout = 3.0 if args.quick else 20.0
    base_bad = wrong_import_baseline(timeout)
    note = " (--quick: baseline timeout shortened from 20 s to 3 s)" if args.quick else ""
    print(
        f"wrong import path (5 rounds): uvicorn itself exits after {ms(floor_bad)}; ours reports "
        f"it after {ms(ours_bad)} ({(ours_bad - floor_bad) * 1000:+.1f} ms); baseline after "
        f"{ms(base_bad)}, without uvicorn's message{note}"
    )

    goal_ready = GOAL_READY_LOADED if args.burners else GOAL_READY
    print("\ngoals:")
    print(
        f"  start to ready <= floor + {goal_ready * 1000:g} ms"
        f"{f' under {args.burners} burners' if args.burners else ''}: "
        f"{ready_over * 1000:+.1f} ms, {verdict(ready_over <= goal_ready)} (per-round "
        f"quartiles {quartiles[0] * 1000:+.0f} / {quartiles[2] * 1000:+.0f} ms; the bootstrap "
        f"alone {boot_over * 1000:+.2f} ms of CPU)"
    )
    if mem_over is not None:
        print(
            f"  tree memory (PSS) <= floor + {GOAL_MEMORY / 1048576:g} MiB: "
            f"{mem_over / 1048576:+.2f} MiB, {verdict(mem_over <= GOAL_MEMORY)}"
        )
    else:
        print("  tree memory: not measured")
    print(
        f"  keep-alive latency <= {GOAL_KEEPALIVE:g}x the floor's: "
        f"{keep_ratio:.3f}x, {verdict(keep_ratio <= GOAL_KEEPALIVE)}"
    )
    if ours.after_exit:  # measured directly: when the stop returned after the server's exit
        stop_over = med(ours.after_exit)
    print(
        f"  stop <= uvicorn's own exit + {GOAL_STOP * 1000:g} ms: "
        f"{stop_over * 1000:+.1f} ms, {verdict(stop_over <= GOAL_STOP)}"
    )
    print(
        f"  wrong import path reported in < {GOAL_BAD_PATH * 1000:g} ms: "
        f"{ms(ours_bad)}, {verdict(ours_bad < GOAL_BAD_PATH)}"
    )
    if cache_folder is not None:
        shutil.rmtree(cache_folder, ignore_errors=True)


if __name__ == "__main__":
    main()
