"""trio backend: swap the run's clock for an autojumping virtual one for the duration.

Private hooks used (trio has no public way to change the clock of a running run):
``trio._core._run.GLOBAL_RUN_CONTEXT.runner`` (its ``clock``, ``clock_autojump_threshold``,
``runq``, ``entry_queue``, ``waiting_for_idle``, ``instruments`` and ``tasks``) and the
``start_thread_soon`` name inside ``trio._threads``, wrapped for the duration to see worker
threads started by ``trio.to_thread.run_sync`` (which anyio uses).
"""

from __future__ import annotations

import functools
import importlib
import math
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import trio
from trio._core._run import GLOBAL_RUN_CONTEXT
from trio.abc import Clock, Instrument
from trio.testing import MockClock

from ._core import DEADLOCK_GRACE, THREAD_POLL, Driver
from ._tasks import describe_waiters

__all__ = ["TrioVirtualClock", "make_trio_driver"]

# Where trio.to_thread.run_sync looks up start_thread_soon (a module global, read per call).
_trio_threads: Any = importlib.import_module("trio._threads")

#: What a "don't jump, wait for something else" answer to trio's run loop looks like.
_LONG_WAIT = 86400.0

_patch_lock = threading.Lock()
_patch_users = 0
_saved_start_thread_soon: Any = None


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


class TrioVirtualClock(Driver, Clock):
    """A `trio.abc.Clock` that stands still and jumps to the next deadline when idle.

    trio asks ``deadline_to_sleep_time`` only when no task is runnable. If no worker thread
    is busy, the clock notes the deadline and answers 0: trio then polls I/O without
    blocking and reads ``current_time``, where the jump happens unless that poll (or a
    thread's hand-back) made a task runnable.
    """

    backend = "trio"

    def __init__(self, end: float | None) -> None:
        super().__init__(end)
        runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
        if runner is None:  # pragma: no cover - sniffio said trio
            raise RuntimeError("virtual_time() must be entered inside a running trio run")
        self._runner: Any = runner
        self._token = trio.lowlevel.current_trio_token()
        self._pending: float | None = None
        self._progress: _Progress | None = None
        self._saved_clock: Clock = runner.clock
        self._saved_threshold: float = runner.clock_autojump_threshold

    # -- install / uninstall ---------------------------------------------------------------
    def install(self) -> None:
        runner = self._runner
        clock = runner.clock
        if isinstance(clock, TrioVirtualClock):
            raise RuntimeError(
                "virtual_time() is already active in this trio run; nest no second one"
            )
        self.begin(clock.current_time())
        _patch_threads()
        runner.clock = self
        # trio's own autojump would assert the clock is a MockClock; we jump ourselves.
        runner.clock_autojump_threshold = math.inf

    def uninstall(self) -> None:
        runner = self._runner
        if runner.clock is not self:
            return
        self._stop_progress()
        _unpatch_threads()
        saved = self._saved_clock
        extra = self.now - saved.current_time()
        if isinstance(saved, MockClock):
            if extra > 0:
                saved.jump(extra)
            runner.clock = saved
        elif extra <= 0:
            runner.clock = saved
        elif isinstance(saved, _OffsetClock):
            runner.clock = _OffsetClock(saved.base, saved.extra + extra)
        else:
            runner.clock = _OffsetClock(saved, extra)
        runner.clock_autojump_threshold = self._saved_threshold

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
        if self.busy:
            self._stop_progress()
            return THREAD_POLL
        if runner.waiting_for_idle:
            # trio.testing.wait_all_tasks_blocked() goes first, as with trio's MockClock.
            self._stop_progress()
            return _LONG_WAIT
        if deadline == math.inf:
            return self._no_timer()
        if deadline > self.limit and self.failure is None:
            self.exceed(deadline)
            return 0.0
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
        progress = self._progress
        if progress is None:
            progress = self._progress = _Progress()
            self._runner.instruments.add_instrument(progress)
        elif progress.ran:
            progress.ran = False
            self.idle_since = None
        left = self.grace_left()
        if left > 0:
            return min(left, DEADLOCK_GRACE)
        self.deadlock()
        return THREAD_POLL

    def _stop_progress(self) -> None:
        self.idle_since = None
        progress = self._progress
        if progress is not None:
            self._progress = None
            with suppress(KeyError):
                self._runner.instruments.remove_instrument(progress)

    # -- failure ---------------------------------------------------------------------------
    def schedule_cancel(self) -> None:
        with suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self.cancel_scope)

    def release(self) -> None:
        self.busy -= 1

    def waiting_tasks(self) -> str:
        return describe_waiters((task.name, task.coro) for task in self._runner.tasks)


def make_trio_driver(end: float | None) -> TrioVirtualClock:
    """The driver for the trio run of the calling task."""
    return TrioVirtualClock(end)


def _start_thread_soon(
    original: Callable[..., None],
    fn: Callable[[], Any],
    deliver: Callable[[Any], object],
    *args: Any,
    **kwargs: Any,
) -> None:
    """trio's ``start_thread_soon``, counting threads started from a virtual-time run."""
    runner = getattr(GLOBAL_RUN_CONTEXT, "runner", None)
    clock = getattr(runner, "clock", None)
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
        original(fn, deliver_then_release, *args, **kwargs)
    except BaseException:
        clock.busy -= 1
        raise


def _patch_threads() -> None:
    global _patch_users, _saved_start_thread_soon
    with _patch_lock:
        _patch_users += 1
        if _patch_users > 1:
            return
        saved = _trio_threads.start_thread_soon
        _saved_start_thread_soon = saved
        _trio_threads.start_thread_soon = functools.partial(_start_thread_soon, saved)


def _unpatch_threads() -> None:
    global _patch_users, _saved_start_thread_soon
    with _patch_lock:
        _patch_users -= 1
        if _patch_users > 0:
            return
        _trio_threads.start_thread_soon = _saved_start_thread_soon
        _saved_start_thread_soon = None
