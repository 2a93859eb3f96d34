"""patch_sleep: dotted targets, shifted clocks, exact restore, clear errors."""

from __future__ import annotations

import math
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import anyio
import pendulum
import pytest

import fake_sleep
from fake_sleep import (
    DEFAULT_CLOCKS,
    SleepRecorder,
    UnknownTargetError,
    patch_sleep,
    resolve_target,
)

REAL_SLEEP = anyio.sleep
REAL_NOW = pendulum.now
REAL_TIME = time.time


@pytest.fixture
def write_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dict[str, str]], str]]:
    """Write a throwaway package importable for this test only; return its unique name."""
    names: list[str] = []

    def write(files: dict[str, str]) -> str:
        name = f"fs_pkg_{uuid.uuid4().hex}"
        names.append(name)
        root = tmp_path / name
        root.mkdir()
        (root / "__init__.py").write_text("")
        for relative, source in files.items():
            (root / relative).write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        return name

    yield write
    for module in list(sys.modules):
        if module.split(".")[0] in names:
            del sys.modules[module]


WORKER = """
    from anyio import sleep

    async def run_once() -> str:
        await sleep(30)
        return "done"
"""


@pytest.mark.anyio
async def test_early_import_is_patched_through_its_dotted_path(
    write_package: Callable[[dict[str, str]], str],
) -> None:
    package = write_package({"worker.py": WORKER})
    worker: ModuleType = __import__(f"{package}.worker", fromlist=["run_once"])
    assert worker.sleep is REAL_SLEEP  # bound before any patch

    with patch_sleep(targets=[f"{package}.worker.sleep"], clocks=[]) as sleep:
        with anyio.fail_after(10):
            assert await worker.run_once() == "done"
        assert worker.sleep is sleep
        assert anyio.sleep is REAL_SLEEP  # only what was named is patched
    sleep.assert_awaited_once_with(30)
    assert worker.sleep is REAL_SLEEP


@pytest.mark.anyio
async def test_module_imported_on_entry_and_class_attribute_restored_exactly(
    write_package: Callable[[dict[str, str]], str],
) -> None:
    package = write_package(
        {
            "jobs.py": """
                import anyio

                class Base:
                    pause = staticmethod(anyio.sleep)

                class Job(Base):
                    pass
            """
        }
    )
    assert f"{package}.jobs" not in sys.modules
    with patch_sleep(targets=[f"{package}.jobs.Job.pause"], clocks=[]) as sleep:
        jobs = sys.modules[f"{package}.jobs"]  # imported by the patch
        await jobs.Job.pause(2)
        assert jobs.Base.pause is REAL_SLEEP
    assert sleep.delays == [2]
    # Job inherited `pause`: restoring deletes the patch instead of pinning a copy.
    assert "pause" not in vars(jobs.Job)
    assert jobs.Job.pause is REAL_SLEEP


def test_unknown_attribute_is_named_and_nothing_is_patched() -> None:
    patcher = patch_sleep(targets=["anyio.sleep", "anyio.no_such_sleep"])
    with pytest.raises(UnknownTargetError, match=r"'anyio\.no_such_sleep'.*'no_such_sleep'"):
        patcher.__enter__()
    assert anyio.sleep is REAL_SLEEP
    assert pendulum.now is REAL_NOW


def test_unknown_module_is_named() -> None:
    with pytest.raises(UnknownTargetError, match=r"'nonexistent_pkg_xyz\.worker\.sleep'"):
        with patch_sleep(targets=["nonexistent_pkg_xyz.worker.sleep"]):
            pass  # pragma: no cover
    with pytest.raises(UnknownTargetError, match=r"'time\.no_clock'"):
        with patch_sleep(clocks=["time.no_clock"]):
            pass  # pragma: no cover
    assert anyio.sleep is REAL_SLEEP


def test_broken_module_shows_its_own_import_error(
    write_package: Callable[[dict[str, str]], str],
) -> None:
    package = write_package({"broken.py": "import fs_missing_dependency_abc\n"})
    with pytest.raises(ModuleNotFoundError, match="fs_missing_dependency_abc"):
        with patch_sleep(targets=[f"{package}.broken.sleep"], clocks=[]):
            pass  # pragma: no cover


def test_resolve_target_finds_what_patch_sleep_patches_without_patching() -> None:
    assert resolve_target("anyio.sleep") is REAL_SLEEP
    assert resolve_target("pendulum.now") is REAL_NOW
    assert anyio.sleep is REAL_SLEEP


def test_resolve_target_says_where_the_lookup_stopped() -> None:
    stopped = r"'anyio' \(module\) has no attribute 'slep'"
    with pytest.raises(UnknownTargetError, match=stopped) as info:
        resolve_target("anyio.slep")
    error = info.value
    assert (error.path, error.found, error.missing) == ("anyio.slep", "anyio", "slep")
    assert info.value.owner is anyio
    with pytest.raises(UnknownTargetError, match="no module named 'nonexistent_pkg_xyz'") as info:
        resolve_target("nonexistent_pkg_xyz.worker.sleep")
    error = info.value
    assert (error.found, error.owner, error.missing) == ("", None, "nonexistent_pkg_xyz")
    with pytest.raises(UnknownTargetError, match="dotted path") as info:
        resolve_target("anyio")
    assert (info.value.found, info.value.missing) == ("", "")
    with pytest.raises(TypeError, match="dotted path strings"):
        resolve_target(42)  # type: ignore[arg-type]


def test_resolve_target_names_a_module_that_fails_to_import(
    write_package: Callable[[dict[str, str]], str],
) -> None:
    package = write_package({"broken.py": "raise RuntimeError('boom at import')\n"})
    with pytest.raises(ImportError, match=r"importing '.*\.broken' failed: RuntimeError") as info:
        resolve_target(f"{package}.broken.sleep")
    assert info.value.name == f"{package}.broken"
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize("path", ["anyio", "anyio..sleep", "", "anyio.sleep()"])
def test_malformed_path_is_rejected(path: str) -> None:
    with pytest.raises(UnknownTargetError, match="dotted path"):
        with patch_sleep(targets=[path]):
            pass  # pragma: no cover


def test_sync_target_duplicate_and_non_string_are_rejected_before_patching() -> None:
    with pytest.raises(TypeError, match=r"'time\.sleep'.*not an async function"):
        with patch_sleep(targets=["anyio.sleep", "time.sleep"]):
            pass  # pragma: no cover
    with pytest.raises(ValueError, match=r"'anyio\.sleep'.*list each target or clock once"):
        with patch_sleep(targets=["anyio.sleep", "anyio.sleep"]):
            pass  # pragma: no cover
    with pytest.raises(TypeError, match="dotted path strings"):
        with patch_sleep(targets=[anyio.sleep]):  # type: ignore[list-item]
            pass  # pragma: no cover
    with pytest.raises(TypeError, match="sequence of dotted paths"):
        patch_sleep(clocks=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"'sys\.maxsize'.*not callable"):
        with patch_sleep(clocks=["sys.maxsize"]):
            pass  # pragma: no cover
    assert anyio.sleep is REAL_SLEEP
    assert pendulum.now is REAL_NOW


def test_single_string_is_one_path() -> None:
    with patch_sleep(targets="anyio.sleep", clocks="time.time") as sleep:
        assert anyio.sleep is sleep
        assert time.time is not REAL_TIME
    assert time.time is REAL_TIME


@pytest.mark.anyio
async def test_unpatch_on_error() -> None:
    async def failing_test() -> None:
        with patch_sleep(clocks=["pendulum.now", "time.time"]) as sleep:
            await anyio.sleep(100)
            assert anyio.sleep is sleep
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_test()
    assert anyio.sleep is REAL_SLEEP
    assert pendulum.now is REAL_NOW
    assert time.time is REAL_TIME
    # And the real clocks are no longer shifted.
    assert abs(pendulum.now("UTC").timestamp() - REAL_TIME()) < 60


def test_patch_is_not_reentrant() -> None:
    patcher = patch_sleep(clocks=[])
    with patcher:
        with pytest.raises(RuntimeError, match="already active"):
            patcher.__enter__()
        assert isinstance(anyio.sleep, SleepRecorder)
    assert anyio.sleep is REAL_SLEEP


@pytest.mark.anyio
async def test_pendulum_now_shifted_every_way_of_calling_it() -> None:
    before = REAL_NOW("UTC")
    with patch_sleep() as sleep:
        await anyio.sleep(3600)
        await anyio.sleep(0.5)
        positional = pendulum.now("UTC")
        keyword = pendulum.now(tz="UTC")
        local = pendulum.now()
        paris = pendulum.now("Europe/Paris")
    after = REAL_NOW("UTC")
    assert sleep.total == 3600.5
    for value in (positional, keyword, local, paris):
        assert isinstance(value, pendulum.DateTime)
        shift = (value - before).total_seconds()
        assert 3600.5 <= shift <= 3600.5 + (after - before).total_seconds()
    assert positional.timezone_name == "UTC"
    assert keyword.timezone_name == "UTC"
    assert paris.timezone_name == "Europe/Paris"


@pytest.mark.anyio
async def test_time_time_shifted_in_seconds_and_datetime_clock_in_timedelta(
    write_package: Callable[[dict[str, str]], str],
) -> None:
    package = write_package(
        {
            "clocks.py": """
                from datetime import datetime, timezone

                def utc_now():
                    return datetime.now(timezone.utc)

                def naive_now():
                    return datetime.now()

                def label():
                    return "not a time"
            """
        }
    )
    clocks = ["time.time", f"{package}.clocks.utc_now", f"{package}.clocks.naive_now"]
    t0, d0 = REAL_TIME(), datetime.now(timezone.utc)
    with patch_sleep(clocks=[*clocks, f"{package}.clocks.label"]):
        module = sys.modules[f"{package}.clocks"]
        assert time.time() - t0 < 60  # nothing slept yet: unshifted
        await anyio.sleep(7200)
        shifted = time.time()
        utc_now = module.utc_now()
        naive_now = module.naive_now()
        with pytest.raises(TypeError, match=r"returned str.*datetimes.*floats"):
            module.label()
    assert isinstance(shifted, float)
    assert 7200 <= shifted - t0 < 7200 + 60
    assert timedelta(hours=2) <= utc_now - d0 < timedelta(hours=2, seconds=60)
    assert utc_now.tzinfo is timezone.utc
    assert naive_now.tzinfo is None
    assert timedelta(hours=2) <= naive_now - d0.astimezone().replace(tzinfo=None)
    assert time.time is REAL_TIME


@pytest.mark.anyio
async def test_infinite_sleep_recorded_and_clocks_say_so() -> None:
    with patch_sleep(clocks=["pendulum.now", "time.time"]) as sleep:
        with anyio.fail_after(10):
            await anyio.sleep(math.inf)
        assert sleep.delays == [math.inf]
        assert sleep.total == math.inf
        assert time.time() == math.inf
        with pytest.raises(OverflowError, match="infinite fake sleep"):
            pendulum.now()


def test_default_clock_is_pendulum_and_exports() -> None:
    assert DEFAULT_CLOCKS == ("pendulum.now",)
    assert fake_sleep.DEFAULT_TARGETS == ("anyio.sleep",)
    with patch_sleep() as sleep:
        assert anyio.sleep is sleep
        assert pendulum.now is not REAL_NOW
        assert pendulum.now.__wrapped__ is REAL_NOW  # type: ignore[attr-defined]
    assert {"patch_sleep", "SleepRecorder", "UnknownTargetError"} <= set(fake_sleep.__all__)


@pytest.mark.anyio
async def test_nested_patches_keep_a_real_checkpoint() -> None:
    with patch_sleep(clocks=[]) as outer:
        with patch_sleep(clocks=[]) as inner:
            await anyio.sleep(1)
        assert anyio.sleep is outer
        await anyio.sleep(2)
    assert inner.delays == [1]
    assert outer.delays == [2]
    assert anyio.sleep is REAL_SLEEP


def test_default_clock_skipped_without_pendulum_but_explicit_one_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pendulum", None)  # as if pendulum were not installed
    with patch_sleep() as sleep:
        assert anyio.sleep is sleep
    assert anyio.sleep is REAL_SLEEP
    with pytest.raises(UnknownTargetError, match=r"'pendulum\.now': no module named 'pendulum'"):
        with patch_sleep(clocks=["pendulum.now"]):
            pass  # pragma: no cover
    assert anyio.sleep is REAL_SLEEP


@pytest.mark.anyio
async def test_owned_class_attribute_restored_as_the_same_descriptor(
    write_package: Callable[[dict[str, str]], str],
) -> None:
    package = write_package(
        {
            "jobs.py": """
                import anyio

                class Base:
                    pause = staticmethod(anyio.sleep)
            """
        }
    )
    jobs: ModuleType = __import__(f"{package}.jobs", fromlist=["Base"])
    descriptor = jobs.Base.__dict__["pause"]
    assert isinstance(descriptor, staticmethod)
    with patch_sleep(targets=[f"{package}.jobs.Base.pause"], clocks=[]) as sleep:
        await jobs.Base().pause(3)  # the recorder is not bound as a method
    sleep.assert_awaited_once_with(3)
    # The staticmethod object itself is back, not the function it wraps.
    assert jobs.Base.__dict__["pause"] is descriptor
    assert jobs.Base().pause is REAL_SLEEP


def test_immutable_owner_is_named_and_everything_rolled_back() -> None:
    with pytest.raises(TypeError, match=r"cannot patch 'datetime\.datetime\.now'"):
        with patch_sleep(clocks=["time.time", "datetime.datetime.now"]):
            pass  # pragma: no cover
    assert anyio.sleep is REAL_SLEEP
    assert time.time is REAL_TIME
