"""The plugin's options: ini keys, command-line twins, validation at start-up, the header."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SHOW_CONFIG = """
import json

def test_show(request):
    from pytest_bundle.plugin import _CONFIG
    bundle = request.config.stash[_CONFIG]
    print("CONFIG=" + json.dumps({
        "app": bundle.app, "factory": bundle.factory, "prefix": bundle.prefix,
        "health": bundle.full_health_path, "startup": bundle.startup_timeout,
        "shutdown": bundle.shutdown_timeout, "url_setting": bundle.url_setting,
        "extra": bundle.extra_settings, "server_env": bundle.server_env,
        "autouse": bundle.autouse, "shared": bundle.shared, "pool_size": bundle.pool_size,
        "targets": list(bundle.sleep_targets), "clocks": list(bundle.sleep_clocks),
        "end": bundle.virtual_clock_end,
    }))
"""


def _shown(result: pytest.RunResult) -> dict[str, object]:
    import json

    for line in result.outlines:
        if "CONFIG=" in line:
            return dict(json.loads(line.split("CONFIG=", 1)[1]))
    raise AssertionError("the test did not print its config:\n" + result.stdout.str())


def test_defaults_serve_the_demo_app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SHOW_CONFIG)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    assert _shown(result) == {
        "app": "server_launcher.demo:create_app",
        "factory": True,
        "prefix": "/api",
        "health": "/api/health",
        "startup": 20.0,
        "shutdown": 10.0,
        "url_setting": "API_URL",
        "extra": {},
        "server_env": {},
        "autouse": False,
        "shared": False,
        "pool_size": 4,
        "targets": ["anyio.sleep"],
        "clocks": ["pendulum.now"],
        "end": None,
    }


def test_ini_options_are_read(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        hosted_api_app = server_launcher.demo:create_app
        hosted_api_factory = false
        hosted_api_prefix = /v2/
        hosted_api_health_path = /ready
        hosted_api_startup_timeout = 5
        hosted_api_shutdown_timeout = 2.5
        hosted_api_url_setting = MYAPP_API_URL
        hosted_api_extra_settings =
            MYAPP_CSRF_ENABLED=false
            MYAPP_MODE = test=1
        hosted_api_server_env =
            MYAPP_CSRF_ENABLED=false
            MYAPP_ALLOWED = a, b,c
        hosted_api_shared = yes
        hosted_api_pool_size = 2
        mock_anyio_sleep_targets =
            anyio.sleep, anyio.sleep_forever
            asyncio.sleep
        mock_anyio_sleep_clocks = time.time
        virtual_clock_end = 3600
        """
    )
    pytester.makepyfile(SHOW_CONFIG)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    shown = _shown(result)
    assert shown["factory"] is False
    assert shown["prefix"] == "/v2"
    assert shown["health"] == "/v2/ready"
    assert (shown["startup"], shown["shutdown"]) == (5.0, 2.5)
    assert shown["url_setting"] == "MYAPP_API_URL"
    assert shown["extra"] == {"MYAPP_CSRF_ENABLED": "false", "MYAPP_MODE": "test=1"}
    assert shown["server_env"] == {"MYAPP_CSRF_ENABLED": "false", "MYAPP_ALLOWED": "a, b,c"}
    assert shown["shared"] is True
    assert shown["pool_size"] == 2
    assert shown["targets"] == ["anyio.sleep", "anyio.sleep_forever", "asyncio.sleep"]
    assert shown["clocks"] == ["time.time"]
    assert shown["end"] == 3600.0


def test_command_line_wins_over_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        hosted_api_prefix = /v2
        hosted_api_shared = true
        hosted_api_factory = false
        hosted_api_startup_timeout = 5
        hosted_api_pool_size = 2
        """
    )
    pytester.makepyfile(SHOW_CONFIG)
    result = pytester.runpytest(
        "-s",
        "--hosted-api-pool-size=7",
        "--hosted-api-prefix=/v3",
        "--no-hosted-api-shared",
        "--hosted-api-factory",
        "--hosted-api-startup-timeout",
        "7",
        "--hosted-api-extra-settings=A=1,B=2",
        # a comma not followed by NAME= belongs to the value; the option can be repeated
        "--hosted-api-server-env=HOSTS=a,b, MODE=x",
        "--hosted-api-server-env",
        "LIST=1,2",
        "--mock-anyio-sleep-targets=anyio.sleep,asyncio.sleep",
    )
    result.assert_outcomes(passed=1)
    shown = _shown(result)
    assert shown["prefix"] == "/v3"
    assert shown["shared"] is False
    assert shown["factory"] is True
    assert shown["startup"] == 7.0
    assert shown["pool_size"] == 7
    assert shown["extra"] == {"A": "1", "B": "2"}
    assert shown["server_env"] == {"HOSTS": "a,b", "MODE": "x", "LIST": "1,2"}
    assert shown["targets"] == ["anyio.sleep", "asyncio.sleep"]


def test_boolean_flag_never_swallows_a_test_path(pytester: pytest.Pytester) -> None:
    # Were the flag to take a value, it would eat "test_one.py" and both files would run.
    pytester.makepyfile(
        test_one="def test_one():\n    pass\n", test_two="def test_two():\n    pass\n"
    )
    result = pytester.runpytest("--hosted-api-shared", "test_one.py")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("ini", "expected"),
    [
        ("hosted_api_startup_timeout = soon", "hosted_api_startup_timeout (ini)"),
        ("hosted_api_shutdown_timeout = -1", "positive, finite number"),
        ("hosted_api_shared = maybe", "expected true or false, got 'maybe'"),
        ("hosted_api_extra_settings =\n    NOT A SETTING", "expected NAME=value"),
        (
            "hosted_api_server_env =\n    A=1, B=2",
            "looks like several NAME=value pairs on one line. Write one NAME=value per line in "
            'the ini file; if the value really holds ",NAME=", put it in double quotes: '
            'LABELS="tier=web,REGION=eu" (taken literally).',
        ),
        ("hosted_api_server_env = =1", "hosted_api_server_env (ini)"),
        (
            "hosted_api_server_env =\n    MODE=a\n    MODE=b",
            "hosted_api_server_env (ini) / --hosted-api-server-env (command line): MODE is given "
            "twice; give each name once",
        ),
        (
            "hosted_api_extra_settings =\n    FLAG=1\n    FLAG=1",
            "hosted_api_extra_settings (ini) / --hosted-api-extra-settings (command line): FLAG "
            "is given twice",
        ),
        ("hosted_api_app = just_a_module", "expected 'package.module:attribute'"),
        ("hosted_api_prefix = api", "expected a URL path starting with '/'"),
        ("mock_anyio_sleep_targets = not a path", "expected dotted paths"),
        ("mock_anyio_sleep_clocks = time.time; time.monotonic", "mock_anyio_sleep_clocks (ini)"),
        ("virtual_clock_end = forever", "virtual_clock_end (ini)"),
        (
            "hosted_api_pool_size = 0",
            "hosted_api_pool_size (ini) / --hosted-api-pool-size (command line): expected a "
            "positive whole number (how many servers may run at once), got '0'.",
        ),
        ("hosted_api_pool_size = many", "hosted_api_pool_size (ini)"),
        ("hosted_api_pool_size = 1.5", "expected a positive whole number"),
        (
            "hosted_api_app = surely_missing_module_xyz.app:create_app",
            "cannot find module 'surely_missing_module_xyz'",
        ),
    ],
)
def test_bad_values_are_one_usage_error(pytester: pytest.Pytester, ini: str, expected: str) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_a="def test_a():\n    pass\n", test_b="def test_b():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if expected in line]
    assert len(errors) == 1, result.errlines
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize("value", ["-1", "two", ""])
def test_a_bad_pool_size_on_the_command_line_is_one_usage_error(
    pytester: pytest.Pytester, value: str
) -> None:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest(f"--hosted-api-pool-size={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if "--hosted-api-pool-size" in line]
    assert len(errors) == 1, result.errlines
    assert "expected a positive whole number" in errors[0]


def test_the_hosted_api_env_marker_is_registered(pytester: pytest.Pytester) -> None:
    # --strict-markers accepts it; a test that asks for no server starts none.
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.hosted_api_env(MODULE_LEVEL="1")

        @pytest.mark.hosted_api_env(FEATURE_X="on", OTHER=None)
        class TestFlags:
            def test_plain(self):
                pass
        """
    )
    result = pytester.runpytest("--strict-markers", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert "hosted API server" not in result.stdout.str()
    markers = pytester.runpytest("--markers").stdout.str()
    assert "@pytest.mark.hosted_api_env(NAME='value', ...)" in markers


def test_app_module_found_through_pythonpath_ini(pytester: pytest.Pytester) -> None:
    package = pytester.path / "src" / "shopapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "web.py").write_text("def create_app(): ...\n")
    pytester.makeini(
        """
        [pytest]
        pythonpath = src
        hosted_api_app = shopapp.web:create_app
        """
    )
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_report_header_names_app_and_url_setting(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nhosted_api_url_setting = SHOP_API_URL\n")
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "pytest-bundle: hosted_api_app=server_launcher.demo:create_app*"
            "url setting=SHOP_API_URL, server pool size 4"
        ]
    )


def test_help_lists_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    for name in (
        "--hosted-api-app",
        "--no-hosted-api-factory",
        "--hosted-api-shared",
        "--no-hosted-api-autouse",
        "--mock-anyio-sleep-targets",
        "--virtual-clock-end",
        "hosted_api_extra_settings",
        "--hosted-api-server-env",
        "hosted_api_server_env",
        "--hosted-api-pool-size",
        "hosted_api_pool_size",
    ):
        assert name in text


def test_a_double_quoted_pair_value_is_taken_literally(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nhosted_api_server_env =\n"
        '    LABELS="tier=web,REGION=eu"\n    PLAIN=a, b\n    EMPTY=""\n'
    )
    pytester.makepyfile(SHOW_CONFIG)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    assert _shown(result)["server_env"] == {
        "LABELS": "tier=web,REGION=eu",
        "PLAIN": "a, b",
        "EMPTY": "",
    }
    # the same on the command line: a comma inside the quotes does not start a new pair
    result = pytester.runpytest("-s", '--hosted-api-server-env=A="x,B=y",C=z')
    result.assert_outcomes(passed=1)
    assert _shown(result)["server_env"] == {"A": "x,B=y", "C": "z"}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            "hosted_api_ap = myapp:create_app",
            "hosted_api_ap (ini): not an option of pytest-bundle; did you mean 'hosted_api_app'?",
        ),
        ("mock_anyio_sleep_target = anyio.sleep", "did you mean 'mock_anyio_sleep_targets'?"),
        ("virtual_clock_ends = 10", "did you mean 'virtual_clock_end'?"),
    ],
    ids=["hosted_api_ap", "mock_anyio_sleep_target", "virtual_clock_ends"],
)
def test_a_misspelt_plugin_option_stops_the_session_naming_the_closest(
    pytester: pytest.Pytester, key: str, expected: str
) -> None:
    pytester.makeini(f"[pytest]\n{key}\n")
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.errlines if expected in line], result.errlines
    assert "passed" not in result.stdout.str()  # nothing ran


def test_other_prefixes_and_known_options_are_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nhosted_api_app = server_launcher.demo:create_app\n")
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
