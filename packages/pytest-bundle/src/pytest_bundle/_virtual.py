"""Running one async test function (and only it, not its fixtures) inside ``virtual_time()``.

The ``virtual_clock`` fixture runs before the test body, outside the test's event loop code, so
it creates the ``virtual_time()`` block and hands out its clock; the wrapped test function enters
the block on the test's own loop, which brings the clock to life.

``virtual_clock`` and ``mock_anyio_sleep`` do not compose: the mock's sleeps return at once
without moving the loop's clock, so under virtual time no timeout would ever fire. Whichever of
the two is set up second fails the test with `refuse_both`'s message.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

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


_BOTH = ("mock_anyio_sleep", "virtual_clock")


def refuse_both(request: pytest.FixtureRequest) -> None:
    """Fail the test, naming both fixtures and when to use which, if it asks for both."""
    if not all(name in request.fixturenames for name in _BOTH):
        return
    pytest.fail(
        f"{request.node.nodeid} uses both mock_anyio_sleep and virtual_clock; use one of them.\n"
        "mock_anyio_sleep replaces anyio.sleep with a recorder that returns at once without"
        " moving the event loop's clock, so under virtual_clock no timeout (fail_after,"
        " move_on_after, wait_for) would ever fire and sleeps would not wake in deadline order.\n"
        "- mock_anyio_sleep: to assert which sleeps happened (assert_awaited_once_with,"
        " assert_sleeps_for, call_args_list), in any test, sync fixtures included.\n"
        "- virtual_clock: to make every sleep and timeout of an async test complete at once on"
        " the loop's own clock, in deadline order (read it with virtual_clock.time()).",
        pytrace=False,
    )
