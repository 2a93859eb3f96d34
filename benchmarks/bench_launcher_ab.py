"""server-launcher at an earlier commit against the working tree, and the floor, in one run.

``bench:launcher`` compares ours with the floor; a change that moves a figure by a percent or
two cannot be told from noise by comparing two of its runs made at different times (keep-alive
moved from 1.009x to 1.027x between runs of the same code). This runs three contenders side by
side, interleaved in a new random order every round, each in a process of its own that imports
its own copy of ``server_launcher`` (``PYTHONPATH``; the servers they start inherit it):

  floor  ``bench_launcher.floor_round`` (``uvicorn --fd``, 1 ms poll)
  then   ``bench_launcher.ours_round`` with ``packages/server-launcher/src`` at REV
         (``git archive`` into a temporary folder, removed at the end)
  now    the same with the working tree's copy

and prints, per figure, each contender's median and the paired (same round) median of
now - then and now / then, with its quartiles: the change's own effect, with the load of the
moment cancelled out. Figures: start to ready, keep-alive latency (median of 200 GETs on one
connection), tree memory (PSS), stop, and how long after the server's own exit the stop returned.

Usage: hatch run bench:launcher-ab REV [--rounds N] [--burners N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from stress import burners  # the busy-loop processes of `hatch run stress:test`

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE = "packages/server-launcher/src"
#: (key in a round's record, label, unit scale, unit)
FIGURES = [
    ("ready", "start to ready", 1e3, "ms"),
    ("request", "keep-alive GET (median of 200)", 1e6, "us"),
    ("pss", "tree memory: PSS summed", 1 / 2**20, "MiB"),
    ("stop", "stop (SIGTERM to reaped)", 1e3, "ms"),
    ("after_exit", "  stop returned after the exit", 1e3, "ms"),
]


def worker(kind: str) -> None:
    """One contender: a round per line read from stdin, its figures as one JSON line each."""
    import bench_launcher  # beside this file, on sys.path as the script's folder

    import server_launcher

    play = bench_launcher.floor_round if kind == "floor" else bench_launcher.ours_round
    print(json.dumps({"imported": server_launcher.__file__}), flush=True)
    for _ in sys.stdin:
        samples = bench_launcher.Samples()
        play(samples)
        record = {key: getattr(samples, key)[0] for key, *_ in FIGURES if getattr(samples, key)}
        print(json.dumps(record), flush=True)


@contextlib.contextmanager
def source_at(rev: str) -> Iterator[Path]:
    """The launcher's source as it was at ``rev``, in a temporary folder."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, SOURCE],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        message = archive.stderr.decode(errors="replace").strip()
        sys.exit(f"bench:launcher-ab: cannot read {SOURCE} at {rev!r}: {message}")
    folder = Path(tempfile.mkdtemp(prefix="bench-launcher-ab-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
        yield folder / SOURCE
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Contender:
    """A worker process, driven one round at a time."""

    def __init__(self, name: str, kind: str, source: Path | None) -> None:
        env = dict(os.environ)
        if source is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
        self.name = name
        self.rounds: list[dict[str, float]] = []
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.imported = self._read()["imported"]

    def _read(self) -> dict[str, float]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            sys.exit(f"bench:launcher-ab: the {self.name} worker exited ({self.proc.wait()})")
        return dict(json.loads(line))

    def play(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.rounds.append(self._read())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _difference(now: list[float], then: list[float]) -> str:
    """The median of the per-round differences, with its quartiles."""
    low, mid, high = statistics.quantiles([n - t for n, t in zip(now, then, strict=True)], n=4)
    return f"{mid:+.3g} ({low:+.3g} / {high:+.3g})"


def _ratio(now: list[float], then: list[float]) -> str:
    """The median of the per-round ratios."""
    ratios = [n / t for n, t in zip(now, then, strict=True) if t]
    return f"{statistics.median(ratios):.4f}x" if ratios else "-"


def report(rev: str, contenders: dict[str, Contender], burners: int) -> None:
    rounds = len(contenders["now"].rounds)
    print(
        f"\nserver-launcher at {rev} ('then') against the working tree ('now'), with the floor: "
        f"{rounds} interleaved rounds, {burners} CPU burner(s), Python {sys.version.split()[0]}"
    )
    for name, contender in contenders.items():
        print(f"  {name:5}  {contender.imported}")
    print("medians; now-then and now/then: medians of the per-round differences and ratios")
    header = f"{'':40}{'floor':>11}{'then':>11}{'now':>11}   {'now-then (quartiles)':<28}now/then"
    print(header)
    for key, label, scale, unit in FIGURES:
        columns = {
            name: [r[key] * scale for r in c.rounds if key in r] for name, c in contenders.items()
        }
        if not all(len(values) == rounds for values in columns.values()):
            continue
        medians = "".join(f"{statistics.median(columns[n]):>11.4g}" for n in contenders)
        diff = _difference(columns["now"], columns["then"])
        ratio = _ratio(columns["now"], columns["then"])
        print(f"{label + ' (' + unit + ')':40}{medians}   {diff:<28}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("rev", help="the commit to compare with (e.g. HEAD~3, a tag, a hash)")
    parser.add_argument("--rounds", type=int, default=40, help="rounds (default 40)")
    parser.add_argument("--burners", type=int, default=0, help="busy-loop processes (default 0)")
    args = parser.parse_args()
    if args.rounds < 2 or args.burners < 0:
        parser.error("--rounds must be at least 2 and --burners at least 0")
    with source_at(args.rev) as then_source, burners(args.burners):
        contenders: dict[str, Contender] = {}
        try:
            for name, kind, source in [
                ("floor", "floor", None),
                ("then", "ours", then_source),
                ("now", "ours", ROOT / SOURCE),
            ]:
                contenders[name] = Contender(name, kind, source)
            for number in range(1, args.rounds + 1):
                order = list(contenders.values())
                random.shuffle(order)
                for contender in order:
                    contender.play()
                if number % 10 == 0:
                    print(f"round {number}/{args.rounds} done", flush=True)
        finally:
            for contender in contenders.values():
                contender.close()
    report(args.rev, contenders, args.burners)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
    else:
        main()
