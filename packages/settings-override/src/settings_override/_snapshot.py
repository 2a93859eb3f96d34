"""Current values of a set of settings, and their export to a child's environment."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from ._errors import UnknownSettingError, close_matches
from ._registry import Setting, SettingsRegistry, hidden, open_registries
from ._reprs import safe_repr
from ._state import RESTORED, VALUE, State, current_state

__all__ = ["SettingsSnapshot", "Source", "get_current_settings"]

Source = Literal["override", "environment", "default", "restored"]
"""Where a value came from: an override's update, the environment, the (possibly overridden)
default, or the default because an override restored it (ignoring the environment)."""


_NOTHING = object()


class _Resolved:
    __slots__ = ("default_changed", "raw", "source", "value")

    def __init__(self, value: Any, source: Source, default_changed: bool, raw: str | None) -> None:
        self.value = value
        self.source = source
        self.default_changed = default_changed
        self.raw = raw


def _resolve(setting: Setting[Any], state: State | None, raw: str | None) -> _Resolved:
    entry = state.entries.get(setting) if state is not None else None
    default = setting.default
    changed = False
    if entry is not None:
        kind, value, default, changed = entry
        if kind == VALUE:
            return _Resolved(value, "override", changed, None)
        if kind == RESTORED:
            return _Resolved(value, "restored", changed, None)
    if raw is None:
        return _Resolved(default, "default", changed, None)
    return _Resolved(setting.parse(raw), "environment", changed, raw)


class SettingsSnapshot(Mapping[str, Any]):
    """The values of a fixed set of settings at one moment, keyed by environment name.

    `snapshot[setting]` and `snapshot["APP_NAME"]` both work. Overrides are captured when the
    snapshot is made; the environment is read then too (`get_current_settings`) or, for the
    snapshot yielded by `temporary_settings`, when first used, so entering an override stays
    cheap. A secret's value never appears in the repr.
    """

    __slots__ = ("_raw", "_resolved", "_settings", "_sources", "_state")

    _raw: dict[str, str | None]
    _resolved: dict[str, _Resolved]

    def __init__(
        self,
        settings: Iterable[Setting[Any]] | None = None,
        *,
        registries: Iterable[SettingsRegistry] = (),
        state: State | None = None,
        capture: bool = True,
    ) -> None:
        self._state = state
        self._sources: tuple[Setting[Any] | SettingsRegistry, ...] = (
            *(settings if settings is not None else ()),
            *registries,
        )
        self._settings: dict[str, Setting[Any]] | None = None
        if capture:
            self._load()

    @classmethod
    def _lazy(
        cls, registries: tuple[SettingsRegistry, ...], state: State | None
    ) -> SettingsSnapshot:
        """The snapshot an override yields: nothing is read until it is used (enter stays cheap)."""
        self = object.__new__(cls)
        self._state = state
        self._sources = registries
        self._settings = None
        return self

    def _load(self) -> dict[str, Setting[Any]]:
        settings = self._settings
        if settings is None:
            settings = {}
            for source in self._sources:
                if isinstance(source, SettingsRegistry):
                    settings.update((s.name, s) for s in source.settings)
                else:
                    settings[source.name] = source
            environ = os.environ
            self._raw = {name: environ.get(name) for name in settings}
            self._resolved = {}
            self._settings = settings
        return settings

    def _get(self, key: str | Setting[Any]) -> _Resolved:
        settings = self._load()
        name = key.name if isinstance(key, Setting) else key
        setting = settings.get(name) if isinstance(name, str) else None
        if setting is None or (isinstance(key, Setting) and setting is not key):
            shown = name if isinstance(name, str) else repr(name)
            raise UnknownSettingError(
                [shown], {shown: close_matches(shown, settings) if isinstance(name, str) else []}
            )
        resolved = self._resolved.get(name)
        if resolved is None:
            resolved = _resolve(setting, self._state, self._raw[name])
            self._resolved[name] = resolved
        return resolved

    def __getitem__(self, key: str | Setting[Any]) -> Any:
        """The value of a setting (a `Setting` or its environment name).

        Raises:
            UnknownSettingError: the snapshot does not cover that setting.
        """
        return self._get(key).value

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    @property
    def settings(self) -> tuple[Setting[Any], ...]:
        """The settings this snapshot covers."""
        return tuple(self._load().values())

    def source(self, key: str | Setting[Any]) -> Source:
        """Where the value of `key` came from."""
        return self._get(key).source

    def is_set(self, key: str | Setting[Any]) -> bool:
        """True when an override or the environment gives `key` a value."""
        return self._get(key).source in ("override", "environment")

    def _export(self, name: str) -> str | None | object:
        """The string a child needs for `name`, None to remove it, or `_NOTHING`."""
        resolved = self._get(name)
        setting = self._load()[name]
        if resolved.source == "environment":
            assert resolved.raw is not None
            return resolved.raw
        if resolved.source == "override" or resolved.default_changed:
            return setting._export(resolved.value)
        if resolved.source == "restored":
            return None
        return _NOTHING

    def to_environment_variables(self, exclude_unset: bool = True) -> dict[str, str]:
        """The settings as environment variables a child process parses back to these values.

        With `exclude_unset=True` only settings an override or the environment sets are
        included, plus settings whose default an override changed (a child could not know the
        new default otherwise). Lists and dicts are JSON; secrets are included in clear.
        """
        out: dict[str, str] = {}
        for name, setting in self._load().items():
            if exclude_unset:
                exported = self._export(name)
                if isinstance(exported, str):
                    out[name] = exported
            else:
                resolved = self._get(name)
                if resolved.source == "environment" and resolved.raw is not None:
                    out[name] = resolved.raw
                else:
                    exported = setting._export(resolved.value)
                    if exported is not None:
                        out[name] = exported
        return out

    def environment_changes(self) -> dict[str, str | None]:
        """What a child needs merged over the parent's environment.

        The exported value of every set setting (see `to_environment_variables`), and None for
        every key an override restored to its default, which the child must not inherit.
        """
        out: dict[str, str | None] = {}
        for name in self._load():
            exported = self._export(name)
            if exported is None or isinstance(exported, str):
                out[name] = exported
        return out

    def subprocess_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """A complete environment for a child: `base` (default `os.environ`) merged with
        `environment_changes()`, so the child sees exactly these values."""
        env = dict(os.environ if base is None else base)
        for name, value in self.environment_changes().items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    @safe_repr
    def __repr__(self) -> str:
        settings = self._load()
        parts = []
        for name, setting in settings.items():
            try:
                shown = hidden(setting, self._get(name).value)
            except ValueError:
                shown = "<invalid>"
            parts.append(f"{name!r}: {shown}")
        return f"SettingsSnapshot({{{', '.join(parts)}}})"


def get_current_settings(
    registry: SettingsRegistry | Iterable[SettingsRegistry] | None = None,
) -> SettingsSnapshot:
    """A snapshot of the current values, as this context sees them.

    Args:
        registry: one registry, several, or None for every open registry of the process.
    """
    if registry is None:
        registries: tuple[SettingsRegistry, ...] = open_registries()
    elif isinstance(registry, SettingsRegistry):
        registries = (registry,)
    else:
        registries = tuple(registry)
    return SettingsSnapshot(registries=registries, state=current_state())
