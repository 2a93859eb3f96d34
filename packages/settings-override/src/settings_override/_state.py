"""The context-local override stack.

The stack of active overrides lives in one ContextVar, so every asyncio task, trio task and thread
has its own (tasks start with a copy of their parent's, new threads with none). Overrides are
removed by identity, never with `ContextVar.reset`, so two overrides that exit out of order leave
no stale value. Each stack state precomputes, per setting, what the overrides say, so reading a
setting is a single dictionary look-up.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._registry import Setting

__all__ = ["EPOCH", "STATE", "Entry", "Frame", "State", "current_state", "pop", "push"]


class Frame:
    """One entered override: its validated values, changed defaults and restored settings."""

    __slots__ = ("active", "defaults", "restored", "updates")

    def __init__(
        self,
        updates: Mapping[Setting[Any], Any],
        defaults: Mapping[Setting[Any], Any],
        restored: frozenset[Setting[Any]],
    ) -> None:
        self.updates = updates
        self.defaults = defaults
        self.restored = restored
        self.active = True


class Entry:
    """What the active overrides say about one setting."""

    __slots__ = ("default", "default_changed", "has_value", "restored", "value")

    def __init__(self, setting: Setting[Any]) -> None:
        self.has_value = False
        self.value: Any = None
        self.restored = False
        self.default: Any = setting.default
        self.default_changed = False


class State:
    """An immutable stack of frames plus the per-setting view they produce."""

    __slots__ = ("entries", "epoch", "frames")

    entries: dict[Setting[Any], Entry]

    def __init__(self, frames: tuple[Frame, ...], epoch: int, parent: State | None = None) -> None:
        self.frames = frames
        self.epoch = epoch
        # Pushing one frame on a parent state only applies that frame to a copy of its view.
        entries: dict[Setting[Any], Entry] = {}
        if parent is not None:
            entries.update(parent.entries)
        for frame in frames if parent is None else frames[-1:]:
            touched = set(frame.updates) | set(frame.defaults) | frame.restored
            for setting in touched:
                old = entries.get(setting)
                entry = Entry(setting)
                if old is not None:
                    entry.has_value = old.has_value
                    entry.value = old.value
                    entry.restored = old.restored
                    entry.default = old.default
                    entry.default_changed = old.default_changed
                if setting in frame.defaults:
                    entry.default = frame.defaults[setting]
                    entry.default_changed = True
                if setting in frame.updates:
                    entry.has_value = True
                    entry.value = frame.updates[setting]
                    entry.restored = False
                elif setting in frame.restored:
                    entry.has_value = False
                    entry.value = None
                    entry.restored = True
                entries[setting] = entry
        self.entries = entries


STATE: ContextVar[State | None] = ContextVar("settings_override_state", default=None)
#: Bumped (under the lock) whenever an override exits, so a state seen from another context
#: checks once whether it still holds a frame that has exited there.
EPOCH = [0]
_LOCK = threading.Lock()


def _bump() -> int:
    with _LOCK:
        EPOCH[0] += 1
        return EPOCH[0]


def refresh(state: State) -> State | None:
    """Drop frames that exited in another context from this context's state."""
    epoch = EPOCH[0]
    if all(frame.active for frame in state.frames):
        state.epoch = epoch
        return state
    alive = tuple(frame for frame in state.frames if frame.active)
    new = State(alive, epoch) if alive else None
    STATE.set(new)
    return new


def current_state() -> State | None:
    """This context's state, with any exited frames removed."""
    state = STATE.get()
    if state is not None and state.epoch != EPOCH[0]:
        state = refresh(state)
    return state


def push(frame: Frame) -> None:
    """Make `frame` the innermost override of this context."""
    state = current_state()
    frames = (*state.frames, frame) if state is not None else (frame,)
    STATE.set(State(frames, EPOCH[0], state))


def pop(frame: Frame) -> None:
    """Remove `frame` (by identity, wherever it sits in the stack) from every context."""
    frame.active = False
    epoch = _bump()
    state = STATE.get()
    if state is not None:
        alive = tuple(f for f in state.frames if f.active)
        STATE.set(State(alive, epoch) if alive else None)
