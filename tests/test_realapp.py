"""A realistic application under the bundle: its own settings, database, client and clock.

The pytester project is a copy of tests/apps/shopapp plus a conftest; each session runs in a
subprocess, with a real uvicorn child, exactly as a user's suite would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

USER_TESTS = """
import sqlite3

import pendulum
import pytest

from shopapp import client, jobs
from shopapp.settings import API_URL, CSRF_ENABLED


def test_rows_written_by_the_test_are_served(use_hosted_api_server, database):
    with sqlite3.connect(database) as connection:
        connection.execute("insert into items values ('apple')")
    assert {"name": "apple"} in client.list_items()
    assert client.server_settings()["database"] == str(database)


def test_client_reaches_the_hosted_server_with_csrf_off(use_hosted_api_server):
    assert use_hosted_api_server.startswith("http://127.0.0.1:")
    assert use_hosted_api_server.endswith("/api")
    assert API_URL.value() == use_hosted_api_server
    assert CSRF_ENABLED.value() is False
    assert client.request_headers() == {}


def test_outside_the_fixture_everything_is_back():
    assert API_URL.value() is None
    assert CSRF_ENABLED.value() is True
    assert client.request_headers() == {"X-CSRF-Token": "fetched-token"}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.mark.anyio
async def test_mock_anyio_sleep_shifts_the_app_clock(mock_anyio_sleep):
    before = pendulum.now("UTC")
    with mock_anyio_sleep.assert_sleeps_for(3600):
        stamp = await jobs.stamp_after(3600)
    assert stamp - before >= pendulum.duration(seconds=3600)
    assert stamp - before < pendulum.duration(seconds=3660)
    mock_anyio_sleep.assert_awaited_once_with(3600)
"""

CREATE_DATABASE = """
import sqlite3

import pytest


def _create(path):
    with sqlite3.connect(path) as connection:
        connection.execute("create table items (name text)")
    return path
"""

CONFTEST_FOR_INI = (
    CREATE_DATABASE
    + """
from settings_override import temporary_settings
from shopapp.settings import DATABASE_PATH


@pytest.fixture(scope="session", autouse=True)
def database(tmp_path_factory):
    path = _create(tmp_path_factory.mktemp("db") / "shop.db")
    with temporary_settings({DATABASE_PATH: str(path)}):
        yield path
"""
)

CONFTEST_WITH_FIXTURES = (
    CREATE_DATABASE
    + """
from contextlib import contextmanager

from settings_override import temporary_settings


@pytest.fixture(scope="session")
def database(tmp_path_factory):
    return _create(tmp_path_factory.mktemp("db") / "shop.db")


@pytest.fixture(scope="session")
def hosted_api_env(database):
    # Depending on `database` also orders start-up: the database exists before the server.
    return {"SHOP_DATABASE_PATH": str(database)}


@pytest.fixture(scope="session")
def hosted_api_settings_override():
    @contextmanager
    def override(updates):
        assert set(updates) == {"API_URL"}
        with temporary_settings(
            {"SHOP_API_URL": updates["API_URL"], "SHOP_CSRF_ENABLED": "false"}
        ) as snapshot:
            yield snapshot

    return override
"""
)


def _run(pytester: pytest.Pytester) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:randomly", "-v", timeout=120)


def test_configured_through_ini_options(pytester: pytest.Pytester, shopapp: Path) -> None:
    pytester.makeini(
        """
        [pytest]
        hosted_api_app = shopapp.app:create_app
        hosted_api_url_setting = SHOP_API_URL
        hosted_api_extra_settings =
            SHOP_CSRF_ENABLED=false
        """
    )
    pytester.makeconftest(CONFTEST_FOR_INI)
    pytester.makepyfile(test_shop=USER_TESTS)
    result = _run(pytester)
    result.assert_outcomes(passed=5)


def test_configured_through_overridden_fixtures(pytester: pytest.Pytester, shopapp: Path) -> None:
    pytester.makeini("[pytest]\nhosted_api_app = shopapp.app:create_app\n")
    pytester.makeconftest(CONFTEST_WITH_FIXTURES)
    pytester.makepyfile(test_shop=USER_TESTS)
    result = _run(pytester)
    result.assert_outcomes(passed=5)
