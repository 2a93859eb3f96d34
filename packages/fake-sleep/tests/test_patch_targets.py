"""Mock mode safe for every target: trio.sleep, asyncio.sleep, anyio.sleep, a user's function.

The recorder must record and checkpoint without calling itself, whatever it replaces, and
nothing the patch does may outlive its block: not in anyio's backends, whatever was imported
first, and not in modules imported inside the block. A recorder awaited after its block
ended raises a clear error; what it recorded stays readable.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest
import trio

from fake_sleep import SleepRecorder, patch_sleep

REAL_ANYIO_SLEEP = anyio.sleep
REAL_ASYNCIO_SLEEP = asyncio.sleep
REAL_TRIO_SLEEP = trio.sleep
REAL_TIME = time.time


@pytest.fixture
def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write a throwaway module importable for this test only; return its unique name."""
    names: list[str] = []

    def write(source: str) -> str:
        name = f"fs_targets_{uuid.uuid4().hex}"
        names.append(name)
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


async def _sleeps_are_checkpoints(sleep: Callable[[float], Any]) -> None:
    """A sibling task runs during the fake sleeps, and a cancellation is delivered at one."""
    ran = anyio.Event()

    async def sibling() -> None:
        ran.set()

    with anyio.fail_after(30):  # a fake that never yields would spin here, not return
        async with anyio.create_task_group() as tg:
            tg.start_soon(sibling)
            while not ran.is_set():
                await sleep(3600)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await sleep(10)
    assert scope.cancelled_caught


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_trio_sleep_target_records_and_checkpoints_without_calling_itself() -> None:
    with patch_sleep(targets=["trio.sleep"], clocks=[]) as sleep:
        assert trio.sleep is sleep
        with anyio.fail_after(30):
            await trio.sleep(5)
            await anyio.sleep(2)  # anyio's trio backend calls trio.sleep: recorded too
        await _sleeps_are_checkpoints(trio.sleep)
    assert trio.sleep is REAL_TRIO_SLEEP
    assert sleep.delays[:2] == [5, 2]
    assert sleep.delays[-1] == 10
    await anyio.sleep(0.001)  # the real one again


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_asyncio_sleep_target_records_and_checkpoints_without_calling_itself() -> None:
    with patch_sleep(targets=["asyncio.sleep"], clocks=[]) as sleep:
        assert asyncio.sleep is sleep
        with anyio.fail_after(30):
            await asyncio.sleep(5)
        await _sleeps_are_checkpoints(asyncio.sleep)
    assert asyncio.sleep is REAL_ASYNCIO_SLEEP
    assert sleep.delays[0] == 5
    assert sleep.delays[-1] == 10
    await anyio.sleep(0.001)


@pytest.mark.anyio
async def test_anyio_sleep_target_is_a_checkpoint_on_both_backends() -> None:
    with patch_sleep(targets=["anyio.sleep"], clocks=[]) as sleep:
        await _sleeps_are_checkpoints(anyio.sleep)
    assert anyio.sleep is REAL_ANYIO_SLEEP
    assert sleep.delays[-1] == 10


@pytest.mark.anyio
async def test_user_module_function_target(write_module: Callable[[str], str]) -> None:
    name = write_module(
        """
        import anyio

        async def nap(seconds):
            await anyio.sleep(seconds)
        """
    )
    module = __import__(name)
    real_nap = module.nap
    with patch_sleep(targets=[f"{name}.nap"], clocks=[]) as sleep:
        with anyio.fail_after(30):
            await module.nap(7)
        await _sleeps_are_checkpoints(module.nap)
        assert anyio.sleep is REAL_ANYIO_SLEEP
    assert module.nap is real_nap
    assert sleep.delays[0] == 7


async def _error_of(sleep: Callable[..., Any], *args: Any) -> tuple[type[BaseException], str]:
    with pytest.raises((TypeError, ValueError)) as caught:
        with anyio.fail_after(30):
            await sleep(*args)
    return caught.type, str(caught.value)


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.anyio
async def test_odd_arguments_under_a_trio_sleep_patch_get_the_real_error() -> None:
    """anyio.sleep hands a Decimal on to trio.sleep, the recorder itself: no recursion."""
    real = await _error_of(anyio.sleep, Decimal(1))
    with patch_sleep(targets=["trio.sleep"], clocks=[]) as sleep:
        assert await _error_of(trio.sleep, Decimal(1)) == await _error_of(
            REAL_TRIO_SLEEP, Decimal(1)
        )
        assert await _error_of(anyio.sleep, Decimal(1)) == real
        with anyio.fail_after(30):
            await trio.sleep(1)  # the recorder still works after the odd calls
    assert sleep.delays == [1]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_odd_arguments_under_an_asyncio_sleep_patch_get_the_real_error() -> None:
    real = await _error_of(REAL_ASYNCIO_SLEEP, Decimal(1))
    with patch_sleep(targets=["asyncio.sleep", "anyio.sleep"], clocks=[]) as sleep:
        assert await _error_of(asyncio.sleep, Decimal(1)) == real
        assert await _error_of(anyio.sleep, Decimal(1)) == real
    assert sleep.delays == []


_FIRST_IMPORT_INSIDE = """
import sys

import anyio
from fake_sleep import patch_sleep

backend, target = sys.argv[1], sys.argv[2]
assert "anyio._backends._" + backend not in sys.modules  # first imported inside the patch


async def inside() -> None:
    import asyncio, trio

    with anyio.fail_after(30):
        await {{"asyncio": asyncio, "trio": trio}}[backend].sleep(5)
        await anyio.sleep(0.01)


with patch_sleep(targets=[target], clocks=[]) as sleep:
    anyio.run(inside, backend=backend)
# As when the backend was imported first: anyio's asyncio backend keeps the real asyncio.sleep;
# its trio backend calls trio.sleep by name on each call, so there anyio.sleep is faked too.
expected = [5] if backend == "asyncio" else [5, 0.01]
assert sleep.delays == expected, sleep.delays


async def after() -> float:
    with anyio.fail_after(30):
        start = anyio.current_time()
        await anyio.sleep(0.05)
        return anyio.current_time() - start


assert anyio.run(after, backend=backend) >= 0.05  # a real sleep, not a fake or a recursion
print("ok")
"""


@pytest.mark.parametrize(
    ("backend", "target"), [("asyncio", "asyncio.sleep"), ("trio", "trio.sleep")]
)
def test_backend_first_imported_inside_the_patch_keeps_the_real_sleep(
    tmp_path: Path, backend: str, target: str
) -> None:
    """The issue's leak: anyio's asyncio backend imported under an asyncio.sleep patch kept the
    fake, and every later anyio.sleep in the process recursed. A fresh interpreter each."""
    script = tmp_path / "first_import.py"
    script.write_text(_FIRST_IMPORT_INSIDE.replace("{{", "{").replace("}}", "}"))
    done = subprocess.run(
        [sys.executable, str(script), backend, target],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.anyio
async def test_module_imported_inside_the_block_gets_the_real_sleep_back(
    write_module: Callable[[str], str],
) -> None:
    name = write_module(
        """
        from anyio import sleep

        async def work(seconds):
            await sleep(seconds)
        """
    )
    with patch_sleep(clocks=[]) as sleep:
        module: ModuleType = __import__(name)  # binds the fake: imported inside the block
        assert module.sleep is sleep
        with anyio.fail_after(30):
            await module.work(4)
    assert module.sleep is REAL_ANYIO_SLEEP
    assert sleep.delays == [4]
    with anyio.fail_after(30):
        await module.work(0.001)  # real again, and the ended recorder is not reached


@pytest.mark.anyio
async def test_module_imported_inside_the_block_gets_the_real_clock_back(
    write_module: Callable[[str], str],
) -> None:
    """`from time import time` inside the block binds the shifted clock; after the block the
    module reads real time again instead of a clock an hour ahead for the rest of the run."""
    name = write_module(
        """
        from time import time
        """
    )
    with patch_sleep(clocks=["time.time"]):
        await anyio.sleep(3600)
        module: ModuleType = __import__(name)
        assert module.time() >= REAL_TIME() + 3000  # the fake, bound at import
    assert module.time is REAL_TIME
    assert abs(module.time() - REAL_TIME()) < 600


_ENDED = re.escape("was awaited after its patch_sleep() block ended")


@pytest.mark.anyio
async def test_recorder_awaited_after_its_block_raises_and_keeps_its_record() -> None:
    with patch_sleep(clocks=[]) as sleep:
        with anyio.fail_after(30):
            await anyio.sleep(5)
            await anyio.sleep(delay=2)
    with pytest.raises(RuntimeError, match=_ENDED) as caught:
        await sleep(1)
    assert "'anyio.sleep'" in str(caught.value)
    with pytest.raises(RuntimeError, match=_ENDED):
        await sleep(delay=1)  # the odd-call path refuses too
    sleep.assert_has_awaits([((5,),), ((), {"delay": 2})])
    assert sleep.delays == [5, 2]
    assert sleep.await_count == 2
    with sleep.assert_sleeps_for(0):
        pass


@pytest.mark.anyio
async def test_ambiguous_late_binding_keeps_the_ended_recorder_which_says_so(
    write_module: Callable[[str], str],
) -> None:
    """Two targets named `sleep`: which one a module bound cannot be told, so it keeps the
    recorder, and awaiting it after the block fails with the clear error (not a wrong sleep)."""
    name = write_module(
        """
        from asyncio import sleep
        """
    )
    with patch_sleep(targets=["anyio.sleep", "asyncio.sleep"], clocks=[]) as sleep:
        module: ModuleType = __import__(name)
    assert asyncio.sleep is REAL_ASYNCIO_SLEEP
    assert module.sleep is sleep
    with pytest.raises(RuntimeError, match=_ENDED) as caught:
        await module.sleep(1)
    assert "'anyio.sleep', 'asyncio.sleep'" in str(caught.value)


@pytest.mark.anyio
async def test_a_recorder_made_directly_never_ends() -> None:
    recorder = SleepRecorder()
    with anyio.fail_after(30):
        await recorder(3)
    assert recorder.delays == [3]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_backend_sleep_patch_in_the_first_test_does_not_reach_later_tests(
    pytester: pytest.Pytester, backend: str
) -> None:
    """The issue's report, as a suite meets it: the session's first event loop runs under a
    patch of the backend's own sleep; tests after it, which never asked for it, sleep for real.

    anyio's own pytest plugin imports its asyncio backend when it loads, so the suite here
    runs without it (as a pytest-asyncio suite may) and starts its loops with anyio.run.
    """
    pytester.makeconftest(
        f"""
        import pytest

        from fake_sleep import patch_sleep

        @pytest.fixture
        def fake_backend_sleep():
            with patch_sleep(targets=["{backend}.sleep"], clocks=[]) as sleep:
                yield sleep
        """
    )
    pytester.makepyfile(
        f"""
        import sys
        import time

        import anyio
        import {backend}

        def test_backend_not_imported_yet():  # so the patch below is on at its first import
            assert "anyio._backends._{backend}" not in sys.modules

        def test_first(fake_backend_sleep):
            async def main():
                with anyio.fail_after(30):
                    await {backend}.sleep(5)

            anyio.run(main, backend={backend!r})
            fake_backend_sleep.assert_awaited_once_with(5)

        def test_later():
            async def main():
                started = time.monotonic()
                with anyio.fail_after(30):
                    await anyio.sleep(0.05)
                    await {backend}.sleep(0.05)
                return time.monotonic() - started

            assert anyio.run(main, backend={backend!r}) >= 0.1
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:anyio"
    )
    result.assert_outcomes(passed=3)
