"""Instant sleeps with exact assertions, and a virtual event-loop clock.

Mock mode: `patch_sleep()` replaces `anyio.sleep` (or any dotted async sleep) with a
`SleepRecorder` that returns at once, still a checkpoint, records every delay and shifts
`pendulum.now` (or any dotted clock) by the total.

Virtual clock mode: `async with virtual_time() as clock:` runs the event loop's own clock in
virtual time (asyncio and trio), so every sleep and timeout completes at once, in deadline
order, and a deadlock becomes an error.
"""

from __future__ import annotations

import types

from ._patch import DEFAULT_CLOCKS, DEFAULT_TARGETS, UnknownTargetError, patch_sleep
from ._recorder import SleepRecorder
from ._virtual import (
    VirtualClock,
    VirtualClockDeadlock,
    VirtualClockError,
    VirtualTime,
    VirtualTimeLimitExceeded,
    virtual_time,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CLOCKS",
    "DEFAULT_TARGETS",
    "SleepRecorder",
    "UnknownTargetError",
    "VirtualClock",
    "VirtualClockDeadlock",
    "VirtualClockError",
    "VirtualTime",
    "VirtualTimeLimitExceeded",
    "__version__",
    "patch_sleep",
    "virtual_time",
]


# Every public class and function names this package as its home, so reprs, tracebacks,
# pickles and the docs' inventory show the path users import (`fake_sleep.X`), not a private
# module.
for _name in __all__:
    _public = globals()[_name]
    if isinstance(_public, type | types.FunctionType):
        _public.__module__ = __name__
del _name, _public
