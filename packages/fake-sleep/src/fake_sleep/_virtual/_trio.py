"""trio backend: swap the run's clock for a virtual one for the duration.

trio has no public way to change the clock of a running run. This driver uses the run's
``Runner``: it sets ``clock`` and ``clock_autojump_threshold``, and reads what is runnable,
what threads handed back and the I/O manager's table of waits; once a failed block is stuck,
it ends each blocked task's wait the way trio itself delivers KeyboardInterrupt. It wraps
``trio._threads.start_thread_soon`` for the duration to count the worker threads
``trio.to_thread.run_sync`` (and so anyio) starts. The constructor checks every one of these
before anything changes and refuses a run that lacks one with `VirtualClockError`. Every
private name read (why, and what happens without it) is listed in `_private_trio`, which
also reads them; this module uses its functions and the typed view `Runner`. Where trio has
a public way it is used: ``trio.lowlevel.add_instrument`` to notice progress,
``current_root_task()`` to list waiting tasks, the run's ``TrioToken``.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from itertools import chain
from typing import Any, NoReturn, TypeGuard

import trio
from trio.abc import Clock, Instrument

from ._driver import DEADLOCK_GRACE, THREAD_POLL, Driver, unsupported
from ._errors import VirtualClockError
from ._others import other_waits
from ._patching import SharedPatch
from ._private import Missing
from ._private_trio import (
    Runner,
    abort_wait,
    check_runner,
    is_blocked,
    own_wait_keys,
    registered_waits,
    threads_module,
    trio_waits,
    wakeup_fd,
)
from ._tasks import describe_waiters

__all__ = ["TrioVirtualClock", "make_trio_driver"]

#: What a "don't jump, wait for something else" answer to trio's run loop looks like.
_LONG_WAIT = 86400.0
_SUBJECT = "this trio run"


class _Progress(Instrument):
    """Notes that some task ran, while a deadlock grace period is running."""

    def __init__(self) -> None:
        self.ran = False

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.ran = True


class _OffsetClock(Clock):
    """A clock running at real speed ``extra`` seconds ahead of ``base``.

    Left in the run after the block so that its time never goes backwards.
    """

    def __init__(self, base: Clock, extra: float) -> None:
        self.base = base
        self.extra = extra

    def start_clock(self) -> None:
        self.base.start_clock()

    def current_time(self) -> float:
        return self.base.current_time() + self.extra

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return self.base.deadline_to_sleep_time(deadline - self.extra)


def _runner() -> Runner:
    """The running trio run's Runner, after checking every attribute the driver touches."""
    try:
        return check_runner()
    except Missing as missing:
        raise unsupported(_SUBJECT, str(missing)) from None


def _threads_hook() -> SharedPatch:
    """The wrapper around trio's ``start_thread_soon``, checked on every entry."""
    try:
        threads = threads_module()
    except Missing as missing:
        raise unsupported(_SUBJECT, str(missing)) from None
    if not _HOOKS:
        _HOOKS.append(SharedPatch(threads, "start_thread_soon", _make_threads_hook))
    return _HOOKS[0]


_HOOKS: list[SharedPatch] = []


class TrioVirtualClock(Driver, Clock):
    """A `trio.abc.Clock` that stands still and jumps to the next deadline when idle.

    trio asks ``deadline_to_sleep_time`` only when no task is runnable. If nothing real is
    pending, the clock notes the deadline and answers 0: trio then polls I/O without
    blocking and reads ``current_time``, where the jump happens unless that poll (or a
    thread's hand-back) made a task runnable.
    """

    backend = "trio"

    def __init__(self, end: float | None, io_grace: float, **options: Any) -> None:
        super().__init__(end, io_grace, **options)
        runner = _runner()
        if isinstance(runner.clock, TrioVirtualClock):
            raise VirtualClockError(
                "virtual_time() is already active in this trio run; nest no second one"
            )
        self._hook = _threads_hook()
        self._runner: Runner = runner
        #: fd -> waiters (epoll) or (fd, filter) -> task (kqueue); None where unknown.
        self._registered: dict[Any, Any] | None = registered_waits(runner)
        self._wakeup_fd = wakeup_fd(runner)
        #: The keys the run's own wake-up socket has in ``_registered`` (epoll: the fd;
        #: kqueue: (fd, filter)). trio's entry-queue task always waits on it, so while the
        #: table holds nothing else no task waits on I/O (`trio_waits` would yield nothing).
        self._own_keys = own_wait_keys(self._wakeup_fd)
        self._token = trio.lowlevel.current_trio_token()
        root = trio.lowlevel.current_root_task()
        if root is None:  # pragma: no cover - only before the run has started
            raise unsupported(_SUBJECT, "trio.lowlevel.current_root_task() returned None")
        self._root = root
        self._pending: float | None = None
        self._progress: _Progress | None = None
        self._saved_clock: Clock = runner.clock
        self._saved_threshold: float = runner.clock_autojump_threshold

    # -- install / uninstall ---------------------------------------------------------------
    def install(self, stack: ExitStack) -> None:
        runner = self._runner
        self.begin(self._saved_clock.current_time())
        self.outside.update(_walk(self._root))
        self.outside.discard(trio.lowlevel.current_task())
        stack.callback(self.outside.clear)
        stack.enter_context(self._hook.applied())
        # trio's own autojump would assert the clock is a MockClock; we jump ourselves.
        runner.clock_autojump_threshold = math.inf
        stack.callback(setattr, runner, "clock_autojump_threshold", self._saved_threshold)
        runner.clock = self
        stack.callback(self._leave)
        stack.callback(self._stop_progress)

    def _leave(self) -> None:
        """Hand the run its clock back, going on from the virtual time, never backwards."""
        runner = self._runner
        if runner.clock is not self:  # pragma: no cover - someone else replaced it meanwhile
            return
        saved = self._saved_clock
        extra = self.now - saved.current_time()
        if _is_mock_clock(saved):
            if extra > 0:
                saved.jump(extra)
            runner.clock = saved
        elif extra <= 0:
            runner.clock = saved
        elif isinstance(saved, _OffsetClock):
            runner.clock = _OffsetClock(saved.base, saved.extra + extra)
        else:
            runner.clock = _OffsetClock(saved, extra)

    # -- trio.abc.Clock --------------------------------------------------------------------
    def start_clock(self) -> None:  # pragma: no cover - the run has started already
        pass

    def current_time(self) -> float:
        if self._pending is None:
            return self.now
        return self._settle()

    def deadline_to_sleep_time(self, deadline: float) -> float:
        if deadline <= self.now:
            return 0.0
        return self._idle(deadline)

    # -- the slow path ---------------------------------------------------------------------
    def _idle(self, deadline: float) -> float:
        runner = self._runner
        if self.busy and self.threads_hold():
            self._stop_progress()
            return THREAD_POLL
        if runner.waiting_for_idle:
            # trio.testing.wait_all_tasks_blocked() goes first, as with trio's MockClock.
            self._stop_progress()
            return _LONG_WAIT
        registered = self._registered
        others = other_waits(self.thread, runner)
        # The common idle case (only the wake-up socket registered, no other loop) skips
        # the classification: it would see no wait, and forgetting the old ones is all
        # `OutsideIO.hold` would do. The test is exact, not a cache: ``_registered`` is the
        # run's live table, read afresh on every call.
        if others or (registered and not registered.keys() <= self._own_keys):
            waits = trio_waits(registered or {}, self._wakeup_fd)
            hold = self.io.hold(chain(waits, others) if others else waits, time.perf_counter())
            if hold > 0:
                self._stop_progress()
                # Another thread's wait ends without waking this run: look again soon.
                return min(hold, THREAD_POLL) if others else hold
        else:
            self.io.forget()
        if deadline == math.inf:
            return self._no_timer()
        if deadline <= self.limit and self.jumps < self.max_jumps and not self.io.expired:
            self.jumps += 1  # the common case of `may_jump`, inline on the hot path
        else:
            failed = self.failure is not None
            if not self.may_jump(deadline):
                if failed:
                    return self._after_failure()
                return 0.0
        self.idle_since = None
        if self._progress is not None:
            self._stop_progress()
        self._pending = deadline
        return 0.0

    def _settle(self) -> float:
        """Called by the run loop right after its I/O poll: jump if still nothing to do."""
        deadline = self._pending
        self._pending = None
        runner = self._runner
        queue = runner.entry_queue
        if (
            deadline is not None
            and deadline > self.now
            and not runner.runq
            and not queue.queue
            and not queue.idempotent_queue
        ):
            self.now = deadline
        return self.now

    def _no_timer(self) -> float:
        if self.failure is not None:
            return self._after_failure()
        left = self._quiet_left()
        if left > 0:
            return min(left, DEADLOCK_GRACE)
        self.deadlock()
        return THREAD_POLL

    def _after_failure(self) -> float:
        """The block failed and nothing runs: fail its stuck waits once that lasts a grace."""
        if self._quiet_left() <= 0 and self.still_stuck():
            with suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._fail_stuck)
        return THREAD_POLL

    def _quiet_left(self) -> float:
        """Real seconds of deadlock grace left; the grace starts again whenever a task ran."""
        progress = self._progress
        if progress is None:
            progress = self._progress = _Progress()
            trio.lowlevel.add_instrument(progress)
        elif progress.ran:
            progress.ran = False
            self.idle_since = None
        return self.grace_left()

    def _stop_progress(self) -> None:
        self.idle_since = None
        progress = self._progress
        if progress is not None:
            self._progress = None
            with suppress(KeyError, RuntimeError):
                trio.lowlevel.remove_instrument(progress)

    # -- failure ---------------------------------------------------------------------------
    def _fail_stuck(self) -> None:
        """Fail the waits of the block's tasks that nothing can end (see `Driver.still_stuck`).

        Runs from trio's entry queue, as trio delivers KeyboardInterrupt: through the blocked
        task's own abort function (`abort_wait`), so whatever it waited in is
        undone cleanly. Only tasks with no live child task are failed; a parent goes on
        waiting for its children, and fails in a later round if it is still stuck then.
        """
        for task in list(_walk(self._root)):
            if task in self.outside or not is_blocked(task):
                continue
            if any(nursery.child_tasks for nursery in task.child_nurseries):
                continue
            error = self.stuck_error()

            def raise_error(error: BaseException = error) -> NoReturn:
                raise error

            abort_wait(task, raise_error)

    def schedule_cancel(self) -> None:
        if self.scope is not None and self.scope.cancel_called:
            return  # a trio scope stays cancelled (and a callback would count as progress)
        with suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self.cancel_scope)

    def release(self) -> None:
        self.busy -= 1

    def waiting_tasks(self) -> str:
        return describe_waiters((task.name, task.coro) for task in _walk(self._root))


def _is_mock_clock(clock: Clock) -> TypeGuard[Any]:
    # trio.testing imports pytest (about a second when cold): only look if it is loaded.
    testing = sys.modules.get("trio.testing")
    return testing is not None and isinstance(clock, testing.MockClock)


def _walk(task: trio.lowlevel.Task) -> Iterator[trio.lowlevel.Task]:
    """Every task under `task`, through the public nursery tree."""
    stack = [task]
    while stack:
        current = stack.pop()
        yield current
        for nursery in current.child_nurseries:
            stack.extend(nursery.child_tasks)


def make_trio_driver(end: float | None, io_grace: float, **options: Any) -> TrioVirtualClock:
    """The driver for the trio run of the calling task."""
    return TrioVirtualClock(end, io_grace, **options)


def _make_threads_hook(saved: Callable[..., None]) -> Callable[..., None]:
    return functools.partial(_start_thread_soon, saved)


def _start_thread_soon(
    original: Callable[..., None],
    fn: Callable[[], Any],
    deliver: Callable[[Any], object],
    *args: Any,
    **kwargs: Any,
) -> None:
    """trio's ``start_thread_soon``, counting threads started from a virtual-time run."""
    try:
        clock = trio.lowlevel.current_clock()
    except RuntimeError:  # not called from inside a run
        clock = None
    if not isinstance(clock, TrioVirtualClock):
        original(fn, deliver, *args, **kwargs)
        return
    token = clock._token

    def deliver_then_release(result: Any) -> None:
        try:
            deliver(result)
        finally:
            # Queued after trio's own hand-back, so the waiting task is runnable first.
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(clock.release)

    clock.busy += 1
    try:
        original(clock.workers.wrap(fn), deliver_then_release, *args, **kwargs)
    except BaseException:
        clock.busy -= 1
        raise
