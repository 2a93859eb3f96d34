"""Process-wide `os.environ` patches with exact, order-independent restore."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from ._errors import SettingValidationError
from ._scope import Scoped

__all__ = ["EnvPatch", "TemporaryEnviron", "temporary_environ"]

_LOCK = threading.RLock()
# For every key some patch holds: the value before the first patch, and the patches in the
# order they were applied. Removing a patch by identity restores the newest remaining layer or
# the original, so patches that end out of order leave no stale value.
_LAYERS: dict[str, tuple[str | None, list[tuple[EnvPatch, str | None]]]] = {}


def _write(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


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


class EnvPatch:
    """A set of environment changes that can be applied once and removed by identity."""

    __slots__ = ("_applied", "changes")

    def __init__(self, changes: Mapping[str, str | None]) -> None:
        self.changes = dict(changes)
        self._applied = False

    def apply(self) -> dict[str, str | None]:
        """Write the changes; return what each key held before."""
        before: dict[str, str | None] = {}
        with _LOCK:
            try:
                for key, value in self.changes.items():
                    current = os.environ.get(key)
                    before[key] = current
                    record = _LAYERS.get(key)
                    if record is None:
                        record = (current, [])
                        _LAYERS[key] = record
                    record[1].append((self, value))
                    _write(key, value)
            except BaseException:
                self._applied = True
                self.remove()
                raise
            self._applied = True
        return before

    def remove(self) -> None:
        """Undo this patch, keeping any newer patch of the same keys in force."""
        with _LOCK:
            if not self._applied:
                return
            self._applied = False
            for key in self.changes:
                record = _LAYERS.get(key)
                if record is None:
                    continue
                original, layers = record
                layers[:] = [layer for layer in layers if layer[0] is not self]
                if layers:
                    _write(key, layers[-1][1])
                else:
                    del _LAYERS[key]
                    _write(key, original)


class TemporaryEnviron(Scoped[dict[str, "str | None"]]):
    """Returned by `temporary_environ`; see there."""

    def __init__(self, changes: Mapping[str, str | None]) -> None:
        self._changes = validate_environ_changes(changes)
        self._patch: EnvPatch | None = None

    def _fresh(self) -> TemporaryEnviron:
        return TemporaryEnviron(self._changes)

    def _enter(self) -> dict[str, str | None]:
        self._patch = EnvPatch(self._changes)
        return self._patch.apply()

    def _exit(self) -> None:
        if self._patch is not None:
            self._patch.remove()
            self._patch = None

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
