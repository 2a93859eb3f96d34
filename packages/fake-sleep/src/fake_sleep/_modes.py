"""Which mode is active: mock mode (`patch_sleep`) and virtual time do not mix.

A fake sleep returns at once without moving the event loop's clock, so under a virtual clock
timeouts would never fire and sleeps would not wake in deadline order: the mock silently wins.
Each mode therefore refuses to start while the other is active, in this process.
"""

from __future__ import annotations

import threading

__all__ = ["enter", "leave", "refuse"]

_lock = threading.Lock()
_active = {"patch_sleep": 0, "virtual_time": 0}

_WHICH = (
    "Use one mode per test: patch_sleep() (mock mode) to assert which sleeps happened"
    " (assert_awaited_once_with, assert_sleeps_for); virtual_time() to make sleeps and"
    " timeouts complete at once, in deadline order, on the event loop's own clock."
)


def refuse(starting: str) -> str | None:
    """The message for starting `starting` while the other mode is active, else None."""
    other = "virtual_time" if starting == "patch_sleep" else "patch_sleep"
    with _lock:
        if not _active[other]:
            return None
    return (
        f"{starting}() cannot start while {other}() is active: a fake sleep returns at once"
        " without moving the event loop's clock, so under virtual time timeouts"
        " (fail_after, move_on_after, wait_for) would never fire. " + _WHICH
    )


def enter(mode: str) -> None:
    with _lock:
        _active[mode] += 1


def leave(mode: str) -> None:
    with _lock:
        _active[mode] -= 1
