"""get_current_settings, exports, and a real child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Optional

import pytest

from settings_override import (
    SettingsRegistry,
    UnknownSettingError,
    get_current_settings,
    temporary_settings,
)


def test_snapshot_by_setting_and_by_name(registry: SettingsRegistry) -> None:
    url = registry.define("URL", str, "http://a")
    snapshot = get_current_settings(registry)
    assert snapshot[url] == "http://a"
    assert snapshot[url.name] == "http://a"
    assert url.name in snapshot
    assert len(snapshot) == 1
    with pytest.raises(UnknownSettingError, match="did you mean"):
        snapshot[url.name + "X"]


def test_snapshot_is_frozen_at_creation(
    registry: SettingsRegistry, env: pytest.MonkeyPatch
) -> None:
    port = registry.define("PORT", int, 80)
    env.setenv(port.name, "81")
    with temporary_settings({port: 1}):
        inside = get_current_settings(registry)
    env.setenv(port.name, "82")
    outside = get_current_settings(registry)
    assert (inside[port], outside[port]) == (1, 82)
    assert inside.source(port) == "override"
    assert outside.source(port) == "environment"


def test_none_means_every_open_registry(make_registry: Callable[[], SettingsRegistry]) -> None:
    first, second = make_registry(), make_registry()
    a = first.define("A", str, "a")
    b = second.define("B", str, "b")
    snapshot = get_current_settings()
    assert snapshot[a] == "a"
    assert snapshot[b] == "b"
    second.close()
    assert b.name not in get_current_settings()
    assert set(get_current_settings([first, second])) == {a.name, b.name}


def test_to_environment_variables(registry: SettingsRegistry, env: pytest.MonkeyPatch) -> None:
    port = registry.define("PORT", int, 80)
    host = registry.define("HOST", str, "localhost")
    tags = registry.define("TAGS", list[str], [])
    extra = registry.define("EXTRA", dict, {})
    ratio = registry.define("RATIO", float, 0.1)
    limit = registry.define("LIMIT", Optional[int], 5)  # noqa: UP045
    debug = registry.define("DEBUG", bool, False)
    env.setenv(host.name, "example.org")
    with temporary_settings(
        {tags: ["a", "b"], extra: {"k": {"n": [1]}}, limit: None, debug: True},
        set_defaults={ratio: 0.25},
    ):
        snapshot = get_current_settings(registry)
    exported = snapshot.to_environment_variables()
    assert exported == {
        host.name: "example.org",
        tags.name: '["a", "b"]',
        extra.name: '{"k": {"n": [1]}}',
        ratio.name: "0.25",
        limit.name: "",
        debug.name: "true",
    }
    # Everything parses back to the same value (a dict is JSON, never its Python repr).
    for setting in registry:
        if setting.name in exported:
            assert setting.parse(exported[setting.name]) == snapshot[setting]
    everything = snapshot.to_environment_variables(exclude_unset=False)
    assert everything[port.name] == "80"
    assert set(everything) == {s.name for s in registry}


def test_environment_changes_and_subprocess_env(
    registry: SettingsRegistry, env: pytest.MonkeyPatch
) -> None:
    port = registry.define("PORT", int, 80)
    host = registry.define("HOST", str, "localhost")
    untouched = registry.define("UNTOUCHED", str, "u")
    env.setenv(host.name, "from-parent")
    with temporary_settings({port: 1}, restore_defaults=[host]) as snapshot:
        changes = snapshot.environment_changes()
        assert changes == {port.name: "1", host.name: None}
        child = snapshot.subprocess_env()
        assert child[port.name] == "1"
        assert host.name not in child
        assert untouched.name not in child
        assert child["PATH"] == os.environ["PATH"]
        assert snapshot.subprocess_env(base={"ONLY": "this", host.name: "x"}) == {
            "ONLY": "this",
            port.name: "1",
        }


CHILD = """
import json, os, sys
from settings_override import SettingsRegistry
registry = SettingsRegistry(sys.argv[1])
port = registry.define("PORT", int, 80)
host = registry.define("HOST", str, "localhost")
tags = registry.define("TAGS", list[str], [])
extra = registry.define("EXTRA", dict, {})
token = registry.define("TOKEN", str, "", secret=True)
print(json.dumps({s.key: s.value() for s in registry}))
"""


def test_a_real_child_sees_exactly_the_current_values(
    registry: SettingsRegistry, env: pytest.MonkeyPatch
) -> None:
    port = registry.define("PORT", int, 80)
    host = registry.define("HOST", str, "localhost")
    tags = registry.define("TAGS", list[str], [])
    extra = registry.define("EXTRA", dict, {})
    token = registry.define("TOKEN", str, "", secret=True)
    env.setenv(host.name, "parent-only")  # restored to its default: the child must not see it
    with temporary_settings(
        {port: 8123, tags: ["a", "b c"], extra: {"db": {"url": "sqlite://"}}, token: "s3cr3t"},
        restore_defaults=[host],
    ):
        expected = {s.key: s.value() for s in registry}
        child_env = get_current_settings(registry).subprocess_env()
    assert os.environ[host.name] == "parent-only"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, registry.prefix],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == expected
    assert expected["HOST"] == "localhost"
    assert expected["TOKEN"] == "s3cr3t"
