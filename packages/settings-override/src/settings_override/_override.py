"""`temporary_settings`: validated, context-local overrides.

Everything that can be worked out once is worked out when the override is created: the keys are
resolved, the values checked, and the view of the override on an empty stack computed. Entering
then costs one small object, one ContextVar write and (with `mirror_environ`) the environment
writes; leaving costs the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, Union

from ._environ import _read, apply_layer, remove_layer
from ._errors import SettingValidationError, UnknownSettingError, close_matches
from ._registry import _INDEX, CALLBACKS, Setting, SettingsRegistry, hidden, index_snapshot
from ._reprs import safe_repr
from ._scope import Scoped
from ._snapshot import SettingsSnapshot
from ._state import EPOCH as _EPOCH
from ._state import RESTORED, VALUE, Entry, Frame, Op, State, root_entries
from ._state import STATE as _STATE
from ._state import next_epoch as _next_epoch
from ._state import refresh as _refresh

__all__ = ["TemporarySettings", "temporary_settings"]

SettingKey = Union["Setting[Any]", str]
"""A `Setting` or the environment name of one."""
SettingValues = Mapping[Any, Any]
"""Values keyed by `SettingKey`. Typed loosely because Mapping keys are invariant (a
`dict[str, str]` is not a `Mapping[Setting | str, Any]`); keys are checked at run time."""

S = TypeVar("S")
_INVALID = -1  # the kind of an update whose value failed its check (only while collecting)


class _Problems:
    """Unknown keys and bad values, collected so that one error lists them all."""

    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.invalid: dict[str, str] = {}

    def setting_for(self, key: object) -> Setting[Any] | None:
        """The setting a key names, or None (an unknown name is recorded)."""
        if isinstance(key, Setting):
            return key
        if isinstance(key, str):
            found = _INDEX.get(key)
            if found is None and key not in self.unknown:
                self.unknown.append(key)
            return found
        raise TypeError(
            f"setting keys must be Setting objects or environment names (str), got {key!r}"
        )

    def add(self, setting: Setting[Any], problem: str) -> None:
        self.invalid[setting.name] = problem

    def raise_if_any(self) -> None:
        if self.unknown:
            names = list(index_snapshot())
            raise UnknownSettingError(
                self.unknown, {name: close_matches(name, names) for name in self.unknown}
            )
        if self.invalid:
            raise SettingValidationError(self.invalid)


def _mapping(values: object, what: str) -> Mapping[Any, Any]:
    if not isinstance(values, Mapping):
        raise TypeError(f"{what} must be a mapping of settings to values, got {type(values)!r}")
    return values


def _quick(updates: dict[Any, Any]) -> tuple[tuple[Op, ...], dict[Setting[Any], Entry]] | None:
    """The usual call, `temporary_settings({key: value, ...})`, when every key and value is fine.

    Returns the ops and the view on an empty stack, or None to let `_collect` find and report
    whatever is wrong (and handle the unusual keys).
    """
    ops: list[Op] = []
    root: dict[Setting[Any], Entry] = {}
    for key, value in updates.items():
        setting = _INDEX.get(key) if type(key) is str else key
        if type(setting) is not Setting or setting in root:
            return None
        try:
            checked = setting._codec.check(value)
        except ValueError:
            return None
        ops.append((setting, VALUE, checked, False, None))
        root[setting] = (VALUE, checked, setting.default, False)
    return tuple(ops), root


def _collect(
    updates: Mapping[Any, Any] | None,
    set_defaults: Mapping[Any, Any] | None,
    restore_defaults: Iterable[Any] | None,
) -> tuple[Op, ...]:
    """Resolve and check every key and value; raise listing every problem, or return the ops."""
    # setting -> [kind, value, sets_default, default]; insertion order is the callbacks' order.
    ops: dict[Setting[Any], list[Any]] = {}
    problems = _Problems()
    if updates is not None:
        for key, value in _mapping(updates, "updates").items():
            setting = problems.setting_for(key)
            if setting is None:
                continue
            if setting in ops:
                problems.add(setting, "given twice (as a Setting and by name)")
                continue
            try:
                ops[setting] = [VALUE, setting._codec.check(value), False, None]
            except ValueError as exc:
                ops[setting] = [_INVALID, None, False, None]
                problems.add(setting, f"{hidden(setting, value)}: {exc}")
    if set_defaults is not None:
        seen: set[Setting[Any]] = set()
        for key, value in _mapping(set_defaults, "set_defaults").items():
            setting = problems.setting_for(key)
            if setting is None:
                continue
            if setting in seen:
                problems.add(setting, "given twice (as a Setting and by name)")
                continue
            seen.add(setting)
            try:
                checked = setting._codec.check(value)
            except ValueError as exc:
                problems.add(setting, f"{hidden(setting, value)}: {exc}")
                continue
            op = ops.get(setting)
            if op is None:
                ops[setting] = [0, None, True, checked]
            else:
                op[2], op[3] = True, checked
    if restore_defaults is not None:
        if isinstance(restore_defaults, (str, Setting, Mapping)):
            raise TypeError(
                "restore_defaults takes an iterable of settings or names, e.g. "
                f"restore_defaults=[{restore_defaults!r}]"
            )
        restored: set[Setting[Any]] = set()
        for key in restore_defaults:
            setting = problems.setting_for(key)
            if setting is None:
                continue
            if setting in restored:
                problems.add(setting, "given twice (as a Setting and by name)")
                continue
            restored.add(setting)
            op = ops.get(setting)
            if op is None:
                ops[setting] = [RESTORED, None, False, None]
            elif op[0] == VALUE or op[0] == _INVALID:
                problems.add(setting, "both in updates and restore_defaults; pick one")
            else:
                op[0] = RESTORED
    problems.raise_if_any()
    return tuple((setting, op[0], op[1], op[2], op[3]) for setting, op in ops.items())


class _Override(Frame, Scoped[S]):
    """The engine behind `temporary_settings` and the pydantic adapter's overrides.

    Subclasses say what entering yields (`_snapshot`). `__enter__` and `__exit__` are written
    out here, not split into `Scoped`'s `_enter`/`_exit`, because they are the hot path: one
    `State` node and one ContextVar write each way. `_entered` (the node, while entered) is also
    the "already entered" flag.
    """

    __slots__ = ("_entered", "_mirror", "_mirrored", "_ops", "_registries", "_root")

    _entered: State | None
    _mirrored: dict[str, str | None] | None

    def __init__(
        self,
        updates: SettingValues | None = None,
        set_defaults: SettingValues | None = None,
        restore_defaults: Iterable[SettingKey] | None = None,
        *,
        mirror_environ: bool = False,
    ) -> None:
        quick = None
        if set_defaults is None and restore_defaults is None and type(updates) is dict:
            quick = _quick(updates)
        if quick is None:
            ops = _collect(updates, set_defaults, restore_defaults)
            self._ops, self._root = ops, root_entries(ops)
        else:
            ops, self._root = quick
            self._ops = ops
        self._mirror = mirror_environ is True or bool(mirror_environ)
        self._registries: tuple[SettingsRegistry, ...] = (
            (ops[0][0].registry,)
            if len(ops) == 1
            else tuple(dict.fromkeys(op[0].registry for op in ops))
        )
        self._entered = None
        self._mirrored = None

    def _snapshot(self, state: State) -> S:
        raise NotImplementedError

    def _fresh(self) -> _Override[S]:
        clone = object.__new__(type(self))
        for cls in type(self).__mro__:
            for name in cls.__dict__.get("__slots__", ()):
                if hasattr(self, name):
                    setattr(clone, name, getattr(self, name))
        clone._entered = None
        clone._mirrored = None
        return clone

    def __enter__(self) -> S:
        if self._entered is not None:
            raise RuntimeError(
                f"{type(self).__name__} is already entered; create a new one for each nested "
                "or concurrent use (as a decorator it makes a fresh one per call)"
            )
        # _state.push, inlined: the new node takes the epoch at which the chain below it was
        # checked, so an exit racing with this enter is still noticed by the next read.
        outer = _STATE.get()
        if outer is None:
            state = State(self, None, _EPOCH[0])
        else:
            if outer.epoch != _EPOCH[0]:
                outer = _refresh(outer)
            state = State(self, outer, outer.epoch if outer is not None else _EPOCH[0])
        _STATE.set(state)
        self._entered = state
        try:
            if self._mirror:
                self._apply_mirror(state)
            if CALLBACKS[0]:
                self._notify()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self._snapshot(state)

    def __exit__(self, *exc_info: object) -> None:
        entered = self._entered
        if entered is None:
            return
        self._entered = None
        # _state.pop, inlined.
        entered.active = False
        _EPOCH[0] = _next_epoch()
        state = _STATE.get()
        if state is entered:
            _STATE.set(entered.parent)
        elif state is not None:
            _refresh(state)
        mirrored = self._mirrored
        if mirrored is not None:
            self._mirrored = None
            remove_layer(self, mirrored)
        if CALLBACKS[0]:
            self._notify()

    async def __aenter__(self) -> S:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()

    def _apply_mirror(self, state: State) -> None:
        """Write what this override changes into os.environ, as a child would need it."""
        changes: dict[str, str | None] = {}
        entries = state.entries
        for op in self._ops:
            setting = op[0]
            if op[1] == VALUE:  # what it writes does not depend on outer overrides
                changes[setting.name] = setting._codec.export(op[2])
                continue
            kind, value, _default, changed = entries[setting]
            if kind == VALUE or (kind == RESTORED and changed):
                changes[setting.name] = setting._codec.export(value)
            elif kind == RESTORED:
                changes[setting.name] = None
            elif changed and _read(setting.name) is None:
                # Only a changed default: it counts where the environment is silent, so it is
                # written only there (the environment still wins where it is set).
                changes[setting.name] = setting._codec.export(_default)
        self._mirrored = changes  # before applying: a failed apply is undone by __exit__
        apply_layer(self, changes)

    def _notify(self) -> None:
        for registry in self._registries:
            if registry._callbacks:
                registry._notify(tuple(op[0] for op in self._ops if op[0].registry is registry))

    def _describe(self, field_names: bool = False) -> list[str]:
        """`NAME=value` for updates, then changed defaults, then restored settings."""
        ops = self._ops

        def name(setting: Setting[Any]) -> str:
            return setting.key if field_names else setting.name

        parts = [f"{name(op[0])}={hidden(op[0], op[2])}" for op in ops if op[1] == VALUE]
        parts += [f"{name(op[0])} (default)={hidden(op[0], op[4])}" for op in ops if op[3]]
        parts += [f"{name(op[0])} (restored)" for op in ops if op[1] == RESTORED]
        return parts


class TemporarySettings(_Override[SettingsSnapshot]):
    """Returned by `temporary_settings`; see there."""

    __slots__ = ()

    def _snapshot(self, state: State) -> SettingsSnapshot:
        return SettingsSnapshot._lazy(self._registries, state)

    @safe_repr
    def __repr__(self) -> str:
        mirror = ", mirror_environ=True" if self._mirror else ""
        return f"temporary_settings({', '.join(self._describe())}{mirror})"


def temporary_settings(
    updates: SettingValues | None = None,
    set_defaults: SettingValues | None = None,
    restore_defaults: Iterable[SettingKey] | None = None,
    *,
    mirror_environ: bool = False,
) -> TemporarySettings:
    """Override settings in this context only, validated before anything changes.

    Keys are `Setting` objects or environment names (found through the process-wide index, so
    one override may span registries). String values are parsed exactly like environment values;
    other values are type-checked.

    Args:
        updates: values to use, beating the environment and any outer override.
        set_defaults: new fallbacks, used when neither an override nor the environment sets
            the setting.
        restore_defaults: settings that read their default even when the environment (or an
            outer override) sets them.
        mirror_environ: also write the overridden values into `os.environ` (process-wide, for
            code that reads the environment directly) and restore it exactly on exit. A changed
            default is written only where the environment does not set the variable.

    Returns:
        A sync and async context manager yielding a `SettingsSnapshot` of every registry the
        override touches, and a decorator for sync, async, generator and async generator
        functions (pytest fixtures included) that applies a fresh override on every call.

    Raises:
        UnknownSettingError: a key names no setting (with close-match suggestions).
        SettingValidationError: values that do not fit, all listed at once.
    """
    return TemporarySettings(updates, set_defaults, restore_defaults, mirror_environ=mirror_environ)
