"""Every misconfiguration stops the session once, at start-up, naming the option and the fix.

Each case runs a real pytest session and checks the exit code, that no test ran, and the
message. Settings registries are process-wide: an in-process session closes the registry it
defined; sessions that run tests against a server run in a subprocess, with the embedded demo
app.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Processes  # type: ignore[import-not-found]


def _details(output: str) -> str:
    """The session's output without its short summary, whose lines repeat each error's first
    line up to the terminal width (so counts would depend on how wide the terminal is)."""
    return output.split("short test summary info", 1)[0]


pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _quiet_pytest_asyncio(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner sessions set pytest-asyncio's loop scope, so that it does not warn it is unset."""
    if importlib.util.find_spec("pytest_asyncio"):
        monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")


ORDER_SETTINGS = """
from settings_override import SettingsRegistry

reg = SettingsRegistry(prefix="ORD_")
API_URL = reg.define("API_URL", str, default="")
FLAG = reg.define("FLAG", bool, default=False)
RETRIES = reg.define("RETRIES", int, default=3)
PIN = reg.define("PIN", int, default=0, secret=True)
PORT = reg.define("PORT", int, default=0)
"""

# A test module that imports the settings (so the registry exists only after collection) and
# leaves a mark when any of its tests runs.
TESTS_USING_SETTINGS = """
import pathlib

import ordersettings


def test_one():
    pathlib.Path("ran.txt").write_text("ran")


def test_two():
    pathlib.Path("ran.txt").write_text("ran")
"""


# In-process sessions share this process's settings index: the inner session closes its
# registry when it ends, so that nothing is left registered here.
CLOSE_REGISTRY = """
import sys


def pytest_unconfigure():
    module = sys.modules.get("ordersettings")
    if module is not None:
        module.reg.close()
"""


def _run(pytester: pytest.Pytester, ini: str, conftest: str = "") -> pytest.RunResult:
    """An in-process session whose test module imports the settings (during collection)."""
    pytester.makepyfile(ordersettings=ORDER_SETTINGS, test_orders=TESTS_USING_SETTINGS)
    pytester.makeconftest(conftest + CLOSE_REGISTRY)
    pytester.makeini("[pytest]\n" + ini)
    result = pytester.runpytest("-p", "no:randomly")
    settings_override = sys.modules.get("settings_override")
    if settings_override is not None:
        assert not any(settings_override.is_registered(name) for name in ("ORD_FLAG", "ORD_PIN"))
    return result


def _assert_stopped(pytester: pytest.Pytester, result: pytest.RunResult, *expected: str) -> None:
    """Exit 4 (usage error), no test ran, one error line holds every expected text."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "ran.txt").exists()
    errors = [line for line in result.errlines if all(text in line for text in expected)]
    assert len(errors) == 1, result.errlines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        (
            "hosted_api_url_setting = ORD_API_ULR\n",
            ["hosted_api_url_setting (ini)", "'ORD_API_ULR'", "did you mean 'ORD_API_URL'?"],
        ),
        (
            "hosted_api_url_setting = ORD_API_URL\nhosted_api_extra_settings =\n"
            "    ORD_FALG=true\n",
            ["hosted_api_extra_settings (ini)", "'ORD_FALG'", "did you mean 'ORD_FLAG'?"],
        ),
        (
            "hosted_api_server_env =\n    ord_retries=5\n",
            ["hosted_api_server_env (ini)", "'ord_retries'", "did you mean 'ORD_RETRIES'?"],
        ),
    ],
    ids=["url-setting", "extra-settings", "server-env"],
)
def test_a_misspelt_setting_name_stops_the_session_after_collection(
    pytester: pytest.Pytester, ini: str, expected: list[str]
) -> None:
    result = _run(pytester, ini)
    _assert_stopped(pytester, result, *expected)


def test_a_misspelt_name_known_at_session_start_stops_before_collection(
    pytester: pytest.Pytester,
) -> None:
    # The conftest imports the settings: the name is checked before any test module is
    # collected (this one would raise if it were).
    pytester.makepyfile(test_never_collected="raise RuntimeError('collected')\n")
    result = _run(pytester, "hosted_api_url_setting = ORD_API_ULR\n", "import ordersettings\n")
    _assert_stopped(pytester, result, "hosted_api_url_setting", "did you mean 'ORD_API_URL'?")
    assert "collected" not in result.stdout.str()


def test_a_plain_environment_variable_is_not_a_misspelling(pytester: pytest.Pytester) -> None:
    # DEBUG resembles no registered name closely enough, ORD_API_URL is registered: both are
    # applied for the test and gone after it.
    pytester.makepyfile(
        ordersettings=ORDER_SETTINGS,
        test_plain="""
import os

import ordersettings


def test_applied(use_hosted_api_server):
    assert os.environ["DEBUG"] == "1"
    assert ordersettings.API_URL.value() == use_hosted_api_server
    assert ordersettings.FLAG.value() is True


def test_gone_after():
    assert "DEBUG" not in os.environ
    assert ordersettings.API_URL.value() == ""
""",
    )
    pytester.makeini(
        "[pytest]\nhosted_api_url_setting = ORD_API_URL\n"
        "hosted_api_extra_settings =\n    DEBUG=1\n    ORD_FLAG=yes\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        (
            "hosted_api_extra_settings =\n    ORD_FLAG=maybe\n",
            [
                "hosted_api_extra_settings (ini)",
                "ORD_FLAG='maybe'",
                "(bool)",
                "expected a boolean",
            ],
        ),
        (
            "hosted_api_server_env =\n    ORD_RETRIES=several\n",
            ["hosted_api_server_env (ini)", "ORD_RETRIES='several'", "expected an integer"],
        ),
        (
            # a secret setting's value is never shown
            "hosted_api_extra_settings =\n    ORD_PIN=hunter2\n",
            ["hosted_api_extra_settings (ini)", "ORD_PIN=***", "expected an integer"],
        ),
        (
            # two pairs on one line read as one value: the error says to write one per line
            "hosted_api_extra_settings =\n    ORD_RETRIES=5, other=1\n",
            ["ORD_RETRIES='5, other=1'", "write one NAME=value per line"],
        ),
        (
            "hosted_api_url_setting = ORD_PORT\n",
            ["hosted_api_url_setting (ini)", "ORD_PORT is int", "cannot hold the server's URL"],
        ),
    ],
    ids=["bool", "int-server-env", "secret", "two-per-line", "url-setting-type"],
)
def test_a_value_that_does_not_fit_its_setting_stops_the_session(
    pytester: pytest.Pytester, ini: str, expected: list[str]
) -> None:
    result = _run(pytester, ini)
    _assert_stopped(pytester, result, *expected)
    assert "hunter2" not in result.stdout.str() + result.stderr.str()


SLEEPERS = """
import anyio

async def sleep(delay):
    await anyio.sleep(delay)

def not_async(delay):
    pass

clock = 42
"""

BROKEN = """
raise RuntimeError("broken at import")
"""

TESTS_USING_SLEEP = """
import pathlib

import pytest


@pytest.mark.anyio
async def test_sleeps(mock_anyio_sleep):
    pathlib.Path("ran.txt").write_text("ran")
"""


@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        (
            "mock_anyio_sleep_targets = anyio.slep",
            ["mock_anyio_sleep_targets (ini)", "'anyio.slep'", "did you mean 'anyio.sleep'?"],
        ),
        (
            "mock_anyio_sleep_targets = anyoi.sleep",
            ["no module named 'anyoi'", "did you mean 'anyio.sleep'?"],
        ),
        (
            "mock_anyio_sleep_targets = sleepers.slep",
            ["'sleepers.slep'", "did you mean 'sleepers.sleep'?"],
        ),
        (
            "mock_anyio_sleep_targets = sleepers.not_async",
            ["'sleepers.not_async'", "not an async function"],
        ),
        (
            "mock_anyio_sleep_clocks = pendulum.nw",
            ["mock_anyio_sleep_clocks (ini)", "did you mean 'pendulum.now'?"],
        ),
        (
            "mock_anyio_sleep_clocks = sleepers.clock",
            ["mock_anyio_sleep_clocks (ini)", "'sleepers.clock'", "not callable"],
        ),
        (
            "mock_anyio_sleep_targets = anyio.sleep, anyio.sleep",
            ["'anyio.sleep' is listed twice"],
        ),
        (
            "mock_anyio_sleep_targets = broken.sleep",
            ["'broken.sleep'", "importing 'broken' failed: RuntimeError: broken at import"],
        ),
    ],
    ids=[
        "attribute",
        "module",
        "user-module",
        "not-async",
        "clock",
        "clock-value",
        "twice",
        "broken-module",
    ],
)
def test_a_sleep_target_or_clock_that_does_not_resolve_stops_the_session(
    pytester: pytest.Pytester, ini: str, expected: list[str]
) -> None:
    pytester.makepyfile(sleepers=SLEEPERS, broken=BROKEN, test_sleep=TESTS_USING_SLEEP)
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest("-p", "no:randomly")  # in-process: no registry involved
    _assert_stopped(pytester, result, *expected)


def test_comma_separated_targets_are_read_and_faked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        sleepers=SLEEPERS,
        test_sleep="""
import pytest

import sleepers


@pytest.mark.anyio
async def test_both_faked(mock_anyio_sleep):
    await sleepers.sleep(100)
    import anyio
    await anyio.sleep(5)
    mock_anyio_sleep.assert_sleeps([100, 5])
""",
    )
    pytester.makeini(
        "[pytest]\nmock_anyio_sleep_targets = anyio.sleep, sleepers.sleep\n"
        "mock_anyio_sleep_clocks =\n    time.time\n    pendulum.now\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 1, result.stdout.str()
    assert set(outcomes) == {"passed"}, result.stdout.str()


def test_without_pendulum_the_default_clock_is_skipped_and_a_given_one_refused(
    pytester: pytest.Pytester,
) -> None:
    # The inner session sees no pendulum (None in sys.modules makes its import fail).
    pytester.makeconftest("import sys\nsys.modules['pendulum'] = None\n")
    pytester.makepyfile(
        test_sleep="""
import anyio
import pytest


@pytest.mark.anyio
async def test_sleeps(mock_anyio_sleep):
    await anyio.sleep(3)
    mock_anyio_sleep.assert_awaited_once_with(3)
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert set(outcomes) == {"passed"}, result.stdout.str()

    pytester.makeini("[pytest]\nmock_anyio_sleep_clocks = pendulum.now\n")
    refused = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*mock_anyio_sleep_clocks (ini)*'pendulum.now'*pendulum*"])


# --- hosted_api_extra_settings reach the tests, hosted_api_server_env the server ---------------


def test_extra_settings_reach_the_tests_and_server_env_the_server(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
import pytest


@pytest.fixture(scope="session")
def hosted_api_env():
    return {"SHOP_MODE": "from-the-fixture", "SHOP_REGION": "eu-test"}
"""
    )
    pytester.makepyfile(
        test_split="""
import os

import httpx


def server_sees(url, name):
    return httpx.get(f"{url}/env/{name}").json()["value"]


def test_each_reaches_its_side(use_hosted_api_server):
    # hosted_api_extra_settings: the test process, not the server
    assert os.environ["CLIENT_FLAG"] == "on"
    assert server_sees(use_hosted_api_server, "CLIENT_FLAG") is None
    # hosted_api_server_env: the server, over hosted_api_env, not the tests
    assert server_sees(use_hosted_api_server, "SHOP_MODE") == "server-only, really"
    assert server_sees(use_hosted_api_server, "SHOP_REGION") == "eu-test"
    assert "SHOP_MODE" not in os.environ


def test_nothing_is_left_in_the_test_process():
    assert "CLIENT_FLAG" not in os.environ
    assert "SHOP_MODE" not in os.environ
"""
    )
    pytester.makeini(
        "[pytest]\nhosted_api_extra_settings =\n    CLIENT_FLAG=on\n"
        "hosted_api_server_env =\n    SHOP_MODE=server-only, really\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    result.assert_outcomes(passed=2)
    # The same from the command line, which wins over the ini file.
    again = pytester.runpytest_subprocess(
        "-p",
        "no:randomly",
        "--hosted-api-server-env=SHOP_MODE=server-only, really",
        "--hosted-api-extra-settings",
        "CLIENT_FLAG=on",
        timeout=60,
    )
    again.assert_outcomes(passed=2)


def test_help_says_which_option_reaches_the_tests_and_which_the_server(
    pytester: pytest.Pytester,
) -> None:
    text = " ".join(pytester.runpytest("--help").stdout.str().split())
    assert "use_hosted_api_server applies in the TEST process" in text
    assert "the server does not see them" in text
    assert "for the hosted SERVER process only" in text
    assert "the tests do not see them" in text


# --- hosted_api_env overrides that return the wrong thing ---------------------------------------


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ("None", "your hosted_api_env returned NoneType: None."),
        ("['SHOP_MODE=x']", "your hosted_api_env returned list: ['SHOP_MODE=x']."),
        ("{'PORT': 8000}", "your hosted_api_env maps 'PORT' to int 8000"),
    ],
    ids=["none", "list", "int-value"],
)
def test_a_hosted_api_env_that_is_not_a_mapping_of_strings_is_named(
    pytester: pytest.Pytester, returned: str, expected: str
) -> None:
    pytester.makeconftest(
        f"""
import pytest


@pytest.fixture(scope="session")
def hosted_api_env():
    return {returned}
"""
    )
    pytester.makepyfile(
        test_env="""
def test_one(hosted_api_server):
    pass


def test_two(hosted_api_server):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    result.assert_outcomes(errors=2)
    text = result.stdout.str()
    details = _details(text)
    assert details.count("hosted_api_env must return a mapping of environment names to") == 1
    assert details.count(expected) == 1
    assert "not iterable" not in text
    assert "hosted_api_server could not start; see the first error, in test_env.py::test_one" in (
        text
    )


# --- a broken app: the failure once, then one short line per test -------------------------------


def test_a_broken_app_is_reported_once_and_started_once(
    pytester: pytest.Pytester, tmp_path: Path, processes: Processes
) -> None:
    starts = tmp_path / "starts.txt"
    name = f"brokenapp_{uuid.uuid4().hex[:8]}"  # a marker to find a leftover server by
    pytester.makepyfile(
        **{
            name: f"""
import pathlib

with pathlib.Path({str(starts)!r}).open("a") as log:
    log.write("import\\n")

raise RuntimeError("database unreachable at start-up")
"""
        }
    )
    pytester.makeini(f"[pytest]\nhosted_api_app = {name}:create_app\n")
    pytester.makepyfile(
        test_many="\n".join(f"def test_{n:02}(hosted_api_server):\n    pass\n" for n in range(50))
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--tb=short", timeout=120)
    result.assert_outcomes(errors=50)
    text = result.stdout.str()
    assert _details(text).count("RuntimeError: database unreachable at start-up") == 1, text
    assert _details(text).count("hosted_api_server could not start:") == 1
    assert _details(text).count("hosted API server output") == 1
    pointer = "hosted_api_server could not start; see the first error, in test_many.py::test_00."
    assert _details(text).count(pointer) == 49
    assert len(result.outlines) < 400, f"{len(result.outlines)} lines"
    # The server was not started again for every test, and none is left.
    assert starts.read_text().count("import") == 1
    if sys.platform.startswith("linux"):
        assert processes.mentioning(name) == []


# --- a registry defined after collection ------------------------------------------------------


def test_a_registry_defined_by_a_fixture_is_checked_when_the_server_fixtures_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(ordersettings=ORDER_SETTINGS)
    pytester.makeconftest(
        """
import pytest


@pytest.fixture(scope="session", autouse=True)
def settings():
    import ordersettings  # the registry exists only from here on
    yield
    ordersettings.reg.close()
"""
    )
    pytester.makepyfile(
        test_late="""
def test_first(use_hosted_api_server):
    pass


def test_second(use_hosted_api_server):
    pass
"""
    )
    pytester.makeini("[pytest]\nhosted_api_url_setting = ORD_API_ULR\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    text = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, text
    result.assert_outcomes(errors=1)  # test_second never ran
    assert _details(text).count("did you mean 'ORD_API_URL'?") == 1
    result.stdout.fnmatch_lines(["*Interrupted: pytest-bundle: a misconfigured option*"])


def test_an_in_process_session_leaves_no_setting_or_variable_behind(
    pytester: pytest.Pytester,
) -> None:
    # In-process: the inner session shares this process's environment and settings index.
    pytester.makepyfile(
        test_inner="""
import os


def test_uses(use_hosted_api_server):
    assert os.environ["INNER_ONLY_FLAG"] == "1"
"""
    )
    pytester.makeini("[pytest]\nhosted_api_extra_settings =\n    INNER_ONLY_FLAG=1\n")
    before = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"} == before
    settings_override = sys.modules.get("settings_override")
    if settings_override is not None:
        assert not settings_override.is_registered("INNER_ONLY_FLAG")


# --- hosted_api_env markers: checked after collection, before any server starts ----------------


@pytest.mark.parametrize(
    ("marked", "expected"),
    [
        (
            "@pytest.mark.hosted_api_env(ORD_FALG='true')\ndef test_flag(use_hosted_api_server):",
            [
                "test_marked.py::test_flag: @pytest.mark.hosted_api_env:",
                "'ORD_FALG' is not a registered setting",
                "did you mean 'ORD_FLAG'?",
            ],
        ),
        (
            "@pytest.mark.hosted_api_env(ORD_FLAG='maybe')\nclass TestFlags:\n"
            "    def test_flag(self, use_hosted_api_server):",
            [
                "test_marked.py::TestFlags: @pytest.mark.hosted_api_env:",
                "ORD_FLAG='maybe' does not fit the registered setting ORD_FLAG (bool)",
            ],
        ),
        (
            "pytestmark = pytest.mark.hosted_api_env(ORD_PIN='hunter2')\n"
            "def test_pin(use_hosted_api_server):",
            ["test_marked.py: @pytest.mark.hosted_api_env:", "ORD_PIN=***", "expected an integer"],
        ),
        (
            "@pytest.mark.hosted_api_env(ORD_RETRIES=5)\n"
            "@pytest.mark.parametrize('n', [1, 2])\ndef test_retries(use_hosted_api_server, n):",
            [
                "test_marked.py::test_retries: @pytest.mark.hosted_api_env:",
                "ORD_RETRIES=5 is int, but environment values are strings",
                "write ORD_RETRIES='5'",
            ],
        ),
        (
            "@pytest.mark.hosted_api_env('ORD_FLAG=true')\ndef test_flag(use_hosted_api_server):",
            ["test_flag: @pytest.mark.hosted_api_env: takes NAME='value' keyword arguments only"],
        ),
    ],
    ids=["misspelt", "bad-value-on-a-class", "secret-on-a-module", "not-a-string", "positional"],
)
def test_a_bad_hosted_api_env_marker_stops_the_session_before_any_server_starts(
    pytester: pytest.Pytester, marked: str, expected: list[str]
) -> None:
    pytester.makepyfile(ordersettings=ORDER_SETTINGS)
    pytester.makeconftest(CLOSE_REGISTRY)
    body = "        pathlib.Path('ran.txt').write_text('ran')\n"
    if "class" not in marked:
        body = body[4:]
    source = f"import pathlib\n\nimport pytest\n\nimport ordersettings\n\n{marked}\n{body}"
    pytester.makepyfile(test_marked=source)
    result = pytester.runpytest("-p", "no:randomly", "--strict-markers")  # in-process
    _assert_stopped(pytester, result, *expected)
    assert "hunter2" not in result.stdout.str() + result.stderr.str()
    assert "hosted API server" not in result.stdout.str()  # none started


def test_a_bad_marker_under_xdist_stops_the_run_with_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        ordersettings=ORDER_SETTINGS,
        test_marked="""
import pathlib

import pytest

import ordersettings


@pytest.mark.hosted_api_env(ORD_FALG="true")
def test_flag(use_hosted_api_server):
    pathlib.Path("ran.txt").write_text("ran")
""",
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly", timeout=120)
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert not (pytester.path / "ran.txt").exists()
    assert "test_marked.py::test_flag: @pytest.mark.hosted_api_env:" in text
    assert "did you mean 'ORD_FLAG'?" in text
    assert "INTERNALERROR" not in text


def test_a_good_marker_on_registered_settings_reaches_the_server(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        ordersettings=ORDER_SETTINGS,
        test_marked="""
import httpx
import pytest

import ordersettings


@pytest.mark.hosted_api_env(ORD_FLAG="yes", ORD_RETRIES="7", PLAIN_NAME="x")
def test_flag(use_hosted_api_server):
    def seen(name):
        return httpx.get(f"{use_hosted_api_server}/env/{name}").json()["value"]

    assert (seen("ORD_FLAG"), seen("ORD_RETRIES"), seen("PLAIN_NAME")) == ("yes", "7", "x")
    assert ordersettings.API_URL.value() == use_hosted_api_server
    assert ordersettings.FLAG.value() is False  # the marker is for the server, not the tests
""",
    )
    pytester.makeini("[pytest]\nhosted_api_url_setting = ORD_API_URL\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--strict-markers", timeout=60)
    result.assert_outcomes(passed=1)
