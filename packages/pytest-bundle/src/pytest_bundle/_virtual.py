"""Running one async test function (and only it, not its fixtures) inside ``virtual_time()``.

The ``virtual_clock`` fixture runs before the test body, outside the test's event loop code, so
it creates the ``virtual_time()`` block and hands out its clock; the wrapped test function enters
the block on the test's own loop, which brings the clock to life.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fake_sleep import VirtualTime


def wrap_in_virtual_time(
    function: Callable[..., Awaitable[Any]], block: VirtualTime
) -> Callable[..., Awaitable[Any]]:
    """Wrap an async test function so that its body runs inside the given ``virtual_time``."""

    @functools.wraps(function)
    async def in_virtual_time(*args: Any, **kwargs: Any) -> Any:
        async with block:
            return await function(*args, **kwargs)

    return in_virtual_time
