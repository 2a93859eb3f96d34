"""What the clock reads of trio beyond its public API.

trio has no public way to change the clock of a running run: the driver (`_trio`) uses the
run's ``Runner``, and `_others` recognises other threads' trio runs from their frames. This
module never imports trio at import time (trio is an optional dependency and `_others` runs
on asyncio too). Checks raise `Missing` (the driver turns it into `unsupported(...)` before
anything changes); reads that may fail return a neutral value (that wait is then not seen).
The hot path reads the runner through the typed view `Runner` (no extra call per jump).
Where trio has a public way it is used instead: ``trio.lowlevel.add_instrument``,
``current_root_task()``, ``Task.child_nurseries``, the run's ``TrioToken``.
"""

from __future__ import annotations

import importlib
import select
import sys
from collections import deque
from collections.abc import Callable, Iterator
from types import CodeType, FrameType
from typing import Any, Protocol, cast

from ._private import Missing, PrivateName, describe

__all__ = [
    "CALLBACK_FRAMES",
    "NAMES",
    "RUNNER_NAMES",
    "Runner",
    "abort_wait",
    "check_runner",
    "is_blocked",
    "other_run_waits",
    "own_wait_keys",
    "registered_waits",
    "run_codes",
    "threads_module",
    "trio_waits",
    "wakeup_fd",
]

NAMES: tuple[PrivateName, ...] = (
    PrivateName(
        "trio._core._run.GLOBAL_RUN_CONTEXT.runner",
        "the running run's Runner: no public API changes the clock of a running run",
        "refused",
    ),
    PrivateName(
        "runner.clock",
        "set to the virtual clock for the duration (with runner.clock_autojump_threshold)",
        "refused",
    ),
    PrivateName(
        "runner.runq",
        "the runnable tasks, with runner.entry_queue.queue and .idempotent_queue (what"
        " threads handed back): a jump only when all three are empty",
        "refused",
    ),
    PrivateName(
        "runner.waiting_for_idle",
        "trio.testing.wait_all_tasks_blocked() waiters, which go before a jump",
        "refused",
    ),
    PrivateName(
        "runner.io_manager._registered",
        "the run's I/O waits (epoll: fd -> waiters; kqueue: (fd, filter) -> task)",
        "outside I/O is not seen (as on Windows): it does not hold the clock",
    ),
    PrivateName(
        "runner.entry_queue.wakeup.wakeup_sock",
        "the run's own wake-up socket, left out of its I/O waits",
        "it is classified like any other descriptor",
    ),
    PrivateName(
        "trio.lowlevel.Task._attempt_abort",
        "ends a stuck task's wait (with Task._abort_func) once a failed block is stuck, as"
        " trio delivers KeyboardInterrupt",
        "refused",
    ),
    PrivateName(
        "trio._threads.start_thread_soon",
        "where trio.to_thread.run_sync (and so anyio) starts threads, wrapped to count them",
        "refused",
    ),
    PrivateName(
        "trio._core._run.unrolled_run",
        "its frame (with trio._core._run.run's, local runner) marks a thread running"
        " another trio run",
        "that run's waits are not seen",
    ),
    PrivateName(
        "trio._threads.from_thread_run",
        "its frame (with from_thread_run_sync and _send_message_to_trio) marks a worker"
        " calling back into its run (CALLBACK_FRAMES)",
        "such a worker is not seen as waiting for the clock: it keeps time still",
    ),
)

#: The Runner attributes the driver reads or sets; `check_runner` checks each.
RUNNER_NAMES = ("clock", "clock_autojump_threshold", "runq", "entry_queue", "waiting_for_idle")

#: Frames of a worker that waits for the trio run it was started from: (module, function).
CALLBACK_FRAMES: frozenset[tuple[str, str]] = frozenset(
    {
        ("trio._threads", "from_thread_run"),
        ("trio._threads", "from_thread_run_sync"),
        ("trio._threads", "_send_message_to_trio"),
    }
)


class Runner(Protocol):
    """The attributes of trio's private ``Runner`` that the driver uses (typed view)."""

    clock: Any
    clock_autojump_threshold: float
    runq: deque[Any]
    entry_queue: Any
    waiting_for_idle: Any
    io_manager: Any


def check_runner() -> Runner:
    """The running run's Runner, after checking every attribute the driver touches."""
    try:
        run_module: Any = importlib.import_module("trio._core._run")
        runner = run_module.GLOBAL_RUN_CONTEXT.runner
    except (ImportError, AttributeError):
        raise Missing(
            "trio._core._run.GLOBAL_RUN_CONTEXT.runner (the running run) is missing"
        ) from None
    for name in (*RUNNER_NAMES, "io_manager"):
        if not hasattr(runner, name):
            raise Missing(f"trio's Runner has no {name!r}")
    if not isinstance(runner.runq, deque):
        raise Missing("trio's Runner.runq is not the deque of runnable tasks")
    for name in ("queue", "idempotent_queue"):
        if not hasattr(runner.entry_queue, name):
            raise Missing(f"trio's Runner.entry_queue has no {name!r}")
    task_class = importlib.import_module("trio.lowlevel").Task
    if not callable(getattr(task_class, "_attempt_abort", None)):
        raise Missing("trio's Task has no '_attempt_abort' (ends a stuck wait)")
    return cast(Runner, runner)


def threads_module() -> Any:
    """``trio._threads``, whose ``start_thread_soon`` is hooked; or `Missing`."""
    threads: Any = importlib.import_module("trio._threads")
    if not callable(getattr(threads, "start_thread_soon", None)):
        raise Missing(
            "trio._threads.start_thread_soon (where trio.to_thread.run_sync starts its"
            " threads) is missing"
        )
    return threads


def registered_waits(runner: Runner) -> dict[Any, Any] | None:
    """The I/O manager's live table of waits (never rebound), or None where it has none."""
    registered = getattr(runner.io_manager, "_registered", None)
    return registered if isinstance(registered, dict) else None


def is_blocked(task: Any) -> bool:
    """Whether `task` is blocked in a wait that `abort_wait` can end."""
    return getattr(task, "_abort_func", None) is not None


def abort_wait(task: Any, raise_error: Callable[..., Any]) -> None:
    """End `task`'s wait through its own abort function, as trio delivers KeyboardInterrupt."""
    task._attempt_abort(raise_error)


def run_codes() -> tuple[CodeType | None, CodeType | None]:
    """``trio.run`` (waits for I/O there) and ``unrolled_run`` (runs tasks), with ``runner``."""
    run = sys.modules.get("trio._core._run")
    return (
        getattr(getattr(run, "run", None), "__code__", None),
        getattr(getattr(run, "unrolled_run", None), "__code__", None),
    )


_Wait = tuple[object, object, bool]


def _kqueue_filters() -> frozenset[int]:
    names = ("KQ_FILTER_READ", "KQ_FILTER_WRITE")
    return frozenset(getattr(select, name) for name in names if hasattr(select, name))


_KQUEUE_IO = _kqueue_filters()


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


def own_wait_keys(wakeup: int) -> frozenset[object]:
    """The keys `trio_waits` skips as the run's own wake-up socket, on epoll and kqueue."""
    return frozenset({wakeup, *((wakeup, kind) for kind in _KQUEUE_IO)})


def wakeup_fd(runner: Any) -> int:
    """The run's own wake-up socket (``trio.from_thread`` and signals), -1 if not found."""
    wakeup = getattr(getattr(runner, "entry_queue", None), "wakeup", None)
    sock = getattr(wakeup, "wakeup_sock", None)
    try:
        return int(sock.fileno()) if sock is not None else -1
    except (OSError, ValueError):  # pragma: no cover - closed at the end of the run
        return -1


def other_run_waits(runner: Any, innermost: FrameType, name: str) -> Iterator[_Wait]:
    """The waits of another thread's trio run, in the form `OutsideIO.hold` takes."""
    if innermost.f_code.co_name != "get_events" or getattr(runner, "runq", None):
        yield f"another trio run, running in thread {name!r}", "running", False
        return
    registered = getattr(getattr(runner, "io_manager", None), "_registered", None)
    if isinstance(registered, dict):
        yield from trio_waits(registered, wakeup_fd(runner))


__doc__ = describe(__doc__, NAMES)
