"""Benchmark settings-override against `unittest.mock.patch.dict(os.environ, ...)`.

Run with `hatch run bench:settings`. Everything is measured in this run, on an environment of
50 variables (a realistic shell), and printed side by side with the ratio and the targets:

* enter+exit of `temporary_settings` with one key costs at most one `patch.dict`;
* `setting.value()` takes under 2 microseconds, with and without an active override.

Construction is included on both sides: a test writes `with temporary_settings({...}):` just as
it writes `with patch.dict(os.environ, {...}):`.
"""

from __future__ import annotations

import os
import statistics
import sys
import timeit
from collections.abc import Callable
from unittest import mock

from settings_override import SettingsRegistry, temporary_settings

REPEAT = 7
ENV_SIZE = 50


def per_call(func: Callable[[], object], number: int) -> float:
    """Median seconds per call over REPEAT runs of `number` calls."""
    timer = timeit.Timer(func)
    runs = timer.repeat(repeat=REPEAT, number=number)
    return statistics.median(runs) / number


def realistic_environment() -> dict[str, str]:
    env = {f"BENCH_VAR_{i:02d}": f"/usr/local/value/{i}" * 3 for i in range(ENV_SIZE - 3)}
    env.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"})
    return env


def main() -> int:
    registry = SettingsRegistry("BENCH_APP_")
    settings = [registry.define(f"S{i:02d}", int, i) for i in range(20)]
    url = registry.define("API_URL", str, "http://localhost")
    one_key = {url.name: "http://127.0.0.1:1234/api"}
    twenty_ours = {s: 100 + i for i, s in enumerate(settings)}
    twenty_env = {s.name: str(100 + i) for i, s in enumerate(settings)}

    with mock.patch.dict(os.environ, realistic_environment(), clear=True):
        assert len(os.environ) == ENV_SIZE

        def patch_one() -> None:
            with mock.patch.dict(os.environ, one_key):
                pass

        def ours_one() -> None:
            with temporary_settings(one_key):
                pass

        def patch_twenty() -> None:
            with mock.patch.dict(os.environ, twenty_env):
                pass

        def ours_twenty() -> None:
            with temporary_settings(twenty_ours):
                pass

        baseline_one = per_call(patch_one, 2000)
        baseline_twenty = per_call(patch_twenty, 1000)
        ours_one_t = per_call(ours_one, 5000)
        ours_twenty_t = per_call(ours_twenty, 2000)

        value_plain = per_call(url.value, 100_000)
        os.environ[settings[0].name] = "42"
        value_env = per_call(settings[0].value, 100_000)
        del os.environ[settings[0].name]
        environ_get = per_call(lambda: os.environ.get(url.name), 100_000)
        with temporary_settings({url: "http://override"}), temporary_settings({settings[1]: 5}):
            value_override = per_call(url.value, 100_000)

    registry.close()
    rows = [
        ("enter+exit, 1 key", baseline_one, ours_one_t),
        ("enter+exit, 20 keys", baseline_twenty, ours_twenty_t),
        ("value(), default (not in env)", baseline_one, value_plain),
        ("value(), from the environment", baseline_one, value_env),
        ("value(), 2 active overrides", baseline_one, value_override),
    ]
    print(f"settings-override benchmark: Python {sys.version.split()[0]}, {ENV_SIZE} env vars")
    print(f"{'operation':34} {'patch.dict':>12} {'ours':>12} {'ours/patch':>11}")
    for label, base, ours in rows:
        print(f"{label:34} {base * 1e6:10.2f}us {ours * 1e6:10.3f}us {ours / base:11.3f}")
    print(f"(for scale: os.environ.get() = {environ_get * 1e6:.3f}us)")
    targets = [
        ("1-key enter+exit <= patch.dict", ours_one_t <= baseline_one),
        ("value() < 2us (default)", value_plain < 2e-6),
        ("value() < 2us (environment)", value_env < 2e-6),
        ("value() < 2us (override active)", value_override < 2e-6),
    ]
    print("targets:")
    for label, met in targets:
        print(f"  {label:34} {'met' if met else 'NOT MET'}")
    return 0 if all(met for _, met in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
