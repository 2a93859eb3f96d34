"""Reprs never raise, even of an object whose __init__ failed part-way (tracebacks show them)."""

from __future__ import annotations

import pytest

from settings_override import (
    Setting,
    SettingsRegistry,
    SettingsSnapshot,
    SettingValidationError,
    TemporaryEnviron,
    TemporarySettings,
    UnknownSettingError,
    temporary_settings,
)


@pytest.mark.parametrize(
    "cls", [TemporarySettings, TemporaryEnviron, SettingsSnapshot, Setting, SettingsRegistry]
)
def test_repr_of_an_object_with_no_attributes_yet(cls: type) -> None:
    bare = object.__new__(cls)
    text = repr(bare)
    assert text.startswith(f"<{cls.__name__} at 0x")
    assert "repr unavailable: AttributeError" in text


def test_repr_of_self_in_the_frame_of_a_failed_init(registry: SettingsRegistry) -> None:
    port = registry.define("PORT", int, 80)
    with pytest.raises(SettingValidationError) as info:
        temporary_settings({port: "eighty"})
    selves = []
    tb = info.tb
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, TemporarySettings):
            selves.append(candidate)
        tb = tb.tb_next
    assert selves, "no frame of TemporarySettings.__init__ in the traceback"
    assert "repr unavailable" in repr(selves[0])


def test_repr_of_a_snapshot_whose_environment_does_not_parse(
    registry: SettingsRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = registry.define("PORT", int, 80)
    monkeypatch.setenv(port.name, "eighty")
    with temporary_settings({registry.define("HOST", str, "h"): "x"}) as snapshot:
        assert f"'{port.name}': <invalid>" in repr(snapshot)


FAILING_TEST = """
from settings_override import temporary_settings

def test_fails():
    temporary_settings({"NOT_A_SETTING_ANYWHERE_XYZ": 1})
"""


def test_pytest_traceback_shows_no_repr_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report from the brief: `self = <[AttributeError(...) raised in repr()]>`."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_failing=FAILING_TEST)
    result = pytester.runpytest_inprocess("--tb=long", "--showlocals", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert UnknownSettingError.__name__ in output
    assert "raised in repr()" not in output
    assert "self       = <TemporarySettings at 0x" in output
