"""`temporary_settings`: validated, context-local overrides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Union

from ._environ import EnvPatch
from ._errors import SettingValidationError, UnknownSettingError, close_matches
from ._registry import Setting, SettingsRegistry, hidden, index_snapshot
from ._scope import Scoped
from ._snapshot import SettingsSnapshot, _resolve
from ._state import Frame, current_state, pop, push

__all__ = ["TemporarySettings", "temporary_settings"]

SettingKey = Union["Setting[Any]", str]
"""A `Setting` or the environment name of one."""
SettingValues = Mapping[Any, Any]
"""Values keyed by `SettingKey`. Typed loosely because Mapping keys are invariant (a
`dict[str, str]` is not a `Mapping[Setting | str, Any]`); keys are checked at run time."""


class _Resolver:
    """Turns keys into settings, collecting every unknown or repeated key."""

    def __init__(self) -> None:
        self.index: dict[str, Setting[Any]] | None = None
        self.unknown: list[str] = []
        self.problems: dict[str, str] = {}

    def resolve(self, key: object, seen: set[Setting[Any]]) -> Setting[Any] | None:
        if isinstance(key, Setting):
            setting: Setting[Any] = key
        elif isinstance(key, str):
            if self.index is None:
                self.index = index_snapshot()
            found = self.index.get(key)
            if found is None:
                if key not in self.unknown:
                    self.unknown.append(key)
                return None
            setting = found
        else:
            raise TypeError(
                f"setting keys must be Setting objects or environment names (str), got {key!r}"
            )
        if setting in seen:
            self.problems[setting.name] = "given twice (as a Setting and by name)"
            return None
        seen.add(setting)
        return setting

    def raise_unknown(self) -> None:
        if self.unknown:
            names = list(self.index or index_snapshot())
            raise UnknownSettingError(
                self.unknown, {name: close_matches(name, names) for name in self.unknown}
            )


def _check_values(
    resolver: _Resolver, values: Mapping[Any, Any] | None, what: str
) -> dict[Setting[Any], Any]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise TypeError(f"{what} must be a mapping of settings to values, got {type(values)!r}")
    checked: dict[Setting[Any], Any] = {}
    seen: set[Setting[Any]] = set()
    for key, value in values.items():
        setting = resolver.resolve(key, seen)
        if setting is None:
            continue
        try:
            checked[setting] = setting.check(value)
        except ValueError as exc:
            resolver.problems[setting.name] = f"{hidden(setting, value)}: {exc}"
    return checked


class TemporarySettings(Scoped[SettingsSnapshot]):
    """Returned by `temporary_settings`; see there."""

    _frame: Frame | None
    _patch: EnvPatch | None

    def __init__(
        self,
        updates: Mapping[Any, Any] | None = None,
        set_defaults: Mapping[Any, Any] | None = None,
        restore_defaults: Iterable[Any] | None = None,
        *,
        mirror_environ: bool = False,
    ) -> None:
        resolver = _Resolver()
        self._updates = _check_values(resolver, updates, "updates")
        self._defaults = _check_values(resolver, set_defaults, "set_defaults")
        restored: set[Setting[Any]] = set()
        if restore_defaults is not None:
            if isinstance(restore_defaults, (str, Setting, Mapping)):
                raise TypeError(
                    "restore_defaults takes an iterable of settings or names, e.g. "
                    f"restore_defaults=[{restore_defaults!r}]"
                )
            for key in restore_defaults:
                setting = resolver.resolve(key, restored)
                if setting is not None and setting in self._updates:
                    resolver.problems[setting.name] = (
                        "both in updates and restore_defaults; pick one"
                    )
        resolver.raise_unknown()
        if resolver.problems:
            raise SettingValidationError(resolver.problems)
        self._restored = frozenset(restored)
        self._mirror = bool(mirror_environ)
        touched: dict[Setting[Any], None] = dict.fromkeys(self._updates)
        touched.update(dict.fromkeys(self._defaults))
        touched.update(dict.fromkeys(self._restored))
        self._touched = tuple(touched)
        registries: dict[SettingsRegistry, None] = {}
        for setting in self._touched:
            registries.setdefault(setting.registry, None)
        self._registries = tuple(registries)
        self._frame = None
        self._patch = None

    def _fresh(self) -> TemporarySettings:
        clone = object.__new__(TemporarySettings)
        clone.__dict__.update(self.__dict__)
        clone._active = False
        clone._frame = None
        clone._patch = None
        return clone

    def _enter(self) -> SettingsSnapshot:
        frame = Frame(self._updates, self._defaults, self._restored)
        push(frame)
        self._frame = frame
        try:
            if self._mirror:
                state = current_state()
                changes: dict[str, str | None] = {}
                for setting in self._touched:
                    resolved = _resolve(setting, state, None)
                    if resolved.source == "override" or resolved.default_changed:
                        changes[setting.name] = setting.dump(resolved.value)
                    elif resolved.source == "restored":
                        changes[setting.name] = None
                self._patch = EnvPatch(changes)
                self._patch.apply()
            self._notify()
        except BaseException:
            self._exit()
            raise
        return SettingsSnapshot(registries=self._registries, state=current_state(), capture=False)

    def _exit(self) -> None:
        frame, patch = self._frame, self._patch
        self._frame = self._patch = None
        if frame is not None:
            pop(frame)
        if patch is not None:
            patch.remove()
        if frame is not None:
            self._notify()

    def _notify(self) -> None:
        for registry in self._registries:
            if registry._callbacks:
                registry._notify(tuple(s for s in self._touched if s.registry is registry))

    def __repr__(self) -> str:
        parts = [f"{s.name}={hidden(s, v)}" for s, v in self._updates.items()]
        parts += [f"{s.name} (default)={hidden(s, v)}" for s, v in self._defaults.items()]
        parts += [f"{s.name} (restored)" for s in self._restored]
        mirror = ", mirror_environ=True" if self._mirror else ""
        return f"temporary_settings({', '.join(parts)}{mirror})"


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
            code that reads the environment directly) and restore it exactly on exit.

    Returns:
        A sync and async context manager yielding a `SettingsSnapshot` of every registry the
        override touches, and a decorator for sync, async, generator and async generator
        functions (pytest fixtures included) that applies a fresh override on every call.

    Raises:
        UnknownSettingError: a key names no setting (with close-match suggestions).
        SettingValidationError: values that do not fit, all listed at once.
    """
    return TemporarySettings(updates, set_defaults, restore_defaults, mirror_environ=mirror_environ)
