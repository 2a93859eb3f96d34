"""The optional pydantic-settings adapter."""

from __future__ import annotations

import contextvars
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

pytest.importorskip("pydantic_settings")

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from settings_override import (
    DuplicateSettingError,
    Setting,
    SettingValidationError,
    UnknownSettingError,
    get_current_settings,
    is_registered,
    lookup,
    open_registries,
    temporary_environ,
    temporary_settings,
)
from settings_override.pydantic import PydanticOverride, PydanticSettings


class Database(BaseModel):
    url: str = "sqlite://"
    pool: int = 5


def make_model(prefix: str) -> type[BaseSettings]:
    class AppSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix=prefix)

        api_url: str = "http://localhost"
        port: int = 80
        tags: list[str] = []
        database: Database = Database()
        token: SecretStr = SecretStr("default-token")

        @field_validator("port")
        @classmethod
        def _positive(cls, value: int) -> int:
            if value <= 0:
                raise ValueError("port must be positive")
            return value

    return AppSettings


CHILD = """
import json, sys
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

class Database(BaseModel):
    url: str = "sqlite://"
    pool: int = 5

class AppSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=sys.argv[1])
    api_url: str = "http://localhost"
    port: int = 80
    tags: list[str] = []
    database: Database = Database()
    token: SecretStr = SecretStr("default-token")

model = AppSettings()
data = model.model_dump(mode="json")
data["token"] = model.token.get_secret_value()
print(json.dumps(data))
"""


@pytest.fixture
def prefix() -> str:
    return f"SOTPY{uuid.uuid4().hex[:8].upper()}_"


@pytest.fixture
def settings(prefix: str) -> Iterator[PydanticSettings[Any]]:
    adapter = PydanticSettings(make_model(prefix))
    yield adapter
    adapter.close()  # the fields are settings of the process-wide index


def test_override_validates_with_pydantic_and_restores(
    settings: PydanticSettings[Any], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(prefix + "PORT", "81")
    assert settings.current().port == 81
    with settings.temporary_settings(
        {"port": "90", prefix + "TAGS": '["a", "b"]', "database": {"url": "postgres://x"}}
    ) as snapshot:
        current = settings.current()
        assert current.port == 90
        assert current.tags == ["a", "b"]
        assert current.database == Database(url="postgres://x")
        assert snapshot["port"] == 90
        assert snapshot.source("port") == "override"
        assert snapshot.source("api_url") == "default"
    assert settings.current().port == 81


def test_pydantic_validators_run_and_every_problem_is_listed(
    settings: PydanticSettings[Any], prefix: str
) -> None:
    with pytest.raises(SettingValidationError) as info:
        settings.temporary_settings({"port": -1, "tags": 5, "token": 12345})
    assert set(info.value.problems) == {prefix + "PORT", prefix + "TAGS", prefix + "TOKEN"}
    assert "port must be positive" in str(info.value)
    assert "12345" not in str(info.value)
    assert settings.current().port == 80


def test_unknown_field_suggests(settings: PydanticSettings[Any]) -> None:
    with pytest.raises(UnknownSettingError, match="did you mean 'port'"):
        settings.temporary_settings({"prot": 1})


def test_restore_and_set_defaults(
    settings: PydanticSettings[Any], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(prefix + "API_URL", "http://from-env")
    with settings.temporary_settings(restore_defaults=["api_url"], set_defaults={"port": 8000}):
        assert settings.current().api_url == "http://localhost"
        assert settings.current().port == 8000
    assert settings.current().api_url == "http://from-env"


def test_export_is_json_for_complex_values_and_clear_for_secrets(
    settings: PydanticSettings[Any], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(prefix + "API_URL", "http://parent")
    with settings.temporary_settings(
        {"tags": ["x"], "database": {"pool": 9}, "token": "s3cr3t"},
        restore_defaults=["api_url"],
    ) as snapshot:
        assert "s3cr3t" not in repr(snapshot)
        exported = snapshot.to_environment_variables()
        changes = snapshot.environment_changes()
        child_env = snapshot.subprocess_env()
    assert json.loads(exported[prefix + "TAGS"]) == ["x"]
    assert json.loads(exported[prefix + "DATABASE"]) == {"url": "sqlite://", "pool": 9}
    assert exported[prefix + "TOKEN"] == "s3cr3t"
    assert changes[prefix + "API_URL"] is None
    assert prefix + "API_URL" not in child_env
    # A model built from the exported environment equals the overridden one.
    out = subprocess.run(
        [sys.executable, "-c", CHILD, prefix],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "api_url": "http://localhost",
        "port": 80,
        "tags": ["x"],
        "database": {"url": "sqlite://", "pool": 9},
        "token": "s3cr3t",
    }


def test_mirror_environ(settings: PydanticSettings[Any], prefix: str) -> None:
    with settings.temporary_settings({"port": 5}, mirror_environ=True):
        assert os.environ[prefix + "PORT"] == "5"
    assert prefix + "PORT" not in os.environ


@pytest.mark.anyio
async def test_tasks_are_isolated(settings: PydanticSettings[Any]) -> None:
    seen: dict[int, list[int]] = {1: [], 2: []}
    entered = {1: anyio.Event(), 2: anyio.Event()}

    async def task(value: int, other: int) -> None:
        async with settings.temporary_settings({"port": value}):
            entered[value].set()
            await entered[other].wait()  # both overrides are active now
            seen[value].append(settings.current().port)
            await anyio.lowlevel.checkpoint()
            seen[value].append(settings.current().port)
        seen[value].append(settings.current().port)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(task, 1, 2)
            tg.start_soon(task, 2, 1)
    assert seen == {1: [1, 1, 80], 2: [2, 2, 80]}
    assert settings.current().port == 80


def test_decorator_and_on_change(settings: PydanticSettings[Any]) -> None:
    calls: list[int] = []
    settings.on_change(lambda: calls.append(1))

    @settings.temporary_settings({"port": 3})
    def read() -> int:
        return int(settings.current().port)

    assert read() == 3
    assert calls == [1, 1]


def test_rejects_non_settings_classes() -> None:
    with pytest.raises(TypeError, match="BaseSettings"):
        PydanticSettings(Database)  # type: ignore[type-var]


def test_fields_are_settings_of_the_core(
    settings: PydanticSettings[Any], prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = settings.setting("port")
    assert isinstance(port, Setting)
    assert lookup(prefix + "PORT") is port
    assert is_registered(prefix + "TAGS")
    assert settings.registry in open_registries()
    # The core's temporary_settings reaches the model, and the core's export includes it.
    with temporary_settings({prefix + "PORT": "90", port.name.replace("PORT", "TAGS"): ["x"]}):
        assert settings.current().port == 90
        assert port.value() == 90
        changes = get_current_settings().environment_changes()
        assert changes[prefix + "PORT"] == "90"
        assert json.loads(changes[prefix + "TAGS"] or "") == ["x"]
    monkeypatch.setenv(prefix + "PORT", "81")
    assert port.value() == 81
    with pytest.raises(SettingValidationError, match="port must be positive"):
        temporary_settings({port: 0})


def test_an_override_left_in_another_context_is_gone_here(settings: PydanticSettings[Any]) -> None:
    override = settings.temporary_settings({"port": 5})
    override.__enter__()
    try:
        contextvars.copy_context().run(override.__exit__, None, None, None)
        assert settings.current().port == 80
    finally:
        override.__exit__(None, None, None)


def test_entering_builds_no_model(prefix: str) -> None:
    built: list[int] = []

    class Counted(BaseSettings):
        model_config = SettingsConfigDict(env_prefix=prefix)
        port: int = 80
        tags: list[str] = []

        def __init__(self, **values: Any) -> None:
            built.append(1)
            super().__init__(**values)

    adapter = PydanticSettings(Counted)
    try:
        with adapter.temporary_settings({"port": "81", "tags": '["a"]'}) as snapshot:
            assert built == []
            assert snapshot["port"] == 81  # the snapshot builds the model when first used
            assert built == [1]
    finally:
        adapter.close()


def test_model_validators_check_the_whole_model(prefix: str) -> None:
    class Range(BaseSettings):
        model_config = SettingsConfigDict(env_prefix=prefix)
        low: int = 0
        high: int = 5

        @model_validator(mode="after")
        def _ordered(self) -> Range:
            if self.low > self.high:
                raise ValueError("low must not exceed high")
            return self

    adapter = PydanticSettings(Range)
    try:
        # Each value alone would break the rule against the other's default; together they fit.
        with adapter.temporary_settings({"low": 10, "high": 20}):
            assert (adapter.current().low, adapter.current().high) == (10, 20)
        with pytest.raises(SettingValidationError, match="low must not exceed high"):
            adapter.temporary_settings({"low": 10})
        with pytest.raises(SettingValidationError, match=prefix + "LOW"):
            adapter.temporary_settings({"low": "ten"})
        assert adapter.current().low == 0
    finally:
        adapter.close()


def test_aliases_lower_case_prefix_and_required_fields(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Aliased(BaseSettings):
        model_config = SettingsConfigDict(env_prefix=prefix.lower())
        legacy: str = Field("old", validation_alias=prefix + "LEGACY_NAME")
        secret_key: str
        debug: bool = False

    adapter = PydanticSettings(Aliased, secret_fields=["secret_key"])
    try:
        assert adapter.env_name("legacy") == prefix + "LEGACY_NAME"
        assert adapter.env_name("debug") == prefix + "DEBUG"
        assert adapter.field_name((prefix + "debug").lower()) == "debug"
        assert adapter.is_secret("secret_key")
        with pytest.raises(SettingValidationError, match="required"):
            adapter.setting("secret_key").value()
        with pytest.raises(SettingValidationError, match="no default"):
            adapter.temporary_settings(restore_defaults=["secret_key"])
        with adapter.temporary_settings(
            {"secret_key": "hunter2", (prefix + "legacy_name").lower(): "new", "debug": "yes"},
            mirror_environ=True,
        ) as snapshot:
            current = adapter.current()
            assert (current.legacy, current.secret_key, current.debug) == ("new", "hunter2", True)
            assert os.environ[prefix + "LEGACY_NAME"] == "new"
            assert "hunter2" not in repr(snapshot)
            assert snapshot.to_environment_variables()[prefix + "SECRET_KEY"] == "hunter2"
        monkeypatch.setenv((prefix + "secret_key").lower(), "from-env")  # any case counts
        assert adapter.current().secret_key == "from-env"
    finally:
        adapter.close()


def test_a_field_set_to_none_is_removed_from_a_childs_environment(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Optional_(BaseSettings):
        model_config = SettingsConfigDict(env_prefix=prefix)
        limit: int | None = None

    adapter = PydanticSettings(Optional_)
    monkeypatch.setenv(prefix + "LIMIT", "5")
    try:
        with adapter.temporary_settings({"limit": None}, mirror_environ=True) as snapshot:
            assert adapter.current().limit is None
            assert prefix + "LIMIT" not in os.environ
            assert snapshot.environment_changes() == {prefix + "LIMIT": None}
            assert prefix + "LIMIT" not in snapshot.subprocess_env()
        assert os.environ[prefix + "LIMIT"] == "5"
    finally:
        adapter.close()


def test_wrapping_a_model_again_shares_its_settings(prefix: str) -> None:
    model = make_model(prefix)
    first, second = PydanticSettings(model), PydanticSettings(model)
    try:
        assert first.registry is second.registry
        with first.temporary_settings({"port": 7}):
            assert second.current().port == 7
        with pytest.raises(DuplicateSettingError, match=f"{prefix}API_URL.*already defined"):
            PydanticSettings(make_model(prefix))  # another model, the same environment names
    finally:
        first.close()


def test_reprs_never_raise(settings: PydanticSettings[Any], prefix: str) -> None:
    assert "repr unavailable" in repr(object.__new__(PydanticOverride))
    override = settings.temporary_settings({"port": 3, "token": "s3cr3t"})
    assert "s3cr3t" not in repr(override)
    assert repr(override) == (
        "make_model.<locals>.AppSettings.temporary_settings(port=3, token=<secret>)"
    )
    with override as snapshot, temporary_environ({prefix + "TAGS": "not json"}):
        assert "repr unavailable" in repr(snapshot)  # the model cannot be built from the env
