"""asyncio backend: the running loop's ``time()`` and the wait in its selector.

asyncio has no public clock API, so this driver relies on what ``BaseEventLoop._run_once``
does in Python 3.10 to 3.13: it asks ``self._selector.select(timeout)`` to wait, with the
timeout computed from ``self.time()`` and the head of ``self._scheduled``, and runs
``self._ready``. The constructor checks all of that (and every other hook below) before
anything changes, and refuses a loop that does not match with `VirtualClockError`.

Hooks, each set for the duration and taken back through the block's undo stack:

- instance attributes on the loop and its selector: ``loop.time``, ``loop.run_in_executor``
  (counts worker threads) and ``selector.select`` (turns an idle wait into a jump);
- ``anyio._backends._asyncio.AsyncIOBackend.run_sync_in_worker_thread`` (anyio's worker
  threads do not go through ``run_in_executor``) and
  ``asyncio.selector_events._SelectorSocketTransport.write``/``writelines`` (notes a request
  written through a transport that reads all the time), shared by every active block.

Every private name of asyncio and anyio read here (and why, and what happens without it)
is listed in `_private_asyncio`, which also reads them; this module uses its functions and
the typed view `LoopInternals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import selectors
import sys
import time
from asyncio import selector_events
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from itertools import chain
from typing import Any

from ._driver import THREAD_POLL, Driver, unsupported
from ._errors import VirtualClockError
from ._others import other_waits
from ._patching import SharedPatch
from ._private import Missing
from ._private_asyncio import (
    LoopInternals,
    anyio_worker_owner,
    callbacks_of,
    check_loop,
    clock_resolution,
    epoll_peek,
    reads_all_the_time,
    timer_targets,
    transport_class,
    transport_loop_and_fd,
    waiter_of,
    wakeup_fd,
)
from ._tasks import describe_waiters

__all__ = ["AsyncioDriver"]

_MISSING: Any = object()

#: Loops currently driven, so the process-wide wrappers find their driver.
_ACTIVE: dict[asyncio.AbstractEventLoop, AsyncioDriver] = {}

#: The longest single real wait for outside I/O (io_grace may be infinite); then look again.
_LONGEST_WAIT = 3600.0


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


def _kind(loop: asyncio.AbstractEventLoop) -> str:
    return f"{type(loop).__module__}.{type(loop).__qualname__}"


def _refuse(loop: asyncio.AbstractEventLoop) -> VirtualClockError:
    kind = _kind(loop)
    if "uvloop" in kind:
        return VirtualClockError(
            f"virtual_time() cannot drive uvloop ({kind}): its clock and selector are compiled"
            " code that no hook can reach, so timers would run in real time. Nothing was"
            " changed. Run these tests on asyncio's own loop (for anyio's pytest plugin:"
            ' anyio_backend = ("asyncio", {"use_uvloop": False}); for pytest-asyncio: the'
            " default event loop policy)."
        )
    if sys.platform == "win32" and "Proactor" in kind:  # pragma: no cover - Windows only
        return VirtualClockError(
            "virtual_time() cannot drive Windows' Proactor event loop; use"
            " asyncio.WindowsSelectorEventLoopPolicy() (or loop_factory="
            "asyncio.SelectorEventLoop) for these tests. Nothing was changed."
        )
    return VirtualClockError(
        f"virtual_time() can drive asyncio selector event loops only, not {kind}: it needs the"
        " loop's selector to turn idle waits into time jumps. Nothing was changed."
    )


def _check_loop(loop: asyncio.AbstractEventLoop) -> tuple[LoopInternals, Any]:
    """Every hook of the loop this driver uses, looked up without changing anything.

    Returns the loop's typed view of its private attributes, and its selector.
    """
    if not isinstance(loop, selector_events.BaseSelectorEventLoop):
        raise _refuse(loop)
    try:
        return check_loop(loop)
    except Missing as missing:
        raise unsupported(f"this asyncio event loop ({_kind(loop)})", str(missing)) from None


class AsyncioDriver(Driver):
    """Virtual time for one running asyncio selector loop."""

    backend = "asyncio"

    def __init__(self, end: float | None, io_grace: float, **options: Any) -> None:
        super().__init__(end, io_grace, **options)
        loop = asyncio.get_running_loop()
        if loop in _ACTIVE:
            raise VirtualClockError(
                "virtual_time() is already active in this event loop; nest no second one"
            )
        self.loop = loop
        self._internals, self._selector = _check_loop(loop)
        self._hooks = _shared_hooks(f"this asyncio event loop ({_kind(loop)})")
        self._real_select: Callable[[float | None], list[Any]] = self._selector.select
        self._fd_map: Mapping[int, selectors.SelectorKey] = self._selector.get_map()
        self._own_fd: int = wakeup_fd(loop)
        self._own_count = 1 if self._own_fd in self._fd_map else 0
        # A cheap readiness check for the common epoll case (no Python-level selector work).
        self._peek: Callable[[float], list[Any]] | None = epoll_peek(self._selector)
        self._fresh = False
        self._base_time: Callable[[], float] = loop.time
        self._resolution: float = clock_resolution(loop)

    # -- install / uninstall ---------------------------------------------------------------
    def install(self, stack: ExitStack) -> None:
        loop = self.loop
        selector = self._selector
        self.begin(loop.time())
        self.outside.update(asyncio.all_tasks(loop))
        self.outside.discard(asyncio.current_task(loop))
        stack.callback(self.outside.clear)
        _ACTIVE[loop] = self
        stack.callback(_ACTIVE.pop, loop, None)
        for hook in self._hooks:
            stack.enter_context(hook.applied())
        _shadow(stack, selector, "select", self._select)
        _shadow(
            stack,
            loop,
            "run_in_executor",
            functools.partial(_run_in_executor, self, loop.run_in_executor),
        )
        saved_time = vars(loop).get("time", _MISSING)
        loop.time = self._time  # type: ignore[method-assign]
        stack.callback(self._leave_time, saved_time)

    def _leave_time(self, saved: Any) -> None:
        """Put the loop clock back so that it goes on from the virtual time, never backwards."""
        loop = self.loop
        base = self._base_time
        extra = self.now - base()
        if extra <= 0:
            _restore(loop, "time", saved)
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
            if not self._internals._ready:
                self._due()
            return self._note(self._real_select(0))
        self._fresh = False
        # Real I/O first, without blocking: it always gets through before a jump.
        peek = self._peek
        if peek is None:
            events = self._real_select(0)
            if events:
                self.idle_since = None
                return self._note(events)
        elif peek(0):  # level-triggered: the selector reports the same events again
            self.idle_since = None
            return self._note(self._real_select(0))
        loop = self._internals
        if loop._ready:  # a thread's call_soon_threadsafe() landed after the poll
            return []
        if self.busy and self.threads_hold():
            self.idle_since = None
            return self._note(self._real_select(THREAD_POLL))
        others = other_waits(self.thread, loop)
        if others or len(self._fd_map) > self._own_count:
            waits = chain(self._watched(), others) if others else self._watched()
            hold = self.io.hold(waits, time.perf_counter())
            if hold > 0:
                self.idle_since = None
                # Another thread's wait ends without waking this loop: look again soon.
                longest = THREAD_POLL if others else _LONGEST_WAIT
                return self._note(self._real_select(min(hold, longest)))
        if timeout is None:
            return self._no_timer()
        when: float = loop._scheduled[0].when()
        if when <= self.limit and self.jumps < self.max_jumps and not self.io.expired:
            self.jumps += 1  # the common case of `may_jump`, inline on the hot path
        else:
            failed = self.failure is not None
            if not self.may_jump(when):
                if failed and self.still_stuck():
                    self._fail_stuck()
                    return []
                return self._real_select(THREAD_POLL) if failed else []
        if when > self.now:
            # `now + clock_resolution` must not round back to `now` (loop clocks past 2**24 s),
            # or _run_once would never take the timer off the heap.
            self.now = when if when + self._resolution > when else math.nextafter(when, math.inf)
        self.idle_since = None
        self._fresh = True
        return []

    def _due(self) -> None:
        """A timer is due but the loop may not see it: keep ``now + resolution > when``."""
        scheduled = self._internals._scheduled
        if scheduled:
            when: float = scheduled[0].when()
            if when >= self.now + self._resolution:
                self.now = math.nextafter(max(when, self.now), math.inf)

    def _note(self, events: list[Any]) -> list[Any]:
        """Tell the outside-I/O watch which descriptors just had an event."""
        if events:
            now = time.perf_counter()
            received = self.io.received
            for key, _mask in events:
                received(key.fd, now)
        return events

    def _watched(self) -> Iterator[tuple[int, object, bool]]:
        own = self._own_fd
        for fd, key in self._fd_map.items():
            if fd != own:
                yield fd, key, reads_all_the_time(key)

    def _no_timer(self) -> list[Any]:
        left = self.grace_left()
        if left > 0:
            events = self._real_select(left)
            if events:
                self.idle_since = None
            return self._note(events)
        if self.failure is None:
            self.deadlock()
        else:  # failed, cancelled, and still a grace later nothing runs: shielded waits
            self.idle_since = None
            self._fail_stuck()
        return []

    # -- failure ---------------------------------------------------------------------------
    def _fail_stuck(self) -> None:
        """Fail the waits of the block's tasks that nothing can end (see `Driver.still_stuck`).

        A task's wait is the future it awaits (``Task._fut_waiter``); a task awaiting another
        task, or a future that a pending task's completion resolves (a task group, ``gather``,
        ``wait``), is left alone: it ends when the tasks it waits for do. Timers due past the
        limit that would resolve a failed future are cancelled with it.
        """
        loop = self.loop
        waiters: dict[asyncio.Future[Any], None] = {}
        tasks = [task for task in asyncio.all_tasks(loop) if task not in self.outside]
        for task in tasks:
            waiter = waiter_of(task)
            if (
                isinstance(waiter, asyncio.Future)
                and not isinstance(waiter, asyncio.Task)
                and not waiter.done()
            ):
                waiters[waiter] = None
        if not waiters:
            return
        awaited = _resolved_by_tasks(tasks, waiters)
        failed = {waiter: None for waiter in waiters if waiter not in awaited} or waiters
        for waiter in failed:
            waiter.set_exception(self.stuck_error())
        # A timer that would resolve a failed future (``asyncio.sleep``'s, a bare
        # ``call_later(delay, future.set_result, ...)``) would only raise InvalidStateError.
        for handle in list(self._internals._scheduled):
            targets = timer_targets(handle)
            if any(isinstance(target, asyncio.Future) and target in failed for target in targets):
                handle.cancel()

    def schedule_cancel(self) -> None:
        self.loop.call_soon(self.cancel_scope)

    def waiting_tasks(self) -> str:
        return describe_waiters(
            (task.get_name(), task.get_coro()) for task in asyncio.all_tasks(self.loop)
        )


def _resolved_by_tasks(
    tasks: list[asyncio.Task[Any]], waiters: Mapping[asyncio.Future[Any], None]
) -> set[asyncio.Future[Any]]:
    """The `waiters` that a pending task's done-callback refers to (it resolves them).

    Looks through each callback, its bound object, its closure and one level of attributes:
    enough for anyio and asyncio task groups, ``asyncio.gather`` and ``asyncio.wait``.
    """
    found: set[asyncio.Future[Any]] = set()

    def look(value: object, depth: int) -> None:
        if isinstance(value, asyncio.Future) and value in waiters:
            found.add(value)
            return
        if depth == 0:
            return
        inner: list[object] = []
        bound = getattr(value, "__self__", None)
        if bound is not None:
            inner.append(bound)
        for cell in getattr(value, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                inner.append(cell.cell_contents)
        if isinstance(value, functools.partial):
            inner.extend((value.func, *value.args))
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict) and not callable(value):
            inner.extend(attributes.values())
        for item in inner:
            look(item, depth - 1)

    for task in tasks:
        if task.done():
            continue
        for callback in callbacks_of(task):
            look(callback, 3)
    return found


def _shadow(stack: ExitStack, obj: Any, name: str, value: object) -> None:
    """Set an instance attribute for the duration, putting back exactly what was there."""
    saved = vars(obj).get(name, _MISSING)
    setattr(obj, name, value)
    stack.callback(_restore, obj, name, saved)


def _restore(obj: Any, name: str, saved: Any) -> None:
    if saved is _MISSING:
        vars(obj).pop(name, None)
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
    future = original(executor, driver.workers.wrap(func), *args)
    driver.busy += 1
    future.add_done_callback(functools.partial(_release, driver))
    return future


def _release(driver: Driver, _future: object) -> None:
    driver.busy -= 1


def _make_anyio_hook(saved: Any) -> Any:
    """Count anyio's own worker threads (it does not use ``run_in_executor``)."""
    original = saved.__func__ if isinstance(saved, classmethod) else saved

    async def run_sync_in_worker_thread(
        cls: Any, func: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        driver = _ACTIVE.get(asyncio.get_running_loop())
        if driver is None:
            return await original(cls, func, *args, **kwargs)
        driver.busy += 1
        try:
            return await original(cls, driver.workers.wrap(func), *args, **kwargs)
        finally:
            driver.busy -= 1

    return classmethod(run_sync_in_worker_thread)


def _make_write_hook(saved: Callable[..., Any]) -> Callable[..., Any]:
    """Note a write through a transport of a driven loop (a request that awaits a reply)."""

    @functools.wraps(saved)
    def write(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _ACTIVE:
            loop, fd = transport_loop_and_fd(self)
            driver = _ACTIVE.get(loop)
            if driver is not None:
                driver.io.sent(fd, time.perf_counter())
            else:  # another loop's request: the driven loops see it among other waits
                now = time.perf_counter()
                for other in list(_ACTIVE.values()):
                    other.io.sent(fd, now)
        return saved(self, *args, **kwargs)

    return write


def _shared_hooks(subject: str) -> tuple[SharedPatch, ...]:
    """The process-wide hooks, each checked on every entry (a missing one is refused)."""
    try:
        anyio_backend = anyio_worker_owner()
        transport = transport_class()
    except Missing as missing:
        raise unsupported(subject, str(missing)) from None
    names = [name for name in ("write", "writelines") if callable(vars(transport).get(name))]
    if not _HOOKS:
        _HOOKS.append(SharedPatch(anyio_backend, "run_sync_in_worker_thread", _make_anyio_hook))
        _HOOKS.extend(SharedPatch(transport, name, _make_write_hook) for name in names)
    return tuple(_HOOKS)


#: Created on first use (after the check), then kept: each one counts its users.
_HOOKS: list[SharedPatch] = []
