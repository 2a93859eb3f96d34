"""Errors raised by `virtual_time()`."""

from __future__ import annotations

__all__ = ["VirtualClockDeadlock", "VirtualClockError", "VirtualTimeLimitExceeded"]


class VirtualClockError(RuntimeError):
    """Base class: `virtual_time()` cannot be used here, or the code under it cannot progress.

    Raised as is on entry (nothing changed: a loop that cannot be driven, a block already
    active in this loop, `patch_sleep` active) and by a `VirtualClock` whose block has ended.
    """


class VirtualClockDeadlock(VirtualClockError):
    """Nothing could ever wake the block's tasks, so it fails instead of hanging.

    No task could run, no timer was pending, no worker thread started through a counted
    entry point was running and no outside wait (a socket or pipe to another process, a
    subprocess, another event loop of this process) held the clock, for 0.5 s of real time
    (``io_grace`` while a worker thread is stuck waiting). Raised from the
    ``async with virtual_time():`` statement after the block's tasks were cancelled; the
    message names every waiting task and the ``file:line`` where it waits. A wait the
    cancellation cannot reach (under a shield) that still has nothing to wake it half a
    second later gets one too, where it waits.
    """


class VirtualTimeLimitExceeded(VirtualClockError):
    """Virtual time would have passed its limit: ``end=`` or ``max_jumps`` jumps.

    Turns a livelock (work that never completes beside a timer that keeps firing, so time
    keeps jumping) into an error. Without ``end=`` the limit is ten virtual years. Raised from
    the ``async with virtual_time():`` statement after the block's tasks were cancelled; time
    never moves past the limit, so a wait the cancellation cannot reach (a shielded sleep,
    timeout or timer due past it) gets one too, where it waits, once nothing else can run for
    half a second of real time.
    """
