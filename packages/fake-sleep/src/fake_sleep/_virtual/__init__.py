"""Virtual clock mode: the running event loop's own clock runs in virtual time.

``_core`` is the public API; ``_driver`` states the contract every backend driver keeps and
holds what they share; one module per backend (``_asyncio``, ``_trio``), imported only when
that backend runs; ``_io`` decides which outside I/O holds the clock, ``_threads`` which
worker threads do; ``_wall`` makes wall clocks follow. Imports only go down this list.
"""

from __future__ import annotations

from ._core import VirtualClock, VirtualTime, virtual_time
from ._errors import VirtualClockDeadlock, VirtualClockError, VirtualTimeLimitExceeded

__all__ = [
    "VirtualClock",
    "VirtualClockDeadlock",
    "VirtualClockError",
    "VirtualTime",
    "VirtualTimeLimitExceeded",
    "virtual_time",
]
