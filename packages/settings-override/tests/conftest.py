"""Shared fixtures: both anyio backends, and throw-away registries with unique prefixes."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator

import pytest

from settings_override import SettingsRegistry

_counter = itertools.count()


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_registry() -> Iterator[Callable[[], SettingsRegistry]]:
    """Create registries whose prefix no other test (or xdist worker) uses; closed after."""
    made: list[SettingsRegistry] = []

    def make() -> SettingsRegistry:
        prefix = f"SOT{uuid.uuid4().hex[:8].upper()}{next(_counter)}_"
        registry = SettingsRegistry(prefix)
        made.append(registry)
        return registry

    yield make
    for registry in made:
        registry.close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """monkeypatch, named for setting the live environment in a test."""
    return monkeypatch


@pytest.fixture
def registry(make_registry: Callable[[], SettingsRegistry]) -> SettingsRegistry:
    return make_registry()
