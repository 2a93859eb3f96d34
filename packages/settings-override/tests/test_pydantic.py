"""The optional pydantic-settings adapter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

pytest.importorskip("pydantic_settings")

from pydantic import BaseModel, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from settings_override import SettingValidationError, UnknownSettingError
from settings_override.pydantic import PydanticSettings


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
    seen: dict[int, int] = {}

    async def task(value: int) -> None:
        async with settings.temporary_settings({"port": value}):
            await anyio.lowlevel.checkpoint()
            await anyio.lowlevel.checkpoint()
            seen[value] = settings.current().port

    async with anyio.create_task_group() as tg:
        tg.start_soon(task, 1)
        tg.start_soon(task, 2)
    assert seen == {1: 1, 2: 2}
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
