"""Benchmark settings-override against what tests use today, side by side in one run.

Run with `hatch run bench:settings` (`--rounds N` for more rounds). Everything is measured in
this run, on an environment of 50 variables (a realistic shell), and printed with the ratio and
the targets:

* enter+exit of `temporary_settings` with one key costs at most `pytest.MonkeyPatch` (setenv and
  undo) and at most one `unittest.mock.patch.dict(os.environ, ...)`;
* with `mirror_environ=True` (the form pytest-bundle's `use_hosted_api_server` uses), at most
  twice `pytest.MonkeyPatch`;
* `setting.value()` takes under 2 microseconds, with and without an active override;
* with pydantic-settings installed: an override of the pydantic adapter (enter+exit) costs at
  most re-instantiating the model, which is what a test would do without it.

Construction is included on every side: a test writes `with temporary_settings({...}):` just as
it writes `mp = pytest.MonkeyPatch(); mp.setenv(...); ...; mp.undo()`, and the same mapping (the
environment names and string values a test would give the environment) goes to both.

The machine this runs on may be busy. Times are this thread's CPU time (`time.thread_time`), so
the slices other processes take while it waits for a core are not counted (`--wall` measures
wall-clock time instead). Each comparison is measured in rounds that alternate the two sides, so
both see the same load; the figures are the medians over the rounds and the ratio is the median
of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

from settings_override import SettingsRegistry, temporary_settings

ENV_SIZE = 50
TIMER: Callable[[], float] = time.thread_time


class Pair:
    """One comparison: a baseline and ours, measured in alternating rounds."""

    def __init__(
        self,
        label: str,
        base_name: str,
        base: Callable[[], object],
        ours: Callable[[], object],
        number: int,
    ) -> None:
        self.label = label
        self.base_name = base_name
        self.base = base
        self.ours = ours
        self.number = number
        self.base_times: list[float] = []
        self.ours_times: list[float] = []

    def round(self) -> None:
        base = timeit.Timer(self.base, timer=TIMER).timeit(self.number) / self.number
        ours = timeit.Timer(self.ours, timer=TIMER).timeit(self.number) / self.number
        self.base_times.append(base)
        self.ours_times.append(ours)

    @property
    def base_median(self) -> float:
        return statistics.median(self.base_times)

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours_times)

    @property
    def ratio(self) -> float:
        """Median of the per-round ratios: both sides of a round saw the same load."""
        pairs = zip(self.ours_times, self.base_times, strict=True)
        return statistics.median(ours / base for ours, base in pairs)


def per_call(func: Callable[[], object], number: int = 100_000) -> float:
    return timeit.Timer(func, timer=TIMER).timeit(number) / number


def realistic_environment() -> dict[str, str]:
    env = {f"BENCH_VAR_{i:02d}": f"/usr/local/value/{i}" * 3 for i in range(ENV_SIZE - 3)}
    env.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"})
    return env


def monkeypatch_setenv(values: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        mp = pytest.MonkeyPatch()
        for name, value in values.items():
            mp.setenv(name, value)
        mp.undo()

    return run


def patch_dict(values: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        with mock.patch.dict(os.environ, values):
            pass

    return run


def override(values: dict[Any, Any], *, mirror: bool = False) -> Callable[[], None]:
    def run() -> None:
        with temporary_settings(values, mirror_environ=mirror):
            pass

    return run


def pydantic_pairs() -> tuple[list[Pair], Callable[[], None]] | None:
    """The adapter against re-instantiating the model (None without pydantic-settings)."""
    try:
        from pydantic import BaseModel, SecretStr, field_validator
        from pydantic_settings import BaseSettings, SettingsConfigDict

        from settings_override.pydantic import PydanticSettings
    except ImportError:
        return None

    class Database(BaseModel):
        url: str = "sqlite://"
        pool: int = 5

    class AppSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="BENCH_PYD_")

        api_url: str = "http://localhost"
        port: int = 80
        debug: bool = False
        tags: list[str] = []
        database: Database = Database()
        token: SecretStr = SecretStr("default-token")

        @field_validator("port")
        @classmethod
        def _positive(cls, value: int) -> int:
            if value <= 0:
                raise ValueError("port must be positive")
            return value

    settings = PydanticSettings(AppSettings)

    def adapter_one() -> None:
        with settings.temporary_settings({"api_url": "http://127.0.0.1:1234/api"}):
            pass

    def adapter_mirror() -> None:
        with settings.temporary_settings(
            {"api_url": "http://127.0.0.1:1234/api"}, mirror_environ=True
        ):
            pass

    def adapter_three() -> None:
        with settings.temporary_settings({"port": "8000", "debug": True, "tags": ["a", "b"]}):
            pass

    pairs = [
        Pair("pydantic override, 1 field", "AppSettings()", AppSettings, adapter_one, 200),
        Pair(
            "pydantic override, 1 field, mirror", "AppSettings()", AppSettings, adapter_mirror, 200
        ),
        Pair("pydantic override, 3 fields", "AppSettings()", AppSettings, adapter_three, 200),
    ]
    return pairs, settings.close


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds per pair")
    parser.add_argument("--wall", action="store_true", help="wall-clock time, not CPU time")
    args = parser.parse_args()
    global TIMER
    if args.wall:
        TIMER = time.perf_counter

    registry = SettingsRegistry("BENCH_APP_")
    settings = [registry.define(f"S{i:02d}", int, i) for i in range(20)]
    url = registry.define("API_URL", str, "http://localhost")
    one = {url.name: "http://127.0.0.1:1234/api"}
    twenty = {s.name: str(100 + i) for i, s in enumerate(settings)}

    pairs = [
        Pair("enter+exit, 1 key", "MonkeyPatch", monkeypatch_setenv(one), override(one), 5000),
        Pair(
            "enter+exit, 1 key, mirror_environ",
            "MonkeyPatch",
            monkeypatch_setenv(one),
            override(one, mirror=True),
            5000,
        ),
        Pair(
            "enter+exit, 20 keys", "MonkeyPatch", monkeypatch_setenv(twenty), override(twenty), 500
        ),
        Pair(
            "enter+exit, 20 keys, mirror_environ",
            "MonkeyPatch",
            monkeypatch_setenv(twenty),
            override(twenty, mirror=True),
            500,
        ),
        Pair("enter+exit, 1 key", "patch.dict", patch_dict(one), override(one), 1000),
        Pair("enter+exit, 20 keys", "patch.dict", patch_dict(twenty), override(twenty), 500),
    ]
    reads: dict[str, list[float]] = {"default": [], "environment": [], "override": []}
    environ_get: list[float] = []
    pydantic = pydantic_pairs()
    if pydantic is not None:
        pairs += pydantic[0]

    with mock.patch.dict(os.environ, realistic_environment(), clear=True):
        assert len(os.environ) == ENV_SIZE
        for _ in range(args.rounds):
            for pair in pairs:
                pair.round()
            reads["default"].append(per_call(url.value))
            os.environ[settings[0].name] = "42"
            reads["environment"].append(per_call(settings[0].value))
            del os.environ[settings[0].name]
            with temporary_settings({url: "http://override"}), temporary_settings({settings[1]: 5}):
                reads["override"].append(per_call(url.value))
            environ_get.append(per_call(lambda: os.environ.get(url.name)))

    registry.close()
    if pydantic is not None:
        pydantic[1]()

    print(
        f"settings-override benchmark: Python {sys.version.split()[0]}, {ENV_SIZE} env vars, "
        f"medians of {args.rounds} alternating rounds, {'wall' if args.wall else 'CPU'} time"
    )
    print(f"{'operation':38} {'baseline':>14} {'base':>11} {'ours':>11} {'ours/base':>10}")
    for pair in pairs:
        print(
            f"{pair.label:38} {pair.base_name:>14} {pair.base_median * 1e6:9.2f}us "
            f"{pair.ours_median * 1e6:9.2f}us {pair.ratio:10.3f}"
        )
    read = {name: statistics.median(times) for name, times in reads.items()}
    for name, seconds in read.items():
        print(f"{'value(), ' + name:38} {'':>14} {'':>11} {seconds * 1e6:9.3f}us")
    print(f"(for scale: os.environ.get() = {statistics.median(environ_get) * 1e6:.3f}us)")

    def ratio(label: str, base_name: str) -> float:
        return next(p.ratio for p in pairs if p.label == label and p.base_name == base_name)

    targets = [
        ("1 key <= MonkeyPatch", ratio("enter+exit, 1 key", "MonkeyPatch") <= 1.0),
        (
            "1 key, mirror_environ <= 2x MonkeyPatch",
            ratio("enter+exit, 1 key, mirror_environ", "MonkeyPatch") <= 2.0,
        ),
        ("1 key <= patch.dict", ratio("enter+exit, 1 key", "patch.dict") <= 1.0),
        ("value() < 2us (default)", read["default"] < 2e-6),
        ("value() < 2us (environment)", read["environment"] < 2e-6),
        ("value() < 2us (override active)", read["override"] < 2e-6),
    ]
    if pydantic is not None:
        targets.append(
            (
                "pydantic override <= re-instantiation",
                ratio("pydantic override, 1 field", "AppSettings()") <= 1.0,
            )
        )
    print("targets:")
    for label, met in targets:
        print(f"  {label:42} {'met' if met else 'NOT MET'}")
    return 0 if all(met for _, met in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
