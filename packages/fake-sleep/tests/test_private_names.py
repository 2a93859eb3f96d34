"""Every private name virtual time reads exists, with the shape used, on this Python/trio/anyio.

Driven by the ``NAMES`` table of each ``_private_*`` module (the same table its docstring is
written from): a name added there without a check here, or a check left for a name that is
gone, fails. CI runs this on every Python of the matrix, with the lowest and newest anyio and
trio: that is what "the versions tested" means.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dis
import importlib
import queue
import selectors
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from types import FunctionType, ModuleType
from typing import Any

import pytest

from fake_sleep._virtual import _private_asyncio, _private_threading, _private_trio
from fake_sleep._virtual._private import TESTED, PrivateName

MODULES: dict[str, ModuleType] = {
    "asyncio": _private_asyncio,
    "trio": _private_trio,
    "threading": _private_threading,
}


def _stores(cls: type, name: str) -> list[str]:
    """The methods of `cls` and its bases (not ``__init__``) that assign ``self.<name>``."""
    found = []
    for klass in cls.__mro__:
        for attr, value in vars(klass).items():
            code = getattr(value, "__code__", None)
            if code is None or attr == "__init__":
                continue
            for instruction in dis.get_instructions(code):
                if instruction.opname == "STORE_ATTR" and instruction.argval == name:
                    found.append(f"{klass.__name__}.{attr}")
    return found


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    new = asyncio.SelectorEventLoop()
    try:
        yield new
    finally:
        new.close()


# -- asyncio (and anyio's asyncio backend) ------------------------------------------------


def check_run_once(loop: asyncio.AbstractEventLoop) -> None:
    code = _private_asyncio.RUN_ONCE_CODE
    assert code is not None
    assert code is asyncio.base_events.BaseEventLoop._run_once.__code__  # type: ignore[attr-defined]
    assert set(code.co_names) >= _private_asyncio.RUN_ONCE_NAMES
    assert type(loop)._run_once.__code__ is code  # type: ignore[attr-defined]
    assert "self" in code.co_varnames


def check_selector(loop: asyncio.AbstractEventLoop) -> None:
    view, selector = _private_asyncio.check_loop(loop)  # type: ignore[arg-type]
    assert view is loop
    assert selector is loop._selector  # type: ignore[attr-defined]
    assert isinstance(selector, selectors.BaseSelector)
    assert "select" not in vars(selector)


def check_ready(loop: asyncio.AbstractEventLoop) -> None:
    ready = loop._ready  # type: ignore[attr-defined]
    assert isinstance(ready, collections.deque)
    handle = loop.call_soon(print)
    assert list(ready) == [handle]
    handle.cancel()


def check_scheduled(loop: asyncio.AbstractEventLoop) -> None:
    handle = loop.call_later(5, print)
    scheduled = loop._scheduled  # type: ignore[attr-defined]
    assert isinstance(scheduled, list)
    assert scheduled[0] is handle
    assert scheduled[0].when() == handle.when()
    handle.cancel()


def check_ssock(loop: asyncio.AbstractEventLoop) -> None:
    fd = _private_asyncio.wakeup_fd(loop)
    assert fd == loop._ssock.fileno()  # type: ignore[attr-defined]
    assert fd in loop._selector.get_map()  # type: ignore[attr-defined]


def check_clock_resolution(loop: asyncio.AbstractEventLoop) -> None:
    assert isinstance(loop._clock_resolution, float)  # type: ignore[attr-defined]
    assert _private_asyncio.clock_resolution(loop) == loop._clock_resolution  # type: ignore[attr-defined]


def check_epoll(loop: asyncio.AbstractEventLoop) -> None:
    if not hasattr(selectors, "EpollSelector"):
        pytest.skip("no epoll here: the selector's own select(0) is used")
    with selectors.EpollSelector() as selector:
        peek = _private_asyncio.epoll_peek(selector)
        assert peek is not None
        assert peek(0) == []


def check_transport_write(loop: asyncio.AbstractEventLoop) -> None:
    transport = _private_asyncio.transport_class()
    assert callable(vars(transport)["write"])
    if sys.version_info >= (3, 12):  # before, writelines() goes through write()
        assert callable(vars(transport)["writelines"])


def check_transport_loop(loop: asyncio.AbstractEventLoop) -> None:
    left, right = socket.socketpair()

    async def main() -> None:
        made, _protocol = await loop.create_connection(asyncio.Protocol, sock=left)
        try:
            assert isinstance(made, _private_asyncio.transport_class())
            assert _private_asyncio.transport_loop_and_fd(made) == (loop, left.fileno())
        finally:
            made.close()

    try:
        loop.run_until_complete(main())
    finally:
        right.close()


def check_handle_callback(loop: asyncio.AbstractEventLoop) -> None:
    future = loop.create_future()
    handle = loop.call_later(5, future.set_result, 1)
    assert _private_asyncio.timer_targets(handle) == (future, 1)
    handle.cancel()
    # A transport's reader in the selector: asyncio's own protocol reads all the time.
    left, right = socket.socketpair()

    async def main() -> None:
        made, _protocol = await loop.create_connection(asyncio.Protocol, sock=left)
        try:
            key = loop._selector.get_key(left.fileno())  # type: ignore[attr-defined]
            assert _private_asyncio.reads_all_the_time(key)
        finally:
            made.close()

    try:
        loop.run_until_complete(main())
    finally:
        right.close()


def check_fut_waiter(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        future = loop.create_future()
        task = asyncio.ensure_future(future)
        waiter = asyncio.create_task(asyncio.wait_for(asyncio.shield(future), 5))
        await asyncio.sleep(0)
        inner = loop.create_future()
        task2 = asyncio.create_task(_await(inner))
        await asyncio.sleep(0)
        assert _private_asyncio.waiter_of(task2) is inner
        inner.set_result(None)
        future.set_result(None)
        await asyncio.gather(task, waiter, task2)

    loop.run_until_complete(main())


async def _await(future: asyncio.Future[Any]) -> None:
    await future


def check_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    future = loop.create_future()
    future.add_done_callback(print)
    assert list(_private_asyncio.callbacks_of(future)) == [print]
    future.cancel()


def check_waitpid(loop: asyncio.AbstractEventLoop) -> None:
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("no child watchers on Windows")
    importlib.import_module("asyncio.unix_events")
    code = _private_asyncio.waitpid_code()
    assert code is not None
    assert "expected_pid" in code.co_varnames


def check_anyio_worker(loop: asyncio.AbstractEventLoop) -> None:
    owner = _private_asyncio.anyio_worker_owner()
    assert isinstance(vars(owner)["run_sync_in_worker_thread"], classmethod)


def check_anyio_protocols(loop: asyncio.AbstractEventLoop) -> None:
    module = importlib.import_module(_private_asyncio._ANYIO_PROTOCOLS)
    protocol = vars(module).get("StreamProtocol")
    assert isinstance(protocol, type)
    assert issubclass(protocol, asyncio.Protocol)


ASYNCIO_CHECKS: dict[str, Callable[[asyncio.AbstractEventLoop], None]] = {
    "asyncio.base_events.BaseEventLoop._run_once": check_run_once,
    "loop._selector": check_selector,
    "loop._ready": check_ready,
    "loop._scheduled": check_scheduled,
    "loop._ssock": check_ssock,
    "loop._clock_resolution": check_clock_resolution,
    "selectors.EpollSelector._selector": check_epoll,
    "asyncio.selector_events._SelectorSocketTransport.write": check_transport_write,
    "transport._loop": check_transport_loop,
    "handle._callback": check_handle_callback,
    "task._fut_waiter": check_fut_waiter,
    "future._callbacks": check_callbacks,
    "asyncio.unix_events.ThreadedChildWatcher._do_waitpid": check_waitpid,
    "anyio._backends._asyncio.AsyncIOBackend.run_sync_in_worker_thread": check_anyio_worker,
    "anyio._backends._asyncio": check_anyio_protocols,
}


@pytest.mark.parametrize("name", list(ASYNCIO_CHECKS))
def test_asyncio_name(name: str, loop: asyncio.AbstractEventLoop) -> None:
    ASYNCIO_CHECKS[name](loop)


def test_the_asyncio_loop_keeps_its_ready_deque() -> None:
    """``_ready`` is only ever mutated in place, so reading it through the loop is enough."""
    assert _stores(asyncio.SelectorEventLoop, "_ready") == []


# -- trio ---------------------------------------------------------------------------------


def _in_trio(check: Callable[[Any], None]) -> None:
    trio = pytest.importorskip("trio")

    async def main() -> None:
        check(_private_trio.check_runner())

    trio.run(main)


def check_runner(runner: Any) -> None:
    import trio

    assert runner.clock is trio.lowlevel.current_clock()


def check_clock(runner: Any) -> None:
    assert isinstance(runner.clock_autojump_threshold, float)


def check_runq(runner: Any) -> None:
    assert isinstance(runner.runq, collections.deque)
    assert isinstance(runner.entry_queue.queue, collections.deque)
    assert isinstance(runner.entry_queue.idempotent_queue, dict)


def check_waiting_for_idle(runner: Any) -> None:
    assert len(runner.waiting_for_idle) == 0


def check_registered(runner: Any) -> None:
    registered = _private_trio.registered_waits(runner)
    if sys.platform == "win32":  # pragma: no cover - documented: outside I/O not seen there
        assert registered is None
        return
    assert isinstance(registered, dict)
    wakeup = _private_trio.wakeup_fd(runner)
    assert set(registered) <= _private_trio.own_wait_keys(wakeup)


def check_wakeup(runner: Any) -> None:
    wakeup = _private_trio.wakeup_fd(runner)
    assert wakeup >= 0
    assert wakeup == runner.entry_queue.wakeup.wakeup_sock.fileno()


def check_attempt_abort(runner: Any) -> None:
    import trio

    assert callable(trio.lowlevel.Task._attempt_abort)
    current = trio.lowlevel.current_task()
    assert not _private_trio.is_blocked(current)  # running: no abort function


def check_start_thread_soon(runner: Any) -> None:
    threads = _private_trio.threads_module()
    assert callable(threads.start_thread_soon)


def check_run_codes(runner: Any) -> None:
    frame = sys._getframe()
    codes = [code for code in _private_trio.run_codes() if code is not None]
    assert codes
    while frame is not None and frame.f_code not in codes:
        frame = frame.f_back  # type: ignore[assignment]
    assert frame is not None, "no trio.run/unrolled_run frame under this task"
    assert frame.f_locals.get("runner") is runner


def check_callback_frames(runner: Any) -> None:
    for module_name, function in _private_trio.CALLBACK_FRAMES:
        module = importlib.import_module(module_name)
        assert _defines(module, function), f"{module_name} has no function {function}"


TRIO_CHECKS: dict[str, Callable[[Any], None]] = {
    "trio._core._run.GLOBAL_RUN_CONTEXT.runner": check_runner,
    "runner.clock": check_clock,
    "runner.runq": check_runq,
    "runner.waiting_for_idle": check_waiting_for_idle,
    "runner.io_manager._registered": check_registered,
    "runner.entry_queue.wakeup.wakeup_sock": check_wakeup,
    "trio.lowlevel.Task._attempt_abort": check_attempt_abort,
    "trio._threads.start_thread_soon": check_start_thread_soon,
    "trio._core._run.unrolled_run": check_run_codes,
    "trio._threads.from_thread_run": check_callback_frames,
}


@pytest.mark.parametrize("name", list(TRIO_CHECKS))
def test_trio_name(name: str) -> None:
    _in_trio(TRIO_CHECKS[name])


def test_trio_keeps_its_table_of_waits() -> None:
    """``_registered`` is the live table (bound once per block): never rebound after start."""
    pytest.importorskip("trio")
    if sys.platform != "linux":  # pragma: no cover
        pytest.skip("checked for epoll")
    from trio._core._io_epoll import EpollIOManager

    assert _stores(EpollIOManager, "_registered") == []


# -- threading ----------------------------------------------------------------------------


def _defines(module: ModuleType, function: str) -> bool:
    """Whether `module` defines a function or method named `function`, as its frames show it.

    A frame is matched by its globals' ``__name__`` (trio rewrites ``__module__`` of what it
    re-exports, not the globals).
    """
    for value in vars(module).values():
        candidates = [value, *vars(value).values()] if isinstance(value, type) else [value]
        for candidate in candidates:
            code = getattr(candidate, "__code__", None)
            if (
                isinstance(candidate, FunctionType)
                and code is not None
                and code.co_name == function
                and candidate.__globals__.get("__name__") == module.__name__
            ):
                return True
    return False


def check_current_frames() -> None:
    frames = _private_threading.current_frames()
    assert frames[threading.get_ident()].f_code is sys._getframe().f_code


def check_active() -> None:
    active = _private_threading.ACTIVE_THREADS
    assert isinstance(active, dict)
    assert threading.get_ident() in active
    assert len(active) == threading.active_count()


def check_wait_for_tstate_lock() -> None:
    name = "_wait_for_tstate_lock"
    if sys.version_info >= (3, 13):
        assert not hasattr(threading.Thread, name)  # join waits in C under Thread.join
    else:
        assert threading.Thread._wait_for_tstate_lock.__code__.co_name == name  # type: ignore[attr-defined]
    assert _private_threading.JOIN_CODE is threading.Thread.join.__code__
    assert "self" in _private_threading.JOIN_CODE.co_varnames


def check_futures_base() -> None:
    base = importlib.import_module("concurrent.futures._base")
    assert concurrent.futures.Future is base.Future
    assert concurrent.futures.wait is base.wait
    for module_name, function in _private_threading.WAIT_FRAMES:
        if (module_name, function) == ("threading", "_wait_for_tstate_lock"):
            continue  # 3.10 to 3.12 only, checked above
        module = importlib.import_module(module_name)
        assert _defines(module, function), f"{module_name} has no function {function}"
    assert queue.Queue.get.__module__ == "queue"


THREADING_CHECKS: dict[str, Callable[[], None]] = {
    "sys._current_frames": check_current_frames,
    "threading._active": check_active,
    "threading.Thread._wait_for_tstate_lock": check_wait_for_tstate_lock,
    "concurrent.futures._base": check_futures_base,
}


@pytest.mark.parametrize("name", list(THREADING_CHECKS))
def test_threading_name(name: str) -> None:
    THREADING_CHECKS[name]()


# -- the tables ---------------------------------------------------------------------------

CHECKS: dict[str, dict[str, Any]] = {
    "asyncio": ASYNCIO_CHECKS,
    "trio": TRIO_CHECKS,
    "threading": THREADING_CHECKS,
}


@pytest.mark.parametrize("library", list(MODULES))
def test_every_name_in_the_table_is_checked_here(library: str) -> None:
    names: tuple[PrivateName, ...] = MODULES[library].NAMES
    assert [item.name for item in names] == list(CHECKS[library])
    for item in names:
        assert item.why
        assert item.missing


@pytest.mark.parametrize("library", list(MODULES))
def test_the_docstring_lists_the_table(library: str) -> None:
    module = MODULES[library]
    doc = module.__doc__ or ""
    for item in module.NAMES:
        assert f"``{item.name}``: {item.why}. Missing: {item.missing}." in doc
    assert TESTED in doc
