"""pytest hooks and fixtures only; all heavy imports happen inside the fixtures.

pytest loads this module in every session through the ``pytest11`` entry point, so at import
time it may touch only pytest and the standard library: httpx, uvicorn, anyio, pendulum and the
sibling packages are imported when a test asks for a fixture that needs them.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Generator, Iterator, Mapping
from typing import TYPE_CHECKING

import pytest

from ._checks import SettingsRecheck, setting_problems, startup_problems
from ._config import BundleConfig, add_options, check_app_importable, child_python_path, read_config
from ._hosted import (
    ServerStartFailed,
    ServerState,
    SettingsOverride,
    build_child_env,
    default_child_env,
    default_settings_override,
    run_server,
)
from ._virtual import wrap_in_virtual_time

if TYPE_CHECKING:
    from fake_sleep import SleepRecorder, VirtualClock, VirtualTime

# sys.path as it was before pytest added rootdir, conftest folders and `pythonpath` entries:
# whatever is added after this point is what the server child needs on its PYTHONPATH.
_BASELINE_SYS_PATH = tuple(sys.path)

_CONFIG = pytest.StashKey[BundleConfig]()
_SERVER = pytest.StashKey[ServerState]()
_VIRTUAL: pytest.StashKey[VirtualTime] = pytest.StashKey()
_RECHECK = pytest.StashKey[SettingsRecheck]()
_OUTPUT_LINES_IN_REPORT = 100


def _config(config: pytest.Config) -> BundleConfig:
    return config.stash[_CONFIG]


def _state(config: pytest.Config) -> ServerState:
    return config.stash[_SERVER]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[_CONFIG] = read_config(config)
    worker = getattr(config, "workerinput", {}).get("workerid", "")
    config.stash[_SERVER] = ServerState(worker=worker)
    config.stash[_RECHECK] = SettingsRecheck()
    if not _is_xdist_worker(config):
        config.pluginmanager.register(_WorkerUsageErrors(), "pytest-bundle-worker-usage-errors")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    bundle = _config(session.config)
    check_app_importable(bundle, child_python_path(session.config, _BASELINE_SYS_PATH))
    if not _is_xdist_worker(session.config):  # a worker checks after its collection
        _stop_on(setting_problems(bundle))


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _stop_on(problems: list[str]) -> None:
    if problems:
        raise pytest.UsageError("\n".join(problems))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Check what needs the user's modules, now imported; a problem stops the session here.

    An xdist worker cannot raise a usage error (its controller would report an internal error),
    so it reports a failed collection instead, runs nothing, and the controller exits with 4.
    """
    problems = startup_problems(_config(session.config))
    session.config.stash[_RECHECK].mark_checked()
    if not problems or not _is_xdist_worker(session.config):
        _stop_on(problems)
        return
    report = pytest.CollectReport(
        "", "failed", "\n".join(problems), [], pytest_bundle_usage_error=True
    )
    session.config.hook.pytest_collectreport(report=report)
    session.items.clear()


class _WorkerUsageErrors:
    """On an xdist controller: a worker's start-up problem makes the run a usage error (4)."""

    seen = False

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if getattr(report, "pytest_bundle_usage_error", False):
            self.seen = True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.seen:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR


def pytest_report_header(config: pytest.Config) -> list[str]:
    bundle = _config(config)
    return [
        f"pytest-bundle: hosted_api_app={bundle.app} (prefix {bundle.prefix or '/'}), "
        f"url setting={bundle.url_setting}"
        + (", shared server under xdist" if bundle.shared else "")
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the server's output to the report of a failing test that used the server.

    When the server could not start, only the test that reported it gets the output.
    """
    report = yield
    if not report.failed:
        return report
    state = _state(item.config)
    if state.failed_test is not None:
        wanted = item.nodeid == state.failed_test and call.when == "setup"
    else:
        wanted = "hosted_api_server" in getattr(item, "fixturenames", ())
    if wanted and state.output is not None:
        try:
            lines = state.output().splitlines()[-_OUTPUT_LINES_IN_REPORT:]
        except Exception as error:  # the report must not fail because the log is gone
            lines = [f"(output unavailable: {error})"]
        if lines:
            report.sections.append(
                (f"hosted API server output (last {len(lines)} lines)", "\n".join(lines))
            )
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Report a server start failure in full once; later tests point to that first report."""
    state = _state(item.config)
    state.current_test = item.nodeid
    try:
        return (yield)
    except ServerStartFailed:
        if state.failed_test is None:
            state.failed_test = item.nodeid
        if state.failed_test == item.nodeid:
            raise
    pytest.fail(state.short_failure(), pytrace=False)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail clearly when a shared server's owner died; run virtual_clock tests in virtual time."""
    if "hosted_api_server" in getattr(item, "fixturenames", ()):
        state = _state(item.config)
        if state.owner_alive is not None and not state.owner_alive():
            pytest.fail(
                f"hosted_api_server: the shared server is gone: {state.owner_description}, which "
                "started it, has died (the server stops with the process that started it).",
                pytrace=False,
            )
    block = item.stash.get(_VIRTUAL, None)
    if block is None or not isinstance(item, pytest.Function):
        return (yield)
    original = item.obj
    item.obj = wrap_in_virtual_time(original, block)
    try:
        return (yield)
    finally:
        item.obj = original


# --- configuration fixtures (override them in a conftest) ---------------------------------------


@pytest.fixture(scope="session")
def hosted_api_env() -> Mapping[str, str | None]:
    """The environment merged over ``os.environ`` for the hosted server (None removes a key).

    Must be a mapping of names to strings; the ``hosted_api_server_env`` option is merged over
    it. Default: every registered settings-override setting as the tests currently see it, so the
    server uses the same settings (and database) as the tests.
    """
    return default_child_env()


@pytest.fixture(scope="session")
def hosted_api_settings_override() -> SettingsOverride:
    """A callable taking ``{setting name: string value}`` and returning a context manager.

    Default: ``settings_override.temporary_settings(..., mirror_environ=True)`` for registered
    settings, and a process-environment override for names no registry knows.
    """
    return default_settings_override()


# --- the documented fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def hosted_api_server(
    request: pytest.FixtureRequest,
    hosted_api_env: object,  # checked: an override may return anything
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """Run the configured ASGI app in a uvicorn subprocess; yield its API URL.

    The URL is ``http://127.0.0.1:<port><prefix>``. The server starts once per session (per
    xdist worker, or once for all workers with ``--hosted-api-shared``) and stops at its end.
    """
    bundle = _config(request.config)
    state = _state(request.config)
    _check_late(request)
    env = build_child_env(
        bundle, hosted_api_env, child_python_path(request.config, _BASELINE_SYS_PATH), state
    )
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    log_dir = tmp_path_factory.mktemp("hosted-api-server")
    if bundle.shared and worker:
        from ._sharing import shared_server

        shared_dir = tmp_path_factory.getbasetemp().parent
        with shared_server(bundle, env, state, shared_dir, worker, log_dir) as url:
            yield url
    else:
        with run_server(bundle, env, state, log_dir) as url:
            yield url


@pytest.fixture
def use_hosted_api_server(
    request: pytest.FixtureRequest,
    hosted_api_server: str,
    hosted_api_settings_override: SettingsOverride,
) -> Iterator[str]:
    """For one test, point the URL setting at the hosted server and apply the extra settings.

    Both apply in the test process only (where the client runs); the server never sees them.
    """
    bundle = _config(request.config)
    _check_late(request)
    updates = {bundle.url_setting: hosted_api_server, **bundle.extra_settings}
    with hosted_api_settings_override(updates):
        yield hosted_api_server


def _check_late(request: pytest.FixtureRequest) -> None:
    """Check settings registered after collection; a problem fails the test, stops the session."""
    problems = request.config.stash[_RECHECK].problems(_config(request.config))
    if problems:
        request.session.shouldstop = "pytest-bundle: a misconfigured option (see the error above)"
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _hosted_api_autouse(request: pytest.FixtureRequest) -> None:
    """With ``hosted_api_autouse = true`` every test runs under use_hosted_api_server."""
    if _config(request.config).autouse:
        request.getfixturevalue("use_hosted_api_server")


@pytest.fixture
def mock_anyio_sleep(request: pytest.FixtureRequest) -> Iterator[SleepRecorder]:
    """Fake ``anyio.sleep`` (and the configured targets); shift ``pendulum.now`` by the sleeps.

    Yields a recorder with the ``unittest.mock.AsyncMock`` assertion API plus
    ``assert_sleeps_for(seconds, extra_tolerance=0)``.
    """
    from fake_sleep import DEFAULT_CLOCKS, patch_sleep

    from ._virtual import refuse_both

    refuse_both(request)  # with virtual_clock, the mock would silently win
    bundle = _config(request.config)
    # Unless configured, pass fake-sleep's own default: it skips pendulum.now without pendulum.
    clocks = bundle.sleep_clocks if "mock_anyio_sleep_clocks" in bundle.given else DEFAULT_CLOCKS
    with patch_sleep(targets=bundle.sleep_targets, clocks=clocks) as recorder:
        yield recorder


@pytest.fixture
def virtual_clock(request: pytest.FixtureRequest) -> VirtualClock:
    """Run this async test function in virtual time; the value is its ``VirtualClock``.

    The test's other fixtures set up and tear down in real time; the test body (and background
    tasks running while it runs) sees every sleep and timeout complete at once, in deadline order.
    """
    from ._virtual import refuse_both

    refuse_both(request)  # with mock_anyio_sleep, the mock would silently win
    function = getattr(request.node, "obj", None)
    if function is None or not inspect.iscoroutinefunction(function):
        pytest.fail(
            "virtual_clock works only in async test functions (anyio or pytest-asyncio); "
            f"{request.node.nodeid} is not one.",
            pytrace=False,
        )
    from fake_sleep import virtual_time

    block = virtual_time(end=_config(request.config).virtual_clock_end)
    request.node.stash[_VIRTUAL] = block
    return block.clock
