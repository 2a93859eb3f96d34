"""Process-wide `os.environ` patches with exact, order-independent restore."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import SettingValidationError
from ._reprs import safe_repr
from ._scope import Scoped

__all__ = ["TemporaryEnviron", "apply_layer", "remove_layer", "temporary_environ"]

_LOCK = threading.Lock()
# For every key some patch holds: the value before the first patch, then the patches in the
# order they were applied, as flat (owner, value) pairs: [original, owner, value, owner, value].
# Removing a patch by its owner's identity restores the newest remaining layer or the
# original, so patches that end out of order leave no stale value.
_LAYERS: dict[str, list[Any]] = {}

# os.environ.get() of a missing key raises and catches KeyError inside the mapping API (about a
# microsecond); the process environment's own dict answers at once. Used while os.environ is
# the standard object, else the mapping API.
_ENVIRON: Any = os.environ
_ENV_DATA: dict[Any, Any] | None = getattr(_ENVIRON, "_data", None)
_encodekey: Callable[[str], Any] = getattr(_ENVIRON, "encodekey", lambda key: key)
_decodevalue: Callable[[Any], str] = getattr(_ENVIRON, "decodevalue", lambda value: value)


def _read(key: str) -> str | None:
    environ = os.environ
    if environ is _ENVIRON and _ENV_DATA is not None:
        stored = _ENV_DATA.get(_encodekey(key))
        return None if stored is None else _decodevalue(stored)
    return environ.get(key)


def _write(key: str, value: str | None) -> None:
    if value is not None:
        os.environ[key] = value
        return
    try:  # noqa: SIM105 - contextlib.suppress costs more than the write, on the hot path
        del os.environ[key]
    except KeyError:
        pass


def validate_environ_changes(
    changes: Mapping[str, object], *, secret_keys: frozenset[str] = frozenset()
) -> dict[str, str | None]:
    """Check keys and values before anything changes; collect every problem."""
    if not isinstance(changes, Mapping):
        raise TypeError(f"changes must be a mapping of names to str or None, got {changes!r}")
    problems: dict[str, str] = {}
    checked: dict[str, str | None] = {}
    for key, value in changes.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            problems[repr(key)] = "not a valid environment name (a non-empty str without '=')"
            continue
        if value is not None and not isinstance(value, str):
            problems[key] = (
                f"value must be a str or None (to remove it), got {type(value).__name__}"
            )
            continue
        if value is not None and "\0" in value:
            shown = "" if key in secret_keys else f" {value!r}"
            problems[key] = f"value{shown} contains a NUL character"
            continue
        checked[key] = value
    if problems:
        raise SettingValidationError(problems)
    return checked


def apply_layer(
    owner: object,
    changes: Mapping[str, str | None],
    before: dict[str, str | None] | None = None,
) -> None:
    """Write `changes` as `owner`'s layer of the environment (and what each key held before
    into `before`, if given).

    Functions rather than a patch object, with `_read` and `_write` written out:
    `temporary_settings(..., mirror_environ=True)` calls them on every enter and exit, with the
    override itself as the owner.
    """
    environ = os.environ
    data = _ENV_DATA if environ is _ENVIRON else None
    # acquire/release rather than `with`: a third of the cost on the hot path (CPython 3.11).
    _LOCK.acquire()
    try:
        for key, value in changes.items():
            if data is not None:
                stored = data.get(_encodekey(key))
                current = None if stored is None else _decodevalue(stored)
            else:
                current = environ.get(key)
            if before is not None:
                before[key] = current
            layers = _LAYERS.get(key)
            if layers is None:
                _LAYERS[key] = [current, owner, value]
            else:
                layers += (owner, value)
            if value is not None:
                environ[key] = value
            elif current is not None:
                del environ[key]
    except BaseException:
        _remove_locked(owner, changes)
        raise
    finally:
        _LOCK.release()


def remove_layer(owner: object, keys: Iterable[str]) -> None:
    """Undo `owner`'s layer, keeping any newer layer of the same keys in force."""
    _LOCK.acquire()
    try:
        for key in keys:
            layers = _LAYERS.get(key)
            if layers is not None and len(layers) == 3 and layers[1] is owner:
                # The usual case: the only layer of this key.
                del _LAYERS[key]
                _write(key, layers[0])
            elif layers is not None:
                _remove_locked(owner, (key,))
    finally:
        _LOCK.release()


def _remove_locked(owner: object, keys: Iterable[str]) -> None:
    for key in keys:
        layers = _LAYERS.get(key)
        if layers is None:
            continue
        kept = [layers[0]]
        for index in range(1, len(layers), 2):
            if layers[index] is not owner:
                kept += layers[index : index + 2]
        if len(kept) == len(layers):
            continue  # not a layer of this key (an apply that failed before it)
        if len(kept) == 1:
            del _LAYERS[key]
            _write(key, kept[0])
        else:
            _LAYERS[key] = kept
            _write(key, kept[-1])


class TemporaryEnviron(Scoped[dict[str, "str | None"]]):
    """Returned by `temporary_environ`; see there."""

    def __init__(self, changes: Mapping[str, str | None]) -> None:
        self._changes = validate_environ_changes(changes)

    def _fresh(self) -> TemporaryEnviron:
        return TemporaryEnviron(self._changes)

    def _enter(self) -> dict[str, str | None]:
        # Entered once at a time (Scoped checks), so the object itself owns the layer.
        before: dict[str, str | None] = {}
        apply_layer(self, self._changes, before)
        return before

    def _exit(self) -> None:
        remove_layer(self, self._changes)

    @safe_repr
    def __repr__(self) -> str:
        return f"temporary_environ(keys={sorted(self._changes)!r})"


def temporary_environ(changes: Mapping[str, str | None]) -> TemporaryEnviron:
    """Patch `os.environ` for the whole process, then restore it exactly.

    A value of None removes the key. On exit every key gets back exactly what it had: absent
    stays absent, an empty string stays empty. Patches that end out of order restore correctly.
    A sync and async context manager (yielding each key's previous value, None when absent) and
    a decorator for sync, async and generator functions (a fresh patch per call).

    Unlike the ContextVar overrides of `temporary_settings`, this change is process-wide: other
    threads and tasks see it too.

    Raises:
        SettingValidationError: a key or value is not a valid environment entry (nothing changes).
    """
    return TemporaryEnviron(changes)
