"""asyncio backend: the running loop's ``time()`` and the wait in its selector.

Private hooks used (asyncio has no public clock API): the loop's ``_selector``,
``_ready`` and ``_scheduled`` attributes of ``asyncio.BaseEventLoop`` / selector loops, and
``anyio._backends._asyncio.AsyncIOBackend.run_sync_in_worker_thread`` to see anyio's worker
threads. Every hook is an instance or class attribute set for the duration and removed on
exit.
"""

from __future__ import annotations

import asyncio
import functools
import selectors
import sys
import threading
from asyncio import selector_events
from collections.abc import Callable
from typing import Any

from ._core import THREAD_POLL, Driver
from ._tasks import describe_waiters

__all__ = ["AsyncioDriver"]

_MISSING: Any = object()

#: Loops currently driven, so the anyio worker-thread wrapper finds its driver.
_ACTIVE: dict[asyncio.AbstractEventLoop, AsyncioDriver] = {}
_patch_lock = threading.Lock()
_patch_users = 0
_saved_anyio_method: Any = None


class _OffsetTime:
    """A loop clock that runs at real speed, ``extra`` seconds ahead of ``base``.

    Left on the loop after the block so that its time never goes backwards.
    """

    __slots__ = ("base", "extra")

    def __init__(self, base: Callable[[], float], extra: float) -> None:
        self.base = base
        self.extra = extra

    def __call__(self) -> float:
        return self.base() + self.extra


def _refuse(loop: asyncio.AbstractEventLoop) -> None:
    kind = f"{type(loop).__module__}.{type(loop).__qualname__}"
    if "uvloop" in kind:
        raise RuntimeError(
            f"virtual_time() cannot drive uvloop ({kind}): its clock and selector are compiled"
            " code. Run these tests on the default asyncio loop (e.g. anyio_backend ="
            ' ("asyncio", {"use_uvloop": False}))'
        )
    if sys.platform == "win32" and "Proactor" in kind:  # pragma: no cover - Windows only
        raise RuntimeError(
            "virtual_time() cannot drive Windows' Proactor event loop; use"
            " asyncio.WindowsSelectorEventLoopPolicy() (or loop_factory="
            "asyncio.SelectorEventLoop) for these tests"
        )
    raise RuntimeError(
        f"virtual_time() can drive asyncio selector event loops only, not {kind}: it needs the"
        " loop's selector to turn idle waits into time jumps"
    )


class AsyncioDriver(Driver):
    """Virtual time for one running asyncio selector loop."""

    backend = "asyncio"

    def __init__(self, end: float | None) -> None:
        super().__init__(end)
        self.loop = asyncio.get_running_loop()
        self._selector: Any = None
        self._real_select: Callable[[float | None], list[Any]] = _never
        self._saved_select: Any = _MISSING
        self._peek: Callable[[float], list[Any]] | None = None
        self._fresh = False
        self._saved_time: Any = _MISSING
        self._saved_run_in_executor: Any = _MISSING
        self._base_time: Callable[[], float] = self.loop.time

    # -- install / uninstall ---------------------------------------------------------------
    def install(self) -> None:
        loop = self.loop
        if not isinstance(loop, selector_events.BaseSelectorEventLoop) or not hasattr(
            loop, "_selector"
        ):
            _refuse(loop)
        if loop in _ACTIVE:
            raise RuntimeError(
                "virtual_time() is already active in this event loop; nest no second one"
            )
        selector = loop._selector  # type: ignore[attr-defined]
        self._selector = selector
        self._real_select = selector.select
        # A cheap readiness check for the common epoll case (no Python-level selector work).
        if type(selector) is selectors.EpollSelector:
            epoll: Any = selector
            self._peek = epoll._selector.poll
        self._saved_select = selector.__dict__.get("select", _MISSING)
        self._saved_time = loop.__dict__.get("time", _MISSING)
        self._saved_run_in_executor = loop.__dict__.get("run_in_executor", _MISSING)
        self._base_time = loop.time
        self.begin(loop.time())
        _ACTIVE[loop] = self
        _patch_anyio()
        selector.select = self._select
        loop.time = self._time  # type: ignore[method-assign]
        loop.run_in_executor = functools.partial(  # type: ignore[method-assign,assignment]
            _run_in_executor, self, loop.run_in_executor
        )

    def uninstall(self) -> None:
        loop = self.loop
        if _ACTIVE.get(loop) is not self:
            return
        del _ACTIVE[loop]
        _unpatch_anyio()
        _restore(self._selector, "select", self._saved_select)
        _restore(loop, "run_in_executor", self._saved_run_in_executor)
        # Never backwards: go on at real speed from the virtual time reached.
        base = self._base_time
        extra = self.now - base()
        if extra <= 0:
            _restore(loop, "time", self._saved_time)
        elif isinstance(base, _OffsetTime):
            loop.time = _OffsetTime(base.base, base.extra + extra)  # type: ignore[method-assign]
        else:
            loop.time = _OffsetTime(base, extra)  # type: ignore[method-assign]

    # -- the hot path ----------------------------------------------------------------------
    def _time(self) -> float:
        return self.now

    def _select(self, timeout: float | None = None) -> list[Any]:
        if timeout == 0:  # something is ready
            if self._fresh:
                # The previous call polled I/O and found nothing, just before a jump: skip
                # this poll (I/O is still polled at least every other loop iteration).
                self._fresh = False
                return []
            self.idle_since = None
            return self._real_select(0)
        self._fresh = False
        # Real I/O first, without blocking: it always gets through before a jump.
        peek = self._peek
        if peek is None:
            events = self._real_select(0)
            if events:
                self.idle_since = None
                return events
        elif peek(0):  # level-triggered: the selector reports the same events again
            self.idle_since = None
            return self._real_select(0)
        loop: Any = self.loop
        if loop._ready:  # a thread's call_soon_threadsafe() landed after the poll
            return []
        if self.busy:
            self.idle_since = None
            return self._real_select(THREAD_POLL)
        if timeout is None:
            return self._no_timer()
        when: float = loop._scheduled[0]._when
        if when > self.limit and self.failure is None:
            self.exceed(when)
            return []
        if when > self.now:
            self.now = when
        self.idle_since = None
        self._fresh = True
        return []

    def _no_timer(self) -> list[Any]:
        left = self.grace_left()
        if left > 0:
            events = self._real_select(left)
            if events:
                self.idle_since = None
            return events
        self.deadlock()
        return []

    # -- failure ---------------------------------------------------------------------------
    def schedule_cancel(self) -> None:
        self.loop.call_soon(self.cancel_scope)

    def waiting_tasks(self) -> str:
        return describe_waiters(
            (task.get_name(), task.get_coro()) for task in asyncio.all_tasks(self.loop)
        )


def _never(timeout: float | None) -> list[Any]:  # pragma: no cover - replaced on install
    raise AssertionError("not installed")


def _restore(obj: Any, name: str, saved: Any) -> None:
    if saved is _MISSING:
        obj.__dict__.pop(name, None)
    else:
        setattr(obj, name, saved)


def _run_in_executor(
    driver: AsyncioDriver,
    original: Callable[..., asyncio.Future[Any]],
    executor: Any,
    func: Callable[..., Any],
    *args: Any,
) -> asyncio.Future[Any]:
    """``loop.run_in_executor`` that keeps time still while a task awaits the thread."""
    future = original(executor, func, *args)
    driver.busy += 1
    future.add_done_callback(functools.partial(_release, driver))
    return future


def _release(driver: Driver, _future: object) -> None:
    driver.busy -= 1


def _patch_anyio() -> None:
    """Count anyio's own worker threads (it does not use ``run_in_executor``)."""
    global _patch_users, _saved_anyio_method
    with _patch_lock:
        _patch_users += 1
        if _patch_users > 1:
            return
        from anyio._backends._asyncio import AsyncIOBackend

        saved = AsyncIOBackend.__dict__["run_sync_in_worker_thread"]
        _saved_anyio_method = saved
        original = saved.__func__

        async def run_sync_in_worker_thread(cls: Any, *args: Any, **kwargs: Any) -> Any:
            driver = _ACTIVE.get(asyncio.get_running_loop())
            if driver is None:
                return await original(cls, *args, **kwargs)
            driver.busy += 1
            try:
                return await original(cls, *args, **kwargs)
            finally:
                driver.busy -= 1

        AsyncIOBackend.run_sync_in_worker_thread = classmethod(  # type: ignore[method-assign,assignment]
            run_sync_in_worker_thread
        )


def _unpatch_anyio() -> None:
    global _patch_users, _saved_anyio_method
    with _patch_lock:
        _patch_users -= 1
        if _patch_users > 0:
            return
        from anyio._backends._asyncio import AsyncIOBackend

        AsyncIOBackend.run_sync_in_worker_thread = _saved_anyio_method  # type: ignore[method-assign]
        _saved_anyio_method = None
