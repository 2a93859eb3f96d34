"""Overrides and export for a pydantic-settings `BaseSettings` subclass.

Install with `pip install settings-override[pydantic]`. Every value goes through pydantic's own
validation: overrides build a new model with `Model(**values)` (never `model_copy(update=...)`,
which skips validation), and exported values parse back to the same model in a child process
(lists, dicts and models as JSON, secrets in clear).

    from settings_override.pydantic import PydanticSettings

    settings = PydanticSettings(AppSettings)
    with settings.temporary_settings({"api_url": "http://127.0.0.1:8000"}) as snap:
        assert settings.current().api_url == "http://127.0.0.1:8000"
        env = snap.subprocess_env()
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Generic, Literal, TypeVar

from pydantic import SecretBytes, SecretStr, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python
from pydantic_settings import BaseSettings

from ._environ import EnvPatch
from ._errors import SettingValidationError, UnknownSettingError, close_matches
from ._scope import Scoped

__all__ = ["PydanticOverride", "PydanticSettings", "PydanticSnapshot"]

M = TypeVar("M", bound=BaseSettings)
PSource = Literal["override", "environment", "default", "restored"]


class _Frame:
    __slots__ = ("active", "defaults", "restored", "updates")

    def __init__(
        self, updates: dict[str, Any], defaults: dict[str, Any], restored: frozenset[str]
    ) -> None:
        self.updates = updates
        self.defaults = defaults
        self.restored = restored
        self.active = True


class _View:
    """What a stack of frames says, field by field."""

    def __init__(self, frames: Iterable[_Frame]) -> None:
        self.values: dict[str, Any] = {}
        self.restored: set[str] = set()
        self.defaults: dict[str, Any] = {}
        for frame in frames:
            self.defaults.update(frame.defaults)
            for name in frame.updates:
                self.restored.discard(name)
            self.values.update(frame.updates)
            for name in frame.restored:
                self.values.pop(name, None)
                self.restored.add(name)


class PydanticSnapshot(Mapping[str, Any], Generic[M]):
    """The model as this context sees it, with where each field's value came from."""

    def __init__(self, adapter: PydanticSettings[M], model: M, sources: dict[str, PSource]) -> None:
        self._adapter = adapter
        self.model: M = model
        """The validated model instance."""
        self._sources = sources
        self._changed_defaults: frozenset[str] = frozenset()

    def __getitem__(self, key: str) -> Any:
        """A field's value, by field name or environment name."""
        return getattr(self.model, self._adapter.field_name(key))

    def __iter__(self) -> Iterator[str]:
        return iter(type(self.model).model_fields)

    def __len__(self) -> int:
        return len(type(self.model).model_fields)

    def source(self, key: str) -> PSource:
        """Where the value of a field came from."""
        return self._sources[self._adapter.field_name(key)]

    def _export(self, name: str) -> str | None | bool:
        source = self._sources[name]
        if source == "restored" and name not in self._changed_defaults:
            return None
        if source in ("override", "environment") or name in self._changed_defaults:
            return self._adapter.dump(name, getattr(self.model, name))
        return False

    def to_environment_variables(self, exclude_unset: bool = True) -> dict[str, str]:
        """Environment variables a child parses back into this model.

        With `exclude_unset=True`: fields an override or the environment sets, plus fields whose
        default an override changed. Complex values are JSON, secrets are in clear. A None that
        the child cannot parse back is left out.
        """
        out: dict[str, str] = {}
        for name in type(self.model).model_fields:
            if exclude_unset:
                exported = self._export(name)
            else:
                exported = self._adapter.dump(name, getattr(self.model, name))
            if isinstance(exported, str):
                out[self._adapter.env_name(name)] = exported
        return out

    def environment_changes(self) -> dict[str, str | None]:
        """What a child needs over the parent's environment (None: remove the key)."""
        out: dict[str, str | None] = {}
        for name in type(self.model).model_fields:
            exported = self._export(name)
            if exported is None or isinstance(exported, str):
                out[self._adapter.env_name(name)] = exported
        return out

    def subprocess_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default `os.environ`) merged with `environment_changes()`."""
        env = dict(os.environ if base is None else base)
        for key, value in self.environment_changes().items():
            if value is None:
                # Environment names are case-insensitive for most models; drop every spelling.
                for existing in [k for k in env if self._adapter.same_env_name(k, key)]:
                    del env[existing]
            else:
                env[key] = value
        return env

    def __repr__(self) -> str:
        parts = []
        for name in type(self.model).model_fields:
            value = getattr(self.model, name)
            shown = "<secret>" if self._adapter.is_secret(name) else repr(value)
            parts.append(f"{name}={shown}")
        return f"PydanticSnapshot({type(self.model).__qualname__}({', '.join(parts)}))"


class PydanticOverride(Scoped[PydanticSnapshot[M]]):
    """Returned by `PydanticSettings.temporary_settings`; a sync/async context manager and
    decorator like `settings_override.temporary_settings`."""

    def __init__(self, adapter: PydanticSettings[M], frame: _Frame, mirror: bool) -> None:
        self._adapter = adapter
        self._template = frame
        self._mirror = mirror
        self._frame: _Frame | None = None
        self._patch: EnvPatch | None = None

    def _fresh(self) -> PydanticOverride[M]:
        return PydanticOverride(self._adapter, self._template, self._mirror)

    def _enter(self) -> PydanticSnapshot[M]:
        template = self._template
        frame = _Frame(template.updates, template.defaults, template.restored)
        adapter = self._adapter
        adapter._stack.set((*adapter._frames(), frame))
        self._frame = frame
        try:
            snapshot = adapter.snapshot()
            if self._mirror:
                touched = set(frame.updates) | set(frame.defaults) | frame.restored
                changes = {
                    key: value
                    for key, value in snapshot.environment_changes().items()
                    if adapter.field_name(key) in touched
                }
                self._patch = EnvPatch(changes)
                self._patch.apply()
            adapter._notify()
        except BaseException:
            self._exit()
            raise
        return snapshot

    def _exit(self) -> None:
        frame, patch = self._frame, self._patch
        self._frame = self._patch = None
        if frame is not None:
            frame.active = False
            adapter = self._adapter
            adapter._stack.set(adapter._frames())
        if patch is not None:
            patch.remove()
        if frame is not None:
            self._adapter._notify()


class PydanticSettings(Generic[M]):
    """Context-local overrides and environment export for one `BaseSettings` subclass.

    Keys are field names or environment names. Overrides live in a ContextVar (per adapter), so
    tasks and threads are isolated exactly as with `temporary_settings`.
    """

    def __init__(self, model: type[M], *, secret_fields: Iterable[str] = ()) -> None:
        """Wrap `model`; `secret_fields` names plain fields to hide like SecretStr ones."""
        if not (isinstance(model, type) and issubclass(model, BaseSettings)):
            raise TypeError(f"PydanticSettings needs a BaseSettings subclass, got {model!r}")
        self.model = model
        config = model.model_config
        self._case_sensitive = bool(config.get("case_sensitive", False))
        self._prefix = str(config.get("env_prefix", "") or "")
        self._none_str = config.get("env_parse_none_str")
        self._fields: dict[str, FieldInfo] = dict(model.model_fields)
        self._env_names = {
            name: self._compute_env_name(name, f) for name, f in self._fields.items()
        }
        self._secret = {
            name
            for name, field in self._fields.items()
            if name in set(secret_fields) or _mentions_secret(field.annotation)
        }
        self._adapters: dict[str, TypeAdapter[Any]] = {}
        self._callbacks: list[Callable[[], object]] = []
        self._stack: ContextVar[tuple[_Frame, ...]] = ContextVar(
            f"settings_override_pydantic_{model.__qualname__}", default=()
        )

    # -- names -------------------------------------------------------------------------------

    def _compute_env_name(self, name: str, field: FieldInfo) -> str:
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        env = alias or (self._prefix + name)
        return env if self._case_sensitive else env.upper()

    def is_secret(self, field: str) -> bool:
        """Whether a field's value is kept out of reprs (SecretStr/SecretBytes fields and
        `secret_fields`)."""
        return self.field_name(field) in self._secret

    def env_name(self, field: str) -> str:
        """The environment name a child reads `field` from."""
        return self._env_names[self.field_name(field)]

    def same_env_name(self, a: str, b: str) -> bool:
        """Whether two environment names mean the same variable to this model."""
        return a == b if self._case_sensitive else a.upper() == b.upper()

    def field_name(self, key: str) -> str:
        """The field for a field name or environment name.

        Raises:
            UnknownSettingError: with close matches.
        """
        if key in self._fields:
            return key
        for name, env in self._env_names.items():
            if self.same_env_name(env, key):
                return name
        candidates = [*self._fields, *self._env_names.values()]
        raise UnknownSettingError([key], {key: close_matches(key, candidates)})

    def _init_key(self, name: str) -> str:
        field = self._fields[name]
        if isinstance(field.validation_alias, str):
            return field.validation_alias
        return field.alias or name

    # -- values ------------------------------------------------------------------------------

    def _adapter(self, name: str) -> TypeAdapter[Any]:
        adapter = self._adapters.get(name)
        if adapter is None:
            annotation: Any = self._fields[name].annotation
            adapter = self._adapters[name] = TypeAdapter(annotation)
        return adapter

    def _prepare(self, name: str, value: Any) -> Any:
        """Strings are parsed as pydantic-settings parses environment values: JSON for
        complex fields."""
        if isinstance(value, str):
            try:
                self._adapter(name).validate_python(value)
            except ValidationError:
                try:
                    return json.loads(value)
                except ValueError:
                    return value
        return value

    def dump(self, name: str, value: Any) -> str | None:
        """The environment string for a field value (None: leave the variable unset)."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, SecretBytes):
            value = value.get_secret_value().decode()
        if value is None:
            if self._none_str is not None:
                return str(self._none_str)
            return None if self._fields[name].default is None else "null"
        plain = to_jsonable_python(value)
        if isinstance(plain, str):
            return plain
        if isinstance(plain, bool):
            return "true" if plain else "false"
        if isinstance(plain, (int, float)):
            return str(plain)
        return json.dumps(plain, ensure_ascii=False)

    def _frames(self) -> tuple[_Frame, ...]:
        return tuple(frame for frame in self._stack.get() if frame.active)

    def _default(self, name: str, view: _View) -> Any:
        if name in view.defaults:
            return view.defaults[name]
        field = self._fields[name]
        if field.default is PydanticUndefined and field.default_factory is None:
            raise SettingValidationError({self.env_name(name): "is required and has no default"})
        return field.get_default(call_default_factory=True, validated_data={})

    def _build(self, frames: tuple[_Frame, ...]) -> PydanticSnapshot[M]:
        view = _View(frames)
        kwargs: dict[str, Any] = {}
        sources: dict[str, PSource] = {}
        for name, value in view.values.items():
            kwargs[name] = value
            sources[name] = "override"
        for name in view.restored:
            kwargs[name] = self._default(name, view)
            sources[name] = "restored"
        model = self._construct(kwargs)
        unset_changed = [
            name
            for name in view.defaults
            if name not in kwargs and name not in model.model_fields_set
        ]
        if unset_changed:
            for name in unset_changed:
                kwargs[name] = view.defaults[name]
            model = self._construct(kwargs)
        env_set = model.model_fields_set - set(kwargs)
        for name in self._fields:
            if name not in sources:
                sources[name] = "environment" if name in env_set else "default"
        snapshot = PydanticSnapshot(self, model, sources)
        snapshot._changed_defaults = frozenset(view.defaults)
        return snapshot

    def _construct(self, kwargs: dict[str, Any]) -> M:
        try:
            return self.model(**{self._init_key(name): value for name, value in kwargs.items()})
        except ValidationError as exc:
            problems: dict[str, str] = {}
            for error in exc.errors(include_url=False, include_input=False):
                loc = error.get("loc") or ("model",)
                head = str(loc[0])
                key = self.env_name(head) if head in self._fields else head
                where = ".".join(map(str, loc[1:]))
                message = f"{where}: {error['msg']}" if where else error["msg"]
                problems[key] = f"{problems[key]}; {message}" if key in problems else message
            raise SettingValidationError(problems) from None

    # -- public operations -------------------------------------------------------------------

    def current(self) -> M:
        """A validated model instance: overrides, then the environment, then defaults."""
        return self._build(self._frames()).model

    def snapshot(self) -> PydanticSnapshot[M]:
        """The current model plus export helpers (`subprocess_env`, ...)."""
        return self._build(self._frames())

    get_current_settings = snapshot

    def temporary_settings(
        self,
        updates: Mapping[str, Any] | None = None,
        set_defaults: Mapping[str, Any] | None = None,
        restore_defaults: Iterable[str] | None = None,
        *,
        mirror_environ: bool = False,
    ) -> PydanticOverride[M]:
        """Override fields in this context, validated by pydantic before anything changes.

        Same arguments and behaviour as `settings_override.temporary_settings`; keys are field
        names or environment names.

        Raises:
            UnknownSettingError: a key is not a field (with suggestions).
            SettingValidationError: pydantic rejected values; every bad field is listed and
                secret values are never shown.
        """
        unknown: list[str] = []
        suggestions: dict[str, list[str]] = {}

        def resolve(keys: Iterable[str]) -> list[str | None]:
            out: list[str | None] = []
            for key in keys:
                try:
                    out.append(self.field_name(key))
                except UnknownSettingError as exc:
                    unknown.append(key)
                    suggestions.update(exc.suggestions)
                    out.append(None)
            return out

        if isinstance(restore_defaults, str):
            raise TypeError(f"restore_defaults takes a list of names, e.g. [{restore_defaults!r}]")
        upd = dict(updates or {})
        dfl = dict(set_defaults or {})
        rst = list(restore_defaults or ())
        upd_names, dfl_names, rst_names = resolve(upd), resolve(dfl), resolve(rst)
        if unknown:
            raise UnknownSettingError(unknown, suggestions)
        updates_ = {
            n: self._prepare(n, v)
            for n, v in zip(upd_names, upd.values(), strict=True)
            if n is not None
        }
        defaults_ = {
            n: self._prepare(n, v)
            for n, v in zip(dfl_names, dfl.values(), strict=True)
            if n is not None
        }
        restored = frozenset(n for n in rst_names if n is not None)
        clash = restored & set(updates_)
        if clash:
            raise SettingValidationError(
                {self.env_name(n): "both in updates and restore_defaults" for n in clash}
            )
        frame = _Frame(updates_, defaults_, restored)
        # Validate now, against the current state, so bad input changes nothing.
        checked = self._build((*self._frames(), frame))
        for name in defaults_:
            # A changed default must itself be valid even when the environment hides it.
            self._construct({name: defaults_[name]})
        frame.updates = {n: getattr(checked.model, n) for n in updates_}
        return PydanticOverride(self, frame, mirror_environ)

    def on_change(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call `callback()` whenever an override of this model enters or leaves."""
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    def _notify(self) -> None:
        for callback in list(self._callbacks):
            callback()

    def __repr__(self) -> str:
        return f"PydanticSettings({self.model.__qualname__})"


def _mentions_secret(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    args = getattr(annotation, "__args__", ())
    return any(_mentions_secret(arg) for arg in args)
