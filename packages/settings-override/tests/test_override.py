"""temporary_settings: precedence, validation before change, restore, out-of-order exits."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any, Optional

import pytest

from settings_override import (
    Setting,
    SettingsRegistry,
    SettingValidationError,
    UnknownSettingError,
    temporary_settings,
)


@pytest.fixture
def port(registry: SettingsRegistry) -> Setting[int]:
    return registry.define("PORT", int, 80)


def test_precedence_inner_outer_environment_default(
    port: Setting[int], env: pytest.MonkeyPatch
) -> None:
    assert port.value() == 80
    env.setenv(port.name, "81")
    assert port.value() == 81
    with temporary_settings({port: 82}):
        assert port.value() == 82
        with temporary_settings({port.name: "83"}):
            assert port.value() == 83
        assert port.value() == 82
    assert port.value() == 81
    env.delenv(port.name)
    assert port.value() == 80


def test_string_values_are_parsed_like_environment_values(registry: SettingsRegistry) -> None:
    debug = registry.define("DEBUG", bool, False)
    tags = registry.define("TAGS", list[str], [])
    extra = registry.define("EXTRA", dict, {})
    limit = registry.define("LIMIT", Optional[int])  # noqa: UP045
    with temporary_settings(
        {debug.name: "yes", tags.name: '["a"]', extra.name: '{"k": 1}', limit.name: ""}
    ):
        assert debug.value() is True
        assert tags.value() == ["a"]
        assert extra.value() == {"k": 1}
        assert limit.value() is None


def test_typed_values_are_checked_and_copied(registry: SettingsRegistry) -> None:
    extra = registry.define("EXTRA", dict, {})
    ratio = registry.define("RATIO", float, 1.0)
    given = {"nested": {"a": 1}}
    with temporary_settings({extra: given, ratio: 2}):
        given["nested"]["a"] = 2  # the caller's later change does not leak into the override
        assert extra.value() == {"nested": {"a": 1}}
        assert ratio.value() == 2.0
        assert isinstance(ratio.value(), float)


def test_unknown_keys_raise_keyerror_with_suggestions_and_change_nothing(
    port: Setting[int], env: pytest.MonkeyPatch
) -> None:
    env.setenv(port.name, "81")
    before = dict(os.environ)
    typo = port.name.replace("PORT", "PRT")
    with pytest.raises(UnknownSettingError) as info:
        temporary_settings({port: 1, typo: 2, "NOPE_NOT_A_SETTING_AT_ALL": 3}, mirror_environ=True)
    assert isinstance(info.value, KeyError)
    assert info.value.names == (typo, "NOPE_NOT_A_SETTING_AT_ALL")
    # Closest first; other tests' registries in this process may add weaker matches.
    assert info.value.suggestions[typo][0] == port.name
    assert f"did you mean {port.name!r}" in str(info.value)
    assert port.value() == 81
    assert dict(os.environ) == before


def test_every_bad_value_is_listed_at_once_and_nothing_changes(
    registry: SettingsRegistry, port: Setting[int], env: pytest.MonkeyPatch
) -> None:
    debug = registry.define("DEBUG", bool, False)
    name = registry.define("NAME", str, "app")
    env.setenv(name.name, "from-env")
    before = dict(os.environ)
    with pytest.raises(SettingValidationError) as info:
        with temporary_settings(
            {name: "changed", port: "eighty", debug: "perhaps"},
            set_defaults={port: True},
            mirror_environ=True,
        ):
            pytest.fail("entered despite invalid values")  # pragma: no cover
    assert isinstance(info.value, ValueError)
    assert set(info.value.problems) == {port.name, debug.name}
    message = str(info.value)
    assert port.name in message
    assert debug.name in message
    assert "Nothing was changed" in message
    assert name.value() == "from-env"
    assert dict(os.environ) == before


def test_same_setting_updated_and_restored_is_an_error(port: Setting[int]) -> None:
    with pytest.raises(SettingValidationError, match="both in updates and restore_defaults"):
        temporary_settings({port: 1}, restore_defaults=[port])
    with pytest.raises(SettingValidationError, match="given twice"):
        temporary_settings({port: 1, port.name: 2})
    with pytest.raises(TypeError, match="iterable"):
        temporary_settings(restore_defaults=port.name)
    with pytest.raises(TypeError, match="Setting objects or environment names"):
        temporary_settings({1: 2})  # type: ignore[dict-item]


def test_restored_on_exit_and_on_exception(port: Setting[int]) -> None:
    with temporary_settings({port: 1}):
        assert port.value() == 1
    assert port.value() == 80
    seen: list[int] = []

    def fail() -> None:
        with temporary_settings({port: 2}):
            seen.append(port.value())
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert seen == [2]
    assert port.value() == 80


def test_out_of_order_exits_leave_no_stale_value(port: Setting[int]) -> None:
    first = temporary_settings({port: 1})
    second = temporary_settings({port: 2})
    first.__enter__()
    second.__enter__()
    assert port.value() == 2
    first.__exit__(None, None, None)  # the outer one leaves first (e.g. fixture teardown order)
    assert port.value() == 2
    second.__exit__(None, None, None)
    assert port.value() == 80
    # And the other way round: entering again after mixed exits starts clean.
    first.__enter__()
    second.__enter__()
    second.__exit__(None, None, None)
    assert port.value() == 1
    first.__exit__(None, None, None)
    assert port.value() == 80


def test_restore_defaults_beats_environment_and_outer_override(
    port: Setting[int], env: pytest.MonkeyPatch
) -> None:
    env.setenv(port.name, "81")
    with temporary_settings({port: 82}):
        with temporary_settings(restore_defaults=[port.name]) as snapshot:
            assert port.value() == 80
            assert snapshot.source(port) == "restored"
            with temporary_settings({port: 83}):
                assert port.value() == 83
            assert port.value() == 80
        assert port.value() == 82
    assert port.value() == 81


def test_set_defaults_only_apply_when_nothing_sets_the_value(
    port: Setting[int], env: pytest.MonkeyPatch
) -> None:
    with temporary_settings(set_defaults={port: 90}):
        assert port.value() == 90
        env.setenv(port.name, "81")
        assert port.value() == 81  # the environment beats a default
        with temporary_settings(restore_defaults=[port]):
            assert port.value() == 90  # restoring reads the changed default
        with temporary_settings({port: 5}):
            assert port.value() == 5
    assert port.value() == 81


def test_one_override_spans_registries(make_registry: Callable[[], SettingsRegistry]) -> None:
    a = make_registry().define("A", str, "a")
    b = make_registry().define("B", str, "b")
    with temporary_settings({a.name: "A!", b: "B!"}) as snapshot:
        assert (a.value(), b.value()) == ("A!", "B!")
        assert snapshot[a] == "A!"
        assert snapshot[b.name] == "B!"


def test_snapshot_yielded_covers_every_setting_of_touched_registries(
    registry: SettingsRegistry, port: Setting[int]
) -> None:
    host = registry.define("HOST", str, "localhost")
    with temporary_settings({port: 1}) as snapshot:
        assert dict(snapshot) == {port.name: 1, host.name: "localhost"}
        assert snapshot.source(host) == "default"
        assert snapshot.is_set(port)
        assert not snapshot.is_set(host)


def test_an_object_cannot_be_entered_twice_at_once(port: Setting[int]) -> None:
    override = temporary_settings({port: 1})
    with override:
        with pytest.raises(RuntimeError, match="already entered"), override:
            pass  # pragma: no cover
        assert port.value() == 1
    with override:  # but it can be used again afterwards
        assert port.value() == 1
    assert port.value() == 80


def test_mirror_environ_writes_and_restores_exactly(
    registry: SettingsRegistry, port: Setting[int], env: pytest.MonkeyPatch
) -> None:
    tags = registry.define("TAGS", list[str], [])
    host = registry.define("HOST", str, "h")
    env.setenv(host.name, "from-env")
    assert port.name not in os.environ
    with temporary_settings(
        {port: 5, tags: ["x", "y"]}, restore_defaults=[host], mirror_environ=True
    ):
        assert os.environ[port.name] == "5"
        assert os.environ[tags.name] == '["x", "y"]'
        assert host.name not in os.environ
        assert host.value() == "h"
    assert port.name not in os.environ
    assert tags.name not in os.environ
    assert os.environ[host.name] == "from-env"


def test_mirror_environ_out_of_order_exits(port: Setting[int]) -> None:
    first = temporary_settings({port: 1}, mirror_environ=True)
    second = temporary_settings({port: 2}, mirror_environ=True)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert os.environ[port.name] == "2"
    second.__exit__(None, None, None)
    assert port.name not in os.environ


def test_on_change_is_called_on_enter_and_exit(
    registry: SettingsRegistry, port: Setting[int], make_registry: Callable[[], SettingsRegistry]
) -> None:
    calls: list[tuple[Setting[Any], ...]] = []
    remove = registry.on_change(calls.append)
    other = make_registry().define("OTHER", int, 0)
    with temporary_settings({port: 1, other: 2}):
        assert calls == [(port,)]
    assert calls == [(port,), (port,)]
    remove()
    with temporary_settings({port: 1}):
        pass
    assert len(calls) == 2


def test_failing_on_change_callback_leaves_nothing_applied(
    registry: SettingsRegistry, port: Setting[int]
) -> None:
    def explode(settings: tuple[Setting[Any], ...]) -> None:
        if port.value() == 1:
            raise RuntimeError("cache refresh failed")

    registry.on_change(explode)
    with pytest.raises(RuntimeError, match="cache refresh failed"):
        with temporary_settings({port: 1}, mirror_environ=True):
            pytest.fail("entered")  # pragma: no cover
    assert port.value() == 80
    assert port.name not in os.environ


def test_repr_shows_keys_but_never_secrets(registry: SettingsRegistry) -> None:
    token = registry.define("TOKEN", str, "", secret=True)
    user = registry.define("USER", str, "")
    override = temporary_settings({token: "hunter2", user: "alice"})
    assert "hunter2" not in repr(override)
    assert "alice" in repr(override)
    with pytest.raises(SettingValidationError) as info:
        temporary_settings({registry.define("PIN", int, 0, secret=True): "hunter3"})
    assert "hunter3" not in str(info.value)
    with override as snapshot:
        assert "hunter2" not in repr(snapshot)
        assert "alice" in repr(snapshot)
        assert snapshot[token] == "hunter2"


def test_mirror_writes_a_changed_default_only_where_the_environment_is_silent(
    port: Setting[int], env: pytest.MonkeyPatch
) -> None:
    with temporary_settings(set_defaults={port: 90}, mirror_environ=True):
        assert os.environ[port.name] == "90"
        assert port.value() == 90
    assert port.name not in os.environ
    env.setenv(port.name, "81")
    with temporary_settings(set_defaults={port: 90}, mirror_environ=True):
        # The environment beats a default, so the mirror must not overwrite it.
        assert os.environ[port.name] == "81"
        assert port.value() == 81
    assert os.environ[port.name] == "81"


def test_mirror_of_a_restore_inside_a_changed_default(
    port: Setting[int], env: pytest.MonkeyPatch
) -> None:
    env.setenv(port.name, "81")
    with temporary_settings(set_defaults={port: 90}):
        with temporary_settings(restore_defaults=[port], mirror_environ=True) as snapshot:
            assert port.value() == 90
            assert os.environ[port.name] == "90"  # a child must see the changed default
            assert snapshot.environment_changes() == {port.name: "90"}
        assert port.value() == 81
    assert os.environ[port.name] == "81"


def test_three_overrides_leaving_in_every_order(
    registry: SettingsRegistry, port: Setting[int]
) -> None:
    host = registry.define("HOST", str, "h")
    bottom = temporary_settings(set_defaults={port: 1})
    middle = temporary_settings({host: "m"})
    top = temporary_settings({port: 3})

    def expected(active: set[str]) -> tuple[int, str]:
        port_value = 3 if "top" in active else 1 if "bottom" in active else 80
        return port_value, "m" if "middle" in active else "h"

    named = {"bottom": bottom, "middle": middle, "top": top}
    for order in itertools.permutations(named):
        for override in (bottom, middle, top):
            override.__enter__()
        active = set(named)
        assert (port.value(), host.value()) == expected(active)
        for name in order:
            named[name].__exit__(None, None, None)
            active.discard(name)
            assert (port.value(), host.value()) == expected(active), order


def test_callbacks_registered_after_the_override_was_made_are_called(
    registry: SettingsRegistry, port: Setting[int]
) -> None:
    override = temporary_settings({port: 1})
    calls: list[int] = []
    remove = registry.on_change(lambda settings: calls.append(port.value()))
    with override:
        assert calls == [1]
    assert calls == [1, 80]
    remove()
    remove()  # removing twice is harmless
    with override:
        pass
    assert calls == [1, 80]
