"""Waits elsewhere in the process that may still wake this loop: other event loops, child watchers.

A background thread with its own event loop (Prefect's client runs one) talking to a server,
or asyncio's threaded child watcher waiting for a subprocess (Python 3.10 and 3.11 without a
pidfd), does real work the loop under virtual time cannot see in its own selector. They are
found from the threads' current frames (``sys._current_frames()``) and reported as waits in
the form `OutsideIO.hold` takes:

- another asyncio loop (a ``BaseEventLoop._run_once`` frame): while it runs callbacks or has
  ready ones, one wait named after it; while it waits in its selector, each descriptor it
  waits on (its own wake-up socket left out), classified like this loop's own;
- another trio run (a ``trio.run`` or ``unrolled_run`` frame): the same, from its runner;
- a ``ThreadedChildWatcher`` thread (``_do_waitpid``): one wait per subprocess.

Reads private names of asyncio and trio, each looked up defensively: a name that is missing
only means that kind of wait is not seen (it then cannot hold the clock).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from asyncio import base_events
from collections.abc import Iterator
from types import CodeType, FrameType
from typing import Any

__all__ = ["other_waits", "own_wait_keys", "reads_all_the_time", "trio_waits", "trio_wakeup_fd"]

_Wait = tuple[object, object, bool]

_RUN_ONCE: CodeType | None = getattr(
    getattr(base_events.BaseEventLoop, "_run_once", None), "__code__", None
)


def _waitpid_code() -> CodeType | None:
    unix_events = sys.modules.get("asyncio.unix_events")
    watcher = getattr(unix_events, "ThreadedChildWatcher", None)
    return getattr(getattr(watcher, "_do_waitpid", None), "__code__", None)


def _trio_codes() -> tuple[CodeType | None, CodeType | None]:
    """``trio.run`` (waits for I/O there) and ``unrolled_run`` (runs tasks), with ``runner``."""
    run = sys.modules.get("trio._core._run")
    return (
        getattr(getattr(run, "run", None), "__code__", None),
        getattr(getattr(run, "unrolled_run", None), "__code__", None),
    )


def reads_all_the_time(key: Any) -> bool:
    """Whether an asyncio selector key belongs to a transport that reads whether or not asked.

    anyio's streams pause reading between ``receive()`` calls, and raw ``sock_recv`` or
    ``add_reader`` waits register only while waiting: for those, being registered means a
    task is waiting. asyncio's own transports read all the time.
    """
    data = key.data
    reader = data[0] if isinstance(data, tuple) and data else None
    owner = getattr(getattr(reader, "_callback", None), "__self__", None)
    if not isinstance(owner, asyncio.BaseTransport):
        return False
    protocol = owner.get_protocol()
    return type(protocol).__module__ != "anyio._backends._asyncio"


def trio_waits(registered: dict[Any, Any], skip: int) -> Iterator[_Wait]:
    """(fd, token, False) for each descriptor a trio run waits on; the token is the entry.

    epoll keeps one entry per descriptor while a task waits on it and drops it after; kqueue
    keys its entries by ``(fd, filter)`` (only read and write filters wait on a descriptor).
    ``skip`` is the run's own wake-up socket.
    """
    for key, entry in list(registered.items()):
        if isinstance(key, tuple):
            fd, kind = key
            if kind not in _KQUEUE_IO:
                continue
        else:
            fd = key
        if isinstance(fd, int) and fd != skip:
            yield fd, entry, False


def _kqueue_filters() -> frozenset[int]:
    import select

    names = ("KQ_FILTER_READ", "KQ_FILTER_WRITE")
    return frozenset(getattr(select, name) for name in names if hasattr(select, name))


_KQUEUE_IO = _kqueue_filters()


def own_wait_keys(wakeup_fd: int) -> frozenset[object]:
    """The keys `trio_waits` skips as the run's own wake-up socket, on epoll and kqueue."""
    return frozenset({wakeup_fd, *((wakeup_fd, kind) for kind in _KQUEUE_IO)})


def trio_wakeup_fd(runner: Any) -> int:
    """The run's own wake-up socket (``trio.from_thread`` and signals), -1 if not found."""
    wakeup = getattr(getattr(runner, "entry_queue", None), "wakeup", None)
    sock = getattr(wakeup, "wakeup_sock", None)
    try:
        return int(sock.fileno()) if sock is not None else -1
    except (OSError, ValueError):  # pragma: no cover - closed at the end of the run
        return -1


def _in_selector(frame: FrameType) -> bool:
    code = frame.f_code
    return code.co_name == "select" and frame.f_globals.get("__name__") == "selectors"


def _asyncio_waits(loop: Any, innermost: FrameType, name: str) -> Iterator[_Wait]:
    if not _in_selector(innermost) or getattr(loop, "_ready", None):
        yield f"another asyncio event loop, running in thread {name!r}", "running", False
        return
    selector = getattr(loop, "_selector", None)
    ssock = getattr(loop, "_ssock", None)
    try:
        own = ssock.fileno() if ssock is not None else -1
        items = list(selector.get_map().items()) if selector is not None else []
    except (AttributeError, RuntimeError, OSError):  # closing meanwhile
        return
    for fd, key in items:
        if fd != own:
            yield fd, key, reads_all_the_time(key)


def _trio_waits(runner: Any, innermost: FrameType, name: str) -> Iterator[_Wait]:
    if innermost.f_code.co_name != "get_events" or getattr(runner, "runq", None):
        yield f"another trio run, running in thread {name!r}", "running", False
        return
    registered = getattr(getattr(runner, "io_manager", None), "_registered", None)
    if isinstance(registered, dict):
        yield from trio_waits(registered, trio_wakeup_fd(runner))


#: Per thread: (id of its innermost frame, that frame's position, what its stack runs), so a
#: thread still blocked at the same place is not walked again (the common case). Frames are
#: not kept: holding them would keep their locals alive.
_seen: dict[int, tuple[int, int, str, Any]] = {}


def _find(innermost: FrameType) -> tuple[str, Any]:
    """What a thread's stack runs: ("asyncio", loop), ("trio", runner), ("pid", pid) or none."""
    waitpid = _waitpid_code()
    trio_run, trio_unrolled = _trio_codes()
    frame: FrameType | None = innermost
    while frame is not None:
        code = frame.f_code
        if code is _RUN_ONCE:
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


#: threading's table of running threads, read without its lock on the hot path (one jump);
#: ``threading.active_count()`` where it is missing.
_ACTIVE_THREADS: Any = getattr(threading, "_active", None)


def other_waits(own_thread: int, own: object) -> list[_Wait]:
    """Every wait of other threads that may wake this loop (empty when there are none)."""
    if _ACTIVE_THREADS is not None:
        if len(_ACTIVE_THREADS) <= 1:
            return []
    elif threading.active_count() <= 1:  # pragma: no cover - a threading without _active
        return []
    found: list[_Wait] = []
    frames = sys._current_frames()
    # Our own frame is dropped at once: left in the dict (a local of that very frame) it
    # would make a cycle, frame -> dict -> frame, for the garbage collector on every jump.
    frames.pop(own_thread, None)
    if len(_seen) > 2 * len(frames) + 16:
        for ident in [ident for ident in _seen if ident not in frames]:
            del _seen[ident]
    seen_get = _seen.get
    for ident, innermost in frames.items():
        seen = seen_get(ident)
        if seen is not None and seen[0] == id(innermost) and seen[1] == innermost.f_lasti:
            kind = seen[2]
            if not kind:
                continue
            payload = seen[3]
        else:
            kind, payload = _find(innermost)
            _seen[ident] = (id(innermost), innermost.f_lasti, kind, payload)
        if not kind or payload is None or payload is own:
            continue
        if kind == "asyncio":
            found.extend(_asyncio_waits(payload, innermost, _thread_name(ident)))
        elif kind == "trio":
            found.extend(_trio_waits(payload, innermost, _thread_name(ident)))
        else:
            found.append((f"a subprocess (pid {payload}) an event loop waits for", "pid", False))
    return found
