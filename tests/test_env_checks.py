"""One validator for every environment a server gets, and no secret in any error.

A bad name (empty, with ``=`` or NUL) or a value with NUL is refused where the user wrote it:
the marker and the ini options stop the session (exit 4), the factory raises TypeError or
ValueError naming the key, an overridden ``hosted_api_env`` fails the server's start once,
naming the fixture and the key. Every session here carries a secret (``hunter2``) in the
environment it asks for, and runs with ``--tb=long``; the secret must never be printed.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

SECRET = "hunter2"

SETTINGS = """
from settings_override import SettingsRegistry

reg = SettingsRegistry(prefix="ORD_")
FLAG = reg.define("FLAG", bool, default=False)
RETRIES = reg.define("RETRIES", int, default=3)
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--tb=long", "-rA", *args, timeout=120
    )
    everything = result.stdout.str() + result.stderr.str()
    assert SECRET not in everything, everything
    assert "bad variable name" not in everything  # server-launcher's own check never runs
    return result


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        (
            '**{"API_TOKEN=hunter2": "x"}',
            "the name 'API_TOKEN=...' contains '='; pass the name and the value separately",
        ),
        ('**{"": "x"}, API_TOKEN="hunter2"', "an empty name"),
        ('API_TOKEN="hun\\0ter2"', "the value of API_TOKEN contains a NUL character"),
        ('**{"A\\0B": "x"}, API_TOKEN="hunter2"', "contains a NUL character"),
    ],
    ids=["equals-in-name", "empty-name", "nul-in-secret-value", "nul-in-name"],
)
def test_a_bad_marker_environment_is_a_usage_error_without_the_secret(
    pytester: pytest.Pytester, marker: str, expected: str
) -> None:
    pytester.makepyfile(
        test_marked=f"""
import pytest


@pytest.mark.hosted_api_env({marker})
def test_marked(use_hosted_api_server):
    pass
"""
    )
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*test_marked.py::test_marked: @pytest.mark.hosted_api_env: *{expected}*"]
    )
    assert "hosted API server" not in result.stdout.str()  # none started


def test_the_factory_refuses_bad_environments_naming_the_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_factory="""
import pytest


@pytest.mark.parametrize(
    ("env", "error", "expected"),
    [
        ({"": "x", "API_TOKEN": "hunter2"}, ValueError, "an empty name"),
        ({"API_TOKEN=hunter2": "x"}, ValueError, "the name 'API_TOKEN=...' contains '='"),
        ({"API_TOKEN": "hun\\0ter2"}, ValueError, "the value of API_TOKEN contains a NUL"),
        ({"A\\0B": "x"}, ValueError, "contains a NUL character"),
        ({"API_TOKEN": 12345}, TypeError, "API_TOKEN=*** is int"),
        ({7: "hunter2"}, TypeError, "the name 7 is int; names are strings"),
        ("API_TOKEN=hunter2", TypeError, "got a str."),
        (["API_TOKEN=hunter2"], TypeError, "got a list."),
    ],
    ids=["empty", "equals", "nul-value", "nul-name", "int", "int-name", "str", "list"],
)
def test_refused(hosted_api_server_factory, env, error, expected):
    with pytest.raises(error) as caught:
        hosted_api_server_factory(env)
    assert expected in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert str(caught.value).startswith("hosted_api_server_factory")


def test_nothing_was_started(hosted_api_server_factory):
    import os
    assert hosted_api_server_factory({"API_TOKEN": "hunter2", "SIDE": "ok"})
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["pytest-bundle: 1 hosted API server started*"])


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (
            '{"API_TOKEN": "hunter2", "BAD=hunter2": "x"}',
            "the name 'BAD=...' contains '='",
        ),
        ('{"API_TOKEN": "hun\\0ter2"}', "the value of API_TOKEN contains a NUL character"),
        ('{"API_TOKEN": 12345}', "maps 'API_TOKEN' to int ***"),
        ('["API_TOKEN=hunter2"]', "your hosted_api_env returned list."),
        ('{"ORD_RETIRES": "5", "API_TOKEN": "hunter2"}', "did you mean 'ORD_RETRIES'?"),
    ],
    ids=["equals-in-name", "nul-in-value", "int-secret", "list-of-pairs", "near-miss"],
)
def test_an_overridden_hosted_api_env_is_checked_once_naming_the_fixture_and_key(
    pytester: pytest.Pytester, returned: str, expected: str
) -> None:
    pytester.makepyfile(ordersettings=SETTINGS)
    pytester.makeconftest(
        f"""
import pytest

import ordersettings


@pytest.fixture(scope="session")
def hosted_api_env():
    return {returned}
"""
    )
    pytester.makepyfile(
        test_env="""
def test_one(hosted_api_server):
    pass


def test_two(use_hosted_api_server):
    pass
"""
    )
    result = _run(pytester)
    result.assert_outcomes(errors=2)
    details = result.stdout.str().split("short test summary info", 1)[0]
    assert details.count("hosted_api_server could not start:") == 1
    assert details.count("hosted_api_env") >= 1
    assert details.count(expected) == 1, details
    result.stdout.fnmatch_lines(
        ["*could not start; see the first error, in test_env.py::test_one*"]
    )


def test_a_near_miss_in_hosted_api_server_env_stops_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ordersettings=SETTINGS)
    pytester.makeconftest("import ordersettings\n")
    pytester.makeini(
        "[pytest]\nhosted_api_server_env =\n    ORD_RETIRES=5\n    API_TOKEN=hunter2\n"
    )
    pytester.makepyfile(test_a="def test_a(hosted_api_server):\n    pass\n")
    result = _run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*hosted_api_server_env (ini)*did you mean 'ORD_RETRIES'?*"])


def test_a_secret_server_env_value_is_never_shown_by_a_failing_start(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        brokenapp="""
import os


def create_app():
    raise RuntimeError("cannot start")
"""
    )
    pytester.makeini(
        "[pytest]\nhosted_api_app = brokenapp:create_app\n"
        "hosted_api_server_env =\n    API_TOKEN=hunter2\n"
    )
    pytester.makepyfile(
        test_a="""
import pytest


@pytest.mark.hosted_api_env(DB_PASSWORD="hunter2", SIDE="x")
def test_marked(use_hosted_api_server):
    pass


def test_factory(hosted_api_server_factory):
    hosted_api_server_factory({"SESSION_SECRET": "hunter2"})


def test_default(hosted_api_server):
    pass
"""
    )
    result = _run(pytester, "--show-capture=no")
    result.assert_outcomes(errors=2, failed=1)
    result.stdout.fnmatch_lines(["*DB_PASSWORD=***, SIDE='x' could not start*"])
    # --show-capture=no hides the report sections: the output's tail is in the error itself
    text = result.stdout.str()
    assert "in the section below" not in text
    # each server's own first report (counted before the short summary, which CI leaves whole)
    details = text.split("short test summary info", 1)[0]
    assert details.count("RuntimeError: cannot start") == 3


ENV_HELPER = """
import httpx


def server_env(url, name):
    return httpx.get(f"{url}/env/{name}", timeout=10).json()["value"]
"""


def test_function_scoped_environment_changes_never_reach_a_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever test starts a server, it gets the session's environment: what a session
    fixture set reaches it, what a test's monkeypatch (in a fixture or the body) did does not."""
    monkeypatch.setenv("KEPT", "from-the-shell")
    pytester.makepyfile(envhelper=ENV_HELPER)
    pytester.makeconftest(
        """
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def database():
    os.environ["DB_PATH"] = "session.db"  # session-scoped: the servers see it
    yield
    del os.environ["DB_PATH"]


@pytest.fixture
def leaky(monkeypatch):
    monkeypatch.setenv("ORDER_LEAK", "from-a-fixture")
    monkeypatch.setenv("KEPT", "changed-by-a-test")
"""
    )
    pytester.makepyfile(
        test_order="""
import pytest

from envhelper import server_env


def test_1_default_started_after_a_function_fixture(leaky, use_hosted_api_server):
    assert server_env(use_hosted_api_server, "ORDER_LEAK") is None
    assert server_env(use_hosted_api_server, "KEPT") == "from-the-shell"
    assert server_env(use_hosted_api_server, "DB_PATH") == "session.db"


@pytest.mark.hosted_api_env(SIDE="a")
def test_2_marker_server_started_after_a_function_fixture(leaky, use_hosted_api_server):
    assert server_env(use_hosted_api_server, "ORDER_LEAK") is None
    assert server_env(use_hosted_api_server, "SIDE") == "a"


def test_3_factory_in_the_body_after_monkeypatch(monkeypatch, hosted_api_server_factory):
    monkeypatch.setenv("ORDER_LEAK", "from-the-body")
    monkeypatch.delenv("KEPT")
    url = hosted_api_server_factory({"SIDE": "b"})
    assert server_env(url, "ORDER_LEAK") is None
    assert server_env(url, "KEPT") == "from-the-shell"
    assert server_env(url, "SIDE") == "b"
    assert server_env(url, "DB_PATH") == "session.db"
"""
    )
    result = _run(pytester)
    result.assert_outcomes(passed=3)
