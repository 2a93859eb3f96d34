"""temporary_settings and temporary_environ as decorators, and overrides made in fixtures."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator

import anyio
import anyio.lowlevel
import pytest

from settings_override import Setting, SettingsRegistry, temporary_environ, temporary_settings


@pytest.fixture
def port(registry: SettingsRegistry) -> Setting[int]:
    return registry.define("PORT", int, 80)


def test_sync_function(port: Setting[int]) -> None:
    @temporary_settings({port: 1})
    def read(extra: int) -> int:
        """Doc kept."""
        return port.value() + extra

    assert read(10) == 11
    assert read.__doc__ == "Doc kept."
    assert port.value() == 80


@pytest.mark.anyio
async def test_async_function_is_really_overridden(port: Setting[int]) -> None:
    @temporary_settings({port: 2})
    async def read() -> int:
        await anyio.lowlevel.checkpoint()
        return port.value()

    assert await read() == 2
    assert port.value() == 80


@pytest.mark.anyio
async def test_fresh_override_per_call_concurrently(port: Setting[int]) -> None:
    decorator = temporary_settings({port: 3})
    results: list[int] = []

    @decorator
    async def read() -> None:
        await anyio.lowlevel.checkpoint()
        results.append(port.value())

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(read)
    assert results == [3, 3, 3]
    assert port.value() == 80


def test_generator_function_holds_the_override_between_yields(port: Setting[int]) -> None:
    @temporary_settings({port: 4})
    def gen() -> Generator[int, int, None]:
        received = yield port.value()
        yield received

    iterator = gen()
    assert next(iterator) == 4
    assert port.value() == 4  # still active while the generator is suspended
    assert iterator.send(5) == 5
    with pytest.raises(StopIteration):
        next(iterator)
    assert port.value() == 80


@pytest.mark.anyio
async def test_async_generator_function(port: Setting[int]) -> None:
    @temporary_settings({port: 5})
    async def agen() -> AsyncIterator[int]:
        try:
            yield port.value()
            yield port.value() + 1
        finally:
            cleaned.append(port.value())

    cleaned: list[int] = []
    items = [item async for item in agen()]
    assert items == [5, 6]
    assert cleaned == [5]
    assert port.value() == 80


def test_decorating_a_class_is_rejected(port: Setting[int]) -> None:
    with pytest.raises(TypeError, match="functions"):
        temporary_settings({port: 1})(int)


def test_temporary_environ_decorators() -> None:
    key = "SOT_DECORATED_ENVIRON"

    @temporary_environ({key: "1"})
    def sync() -> str | None:
        return os.environ.get(key)

    @temporary_environ({key: "2"})
    async def coro() -> str | None:
        return os.environ.get(key)

    assert sync() == "1"
    assert anyio.run(coro) == "2"
    assert key not in os.environ


PYTESTER_CONFTEST = """
import uuid
import pytest
from settings_override import SettingsRegistry, temporary_settings

registry = SettingsRegistry("SOTPT" + uuid.uuid4().hex[:8].upper() + "_")
port = registry.define("PORT", int, 80)

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param

@pytest.fixture
def sync_override():
    with temporary_settings({port: 1}):
        yield port.value()

@pytest.fixture
@temporary_settings({port: 2})
def decorated_override():
    yield port.value()

@pytest.fixture
async def async_override():
    async with temporary_settings({port: 3}):
        yield port.value()

@pytest.fixture
@temporary_settings({port: 4})
async def decorated_async_override():
    yield port.value()
"""

PYTESTER_TESTS = """
import pytest
from conftest import port

def test_sync_sees(sync_override):
    assert sync_override == port.value() == 1

def test_sync_gone_after():
    assert port.value() == 80

def test_decorated_sees(decorated_override):
    assert decorated_override == port.value() == 2

def test_decorated_gone_after():
    assert port.value() == 80

@pytest.mark.anyio
async def test_async_sees(async_override):
    assert async_override == port.value() == 3

@pytest.mark.anyio
async def test_async_gone_after():
    assert port.value() == 80

@pytest.mark.anyio
async def test_decorated_async_sees(decorated_async_override):
    assert decorated_async_override == port.value() == 4

@pytest.mark.anyio
async def test_decorated_async_gone_after():
    assert port.value() == 80

@pytest.mark.anyio
async def test_sync_fixture_seen_by_async_test(sync_override):
    assert port.value() == 1

def test_last_gone_after():
    assert port.value() == 80
"""


def test_override_in_yield_fixture_is_seen_by_the_test_and_gone_after(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only anyio's plugin: keep the inner run independent of other installed plugins.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(PYTESTER_CONFTEST)
    pytester.makepyfile(test_fixtures=PYTESTER_TESTS)
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    result = pytester.runpytest_inprocess(
        "-p", "anyio", "-p", "no:randomly", "-p", "no:cacheprovider", "--import-mode=prepend"
    )
    result.assert_outcomes(passed=15)
