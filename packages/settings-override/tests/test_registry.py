"""Defining settings, the process-wide name index, and reading values."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Optional

import pytest

from settings_override import (
    DuplicateSettingError,
    Setting,
    SettingsRegistry,
    SettingValidationError,
    UnknownSettingError,
    is_registered,
    lookup,
    open_registries,
)


def test_environment_name_is_prefix_plus_name(registry: SettingsRegistry) -> None:
    url = registry.define("API_URL", str, "http://localhost", description="where the API is")
    assert url.name == registry.prefix + "API_URL"
    assert url.key == "API_URL"
    assert url.description == "where the API is"
    assert url.value() == "http://localhost"


def test_environment_beats_default_and_is_parsed(
    registry: SettingsRegistry, env: pytest.MonkeyPatch
) -> None:
    port = registry.define("PORT", int, 80)
    env.setenv(port.name, " 8080 ")
    assert port.value() == 8080
    env.setenv(port.name, "9090")
    assert port.value() == 9090  # a changed environment is seen at once (no stale cache)
    env.delenv(port.name)
    assert port.value() == 80


@pytest.mark.parametrize(
    ("tp", "raw", "expected"),
    [
        (str, "hello", "hello"),
        (int, "-12", -12),
        (float, "1.5", 1.5),
        (bool, "yes", True),
        (bool, "On", True),
        (bool, "0", False),
        (bool, "FALSE", False),
        (pathlib.Path, "/tmp/x", pathlib.Path("/tmp/x")),
        (list[str], '["a", "b"]', ["a", "b"]),
        (dict, '{"a": {"b": [1, 2]}}', {"a": {"b": [1, 2]}}),
        (Optional[int], "", None),  # noqa: UP045
        (Optional[int], "3", 3),  # noqa: UP045
        (int | None, "", None),
        (Optional[list[str]], '["x"]', ["x"]),  # noqa: UP045
    ],
)
def test_every_type_parses_environment_values_and_round_trips(
    registry: SettingsRegistry, env: pytest.MonkeyPatch, tp: object, raw: str, expected: object
) -> None:
    setting = registry.define("VALUE", tp, None if "None" in repr(tp) else expected)
    env.setenv(setting.name, raw)
    assert setting.value() == expected
    assert setting.parse(setting.dump(setting.value())) == expected


@pytest.mark.parametrize(
    ("tp", "default", "raw", "fragment"),
    [
        (int, 1, "12a", "integer"),
        (float, 1.0, "fast", "number"),
        (bool, True, "maybe", "boolean"),
        (list[str], [], "a,b", "JSON list"),
        (list[str], [], "[1]", "list of strings"),
        (dict, {}, "[]", "JSON object"),
        (pathlib.Path, "/x", "", "empty"),
    ],
)
def test_bad_environment_value_names_the_variable(
    registry: SettingsRegistry,
    env: pytest.MonkeyPatch,
    tp: object,
    default: object,
    raw: str,
    fragment: str,
) -> None:
    setting = registry.define("BAD", tp, default)
    env.setenv(setting.name, raw)
    with pytest.raises(SettingValidationError, match=fragment) as info:
        setting.value()
    assert setting.name in str(info.value)
    assert setting.name in info.value.problems


def test_unsupported_type_lists_the_supported_ones(registry: SettingsRegistry) -> None:
    with pytest.raises(TypeError, match=r"unsupported setting type.*list\[str\]"):
        registry.define("X", set[int], set())
    with pytest.raises(TypeError, match="unsupported"):
        registry.define("Y", list[int], [])


def test_default_is_required_unless_optional(registry: SettingsRegistry) -> None:
    with pytest.raises(TypeError, match="needs a default"):
        registry.define("PORT", int)
    assert registry.define("MAYBE", Optional[int]).value() is None  # noqa: UP045


def test_bad_default_is_rejected_and_string_default_is_parsed(registry: SettingsRegistry) -> None:
    with pytest.raises(SettingValidationError, match="DEBUG"):
        registry.define("DEBUG", bool, 3)
    assert registry.define("RETRIES", int, "5").value() == 5


def test_duplicate_environment_name_across_registries(
    make_registry: Callable[[], SettingsRegistry],
) -> None:
    first = make_registry()
    first.define("URL", str, "a")
    second = SettingsRegistry(first.prefix)
    try:
        with pytest.raises(DuplicateSettingError, match=rf"{first.prefix}URL.*already defined"):
            second.define("URL", str, "b")
        # The same name in the same registry is a duplicate too.
        with pytest.raises(DuplicateSettingError):
            first.define("URL", str, "c")
        # A different name is fine.
        second.define("OTHER", str, "d")
    finally:
        second.close()


def test_lookup_get_and_is_registered(registry: SettingsRegistry) -> None:
    url = registry.define("API_URL", str, "x")
    assert lookup(url.name) is url
    assert registry.get(url.name) is url
    assert registry.get("API_URL") is url  # the short name works on the registry too
    assert is_registered(url.name)
    assert not is_registered(url.name + "_NOPE")
    assert url in registry
    assert url.name in registry
    assert list(registry) == [url]
    assert len(registry) == 1
    assert registry in open_registries()


def test_unknown_lookup_suggests_close_matches(registry: SettingsRegistry) -> None:
    registry.define("API_URL", str, "x")
    with pytest.raises(UnknownSettingError) as info:
        lookup(registry.prefix + "API_URLL")
    assert isinstance(info.value, KeyError)
    assert info.value.suggestions[registry.prefix + "API_URLL"] == [registry.prefix + "API_URL"]
    assert "did you mean" in str(info.value)
    with pytest.raises(UnknownSettingError, match="did you mean"):
        registry.get("API_UR")


def test_close_drops_names_from_the_index(registry: SettingsRegistry) -> None:
    url = registry.define("URL", str, "x")
    registry.close()
    assert registry.closed
    assert not is_registered(url.name)
    assert registry not in open_registries()
    assert url.value() == "x"  # existing settings keep working
    with pytest.raises(RuntimeError, match="closed"):
        registry.define("MORE", str, "y")
    with SettingsRegistry(registry.prefix) as again:
        assert again.define("URL", str, "z").value() == "z"
    assert not is_registered(url.name)


def test_secret_never_in_repr_or_errors(
    registry: SettingsRegistry, env: pytest.MonkeyPatch
) -> None:
    token = registry.define("TOKEN", int, 123456789, secret=True)
    assert "123456789" not in repr(token)
    assert "secret" in repr(token)
    env.setenv(token.name, "hunter2-not-an-int")
    with pytest.raises(SettingValidationError) as info:
        token.value()
    assert "hunter2" not in str(info.value)
    with pytest.raises(SettingValidationError) as info:
        registry.define("PASSWORD", int, "hunter3", secret=True)
    assert "hunter3" not in str(info.value)


def test_setting_is_generic_and_typed(registry: SettingsRegistry) -> None:
    port: Setting[int] = registry.define("PORT", int, 1)
    assert port.type is int
    assert port.type_name == "int"
    assert repr(port) == f"Setting('{port.name}', int, default=1)"


def test_replaced_os_environ_is_still_read(
    registry: SettingsRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code that swaps os.environ for a plain dict (some test helpers do) is honoured."""
    port = registry.define("PORT", int, 80)
    monkeypatch.setattr("os.environ", {port.name: "81"})
    assert port.value() == 81
    monkeypatch.undo()
    assert port.value() == 80
