"""Virtual clock mode: the running event loop's own clock runs in virtual time.

One small module per backend (``_asyncio``, ``_trio``), imported only when that backend
runs; ``_wall`` makes wall clocks follow; ``_core`` holds what both share.
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
