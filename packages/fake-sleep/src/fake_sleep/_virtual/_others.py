"""Waits elsewhere in the process that may still wake this loop: other event loops, child watchers.

A background thread with its own event loop (Prefect's client runs one) talking to a server,
or asyncio's threaded child watcher waiting for a subprocess (Python 3.10 and 3.11 without a
pidfd), does real work the loop under virtual time cannot see in its own selector. They are
found from the threads' current frames and reported as waits in the form `OutsideIO.hold`
takes:

- another asyncio loop (a ``BaseEventLoop._run_once`` frame): while it runs callbacks or has
  ready ones, one wait named after it; while it waits in its selector, each descriptor it
  waits on (its own wake-up socket left out), classified like this loop's own;
- another trio run (a ``trio.run`` or ``unrolled_run`` frame): the same, from its runner;
- a ``ThreadedChildWatcher`` thread (``_do_waitpid``): one wait per subprocess.

This module is backend-neutral: which frames mark what, and how each loop's waits are read,
come from `_private_asyncio`, `_private_trio` and `_private_threading` (a name missing there
only means that kind of wait is not seen: it then cannot hold the clock).
"""

from __future__ import annotations

import threading
from types import CodeType, FrameType
from typing import Any

from ._private_asyncio import RUN_ONCE_CODE, loop_waits, waitpid_code
from ._private_threading import ACTIVE_THREADS, current_frames
from ._private_trio import other_run_waits, run_codes

__all__ = ["other_waits"]

_Wait = tuple[object, object, bool]


#: Per thread: what its stack runs (kind, payload), under a key of its innermost frame:
#: (id, f_lasti, code, id of the caller, the caller's code), so a thread still blocked at the
#: same place is not walked again (the common case). Frames are not kept: holding them would
#: keep their locals alive. Why the key is sound: the codes are held (their ids cannot be
#: reused while cached), and a live frame's caller never changes. If the innermost frame and
#: its caller are the frames seen before, the stack is the one seen before. A freed frame's
#: address can be reused, so a hit on a new innermost frame needs a new frame running the same
#: code at the same instruction, called from a caller at the old caller's address running the
#: old caller's code: if that caller is the old one, the stack from it outward is unchanged,
#: and the innermost frame's part of the verdict (the marker's ``self``/``runner``/pid local)
#: is what that same caller passed again. Only both frames freed and replaced at the same two
#: addresses by frames of the same two codes could inherit a stale verdict; id and f_lasti
#: alone (before) took any new frame at a reused address on the same instruction.
_seen: dict[int, tuple[int, int, CodeType, int, CodeType | None, str, Any]] = {}


def _find(innermost: FrameType) -> tuple[str, Any]:
    """What a thread's stack runs: ("asyncio", loop), ("trio", runner), ("pid", pid) or none."""
    waitpid = waitpid_code()
    trio_run, trio_unrolled = run_codes()
    frame: FrameType | None = innermost
    while frame is not None:
        code = frame.f_code
        if code is RUN_ONCE_CODE and code is not None:
            return "asyncio", frame.f_locals.get("self")
        if code is waitpid and waitpid is not None:
            return "pid", frame.f_locals.get("expected_pid")
        if (code is trio_run or code is trio_unrolled) and code is not None:
            return "trio", frame.f_locals.get("runner")
        frame = frame.f_back
    return "", None


def _thread_name(ident: int) -> str:
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return str(ident)  # pragma: no cover - ended meanwhile


def other_waits(own_thread: int, own: object) -> list[_Wait]:
    """Every wait of other threads that may wake this loop (empty when there are none)."""
    if ACTIVE_THREADS is not None:
        if len(ACTIVE_THREADS) <= 1:
            return []
    elif threading.active_count() <= 1:  # pragma: no cover - a threading without _active
        return []
    found: list[_Wait] = []
    frames = current_frames()
    # Our own frame is dropped at once: left in the dict (a local of that very frame) it
    # would make a cycle, frame -> dict -> frame, for the garbage collector on every jump.
    frames.pop(own_thread, None)
    if len(_seen) > 2 * len(frames) + 16:
        for ident in [ident for ident in _seen if ident not in frames]:
            del _seen[ident]
    seen_get = _seen.get
    for ident, innermost in frames.items():
        seen = seen_get(ident)
        caller = innermost.f_back
        if (
            seen is not None
            and seen[0] == id(innermost)
            and seen[1] == innermost.f_lasti
            and seen[2] is innermost.f_code
            and seen[3] == id(caller)
            and seen[4] is (caller.f_code if caller is not None else None)
        ):
            kind = seen[5]
            if not kind:
                continue
            payload = seen[6]
        else:
            kind, payload = _find(innermost)
            _seen[ident] = (
                id(innermost),
                innermost.f_lasti,
                innermost.f_code,
                id(caller),
                caller.f_code if caller is not None else None,
                kind,
                payload,
            )
        if not kind or payload is None or payload is own:
            continue
        if kind == "asyncio":
            found.extend(loop_waits(payload, innermost, _thread_name(ident)))
        elif kind == "trio":
            found.extend(other_run_waits(payload, innermost, _thread_name(ident)))
        else:
            found.append((f"a subprocess (pid {payload}) an event loop waits for", "pid", False))
    return found
