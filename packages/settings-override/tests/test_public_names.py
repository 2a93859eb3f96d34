"""Public names show the path users import, in reprs, tracebacks and pickles."""

from __future__ import annotations

import pickle
import traceback
import types
from collections.abc import Callable

import pytest

import settings_override
from settings_override import (
    SettingsRegistry,
    SettingValidationError,
    UnknownSettingError,
    temporary_settings,
)


@pytest.mark.parametrize("name", sorted(settings_override.__all__))
def test_every_public_class_and_function_lives_in_the_package(name: str) -> None:
    obj = getattr(settings_override, name)
    if isinstance(obj, type | types.FunctionType):
        assert obj.__module__ == "settings_override"
        # pickle finds it by that path
        assert pickle.loads(pickle.dumps(obj)) is obj


def test_an_unknown_key_prints_its_public_path_and_survives_pickling(
    make_registry: Callable[[], SettingsRegistry],
) -> None:
    registry = make_registry()
    setting = registry.define("API_URL", str, "x")
    with pytest.raises(UnknownSettingError) as caught:
        temporary_settings({setting.name.replace("URL", "ULR"): "y"})
    text = "".join(traceback.format_exception_only(caught.value))
    assert text.startswith("settings_override.UnknownSettingError: ")
    assert "_errors" not in text
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is UnknownSettingError
    assert str(copy) == str(caught.value)
    assert copy.suggestions == caught.value.suggestions


def test_a_bad_value_prints_its_public_path_and_survives_pickling(
    make_registry: Callable[[], SettingsRegistry],
) -> None:
    registry = make_registry()
    setting = registry.define("WORKERS", int, 1)
    with pytest.raises(SettingValidationError) as caught:
        temporary_settings({setting: "many"})
    text = "".join(traceback.format_exception_only(caught.value))
    assert text.startswith("settings_override.SettingValidationError: ")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value)
    assert copy.problems == caught.value.problems
