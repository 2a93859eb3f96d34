"""Overrides and export for a pydantic-settings `BaseSettings` subclass, on the core engine.

Install with `pip install settings-override[pydantic]`. Every field of the model becomes a
`Setting` of one registry (the model's env prefix), so a pydantic override is an ordinary
`temporary_settings` override: the same context-local stack, the same rules for nesting and
out-of-order exits, the same `mirror_environ` and callbacks, and `get_current_settings()` (hence
a child process, and pytest-bundle) sees the model's overrides too. Each field's codec is
pydantic's own: env strings are prepared as pydantic-settings prepares them (JSON for complex
fields), values are validated by pydantic, and values are exported as strings that parse back to
the same model (lists, dicts and models as JSON, secrets in clear).

    from settings_override.pydantic import PydanticSettings

    settings = PydanticSettings(AppSettings)
    with settings.temporary_settings({"api_url": "http://127.0.0.1:8000"}) as snap:
        assert settings.current().api_url == "http://127.0.0.1:8000"
        env = snap.subprocess_env()
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import PydanticUserError, SecretBytes, SecretStr, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python
from pydantic_settings import BaseSettings, EnvSettingsSource

from ._errors import SettingValidationError, UnknownSettingError, close_matches
from ._override import _Override
from ._registry import Setting, SettingsRegistry
from ._reprs import safe_repr
from ._state import EPOCH, RESTORED, VALUE, State, current_state
from ._types import Codec

__all__ = ["PydanticOverride", "PydanticSettings", "PydanticSnapshot"]

M = TypeVar("M", bound=BaseSettings)
PSource = Literal["override", "environment", "default", "restored"]


class _Required:
    """The default of a field that has none (pydantic-settings requires it to be set)."""

    def __repr__(self) -> str:
        return "<required>"


_REQUIRED: Any = _Required()


def _describe(exc: ValidationError, *, skip_field: bool) -> str:
    """pydantic's messages without the input (it could be a secret)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error.get("loc", ())[1 if skip_field else 0 :]
        where = ".".join(map(str, loc))
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def _mentions_secret(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_mentions_secret(arg) for arg in getattr(annotation, "__args__", ()))


def _static_default(field: FieldInfo) -> Any:
    if field.default_factory is None:
        return _REQUIRED if field.default is PydanticUndefined else field.default
    try:
        return field.get_default(call_default_factory=True, validated_data={})
    except TypeError:  # pydantic before 2.10 has no validated_data
        return field.get_default(call_default_factory=True)


class _FieldCodec(Codec):
    """One field's codec: pydantic-settings' env parsing, pydantic's validation and dump.

    Values are validated by the model's own validator for this one field (type, constraints,
    field validators and the model's config), applied to a scratch instance. When that cannot be
    done alone — the model has model validators, or the field is frozen — the field's
    `TypeAdapter` checks the type and constraints, and the adapter validates the whole model.
    """

    __slots__ = ("_adapter", "_alone", "_field", "_model", "_name", "_none_is_default")

    def __init__(self, model: _Model, name: str, field: FieldInfo, *, alone: bool) -> None:
        super().__init__(_type_name(field.annotation), optional=field.default is None)
        self._model = model
        self._name = name
        self._field = field
        self._alone = alone
        self._none_is_default = field.default is None
        self._adapter: TypeAdapter[Any] | None = None

    def type_adapter(self) -> TypeAdapter[Any]:
        """The field's TypeAdapter (its annotation and constraints), made on first use."""
        adapter = self._adapter
        if adapter is None:
            field = self._field
            annotation: Any = field.annotation
            if field.metadata:
                params = (annotation, *field.metadata)
                annotation = Annotated[params]
            try:
                adapter = TypeAdapter(annotation, config=self._model.config)
            except PydanticUserError:  # a model or dataclass type brings its own config
                adapter = TypeAdapter(annotation)
            self._adapter = adapter
        return adapter

    def parse(self, raw: str) -> Any:
        model = self._model
        if model.none_str is not None and raw == model.none_str:
            return self._validate(None)
        try:
            prepared = model.source.prepare_field_value(self._name, self._field, raw, False)
        except ValueError as exc:
            raise ValueError(f"expected JSON for {self.type_name} ({exc})") from None
        return self._validate(prepared)

    def check(self, value: object) -> Any:
        if isinstance(value, str):
            return self.parse(value)
        return self._validate(value)

    def _validate(self, value: object) -> Any:
        try:
            if self._alone:
                scratch = copy.copy(self._model.scratch())
                self._model.validator.validate_assignment(scratch, self._name, value)
                return scratch.__dict__[self._name]
            return self.type_adapter().validate_python(value)
        except ValidationError as exc:
            raise ValueError(_describe(exc, skip_field=self._alone)) from None

    def export(self, value: Any) -> str | None:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, SecretBytes):
            return value.get_secret_value().decode()
        if value is None:
            if self._model.none_str is not None:
                return str(self._model.none_str)
            # pydantic-settings has no string for None unless env_parse_none_str is set: an
            # absent variable gives the default back, JSON null the rest.
            return None if self._none_is_default else "null"
        try:
            plain = self.type_adapter().dump_python(value, mode="json", warnings=False)
        except ValueError:  # PydanticSerializationError: a value the annotation cannot dump
            plain = to_jsonable_python(value)
        if isinstance(plain, str):
            return plain
        if isinstance(plain, bool):
            return "true" if plain else "false"
        if isinstance(plain, (int, float)):
            return str(plain)
        return json.dumps(plain, ensure_ascii=False)

    def dump(self, value: Any) -> str:
        exported = self.export(value)
        return "" if exported is None else exported


class _RequiredSetting(Setting[Any]):
    """A field without a default: reading it while nothing sets it is an error."""

    __slots__ = ()

    def value(self) -> Any:
        value = super().value()
        if value is _REQUIRED:
            raise SettingValidationError(
                {self.name: "is required: set it in the environment or override it"},
                nothing_changed=False,
            )
        return value


class _Model:
    """What every adapter of one model class shares: its registry and field settings."""

    def __init__(self, model: type[BaseSettings]) -> None:
        self.model = model
        config = model.model_config
        self.config: Any = config
        self.case_sensitive = bool(config.get("case_sensitive", False))
        prefix = str(config.get("env_prefix", "") or "")
        self.none_str: str | None = config.get("env_parse_none_str")
        self.fields: dict[str, FieldInfo] = dict(model.model_fields)
        self.validator = model.__pydantic_validator__
        decorators = model.__pydantic_decorators__
        # Model validators judge the whole model: one field cannot be validated alone then.
        self.whole_model = bool(decorators.model_validators)
        self._scratch: BaseSettings | None = None
        # pydantic-settings' own preparation of env strings (JSON for complex fields), applied
        # to the one string given, never mixed with other variables.
        self.source = EnvSettingsSource(model)
        self.source.env_vars = {}
        self.registry = SettingsRegistry(self._case(prefix))
        self.by_field: dict[str, Setting[Any]] = {}
        self.by_env: dict[str, str] = {}  # normalised env name -> field
        self.init_keys: dict[str, str] = {}
        try:
            for name, field in self.fields.items():
                self._define(name, field)
        except BaseException:
            self.registry.close()
            raise

    def _case(self, name: str) -> str:
        return name if self.case_sensitive else name.upper()

    def _define(self, name: str, field: FieldInfo) -> None:
        alias = field.validation_alias
        env_alias: str | None = None
        if isinstance(alias, str):
            env_alias = alias
        elif alias is not None and hasattr(alias, "choices"):  # AliasChoices: the first name
            env_alias = next((c for c in alias.choices if isinstance(c, str)), None)
        env_name = self._case(env_alias or (self.registry.prefix + name))
        self.init_keys[name] = env_alias or field.alias or name
        alone = not (self.whole_model or field.frozen)
        codec = _FieldCodec(self, name, field, alone=alone)
        default = _static_default(field)
        setting = self.registry._add(
            env_name,
            name,
            field.annotation,
            codec,
            default,
            secret=_mentions_secret(field.annotation),
            description=field.description or "",
            setting_class=_RequiredSetting if default is _REQUIRED else None,
        )
        self.by_field[name] = setting
        self.by_env[self._case(env_name)] = name

    def scratch(self) -> BaseSettings:
        """An unvalidated instance with the defaults, to validate one field against."""
        scratch = self._scratch
        if scratch is None:
            scratch = self._scratch = self.model.model_construct()
        return scratch


# One `_Model` per model class: its settings are in the process-wide index until close().
_MODELS: dict[type[BaseSettings], _Model] = {}
_MODELS_LOCK = threading.Lock()


class PydanticSnapshot(Mapping[str, Any], Generic[M]):
    """The model as this context sees it, with where each field's value came from.

    Keys are field names (environment names work too). The one `temporary_settings` yields
    builds the model when first used, so entering an override never builds one.
    """

    def __init__(
        self, adapter: PydanticSettings[M], state: State | None, *, capture: bool = True
    ) -> None:
        self._adapter = adapter
        self._state = state
        self._built: tuple[M, dict[str, PSource], frozenset[str]] | None = None
        if capture:
            self._build()

    def _build(self) -> tuple[M, dict[str, PSource], frozenset[str]]:
        if self._built is None:
            self._built = self._adapter._build(self._state)
        return self._built

    @property
    def model(self) -> M:
        """The validated model instance."""
        return self._build()[0]

    def __getitem__(self, key: str) -> Any:
        """A field's value, by field name or environment name."""
        return getattr(self.model, self._adapter.field_name(key))

    def __iter__(self) -> Iterator[str]:
        return iter(self._adapter._fields.fields)

    def __len__(self) -> int:
        return len(self._adapter._fields.fields)

    def source(self, key: str) -> PSource:
        """Where the value of a field came from."""
        return self._build()[1][self._adapter.field_name(key)]

    def _export(self, name: str) -> str | None | bool:
        model, sources, changed = self._build()
        source = sources[name]
        if source == "restored" and name not in changed:
            return None
        if source in ("override", "environment") or name in changed:
            return self._adapter.dump(name, getattr(model, name))
        return False

    def to_environment_variables(self, exclude_unset: bool = True) -> dict[str, str]:
        """Environment variables a child parses back into this model.

        With `exclude_unset=True`: fields an override or the environment sets, plus fields whose
        default an override changed. Complex values are JSON, secrets are in clear. A None that
        the child gets back from an absent variable is left out.
        """
        out: dict[str, str] = {}
        model = self.model
        for name in self._adapter._fields.fields:
            if exclude_unset:
                exported = self._export(name)
            else:
                exported = self._adapter.dump(name, getattr(model, name))
            if isinstance(exported, str):
                out[self._adapter.env_name(name)] = exported
        return out

    def environment_changes(self) -> dict[str, str | None]:
        """What a child needs over the parent's environment (None: remove the key)."""
        out: dict[str, str | None] = {}
        for name in self._adapter._fields.fields:
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

    @safe_repr
    def __repr__(self) -> str:
        model = self.model
        parts = []
        for name in self._adapter._fields.fields:
            value = getattr(model, name)
            shown = "<secret>" if self._adapter.is_secret(name) else repr(value)
            parts.append(f"{name}={shown}")
        return f"PydanticSnapshot({type(model).__qualname__}({', '.join(parts)}))"


class PydanticOverride(_Override[PydanticSnapshot[M]]):
    """Returned by `PydanticSettings.temporary_settings`: a `temporary_settings` override whose
    keys are the model's fields, yielding a `PydanticSnapshot`; a sync/async context manager and
    decorator like `settings_override.temporary_settings`."""

    __slots__ = ("_adapter",)

    def __init__(
        self,
        adapter: PydanticSettings[M],
        updates: Mapping[Setting[Any], Any],
        set_defaults: Mapping[Setting[Any], Any],
        restore_defaults: Iterable[Setting[Any]],
        *,
        mirror_environ: bool,
    ) -> None:
        self._adapter = adapter
        problems: dict[str, str] = {}
        for setting in restore_defaults:
            if setting.default is _REQUIRED:
                problems[setting.name] = "is required and has no default to restore"
        try:
            super().__init__(
                updates or None,
                set_defaults or None,
                restore_defaults or None,
                mirror_environ=mirror_environ,
            )
        except SettingValidationError as exc:
            raise SettingValidationError({**exc.problems, **problems}) from None
        if problems:
            raise SettingValidationError(problems)
        if adapter._fields.whole_model or any(
            not op[0]._codec._alone  # type: ignore[attr-defined]
            for op in self._ops
        ):
            # Model validators (or frozen fields) judge the whole model: build it once, with
            # this override over the current ones, so bad input still changes nothing.
            outer = current_state()
            adapter._build(State(self, outer, outer.epoch if outer is not None else EPOCH[0]))

    def _snapshot(self, state: State) -> PydanticSnapshot[M]:
        return PydanticSnapshot(self._adapter, state, capture=False)

    @safe_repr
    def __repr__(self) -> str:
        mirror = ", mirror_environ=True" if self._mirror else ""
        model = self._adapter.model.__qualname__
        return f"{model}.temporary_settings({', '.join(self._describe(True))}{mirror})"


class PydanticSettings(Generic[M]):
    """Context-local overrides and environment export for one `BaseSettings` subclass.

    Keys are field names or environment names. The fields are settings of the core registry
    (`.registry`, `.setting(field)`), so tasks and threads are isolated exactly as with
    `temporary_settings`, and `get_current_settings()` includes them. Wrapping the same model
    again shares its settings; a field whose environment name another registry defines raises
    `DuplicateSettingError`.
    """

    def __init__(self, model: type[M], *, secret_fields: Iterable[str] = ()) -> None:
        """Wrap `model`; `secret_fields` names plain fields to hide like SecretStr ones."""
        if not (isinstance(model, type) and issubclass(model, BaseSettings)):
            raise TypeError(f"PydanticSettings needs a BaseSettings subclass, got {model!r}")
        self.model: type[M] = model
        """The `BaseSettings` subclass this adapter wraps."""
        with _MODELS_LOCK:
            fields = _MODELS.get(model)
            if fields is None or fields.registry.closed:
                fields = _MODELS[model] = _Model(model)
        self._fields = fields
        for name in secret_fields:
            fields.by_field[self.field_name(name)].secret = True

    # -- names -------------------------------------------------------------------------------

    @property
    def registry(self) -> SettingsRegistry:
        """The core registry holding one `Setting` per field."""
        return self._fields.registry

    def setting(self, field: str) -> Setting[Any]:
        """The core `Setting` of a field (by field name or environment name)."""
        return self._fields.by_field[self.field_name(field)]

    def is_secret(self, field: str) -> bool:
        """Whether a field's value is kept out of reprs (SecretStr/SecretBytes fields and
        `secret_fields`)."""
        return self.setting(field).secret

    def env_name(self, field: str) -> str:
        """The environment name a child reads `field` from."""
        return self.setting(field).name

    def same_env_name(self, a: str, b: str) -> bool:
        """Whether two environment names mean the same variable to this model."""
        return a == b if self._fields.case_sensitive else a.upper() == b.upper()

    def field_name(self, key: str) -> str:
        """The field for a field name or environment name.

        Raises:
            UnknownSettingError: with close matches.
        """
        fields = self._fields
        if key in fields.fields:
            return key
        if isinstance(key, str):
            found = fields.by_env.get(fields._case(key))
            if found is not None:
                return found
        candidates = [*fields.fields, *(s.name for s in fields.by_field.values())]
        shown = key if isinstance(key, str) else repr(key)
        raise UnknownSettingError([shown], {shown: close_matches(shown, candidates)})

    # -- values ------------------------------------------------------------------------------

    def dump(self, name: str, value: Any) -> str | None:
        """The environment string for a field value (None: leave the variable unset)."""
        return self.setting(name)._export(value)

    def _default(self, name: str) -> Any:
        field = self._fields.fields[name]
        if field.default_factory is None:
            return field.default
        return _static_default(field)  # a fresh value from the factory

    def _build(self, state: State | None) -> tuple[M, dict[str, PSource], frozenset[str]]:
        """The model with the overrides of `state` (pydantic reads the rest), and sources."""
        fields = self._fields
        entries = state.entries if state is not None else {}
        kwargs: dict[str, Any] = {}
        sources: dict[str, PSource] = {}
        changed: dict[str, Any] = {}
        for name, setting in fields.by_field.items():
            entry = entries.get(setting)
            if entry is None:
                continue
            kind, value, default, default_changed = entry
            if default_changed:
                changed[name] = default
            if kind == VALUE:
                kwargs[name] = value
                sources[name] = "override"
            elif kind == RESTORED:
                kwargs[name] = value if default_changed else self._default(name)
                sources[name] = "restored"
        model = self._construct(kwargs)
        unset = [n for n in changed if n not in kwargs and n not in model.model_fields_set]
        if unset:
            # A changed default counts only where no source (environment, dotenv, secrets)
            # sets the field: build again with it for the fields pydantic left unset.
            model = self._construct({**kwargs, **{n: changed[n] for n in unset}})
        env_set = model.model_fields_set
        for name in fields.fields:
            if name not in sources:
                set_by_source = name in env_set and name not in unset
                sources[name] = "environment" if set_by_source else "default"
        return model, sources, frozenset(changed)

    def _construct(self, kwargs: dict[str, Any]) -> M:
        fields = self._fields
        try:
            return self.model(**{fields.init_keys[name]: value for name, value in kwargs.items()})
        except ValidationError as exc:
            by_init_key = {key: name for name, key in fields.init_keys.items()}
            problems: dict[str, str] = {}
            for error in exc.errors(include_url=False, include_input=False):
                loc = error.get("loc") or ("model",)
                head = str(loc[0])
                field = by_init_key.get(head, head)
                key = self.env_name(field) if field in fields.fields else head
                where = ".".join(map(str, loc[1:]))
                message = f"{where}: {error['msg']}" if where else error["msg"]
                problems[key] = f"{problems[key]}; {message}" if key in problems else message
            raise SettingValidationError(problems) from None

    # -- public operations -------------------------------------------------------------------

    def current(self) -> M:
        """A validated model instance: overrides, then the environment, then defaults."""
        return self._build(current_state())[0]

    def snapshot(self) -> PydanticSnapshot[M]:
        """The current model plus export helpers (`subprocess_env`, ...)."""
        return PydanticSnapshot(self, current_state())

    def get_current_settings(self) -> PydanticSnapshot[M]:
        """The same as `snapshot()`, under the core package's name."""
        return self.snapshot()

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
        if isinstance(restore_defaults, str):
            raise TypeError(f"restore_defaults takes a list of names, e.g. [{restore_defaults!r}]")
        unknown: list[str] = []
        suggestions: dict[str, list[str]] = {}

        def resolve(key: object) -> Setting[Any] | None:
            if isinstance(key, Setting) and key.registry is self._fields.registry:
                return key
            try:
                return self.setting(key)  # type: ignore[arg-type]
            except UnknownSettingError as exc:
                unknown.extend(exc.names)
                suggestions.update(exc.suggestions)
                return None

        def resolve_all(values: Mapping[Any, Any] | None) -> dict[Setting[Any], Any]:
            out: dict[Setting[Any], Any] = {}
            for key, value in (values or {}).items():
                setting = resolve(key)
                if setting is not None:
                    if setting in out:
                        raise SettingValidationError(
                            {setting.name: "given twice (as a field and by environment name)"}
                        )
                    out[setting] = value
            return out

        upd = resolve_all(updates)
        dfl = resolve_all(set_defaults)
        rst = [s for s in map(resolve, restore_defaults or ()) if s is not None]
        if unknown:
            raise UnknownSettingError(unknown, suggestions)
        return PydanticOverride(self, upd, dfl, rst, mirror_environ=mirror_environ)

    def on_change(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call `callback()` whenever an override of this model enters or leaves.

        Returns a function that removes the callback.
        """
        return self._fields.registry.on_change(lambda _settings: callback())

    def close(self) -> None:
        """Drop the model's environment names from the process-wide index (tests).

        Every adapter of the model stops working for new overrides; wrapping the model again
        makes a fresh registry.
        """
        with _MODELS_LOCK:
            self._fields.registry.close()
            if _MODELS.get(self.model) is self._fields:
                del _MODELS[self.model]

    @safe_repr
    def __repr__(self) -> str:
        return f"PydanticSettings({self.model.__qualname__})"
