"""Instant sleeps with exact assertions, and a virtual event-loop clock.

Mock mode: `patch_sleep()` replaces `anyio.sleep` (or any dotted async sleep) with a
`SleepRecorder` that returns at once, still a checkpoint, records every delay and shifts
`pendulum.now` (or any dotted clock) by the total.
"""

from __future__ import annotations

from ._patch import DEFAULT_CLOCKS, DEFAULT_TARGETS, UnknownTargetError, patch_sleep
from ._recorder import SleepRecorder

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CLOCKS",
    "DEFAULT_TARGETS",
    "SleepRecorder",
    "UnknownTargetError",
    "__version__",
    "patch_sleep",
]
