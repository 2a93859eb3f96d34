"""The context-local override stack.

The stack of active overrides lives in one ContextVar, so every asyncio task, trio task and thread
has its own (tasks start with a copy of their parent's, new threads with none). A stack is a chain
of immutable `State` nodes, one per entered override, each holding the per-setting view of every
override up to it, so reading a setting is a single dictionary look-up and entering an override
on an empty stack reuses a view computed when the override was created.

Overrides are removed by identity, never with `ContextVar.reset`: leaving one marks the node it
entered inactive and writes a new process-wide epoch, and a context that still holds that node
(another task, a copied context, an out-of-order exit) drops it the next time it reads. So two
overrides that exit out of order leave no stale value, and an override that ends ends
everywhere.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._registry import Setting

__all__ = [
    "EPOCH",
    "RESTORED",
    "STATE",
    "VALUE",
    "Entry",
    "Frame",
    "Op",
    "State",
    "current_state",
    "next_epoch",
    "refresh",
    "root_entries",
]

#: Entry kinds. 0: no override value (only a changed default); the environment still counts.
VALUE = 1
RESTORED = 2

Entry = tuple[int, Any, Any, bool]
"""What the active overrides say about one setting: `(kind, value, default, default_changed)`.

kind 0: nothing overrides the value (read the environment, then `default`); `VALUE`: `value` is
the override; `RESTORED`: the setting reads its default, and `value` is that default. A tuple, not
an object: it is built on every enter and read on every `value()`."""

Op = tuple["Setting[Any]", int, Any, bool, Any]
"""What one override does to one setting: `(setting, kind, value, sets_default, default)`."""


def apply(old: Entry | None, op: Op) -> Entry:
    """The entry for `op`'s setting once `op` is applied over `old` (None: no outer override)."""
    setting, kind, value, sets_default, new_default = op
    if old is None:
        old_kind, old_value, default, changed = 0, None, setting.default, False
    else:
        old_kind, old_value, default, changed = old
    if sets_default:
        default, changed = new_default, True
    if kind == VALUE:
        return (VALUE, value, default, changed)
    if kind == RESTORED or old_kind == RESTORED:
        # Restored here, or restored further out: either way the value is the current default.
        return (RESTORED, default, default, changed)
    return (old_kind, old_value, default, changed)


def root_entries(ops: tuple[Op, ...]) -> dict[Setting[Any], Entry]:
    """The view of an override entered on an empty stack (computed once per override)."""
    return {op[0]: apply(None, op) for op in ops}


class Frame:
    """What an override brings to the stack: its ops, and its view on an empty stack.

    The override objects are frames themselves (they compute both when created), so entering
    allocates nothing but the `State` node.
    """

    __slots__ = ()

    _ops: tuple[Op, ...]
    _root: dict[Setting[Any], Entry]


class State:
    """One node of a context's override stack: an entered frame on top of its parent's state.

    The node made when an override is entered is that entry's identity: its `active` turns
    False (for every context that shares it) when the override is left. Nodes rebuilt after
    an exit elsewhere point to that original through `origin` (None on the original itself).
    Immutable apart from `active`
    and `epoch` (the epoch at which every node of the chain was last seen active); shared by
    every context that inherited it.
    """

    __slots__ = ("active", "entries", "epoch", "frame", "origin", "parent")

    entries: dict[Setting[Any], Entry]

    def __init__(
        self, frame: Frame, parent: State | None, epoch: int, origin: State | None = None
    ) -> None:
        self.frame = frame
        self.parent = parent
        self.epoch = epoch
        self.active = True
        self.origin = origin
        if parent is None:
            self.entries = frame._root  # shared, never mutated
        else:
            outer = parent.entries
            entries = outer.copy()
            for op in frame._ops:
                entries[op[0]] = apply(outer.get(op[0]), op)
            self.entries = entries


STATE: ContextVar[State | None] = ContextVar("settings_override_state", default=None)
#: A new, unique number whenever an override exits, so a state seen from any context checks once
#: whether it still holds an override that has exited. A one-item list, read without a lock:
#: readers only compare it for inequality with the number they last checked at, and every
#: number is written once, so a write that lands late can only cause an extra check.
EPOCH = [0]
_COUNTER = itertools.count(1)
_LOCK = threading.Lock()


def _locked_next_epoch() -> int:
    with _LOCK:
        return next(_COUNTER)


#: The next epoch. With the GIL, next() on itertools.count is atomic; without it, take a lock.
next_epoch: Callable[[], int] = (
    _COUNTER.__next__ if getattr(sys, "_is_gil_enabled", lambda: True)() else _locked_next_epoch
)


def refresh(state: State) -> State | None:
    """This context's state without the overrides that exited anywhere (sets the ContextVar).

    The epoch is read before the nodes are checked, so an exit that races with this check
    writes a new epoch after it and is seen on the next read.
    """
    epoch = EPOCH[0]
    nodes: list[State] = []
    node: State | None = state
    stale = False
    while node is not None:
        nodes.append(node)
        stale = stale or not (node.origin or node).active
        node = node.parent
    if not stale:
        state.epoch = epoch
        return state
    # Rebuild from the bottom: nodes whose parent is the rebuilt base are reused as they are.
    base: State | None = None
    for node in reversed(nodes):
        origin = node.origin or node
        if not origin.active:
            continue
        base = node if node.parent is base else State(node.frame, base, epoch, origin)
    if base is not None:
        base.epoch = epoch
    STATE.set(base)
    return base


def current_state() -> State | None:
    """This context's state, with any exited overrides removed."""
    state = STATE.get()
    if state is not None and state.epoch != EPOCH[0]:
        state = refresh(state)
    return state
