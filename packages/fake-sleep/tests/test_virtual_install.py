"""Entering virtual_time(): hooks checked first, a failure changes nothing, modes do not mix."""

from __future__ import annotations

import ast
import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import fake_sleep
from fake_sleep import VirtualClockError, patch_sleep, virtual_time

pytestmark = pytest.mark.anyio

SUPPORTED = "anyio 4.4 to 4.x, trio 0.26 to 0.35"


def loop_state(backend: str) -> Any:
    """What virtual_time() changes on the running loop, to compare before and after."""
    if backend == "asyncio":
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        return (
            {name: vars(loop).get(name) for name in ("time", "run_in_executor")},
            vars(selector).get("select"),
        )
    import trio

    return trio.lowlevel.current_clock()


async def assert_threads_still_counted() -> None:
    """A block entered now works and keeps time still while a worker thread runs."""
    async with virtual_time() as clock:
        with anyio.fail_after(1):  # would fire at once if the thread were not waited for
            await anyio.to_thread.run_sync(time.sleep, 0.2)
        await anyio.sleep(5)
        assert clock.time() == 5


@pytest.fixture
def without_the_thread_hook(anyio_backend_name: str) -> Iterator[tuple[Any, str]]:
    """The owner and name of the hook that counts worker threads on this backend."""
    if anyio_backend_name == "asyncio":
        from anyio._backends._asyncio import AsyncIOBackend

        yield AsyncIOBackend, "run_sync_in_worker_thread"
    else:
        import importlib

        yield importlib.import_module("trio._threads"), "start_thread_soon"


async def test_a_missing_hook_is_refused_and_changes_nothing(
    anyio_backend_name: str,
    without_the_thread_hook: tuple[Any, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, name = without_the_thread_hook
    before = loop_state(anyio_backend_name)
    with monkeypatch.context() as patch:
        patch.delattr(owner, name)
        with pytest.raises(VirtualClockError) as caught:
            async with virtual_time():
                pass  # pragma: no cover
    message = str(caught.value)
    assert name in message
    assert SUPPORTED in message
    assert "Nothing was changed" in message
    assert loop_state(anyio_backend_name) == before
    # Nothing left behind: no "already active", and threads are still waited for.
    await assert_threads_still_counted()
    await assert_threads_still_counted()


async def test_a_failure_after_the_hooks_went_in_takes_them_all_back(
    anyio_backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pendulum = pytest.importorskip("pendulum")
    before = loop_state(anyio_backend_name)
    with monkeypatch.context() as patch:
        # Following pendulum.now is the last step of entering: make it fail.
        patch.delattr(pendulum.DateTime, "now")
        with pytest.raises(KeyError):
            async with virtual_time():
                pass  # pragma: no cover
    assert loop_state(anyio_backend_name) == before
    await assert_threads_still_counted()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_a_runner_without_what_the_trio_driver_uses_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import trio
    from trio._core._run import Runner

    clock = trio.lowlevel.current_clock()
    with monkeypatch.context() as patch:
        patch.delattr(Runner, "entry_queue")  # put back before anything yields to trio
        with pytest.raises(VirtualClockError, match=r"Runner has no 'entry_queue'.*trio 0\.26"):
            async with virtual_time():
                pass  # pragma: no cover
    assert trio.lowlevel.current_clock() is clock
    await assert_threads_still_counted()


class _OwnRunOnce(asyncio.SelectorEventLoop):
    """A loop that replaces the iteration the asyncio driver was written for."""

    def _run_once(self) -> None:
        super()._run_once()  # type: ignore[misc]


def test_a_loop_with_its_own_run_once_is_refused() -> None:
    loop = _OwnRunOnce()

    async def main() -> None:
        async with virtual_time():
            pass  # pragma: no cover

    try:
        with pytest.raises(VirtualClockError, match=r"_run_once.*anyio 4\.4"):
            loop.run_until_complete(main())
        assert "time" not in vars(loop)
        assert "select" not in vars(loop._selector)  # type: ignore[attr-defined]
    finally:
        loop.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_selector_someone_else_patched_is_refused() -> None:
    selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    theirs = selector.select
    selector.select = theirs
    try:
        with pytest.raises(VirtualClockError, match="already replaced by something else"):
            async with virtual_time():
                pass  # pragma: no cover
        assert selector.select is theirs
    finally:
        del selector.select
    await assert_threads_still_counted()


def _uvloop() -> Any:
    """uvloop, which this test must not silently skip where it is meant to be installed."""
    try:
        import uvloop
    except ImportError:
        if sys.platform == "win32" or os.environ.get("FAKE_SLEEP_NO_UVLOOP") == "1":
            pytest.skip("uvloop is not installed here (FAKE_SLEEP_NO_UVLOOP=1 or Windows)")
        pytest.fail(
            "uvloop is not installed: this environment must have it (the refusal must be"
            " tested against the real uvloop), or set FAKE_SLEEP_NO_UVLOOP=1",
            pytrace=False,
        )
    return uvloop


def test_uvloop_is_refused_with_what_to_do_instead() -> None:
    uvloop = _uvloop()

    async def main() -> None:
        async with virtual_time():
            pass  # pragma: no cover

    with pytest.raises(VirtualClockError, match=r"cannot drive uvloop.*use_uvloop"):
        uvloop.run(main())


async def test_patch_sleep_inside_virtual_time_is_refused() -> None:
    real_sleep = anyio.sleep
    async with virtual_time() as clock:
        with pytest.raises(RuntimeError, match=r"patch_sleep\(\) cannot start while"):
            with patch_sleep():
                pass  # pragma: no cover
        assert anyio.sleep is real_sleep
        with anyio.move_on_after(5):
            await anyio.sleep(10)
        assert clock.time() == 5
    with patch_sleep() as recorder:  # fine again once the block is over
        await anyio.sleep(3)
    recorder.assert_awaited_once_with(3)


async def test_virtual_time_inside_patch_sleep_is_refused(anyio_backend_name: str) -> None:
    before = loop_state(anyio_backend_name)
    with patch_sleep():
        with pytest.raises(VirtualClockError, match=r"virtual_time\(\) cannot start while"):
            async with virtual_time():
                pass  # pragma: no cover
    assert loop_state(anyio_backend_name) == before
    await assert_threads_still_counted()


def _intra_package_imports(path: Path) -> set[str]:
    """The fake_sleep._virtual modules a module imports (by short name)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:
                if module:
                    found.add(module)
                else:
                    found.update(alias.name for alias in node.names)
            elif module.startswith("fake_sleep._virtual."):
                found.add(module.rsplit(".", 1)[1])
    return found


def test_the_virtual_package_has_no_import_cycle() -> None:
    """The driver contract sits below the backends, and nothing imports the public API."""
    package = Path(fake_sleep.__file__).parent / "_virtual"
    graph = {
        path.stem: _intra_package_imports(path)
        for path in package.glob("*.py")
        if path.stem != "__init__"
    }
    for name in ("_driver", "_asyncio", "_trio", "_wall", "_io", "_threads"):
        assert "_core" not in graph[name], f"{name} imports _core"

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, f"import cycle: {' -> '.join((*trail, name))}"
        for child in graph.get(name, ()):
            visit(child, (*trail, name))

    for name in graph:
        visit(name, ())


def test_the_driver_contract_is_stated_once() -> None:
    from fake_sleep._virtual import _driver

    doc = _driver.__doc__ or ""
    for promise in ("Loop time equals the driver's time", "Timers are kept in virtual time"):
        assert promise in doc
    assert "A jump happens only when" in doc


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"io_grace": -1}, ValueError, "io_grace must be a number of seconds >= 0"),
        ({"io_grace": "2"}, TypeError, "io_grace must be a number"),
    ],
)
def test_bad_io_grace_is_refused(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        virtual_time(**kwargs)
