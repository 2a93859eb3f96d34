"""Running one async test function (and only it, not its fixtures) inside ``virtual_time()``.

The fixture runs before the test's event loop code does, so it hands out a clock that becomes
live when the wrapped test function enters ``fake_sleep.virtual_time`` on the test's own loop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from fake_sleep import VirtualClock


class _PendingClock:
    """Stands in for the test's VirtualClock until the test body enters virtual time."""

    def __init__(self) -> None:
        self._live: Any = None

    def _bind(self, clock: object) -> None:
        self._live = clock

    def __getattr__(self, name: str) -> Any:
        live = self.__dict__.get("_live")
        if live is None:
            raise RuntimeError(
                "the virtual_clock fixture's clock is live only inside the async test function "
                "itself (fixtures set up and tear down in real time)."
            )
        return getattr(live, name)

    def __repr__(self) -> str:
        return f"<virtual clock {'live' if self._live is not None else 'not started'}>"


@dataclass
class VirtualClockRequest:
    """What the ``virtual_clock`` fixture asked for, read when the test body runs."""

    end: float | None
    _pending: _PendingClock = field(default_factory=_PendingClock)

    @property
    def clock(self) -> VirtualClock:
        return cast("VirtualClock", self._pending)


def wrap_in_virtual_time(
    function: Callable[..., Awaitable[Any]], request: VirtualClockRequest
) -> Callable[..., Awaitable[Any]]:
    """Wrap an async test function so that its body runs inside ``virtual_time(end=...)``."""

    @functools.wraps(function)
    async def in_virtual_time(*args: Any, **kwargs: Any) -> Any:
        from fake_sleep import virtual_time

        async with virtual_time(end=request.end) as clock:
            request._pending._bind(clock)
            return await function(*args, **kwargs)

    return in_virtual_time
