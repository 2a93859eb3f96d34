"""Registries, settings and the process-wide index of environment names."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from ._errors import (
    DuplicateSettingError,
    SettingValidationError,
    UnknownSettingError,
    close_matches,
)
from ._reprs import safe_repr
from ._state import EPOCH as _EPOCH
from ._state import STATE as _STATE
from ._state import refresh as _refresh
from ._types import Codec, codec_for

__all__ = ["Setting", "SettingsRegistry", "is_registered", "lookup", "open_registries"]
# Private names other modules of the package use: CALLBACKS, hidden, index_snapshot.

T = TypeVar("T")

_MISSING: Any = object()
_INDEX: dict[str, Setting[Any]] = {}
_REGISTRIES: dict[int, SettingsRegistry] = {}
_INDEX_LOCK = threading.RLock()
#: How many change callbacks all registries hold: an override skips the look at its registries
#: when this is 0 (the usual case).
CALLBACKS = [0]
# Reading os.environ through its mapping API costs about a microsecond for a missing key (it
# raises and catches KeyError). The process environment's own dict answers in tens of
# nanoseconds; use it while os.environ is the standard object, else fall back to the API.
_ENVIRON: Any = os.environ
_ENV_DATA: dict[Any, Any] | None = getattr(_ENVIRON, "_data", None)
_encodekey: Callable[[str], Any] = getattr(_ENVIRON, "encodekey", lambda key: key)
_decodevalue: Callable[[Any], str] = getattr(_ENVIRON, "decodevalue", lambda value: value)

ChangeCallback = Callable[[tuple["Setting[Any]", ...]], object]


def _check_env_name(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}")
    if "=" in name or "\0" in name:
        raise ValueError(f"{what} {name!r} cannot be an environment name: it contains '=' or NUL")
    return name


def hidden(setting: Setting[Any], value: object) -> str:
    """`repr(value)`, or a placeholder when the setting is secret."""
    return "<secret>" if setting.secret else repr(value)


class Setting(Generic[T]):
    """One typed setting, read from overrides, then the environment, then its default.

    Created by `SettingsRegistry.define`. Compared and hashed by identity.
    """

    __slots__ = (
        "__weakref__",
        "_cache",
        "_codec",
        "_env_key",
        "default",
        "description",
        "key",
        "name",
        "registry",
        "secret",
        "type",
    )

    name: str
    """The environment name: the registry's prefix plus the name given to `define`."""

    def __init__(
        self,
        registry: SettingsRegistry,
        key: str,
        type_: Any,
        codec: Codec,
        default: T,
        *,
        secret: bool,
        description: str,
        name: str | None = None,
    ) -> None:
        self.registry: SettingsRegistry = registry
        """The `SettingsRegistry` that defined this setting."""
        self.key: str = key
        """The name given to `define`, without the registry's prefix."""
        self.name = registry.prefix + key if name is None else name
        self.type: Any = type_
        """The type given to `define` (e.g. `int`, `list[str]`, `Optional[float]`)."""
        self._codec = codec
        self.default: T = default
        """The value when neither an override nor the environment sets one (already parsed)."""
        self.secret: bool = secret
        """Whether the value is kept out of every repr and error message (it is still exported)."""
        self.description: str = description
        """The free text given to `define`."""
        self._cache: tuple[object, Any] | None = None
        self._env_key = _encodekey(self.name)

    def value(self) -> T:
        """The current value: innermost override, else the environment, else the default.

        Raises:
            SettingValidationError: the environment holds a value that does not parse.
        """
        state = _STATE.get()
        default = self.default
        if state is not None:
            if state.epoch != _EPOCH[0]:
                state = _refresh(state)
            if state is not None:
                entry = state.entries.get(self)
                if entry is not None:
                    if entry[0]:  # an override's value, or the default it restored
                        return entry[1]  # type: ignore[no-any-return]
                    default = entry[2]
        environ = os.environ
        if environ is _ENVIRON and _ENV_DATA is not None:
            stored = _ENV_DATA.get(self._env_key)
            if stored is None:
                return default
        else:
            stored = environ.get(self.name)
            if stored is None:
                return default
        cache = self._cache
        if cache is not None and cache[0] == stored and type(cache[0]) is type(stored):
            return cache[1]  # type: ignore[no-any-return]
        raw = stored if type(stored) is str else _decodevalue(stored)
        parsed = self.parse(raw)
        self._cache = (stored, parsed)
        return parsed

    def parse(self, raw: str) -> T:
        """Parse an environment string as this setting does.

        Raises:
            SettingValidationError: naming the environment variable (never a secret's value).
        """
        try:
            return self._codec.parse(raw)  # type: ignore[no-any-return]
        except ValueError as exc:
            raise SettingValidationError(
                {self.name: f"the environment value {hidden(self, raw)} is invalid: {exc}"},
                nothing_changed=False,
            ) from None

    def check(self, value: object) -> T:
        """Validate a value for this setting (strings are parsed like environment values).

        Raises:
            ValueError: saying what was expected (without the value).
        """
        return self._codec.check(value)  # type: ignore[no-any-return]

    def dump(self, value: T) -> str:
        """The environment string that parses back to `value` (lists and dicts as JSON)."""
        return self._codec.dump(value)

    def _export(self, value: T) -> str | None:
        """What a child's environment needs for `value`: a string, or None to leave it unset."""
        return self._codec.export(value)

    @property
    def type_name(self) -> str:
        """A readable name of the type, e.g. `Optional[int]`."""
        return self._codec.type_name

    @safe_repr
    def __repr__(self) -> str:
        default = "<secret>" if self.secret else repr(self.default)
        extra = ", secret=True" if self.secret else ""
        return f"Setting({self.name!r}, {self._codec.type_name}, default={default}{extra})"


class SettingsRegistry:
    """A group of settings sharing an environment-name prefix.

    Every setting is also entered in one process-wide index of environment names, so
    `lookup(name)` finds it and a second definition of the same name is an error. `close()` (or
    leaving a `with SettingsRegistry(...)` block) removes the registry's names from the index,
    which lets tests create throw-away registries without leaking names.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix: str = _check_env_name(prefix, "prefix")
        """Put before every name given to `define` to make its environment name."""
        self._settings: dict[str, Setting[Any]] = {}
        self._callbacks: list[ChangeCallback] = []
        self._closed = False
        with _INDEX_LOCK:
            _REGISTRIES[id(self)] = self

    @overload
    def define(
        self,
        name: str,
        type: type[T],
        default: T | str = ...,
        *,
        secret: bool = False,
        description: str = "",
    ) -> Setting[T]: ...

    @overload
    def define(
        self,
        name: str,
        type: Any,
        default: Any = ...,
        *,
        secret: bool = False,
        description: str = "",
    ) -> Setting[Any]: ...

    def define(
        self,
        name: str,
        type: Any,
        default: Any = _MISSING,
        *,
        secret: bool = False,
        description: str = "",
    ) -> Setting[Any]:
        """Define a setting whose environment name is `prefix + name`.

        Args:
            name: the name after the prefix.
            type: str, int, float, bool, pathlib.Path, list[str], dict, or Optional of these.
            default: the value when neither an override nor the environment sets one; strings
                are parsed like environment values. Required, except for Optional types, which
                default to None.
            secret: keep the value out of every repr and error message (still exported).
            description: free text for documentation.

        Raises:
            DuplicateSettingError: another setting in the process has this environment name.
            TypeError: the type is not supported, or a required default is missing.
            SettingValidationError: the default does not fit the type.
        """
        _check_env_name(name, "setting name")
        if not name:
            raise ValueError("setting name must not be empty")
        codec = codec_for(type)
        env_name = self.prefix + name
        if default is _MISSING:
            if not codec.optional:
                raise TypeError(
                    f"define({name!r}, {codec.type_name}) needs a default= "
                    "(only Optional settings default to None)"
                )
            default = None
        else:
            try:
                default = codec.check(default)
            except ValueError as exc:
                shown = "<secret>" if secret else repr(default)
                raise SettingValidationError({env_name: f"default {shown}: {exc}"}) from None
        return self._add(
            env_name, name, type, codec, default, secret=secret, description=description
        )

    def _add(
        self,
        env_name: str,
        key: str,
        type_: Any,
        codec: Codec,
        default: Any,
        *,
        secret: bool,
        description: str,
        setting_class: type[Setting[Any]] | None = None,
    ) -> Setting[Any]:
        """Enter a setting with a ready codec and checked default (the adapters' way in).

        `env_name` need not start with the prefix (pydantic fields with an alias do not). Any
        `Codec` subclass works as the codec, and `setting_class` may be a `Setting` subclass
        without slots of its own: this is how the pydantic adapter makes every field of a model
        a `Setting` validated by pydantic.
        """
        _check_env_name(env_name, "environment name")
        with _INDEX_LOCK:
            if self._closed:
                raise RuntimeError(f"{self!r} is closed; create a new registry to define settings")
            holder = _INDEX.get(env_name)
            if holder is not None:
                raise DuplicateSettingError(
                    f"the environment name {env_name!r} is already defined by {holder!r} in "
                    f"{holder.registry!r}; use another prefix or name, or close() that registry"
                )
            setting: Setting[Any] = (setting_class or Setting)(
                self,
                key,
                type_,
                codec,
                default,
                secret=secret,
                description=description,
                name=env_name,
            )
            self._settings[env_name] = setting
            _INDEX[env_name] = setting
        return setting

    def get(self, name: str) -> Setting[Any]:
        """The setting with this environment name (or name after the prefix).

        Raises:
            UnknownSettingError: with the closest names of this registry.
        """
        setting = self._settings.get(name) or self._settings.get(self.prefix + name)
        if setting is None:
            hints = close_matches(
                name, [*self._settings, *(s.key for s in self._settings.values())]
            )
            full = [
                self._settings.get(hint) or self._settings[self.prefix + hint] for hint in hints
            ]
            suggestions = list(dict.fromkeys(setting.name for setting in full))
            raise UnknownSettingError([name], {name: suggestions})
        return setting

    @property
    def settings(self) -> tuple[Setting[Any], ...]:
        """Every setting of this registry, in definition order."""
        return tuple(self._settings.values())

    def __iter__(self) -> Iterator[Setting[Any]]:
        return iter(self.settings)

    def __len__(self) -> int:
        return len(self._settings)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Setting):
            return self._settings.get(item.name) is item
        return isinstance(item, str) and item in self._settings

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call `callback(settings)` whenever an override of this registry enters or leaves.

        `settings` is the tuple of this registry's settings the override touched; use it to
        clear caches of derived values. The callback runs in the context that entered or left
        the override. Returns a function that removes the callback.
        """
        with _INDEX_LOCK:
            self._callbacks.append(callback)
            CALLBACKS[0] += 1

        def remove() -> None:
            with _INDEX_LOCK:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)
                    CALLBACKS[0] -= 1

        return remove

    def _notify(self, settings: tuple[Setting[Any], ...]) -> None:
        for callback in list(self._callbacks):
            callback(settings)

    @property
    def closed(self) -> bool:
        """True once `close()` removed this registry's names from the index."""
        return self._closed

    def close(self) -> None:
        """Remove this registry's names from the process-wide index (idempotent).

        Existing `Setting` objects keep working; their names can be defined again.
        """
        with _INDEX_LOCK:
            self._closed = True
            for env_name, setting in self._settings.items():
                if _INDEX.get(env_name) is setting:
                    del _INDEX[env_name]
            _REGISTRIES.pop(id(self), None)

    def __enter__(self) -> SettingsRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @safe_repr
    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"SettingsRegistry(prefix={self.prefix!r}, {len(self._settings)} settings{state})"


def lookup(name: str) -> Setting[Any]:
    """Find a setting of any open registry by its environment name.

    Raises:
        UnknownSettingError: with close matches from every registered name.
    """
    setting = _INDEX.get(name)
    if setting is None:
        with _INDEX_LOCK:
            names = list(_INDEX)
        raise UnknownSettingError([name], {name: close_matches(name, names)})
    return setting


def is_registered(name: str) -> bool:
    """Whether an open registry defines this environment name (never raises)."""
    return name in _INDEX


def open_registries() -> tuple[SettingsRegistry, ...]:
    """Every registry of the process that is not closed, in creation order."""
    with _INDEX_LOCK:
        return tuple(_REGISTRIES.values())


def index_snapshot() -> dict[str, Setting[Any]]:
    """A copy of the name index (for resolving many keys under one lock)."""
    with _INDEX_LOCK:
        return dict(_INDEX)
