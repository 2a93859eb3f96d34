"""Instant sleeps with exact assertions, and a virtual event-loop clock.

Mock mode: `patch_sleep()` replaces `anyio.sleep` (or any dotted async sleep) with a
`SleepRecorder` that returns at once, still a checkpoint, records every delay and shifts
`pendulum.now` (or any dotted clock) by the total.

Virtual clock mode: `async with virtual_time() as clock:` runs the event loop's own clock in
virtual time (asyncio and trio), so every sleep and timeout completes at once, in deadline
order, and a deadlock becomes an error. Its time model, in two rules: it never hangs (time
advances or the block fails naming what it waited for, bounded by default), and it never
fires early while work is visibly under way (a task, a worker thread, a wait on something
outside, a subprocess, another event loop of the process); such a hold lasts at most
``io_grace`` real seconds, and a timeout after that carries a note starting with
`GRACE_NOTE_PREFIX`.
"""

from __future__ import annotations

import types

from ._patch import (
    DEFAULT_CLOCKS,
    DEFAULT_TARGETS,
    UnknownTargetError,
    patch_sleep,
    resolve_target,
)
from ._recorder import SleepRecorder
from ._virtual import (
    GRACE_NOTE_PREFIX,
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
    "GRACE_NOTE_PREFIX",
    "SleepRecorder",
    "UnknownTargetError",
    "VirtualClock",
    "VirtualClockDeadlock",
    "VirtualClockError",
    "VirtualTime",
    "VirtualTimeLimitExceeded",
    "__version__",
    "patch_sleep",
    "resolve_target",
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
