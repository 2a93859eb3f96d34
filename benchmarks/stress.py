"""Run the server and plugin suites again and again on a machine kept busy, and count failures.

A test that passes only on a quiet machine is a bug: CI runs on two cores that other work may
be using. This starts ``--burners`` busy-loop processes (two by default, one per core here),
runs the chosen suites ``--rounds`` times in a row with pytest-xdist, and prints one line per
round and a summary naming every test that failed. The burners are stopped whatever happens.

Usage:
  python benchmarks/stress.py [--rounds 10] [--burners 2] [--workers 2] [-m EXPR]
                              [SUITE ...] [-- PYTEST ARGS]

``hatch run stress:test`` runs the server-launcher and pytest-bundle suites (with the
cross-package tests) ten times; ``.ci/run`` runs one short round of it (``-m "not slow"``: the
slow tests ran in the matrix just before).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence

DEFAULT_SUITES = ["packages/server-launcher/tests", "packages/pytest-bundle/tests", "tests"]
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)
_SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed|errors?)\b.*?)\s*=*$", re.MULTILINE)


@contextlib.contextmanager
def burners(count: int) -> Iterator[list[int]]:
    """``count`` processes spinning on a CPU each, killed (and reaped) on the way out."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", "while True: pass"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]
    try:
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_round(suites: Sequence[str], workers: str, extra: Sequence[str]) -> tuple[int, str]:
    """One pytest run; (exit code, its output)."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        *suites,
        "-n",
        workers,
        "-p",
        "no:cacheprovider",
        "-q",
        "-rfE",
        *extra,
    ]
    with tempfile.TemporaryFile("w+") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
        out.seek(0)
        return code, out.read()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, extra = args[:cut], args[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suites", nargs="*", default=DEFAULT_SUITES)
    parser.add_argument("--rounds", type=int, default=10, help="runs in a row (default 10)")
    parser.add_argument("--burners", type=int, default=2, help="busy-loop processes (default 2)")
    parser.add_argument("--workers", default="2", help="pytest-xdist workers (default 2)")
    parser.add_argument(
        "-m", dest="markexpr", help='only tests matching this marker expression (e.g. "not slow")'
    )
    options = parser.parse_args(args)
    if options.markexpr is not None:
        extra = ["-m", options.markexpr, *extra]
    if options.rounds < 1 or options.burners < 0:
        parser.error("--rounds must be at least 1 and --burners at least 0")

    failures: Counter[str] = Counter()
    failed_rounds = 0
    started = time.monotonic()
    with burners(options.burners):
        print(
            f"stress: {options.rounds} round(s) of {' '.join(options.suites)} with "
            f"{options.burners} busy-loop process(es) and {options.workers} xdist worker(s)",
            flush=True,
        )
        for number in range(1, options.rounds + 1):
            round_start = time.monotonic()
            code, output = run_round(options.suites, options.workers, extra)
            summary = _SUMMARY.findall(output)
            names = _FAILED.findall(output)
            failures.update(names)
            line = summary[-1] if summary else f"pytest exited with {code}"
            print(
                f"stress: round {number}/{options.rounds}: {line} "
                f"({time.monotonic() - round_start:.0f} s)",
                flush=True,
            )
            if code != 0:
                failed_rounds += 1
                if not names:  # no summary to name the culprit: show the end of the output
                    print("\n".join(output.splitlines()[-40:]), flush=True)
                for name in names:
                    print(f"stress:   failed: {name}", flush=True)
    total = time.monotonic() - started
    print(
        f"stress: {options.rounds - failed_rounds} of {options.rounds} rounds green, "
        f"{sum(failures.values())} test failure(s) in {total:.0f} s",
        flush=True,
    )
    for name, count in failures.most_common():
        print(f"stress:   {count}x {name}", flush=True)
    return 1 if failed_rounds else 0


if __name__ == "__main__":
    sys.exit(main())
