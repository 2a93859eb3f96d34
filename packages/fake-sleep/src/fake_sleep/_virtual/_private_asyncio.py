"""What the clock reads of asyncio (and of anyio's asyncio backend) beyond their public API.

asyncio has no public clock or idle hook: the driver (`_asyncio`) relies on what
``BaseEventLoop._run_once`` does, and `_others` recognises other threads' loops and
asyncio's threaded child watcher from their frames. anyio's two names live here too (with
their backend). Checks raise `Missing` (the driver turns it into `unsupported(...)`, naming
the loop, before anything changes); reads that may fail return a neutral value instead
(that kind of wait is then not seen). The hot path reads the loop through the typed view
`LoopInternals` (the loop itself, no extra call per jump).
"""

from __future__ import annotations

import asyncio
import collections
import selectors
import sys
import time
from asyncio import base_events, selector_events
from collections.abc import Callable, Iterator, Mapping
from types import CodeType, FrameType
from typing import Any, Protocol, cast

from ._private import Missing, PrivateName, describe

__all__ = [
    "NAMES",
    "RUN_ONCE_CODE",
    "RUN_ONCE_NAMES",
    "LoopInternals",
    "anyio_worker_owner",
    "callbacks_of",
    "check_loop",
    "clock_resolution",
    "epoll_peek",
    "loop_waits",
    "reads_all_the_time",
    "timer_targets",
    "transport_class",
    "transport_loop_and_fd",
    "waiter_of",
    "waitpid_code",
    "wakeup_fd",
]

NAMES: tuple[PrivateName, ...] = (
    PrivateName(
        "asyncio.base_events.BaseEventLoop._run_once",
        "one loop iteration: it must wait through self._selector.select() with a timeout from"
        " self.time() and self._scheduled and run self._ready (checked in its code's names);"
        " its frame also marks a thread running another asyncio loop",
        "refused",
    ),
    PrivateName("loop._selector", "the selector whose select() becomes the jump", "refused"),
    PrivateName("loop._ready", "the ready callbacks: a jump only when there are none", "refused"),
    PrivateName(
        "loop._scheduled",
        "the timer heap; its head's public TimerHandle.when() is the next deadline",
        "refused",
    ),
    PrivateName(
        "loop._ssock", "the loop's own wake-up socket, never a wait on the outside", "refused"
    ),
    PrivateName(
        "loop._clock_resolution",
        "what _run_once adds to now to decide a timer is due (kept above the deadline)",
        "time.get_clock_info('monotonic').resolution is used",
    ),
    PrivateName(
        "selectors.EpollSelector._selector",
        "the select.epoll object: a cheap readiness poll before each jump",
        "the selector's own select(0) is used (slower)",
    ),
    PrivateName(
        "asyncio.selector_events._SelectorSocketTransport.write",
        "wrapped (with writelines) to note a request written through a transport",
        "refused",
    ),
    PrivateName(
        "transport._loop",
        "which loop a transport write belongs to (with transport._sock_fd, its descriptor)",
        "the write hook fails (both are set by every asyncio socket transport)",
    ),
    PrivateName(
        "handle._callback",
        "a selector key's reader callback (its owner transport reads all the time) and, with"
        " handle._args, which future a timer resolves",
        "readers are taken as waiting only while asked; such timers are not cancelled",
    ),
    PrivateName(
        "task._fut_waiter",
        "the future a stuck task waits on (only once a failed block is stuck)",
        "a failed block's stuck waits are not ended for it",
    ),
    PrivateName(
        "future._callbacks",
        "which tasks resolve a future (a task group, gather), left to end on their own",
        "every stuck wait is failed, those of task groups too",
    ),
    PrivateName(
        "asyncio.unix_events.ThreadedChildWatcher._do_waitpid",
        "its frame (local expected_pid) is a subprocess an event loop waits for (3.10, 3.11)",
        "not seen: the subprocess does not hold the clock",
    ),
    PrivateName(
        "anyio._backends._asyncio.AsyncIOBackend.run_sync_in_worker_thread",
        "anyio's worker threads (they bypass run_in_executor), wrapped to count them",
        "refused",
    ),
    PrivateName(
        "anyio._backends._asyncio",
        "the module of anyio's stream protocols, which read only while asked",
        "anyio's streams are taken for transports that read all the time",
    ),
)

#: What `BaseEventLoop._run_once` must use for the driver to be right.
RUN_ONCE_NAMES = frozenset({"_selector", "select", "_scheduled", "_ready", "time"})
_run_once: Any = getattr(base_events.BaseEventLoop, "_run_once", None)
#: Its code: a thread with a frame running it runs an asyncio loop (its ``self`` local).
RUN_ONCE_CODE: CodeType | None = getattr(_run_once, "__code__", None)
_ANYIO_PROTOCOLS = "anyio._backends._asyncio"


class LoopInternals(Protocol):
    """The private attributes of a checked selector loop that the driver reads (typed view)."""

    _ready: collections.deque[Any]
    _scheduled: list[asyncio.TimerHandle]


def check_loop(loop: selector_events.BaseSelectorEventLoop) -> tuple[LoopInternals, Any]:
    """The loop as `LoopInternals` and its selector, after checking every name; or `Missing`."""
    names = set(getattr(RUN_ONCE_CODE, "co_names", ()))
    if not names >= RUN_ONCE_NAMES:
        raise Missing(
            "asyncio.BaseEventLoop._run_once no longer waits through self._selector.select()"
            f" with self._scheduled and self._ready (it uses {sorted(names)})"
        )
    loop_class: Any = type(loop)
    if loop_class._run_once is not _run_once or "_run_once" in vars(loop):
        raise Missing("the loop replaces BaseEventLoop._run_once with its own")
    selector = getattr(loop, "_selector", None)
    if not isinstance(selector, selectors.BaseSelector) or not hasattr(selector, "__dict__"):
        raise Missing(f"its _selector is {selector!r}, not a selectors.BaseSelector")
    if "select" in vars(selector):
        raise Missing(
            "its selector's select() is already replaced by something else (another virtual"
            " clock such as looptime?)"
        )
    if not isinstance(getattr(loop, "_ready", None), collections.deque):
        raise Missing("loop._ready is not the deque of ready callbacks")
    if not isinstance(getattr(loop, "_scheduled", None), list):
        raise Missing("loop._scheduled is not the heap of timers")
    if not isinstance(selector.get_map(), Mapping):
        raise Missing("selector.get_map() is not a mapping")
    ssock = getattr(loop, "_ssock", None)
    if ssock is None or not callable(getattr(ssock, "fileno", None)):
        raise Missing("loop._ssock (its wake-up socket) is missing")
    return cast(LoopInternals, loop), selector


def wakeup_fd(loop: asyncio.AbstractEventLoop) -> int:
    """The loop's own wake-up socket (checked by `check_loop`)."""
    return int(loop._ssock.fileno())  # type: ignore[attr-defined]


def clock_resolution(loop: asyncio.AbstractEventLoop) -> float:
    """What ``_run_once`` adds to ``time()`` to find the due timers."""
    resolution = getattr(loop, "_clock_resolution", None)
    if isinstance(resolution, float):
        return resolution
    return time.get_clock_info("monotonic").resolution


def epoll_peek(selector: selectors.BaseSelector) -> Callable[[float], list[Any]] | None:
    """The epoll object's own ``poll`` (a cheap readiness check), or None."""
    if type(selector) is not selectors.EpollSelector:
        return None
    poll = getattr(getattr(selector, "_selector", None), "poll", None)
    return poll if callable(poll) else None


def waiter_of(task: asyncio.Task[Any]) -> object:
    """The future `task` waits on, or None."""
    return getattr(task, "_fut_waiter", None)


def callbacks_of(future: asyncio.Future[Any]) -> Iterator[object]:
    """The done-callbacks of `future` (each a callable)."""
    for entry in getattr(future, "_callbacks", None) or ():
        yield entry[0] if isinstance(entry, tuple) else entry


def timer_targets(handle: asyncio.TimerHandle) -> tuple[object, ...]:
    """What a timer's callback acts on: the object it is bound to, and its arguments."""
    callback = getattr(handle, "_callback", None)
    return (getattr(callback, "__self__", None), *(getattr(handle, "_args", None) or ()))


def transport_class() -> Any:
    """asyncio's socket transport class, whose ``write`` is hooked; or `Missing`."""
    transport: Any = getattr(selector_events, "_SelectorSocketTransport", None)
    if transport is None or not callable(vars(transport).get("write")):
        raise Missing("asyncio.selector_events._SelectorSocketTransport.write is missing")
    return transport


def transport_loop_and_fd(transport: Any) -> tuple[asyncio.AbstractEventLoop, int]:
    """The loop and descriptor of an asyncio socket transport."""
    return transport._loop, transport._sock_fd


def anyio_worker_owner() -> Any:
    """anyio's ``AsyncIOBackend``, whose ``run_sync_in_worker_thread`` is hooked; or `Missing`."""
    try:
        from anyio._backends._asyncio import AsyncIOBackend
    except ImportError as exc:  # pragma: no cover - anyio is a dependency
        raise Missing(f"anyio's asyncio backend cannot be imported ({exc})") from None
    if not isinstance(vars(AsyncIOBackend).get("run_sync_in_worker_thread"), classmethod):
        raise Missing(
            "anyio._backends._asyncio.AsyncIOBackend.run_sync_in_worker_thread (anyio's worker"
            " threads) is missing"
        )
    return AsyncIOBackend


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
    return type(protocol).__module__ != _ANYIO_PROTOCOLS


def waitpid_code() -> CodeType | None:
    """``ThreadedChildWatcher._do_waitpid``'s code (its frame has ``expected_pid``), or None."""
    unix_events = sys.modules.get("asyncio.unix_events")
    watcher = getattr(unix_events, "ThreadedChildWatcher", None)
    return getattr(getattr(watcher, "_do_waitpid", None), "__code__", None)


_Wait = tuple[object, object, bool]


def _in_selector(frame: FrameType) -> bool:
    code = frame.f_code
    return code.co_name == "select" and frame.f_globals.get("__name__") == "selectors"


def loop_waits(loop: Any, innermost: FrameType, name: str) -> Iterator[_Wait]:
    """The waits of another thread's asyncio loop, in the form `OutsideIO.hold` takes."""
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


__doc__ = describe(__doc__, NAMES)
