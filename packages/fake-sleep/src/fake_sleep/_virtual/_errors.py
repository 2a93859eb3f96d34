"""Errors raised by `virtual_time()`."""

from __future__ import annotations

__all__ = ["VirtualClockDeadlock", "VirtualClockError", "VirtualTimeLimitExceeded"]


class VirtualClockError(RuntimeError):
    """Base class: the code under `virtual_time()` cannot make progress in virtual time."""


class VirtualClockDeadlock(VirtualClockError):
    """No task could run, no timer was pending and no tracked worker thread was busy.

    Raised from the `async with virtual_time():` statement after a short real-time grace
    period, instead of hanging forever. The message names every waiting task and the
    ``file:line`` where it is stuck.
    """


class VirtualTimeLimitExceeded(VirtualClockError):
    """Virtual time would have passed the ``end=`` given to `virtual_time()`.

    This turns a livelock (work that never completes beside a timer that keeps firing, so
    time keeps jumping) into an error.
    """
