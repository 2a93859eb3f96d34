"""Resolving dotted targets and `patch_sleep`, the mock-mode context manager."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import sys
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from . import _modes
from ._clocks import shifted_clock
from ._recorder import SleepRecorder

__all__ = [
    "DEFAULT_CLOCKS",
    "DEFAULT_TARGETS",
    "UnknownTargetError",
    "patch_sleep",
    "resolve_target",
]

DEFAULT_TARGETS: Final[tuple[str, ...]] = ("anyio.sleep",)
"""What `patch_sleep` fakes unless told otherwise."""

DEFAULT_CLOCKS: Final[tuple[str, ...]] = ("pendulum.now",)
"""What `patch_sleep` shifts unless told otherwise (skipped when pendulum is not installed)."""

_MISSING: Final = object()


class UnknownTargetError(LookupError):
    """A dotted path given to `patch_sleep` (or `resolve_target`) names nothing it can find.

    Where the lookup stopped, for a caller that wants to suggest a close name:

    Attributes:
        path: the dotted path.
        found: its longest prefix that was found (`"anyio"` for `"anyio.slep"`), `""` when
            no module prefix imports or the path is not a dotted path at all.
        owner: the object `found` names (the one that lacks `missing`), None when `found` is
            empty (and in an unpickled copy: a module does not pickle).
        missing: the part of the path that is not there (`"slep"`; the first part when no
            module prefix imports), `""` for a path that is not a dotted path at all.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        found: str = "",
        owner: object = None,
        missing: str = "",
    ) -> None:
        super().__init__(message)
        self.path = path
        self.found = found
        self.owner = owner
        self.missing = missing

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"path": self.path, "found": self.found, "owner": None, "missing": self.missing}
        return (type(self), self.args, state)


@dataclass(frozen=True)
class _Slot:
    """One attribute to patch: where it lives, what was there, and how to put it back."""

    path: str
    owner: Any
    name: str
    original: Any  # what reading the attribute gives (a staticmethod's function, ...)
    owned: bool  # the attribute was in owner.__dict__ (else inherited: delete on restore)
    raw: Any  # what owner.__dict__ held (the staticmethod object itself), put back on exit


def _import_prefix(path: str, parts: list[str], verb: str, name_failure: bool) -> tuple[Any, int]:
    """Import the longest importable module prefix of `parts`; return it and its length.

    A module that exists but raises while importing: its own error propagates, or, with
    `name_failure`, an ImportError naming that module, caused by it.
    """
    for length in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:length])
        try:
            return importlib.import_module(module_name), length
        except Exception as exc:
            # Only "this prefix is not a module" moves on to a shorter prefix; a module that
            # exists but fails to import its own dependencies is a real error to show.
            if isinstance(exc, ModuleNotFoundError) and (
                exc.name is not None
                and (module_name == exc.name or module_name.startswith(exc.name + "."))
            ):
                continue
            if not name_failure:
                raise
            raise ImportError(
                f"cannot {verb} {path!r}: importing {module_name!r} failed:"
                f" {type(exc).__name__}: {exc}",
                name=module_name,
            ) from exc
    raise UnknownTargetError(
        f"cannot {verb} {path!r}: no module named {parts[0]!r}. Give a full dotted path"
        " such as 'anyio.sleep' or 'mypkg.worker.sleep'.",
        path=path,
        missing=parts[0],
    )


def _find(path: object, kind: str, verb: str, name_failure: bool) -> tuple[Any, str, Any]:
    """The object holding the attribute a dotted path names, its name and its value."""
    if not isinstance(path, str):
        raise TypeError(f"{kind} must be dotted path strings, got {type(path).__name__} {path!r}")
    parts = path.split(".")
    if len(parts) < 2 or not all(part.isidentifier() for part in parts):
        raise UnknownTargetError(
            f"cannot {verb} {path!r}: expected a dotted path 'module.attribute' such as"
            " 'anyio.sleep' or 'mypkg.worker.sleep'",
            path=path,
        )
    owner, length = _import_prefix(path, parts, verb, name_failure)
    for index in range(length, len(parts)):
        name = parts[index]
        value = getattr(owner, name, _MISSING)
        if value is _MISSING:
            where = ".".join(parts[:index])
            raise UnknownTargetError(
                f"cannot {verb} {path!r}: {where!r} ({type(owner).__name__}) has no"
                f" attribute {name!r}",
                path=path,
                found=where,
                owner=owner,
                missing=name,
            )
        if index == len(parts) - 1:
            return owner, name, value
        owner = value
    raise AssertionError("unreachable")  # pragma: no cover


def resolve(path: object, kind: str) -> _Slot:
    """Find the object that holds the attribute a dotted path names, without changing it."""
    owner, name, value = _find(path, kind, "patch", name_failure=False)
    assert isinstance(path, str)
    namespace = getattr(owner, "__dict__", {})
    owned = name in namespace
    return _Slot(path, owner, name, value, owned, namespace[name] if owned else None)


def resolve_target(path: str) -> object:
    """What a dotted path names, found the way `patch_sleep` finds its targets and clocks
    (the longest importable module prefix, then attributes), without patching anything.

    For tools that check a configured path before using it (the pytest plugin checks its
    ini options this way), so that they accept exactly what `patch_sleep` accepts.

    Raises:
        TypeError: `path` is not a string.
        UnknownTargetError: the path is not a dotted path, or names no importable module or
            no attribute; its attributes say where the lookup stopped.
        ImportError: a module of the path exists but raised while importing: the error's
            `name` is that module, and what the module raised is its `__cause__`.
    """
    return _find(path, "targets", "resolve", name_failure=True)[2]


def _set(slot: _Slot, value: object) -> None:
    """Patch one attribute, naming the path if the owner refuses (an immutable type)."""
    try:
        setattr(slot.owner, slot.name, value)
    except (AttributeError, TypeError) as exc:
        raise TypeError(
            f"cannot patch {slot.path!r}: {exc}. Patch the name where your code looks it up"
            " instead (for example 'mypkg.clock.now' for a module-level wrapper)."
        ) from exc


def _as_paths(value: Iterable[str] | str, kind: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise TypeError(
            f"{kind} must be a sequence of dotted paths, got {type(value).__name__} {value!r}"
        ) from None


def _pendulum_installed() -> bool:
    try:
        importlib.import_module("pendulum")
    except ImportError:
        return False
    return True


def _import_binders(slots: list[_Slot]) -> None:
    """Import anyio's asyncio backend before `asyncio.sleep` is patched.

    It does `from asyncio import sleep` when first imported: imported inside the block, it
    would keep the fake for good and every later `anyio.sleep` would call it. (anyio's trio
    backend looks `trio.sleep` up on each call; other late binders are handled on exit.)
    """
    if any(slot.original is asyncio.sleep for slot in slots):
        with contextlib.suppress(ImportError):  # another anyio layout: the exit repair covers it
            importlib.import_module("anyio._backends._asyncio")


def _modules_mark() -> tuple[int, str | None]:
    """Where `sys.modules` ends now: modules imported later come after it (dicts keep order)."""
    return len(sys.modules), next(reversed(sys.modules), None)


def _imported_since(mark: tuple[int, str | None]) -> list[Any]:
    """The modules imported after `mark` was taken (all of them if the mark's module is gone)."""
    count, last = mark
    if len(sys.modules) == count and next(reversed(sys.modules), None) == last:
        return []  # the usual case: nothing imported inside the block
    new = []
    for name in reversed(list(sys.modules)):  # a copy: another thread may be importing
        if name == last:
            break
        new.append(sys.modules.get(name))
    return new


def _unbind(
    modules: list[Any],
    recorder: SleepRecorder,
    slots: list[_Slot],
    clocks: dict[int, tuple[Any, Any]],
) -> None:
    """Give modules imported inside the block the real functions back where they bound fakes.

    A global holding a shifted clock gets that clock's original. A global holding the recorder
    gets the original of the one target it can have come from: the only target, or the only
    one with the global's name; where that is ambiguous it keeps the recorder, which then
    refuses awaits with a clear error.
    """
    for module in modules:
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name, value in list(namespace.items()):
            wrapped = clocks.get(id(value))
            if wrapped is not None and wrapped[0] is value:
                namespace[name] = wrapped[1]
                continue
            if value is not recorder:
                continue
            originals = {id(s.original): s.original for s in slots}
            if len(originals) > 1:
                originals = {id(s.original): s.original for s in slots if s.name == name}
            if len(originals) == 1:
                namespace[name] = next(iter(originals.values()))


class _SleepPatch:
    """The context manager `patch_sleep` returns; entering it patches, leaving it restores."""

    def __init__(self, targets: list[str], clocks: list[str], default_clocks: bool) -> None:
        self._targets = targets
        self._clocks = clocks
        self._default_clocks = default_clocks
        self._applied: list[_Slot] | None = None
        self._recorder: SleepRecorder | None = None
        self._target_slots: list[_Slot] = []
        # id(wrapper) -> (wrapper, the clock it wraps): held, so no id is reused meanwhile
        self._clock_wrappers: dict[int, tuple[Any, Any]] = {}
        self._modules: tuple[int, str | None] = (0, None)

    def __enter__(self) -> SleepRecorder:
        if self._applied is not None:
            raise RuntimeError("this patch_sleep() is already active; create a new one")
        mixed = _modes.refuse("patch_sleep")
        if mixed is not None:
            raise RuntimeError(mixed)
        clocks = self._clocks
        if self._default_clocks and not _pendulum_installed():
            clocks = []
        # Resolve and check everything before the first setattr: a bad path changes nothing.
        target_slots = [resolve(path, "targets") for path in self._targets]
        clock_slots = [resolve(path, "clocks") for path in clocks]
        seen: dict[tuple[int, str], str] = {}
        for slot, kind in [(s, "targets") for s in target_slots] + [
            (s, "clocks") for s in clock_slots
        ]:
            key = (id(slot.owner), slot.name)
            if key in seen:
                raise ValueError(
                    f"{slot.path!r} in {kind} names the same attribute as {seen[key]!r};"
                    " list each target or clock once"
                )
            seen[key] = slot.path
        for slot in target_slots:
            if not (
                isinstance(slot.original, SleepRecorder)
                or inspect.iscoroutinefunction(slot.original)
            ):
                raise TypeError(
                    f"cannot fake {slot.path!r}: it is {slot.original!r}, not an async"
                    " function; targets are async sleeps such as 'anyio.sleep'"
                    " (put clocks such as 'time.time' in clocks=)"
                )
        for slot in clock_slots:
            if not callable(slot.original):
                raise TypeError(f"cannot shift {slot.path!r}: {slot.original!r} is not callable")

        _import_binders(target_slots)
        recorder = SleepRecorder()
        applied: list[_Slot] = []
        self._applied = applied
        self._recorder, self._target_slots = recorder, target_slots
        self._modules = _modules_mark()
        try:
            for slot in target_slots:
                _set(slot, recorder)
                applied.append(slot)
            for slot in clock_slots:
                wrapper = shifted_clock(slot.original, lambda: recorder._shift, slot.path)
                self._clock_wrappers[id(wrapper)] = (wrapper, slot.original)
                _set(slot, wrapper)
                applied.append(slot)
        except BaseException:
            self._restore()
            raise
        _modes.enter("patch_sleep")
        return recorder

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._applied is not None:
            _modes.leave("patch_sleep")
        self._restore()

    def _restore(self) -> None:
        applied, self._applied = self._applied or [], None
        for slot in reversed(applied):
            if slot.owned:
                setattr(slot.owner, slot.name, slot.raw)
            else:
                delattr(slot.owner, slot.name)
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            modules = _imported_since(self._modules)
            _unbind(modules, recorder, self._target_slots, self._clock_wrappers)
            self._clock_wrappers = {}
            recorder._end([slot.path for slot in self._target_slots])


def patch_sleep(
    targets: Iterable[str] | str = DEFAULT_TARGETS,
    clocks: Iterable[str] | str = DEFAULT_CLOCKS,
) -> AbstractContextManager[SleepRecorder]:
    """Fake every sleep in `targets` and shift every clock in `clocks`, inside a `with` block.

    A target is a dotted path: `"anyio.sleep"`, or `"mypkg.worker.sleep"` for a module that
    did `from anyio import sleep` before the patch. The longest importable module prefix is
    imported and the rest looked up as attributes. Each target is replaced by one
    `SleepRecorder` (yielded); each clock by a wrapper that adds the recorder's shift to what
    the real clock returns (a timedelta for datetimes, seconds for floats), passing every
    argument through. Everything is resolved before anything is patched, and restored
    exactly on exit, even on error.

    With the default `clocks`, `pendulum.now` is skipped when pendulum is not installed.

    Raises:
        UnknownTargetError: a path names no importable module or no attribute (on entry).
        TypeError: a target is not an async function, or a clock is not callable.
        ValueError: the same attribute is listed twice.
        RuntimeError: a `virtual_time()` block is active (the two modes do not mix).

    Example:
        ```python
        with patch_sleep() as sleep:
            await worker.run_once()
        sleep.assert_awaited_once_with(5)
        ```
    """
    return _SleepPatch(
        _as_paths(targets, "targets"), _as_paths(clocks, "clocks"), clocks is DEFAULT_CLOCKS
    )
