"""Virtual clock mode: the running event loop's own clock runs in virtual time.

The time model, in two rules (the driver contract in ``_driver`` says how backends keep it):

1. Never hang. Virtual time advances, or the block fails with an error naming what it waited
   for, within bounded real time: a deadlock error when nothing can wake any task, a limit
   error past ``end=`` (ten virtual years by default) or ``max_jumps`` jumps (a million).
   At any loop clock value (a jump never lands where ``now + resolution`` rounds to ``now``).
2. Never fire early while work is visibly under way: a runnable task, a running worker
   thread, a wait whose other end is outside this loop (a socket or pipe to another process,
   a socket pair that may have gone to a child, a subprocess), another event loop of the
   process that runs or waits outside. Uncertain counts as outside. Each hold lasts at most
   ``io_grace`` real seconds; then time jumps, and a timeout that fires after that carries a
   note starting with `GRACE_NOTE_PREFIX`.

``_core`` is the public API; ``_driver`` states the contract every backend driver keeps and
holds what they share; one module per backend (``_asyncio``, ``_trio``), imported only when
that backend runs; ``_io`` decides which outside waits hold the clock, ``_others`` finds the
waits of other threads (other event loops, child watchers), ``_threads`` which worker threads
hold it; ``_wall`` makes wall clocks follow. Imports only go down this list.
"""

from __future__ import annotations

from ._core import VirtualClock, VirtualTime, virtual_time
from ._driver import GRACE_NOTE_PREFIX
from ._errors import VirtualClockDeadlock, VirtualClockError, VirtualTimeLimitExceeded

__all__ = [
    "GRACE_NOTE_PREFIX",
    "VirtualClock",
    "VirtualClockDeadlock",
    "VirtualClockError",
    "VirtualTime",
    "VirtualTimeLimitExceeded",
    "virtual_time",
]
