"""Running one async test function (and only it, not its fixtures) inside ``virtual_time()``.

The ``virtual_clock`` fixture runs before the test body, outside the test's event loop code, so
it creates the ``virtual_time()`` block and hands out its clock; the wrapped test function enters
the block on the test's own loop, which brings the clock to life.

``virtual_clock`` and ``mock_anyio_sleep`` do not compose: the mock's sleeps return at once
without moving the loop's clock, so under virtual time no timeout would ever fire. Whichever of
the two is set up second fails the test with `refuse_both`'s message.

``@pytest.mark.virtual_clock(io_grace=..., end=...)`` (on a test, a class or a module) gives
every async test it covers the fixture, and sets its options; the closest marker wins per
option, then the ini options. Its arguments are checked right after collection.

When a virtual_clock test fails with fake-sleep's io_grace note on its exception (or on one in
its cause, context or group), `add_grace_hint` adds a report section naming the bundle's
ways to raise the grace. The note is found by ``fake_sleep.GRACE_NOTE_PREFIX``, its start, or
by ``io_grace=`` anywhere in it, so that a change of wording does not lose the hint.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest

from ._checks import short_repr
from ._markers import mark_problems

if TYPE_CHECKING:
    from fake_sleep import VirtualTime

VIRTUAL_MARKER = "virtual_clock"
VIRTUAL_MARKER_HELP = (
    "virtual_clock(io_grace=None, end=None, max_jumps=None): run every async test this covers "
    "(test, class, module) under the virtual_clock fixture; io_grace= real seconds outside I/O "
    "may hold the clock, end= virtual seconds it may not pass, max_jumps= jumps it may make "
    "(default: the ini options). Sync tests are left alone."
)
_MARKER_OPTIONS = ("io_grace", "end", "max_jumps")

GRACE_SECTION = "virtual_clock: io_grace ran out"


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


# --- the marker ---------------------------------------------------------------------------------


def marker_options(item: pytest.Item) -> dict[str, Any]:
    """The options the item's virtual_clock markers set (closest wins per option; None: unset)."""
    options: dict[str, Any] = {}
    for mark in reversed(list(item.iter_markers(VIRTUAL_MARKER))):  # farthest first
        options.update((name, value) for name, value in mark.kwargs.items() if value is not None)
    return options


def use_virtual_clock_where_marked(items: Iterable[pytest.Item]) -> None:
    """Give every async test under the marker the virtual_clock fixture (sync tests: no)."""
    for item in items:
        if not isinstance(item, pytest.Function) or item.get_closest_marker(VIRTUAL_MARKER) is None:
            continue
        if not inspect.iscoroutinefunction(item.obj) or VIRTUAL_MARKER in item.fixturenames:
            continue
        # A new list: parametrized items share one, and a mark on one parameter is its own.
        item.fixturenames = [*item.fixturenames, VIRTUAL_MARKER]


def virtual_marker_problems(items: Iterable[pytest.Item]) -> list[str]:
    """One line per bad virtual_clock marker, naming where it is written and the fix."""
    return mark_problems(items, VIRTUAL_MARKER, _virtual_mark_problems)


def _virtual_mark_problems(mark: pytest.Mark) -> list[str]:
    found = []
    if mark.args:
        found.append(
            f"takes keyword arguments only, got {short_repr(mark.args)}; write "
            f"@pytest.mark.{VIRTUAL_MARKER}(io_grace=5, end=3600)."
        )
    for name, value in mark.kwargs.items():
        if name not in _MARKER_OPTIONS:
            import difflib  # only on the error path

            close = difflib.get_close_matches(name, _MARKER_OPTIONS, n=1)
            hint = f"did you mean {close[0]}=? " if close else ""
            found.append(
                f"unknown option {name}=; {hint}It takes io_grace=, end= and max_jumps= only."
            )
            continue
        problem = _seconds_problem(name, value)
        if problem:
            found.append(problem)
    return found


def _seconds_problem(name: str, value: object) -> str | None:
    """What is wrong with a marker's io_grace=, end= or max_jumps= value, or None."""
    if value is None:
        return None  # not set here: a farther marker's, the ini option's or fake-sleep's
    if name == "max_jumps":
        return _jumps_problem(value)
    what = (
        "real seconds >= 0 that outside I/O may hold the clock (math.inf: always wait)"
        if name == "io_grace"
        else "virtual seconds > 0 that time may not pass"
    )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return (
            f"{name}={short_repr(value)} is {type(value).__name__}; write {name}= as a number"
            f" of {what}."
        )
    if math.isnan(value) or value < 0 or (name == "end" and value == 0):
        return f"{name}={value!r} is out of range; write {name}= as a number of {what}."
    return None


def _jumps_problem(value: object) -> str | None:
    what = "a whole number of jumps >= 1 (math.inf: no limit)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"max_jumps={short_repr(value)} is {type(value).__name__}; write it as {what}."
    if not (value >= 1 and (math.isinf(value) or float(value).is_integer())):
        return f"max_jumps={value!r} is out of range; write it as {what}."
    return None


# --- the hint on a failure ----------------------------------------------------------------------


def _grace_notes(error: BaseException) -> list[str]:
    """fake-sleep's io_grace notes on `error`, its causes, contexts and group members."""
    # fake-sleep is imported: a virtual_clock test ran. Its prefix, or a note naming io_grace=.
    prefix = getattr(sys.modules.get("fake_sleep"), "GRACE_NOTE_PREFIX", None) or "io_grace="
    found: list[str] = []
    todo, seen = [error], set()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for note in getattr(current, "__notes__", None) or ():
            if isinstance(note, str) and (note.startswith(prefix) or "io_grace=" in note):
                found.append(note)
        todo.extend(getattr(current, "exceptions", None) or ())
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return found


def grace_hint(error: BaseException, grace: float | None, source: str) -> str | None:
    """The report section's text when `error` carries fake-sleep's io_grace note, else None."""
    if not _grace_notes(error):
        return None
    now = "fake-sleep's default (no option set)" if grace is None else f"{grace:g} s, from {source}"
    longer = 30 if grace is None else max(30, math.ceil(2 * grace))  # more than it has now
    return (
        "Virtual time stopped waiting for outside work (a server, a subprocess, another thread's"
        " event loop) after io_grace real seconds, and the test failed after that (see the note"
        f" on the exception above). This test's io_grace: {now}. If that work is slow but"
        " correct, give it longer:\n"
        f"- this test, class or module: @pytest.mark.virtual_clock(io_grace={longer})\n"
        f"- every test: virtual_clock_io_grace = {longer} in the ini file, or"
        f" --virtual-clock-io-grace={longer} on the command line\n"
        "(math.inf / inf always waits for outside I/O.)"
    )


class VirtualClockHooks:
    """The marker's hook, registered as its own plugin object (the failure hint is added by
    the plugin's per-test report hook, with `add_grace_hint`)."""

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        use_virtual_clock_where_marked(items)


def add_grace_hint(
    report: pytest.TestReport,
    call: pytest.CallInfo[None],
    grace: tuple[float | None, str] | None,
) -> None:
    """Add `grace_hint`'s section to the report of a failed virtual_clock test."""
    if report.failed and grace is not None and call.excinfo is not None:
        text = grace_hint(call.excinfo.value, *grace)
        if text is not None:
            report.sections.append((GRACE_SECTION, text))
