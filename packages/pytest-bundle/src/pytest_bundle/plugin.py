"""pytest hooks and fixtures only; all heavy imports happen inside the fixtures.

pytest loads this module in every session through the ``pytest11`` entry point, so at import
time it may touch only pytest and the standard library: httpx, uvicorn, anyio, pendulum and the
sibling packages are imported when a test asks for a fixture that needs them.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import pytest

from ._checks import SettingsRecheck, setting_problems, startup_problems
from ._config import BundleConfig, add_options, check_app_importable, child_python_path, read_config
from ._environment import environment_problems
from ._factory import Holders, HostedApiServerFactory, make_factory
from ._hosted import (
    ServerState,
    SettingsOverride,
    StartStats,
    default_child_env,
    default_settings_override,
)
from ._markers import MARKER, MARKER_HELP, marker_env, marker_problems
from ._reuse import ReuseOptions, add_reuse_options, read_reuse
from ._virtual import (
    VIRTUAL_MARKER_HELP,
    VirtualClockHooks,
    add_grace_hint,
    marker_options,
    virtual_marker_problems,
    wrap_in_virtual_time,
)

if TYPE_CHECKING:
    from fake_sleep import SleepRecorder, VirtualClock, VirtualTime

    from ._errors import HostedApiServerError
    from ._pool import ServerPool
    from ._sharing import RunSessions

# sys.path as it was before pytest added rootdir, conftest folders and `pythonpath` entries:
# whatever is added after this point is what the server child needs on its PYTHONPATH.
_BASELINE_SYS_PATH = tuple(sys.path)

_CONFIG = pytest.StashKey[BundleConfig]()
_STATS = pytest.StashKey[StartStats]()
_HOLDERS = pytest.StashKey[Holders]()
_POOL: pytest.StashKey[ServerPool] = pytest.StashKey()
_USED = pytest.StashKey[list[ServerState]]()  # on an item: the servers its fixtures asked for
_VIRTUAL: pytest.StashKey[VirtualTime] = pytest.StashKey()
_VIRTUAL_GRACE = pytest.StashKey[tuple[float | None, str]]()  # io_grace and where it came from
_RECHECK = pytest.StashKey[SettingsRecheck]()
_OUTPUT_LINES_IN_REPORT = 100
_WORKER_FIGURES = "pytest_bundle_servers"
_REUSE = pytest.StashKey[ReuseOptions]()
_KEPT_NOTES = pytest.StashKey[list[str]]()  # the kept servers' summary lines (xdist: workers')
_WORKER_KEPT = "pytest_bundle_kept"
_PER_TEST = "pytest-bundle-per-test"
# A test whose fixture closure holds one of these can reach a server or the virtual clock.
_NEEDS_PER_TEST = frozenset({"_hosted_api_pool", "virtual_clock", "_hosted_api_autouse"})
# Per test module or class: whether only the plugin defines hosted_api_server there.
_DEFAULT_IS_OURS = pytest.StashKey[dict[str, bool]]()


def _config(config: pytest.Config) -> BundleConfig:
    return config.stash[_CONFIG]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    add_reuse_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.stash[_CONFIG] = read_config(config)
    config.stash[_REUSE] = read_reuse(config)
    config.stash[_KEPT_NOTES] = []
    config.addinivalue_line("markers", MARKER_HELP)
    config.addinivalue_line("markers", VIRTUAL_MARKER_HELP)
    config.pluginmanager.register(VirtualClockHooks(), "pytest-bundle-virtual-clock")
    config.stash[_STATS] = StartStats()
    config.stash[_HOLDERS] = Holders()
    config.stash[_RECHECK] = SettingsRecheck()
    if config.stash[_CONFIG].autouse:
        config.pluginmanager.register(_Autouse(), "pytest-bundle-autouse")
    if not _is_xdist_worker(config):
        config.pluginmanager.register(_WorkerUsageErrors(), "pytest-bundle-worker-usage-errors")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--hosted-api-stop-kept``: stop this rootdir's kept servers and exit, before collection."""
    if not config.getoption("hosted_api_stop_kept", default=False):
        return None
    from ._reuse import state_root, stop_kept

    read_reuse(config)  # a bad option is still an error
    stopped, busy = stop_kept(state_root(config))
    plural = "" if stopped == 1 else "s"
    line = f"pytest-bundle: stopped {stopped} kept hosted API server{plural} of {config.rootpath}"
    if busy:
        holders = ", ".join(str(pid) for pid in sorted(busy) if pid) or "unknown"
        line += f"; left {len(busy)} running, held by a running session (pid {holders})"
    print(line, flush=True)  # before configure: no terminal reporter yet
    return 0


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    bundle = _config(session.config)
    check_app_importable(bundle, child_python_path(session.config, _BASELINE_SYS_PATH))
    if not _is_xdist_worker(session.config):  # a worker checks after its collection
        _stop_on(setting_problems(bundle))
    sessions = _run_sessions(session.config)
    if sessions is not None:  # before collection ends, so before any worker runs a test
        sessions.begin()


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _run_sessions(config: pytest.Config) -> RunSessions | None:
    """Shared mode on an xdist worker: the run's list of workers whose sessions go on."""
    if not (_config(config).shared and _is_xdist_worker(config)):
        return None
    factory = getattr(config, "_tmp_path_factory", None)  # what tmp_path_factory gives
    if factory is None:  # the tmpdir plugin is off: the pool cannot share servers either
        return None
    from ._sharing import RunSessions

    return RunSessions(factory.getbasetemp().parent)  # the pool's shared_dir


def _stop_on(problems: list[str]) -> None:
    if problems:
        raise pytest.UsageError("\n".join(problems))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Check what needs the user's modules, now imported, and the hosted_api_env markers.

    A problem stops the session here, before any server starts. An xdist worker cannot raise a
    usage error (its controller would report an internal error), so it reports a failed
    collection instead, runs nothing, and the controller exits with 4.
    """
    problems = [
        *startup_problems(_config(session.config)),
        *marker_problems(session.items),
        *virtual_marker_problems(session.items),
    ]
    session.config.stash[_RECHECK].mark_checked()
    if not problems or not _is_xdist_worker(session.config):
        _stop_on(problems)
        if _config(session.config).autouse or any(
            not _NEEDS_PER_TEST.isdisjoint(getattr(item, "fixturenames", ()))
            for item in session.items
        ):
            _use_per_test_hooks(session.config)
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
    reuse = config.stash[_REUSE].header()
    return [
        f"pytest-bundle: hosted_api_app={bundle.app} (prefix {bundle.prefix or '/'}), "
        f"url setting={bundle.url_setting}, server pool size {bundle.pool_size}"
        + (", shared servers under xdist" if bundle.shared else ""),
        *([reuse] if reuse else []),
    ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line: how many servers the session started and how long their starts took."""
    config = terminalreporter.config
    stats = config.stash.get(_STATS, None)
    line = stats.summary(_config(config).pool_size) if stats is not None else None
    if line:
        terminalreporter.write_line(line)
    for kept in config.stash.get(_KEPT_NOTES, []):
        terminalreporter.write_line(kept)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker sends its server figures to the controller, which prints the summary.

    In shared mode it also ends its session in the run's list (if its pool did not already):
    a worker that never asked for a server must not keep the owners waiting.
    """
    sessions = _run_sessions(session.config)
    if sessions is not None:
        sessions.end()
    output = getattr(session.config, "workeroutput", None)
    stats = session.config.stash.get(_STATS, None)
    if output is not None and stats is not None:
        output[_WORKER_FIGURES] = stats.as_dict()
        output[_WORKER_KEPT] = session.config.stash.get(_KEPT_NOTES, [])


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On an xdist controller: add a finished worker's server figures."""
    figures = getattr(node, "workeroutput", {}).get(_WORKER_FIGURES)
    stats = node.config.stash.get(_STATS, None)
    if figures and stats is not None:
        stats.add(figures)
    worker = getattr(node, "workerinput", {}).get("workerid", "?")
    notes = node.config.stash.get(_KEPT_NOTES, None)
    if notes is not None:
        notes.extend(
            f"{line} [{worker}]" for line in getattr(node, "workeroutput", {}).get(_WORKER_KEPT, [])
        )


# --- the hooks every test runs, once something of ours is in use ---------------------------


def _use_per_test_hooks(config: pytest.Config, item: pytest.Item | None = None) -> None:
    """Register the per-test hooks (below), once.

    Whether a test can reach a server or the virtual clock is known after collection (its
    fixture closure): a session none of whose tests can pays nothing per test. A fixture of
    ours asked for dynamically (``request.getfixturevalue``) registers them when it is set up;
    ``item`` is then the test being set up, whose setup hook ran without them.
    """
    if config.pluginmanager.has_plugin(_PER_TEST):
        return
    hooks = types.SimpleNamespace(
        pytest_runtest_makereport=_runtest_makereport,
        pytest_runtest_setup=_runtest_setup,
        pytest_runtest_teardown=_runtest_teardown,
        pytest_fixture_setup=_fixture_setup,
        pytest_runtest_call=_runtest_call,
    )
    config.pluginmanager.register(hooks, _PER_TEST)
    if item is not None:
        config.stash[_HOLDERS].start_test(item)


# --- which servers a test uses, and their failures ------------------------------------------


def _note_used(item: pytest.Item, state: ServerState) -> None:
    used = item.stash.setdefault(_USED, [])
    if not any(known is state for known in used):
        used.append(state)


def _servers_of(item: pytest.Item) -> list[ServerState]:
    """The servers a test used: asked for in its fixtures, or held by fixtures it uses."""
    pool = item.config.stash.get(_POOL, None)
    if pool is None:
        return []
    known: list[ServerState] = item.stash.get(_USED, [])
    used = list(known)
    names = set(getattr(item, "fixturenames", ()))
    for state in pool.states():
        if state.used_by & names and not any(known is state for known in used):
            used.append(state)
    return used


def _server_error(error: BaseException) -> HostedApiServerError | None:
    """``error`` if it is a HostedApiServerError (whose module is loaded only once one exists)."""
    module = sys.modules.get("pytest_bundle._errors")
    if module is not None and isinstance(error, module.HostedApiServerError):
        found: HostedApiServerError = error
        return found
    return None


def _reported(item: pytest.Item, error: HostedApiServerError) -> BaseException:
    """How a test reports a server error: in full for the first test that met a start
    failure (and for a death), a one-line pointer for later tests. The output's tail goes in
    the message itself when ``--show-capture=no`` hides the report's sections."""
    state: ServerState | None = error._pytest_bundle_state
    if state is not None:
        if state.failed_test is None:
            state.failed_test = item.nodeid
        if state.failed_test != item.nodeid:
            return pytest.fail.Exception(state.short_failure(), pytrace=False)
    tail_inline = item.config.getoption("showcapture", "all") == "no"
    return pytest.fail.Exception(error.brief(tail_inline=tail_inline), pytrace=False)


@pytest.hookimpl(wrapper=True)
def _runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach each used server's output to the report of a failing test, naming the server,
    and the io_grace hint to a failed virtual_clock test's.

    When a server could not start, only the test that reported it gets its output.
    """
    __tracebackhide__ = True
    report = yield
    if not report.failed:
        return report
    for state in _servers_of(item):
        if state.failed_test is not None:
            if item.nodeid != state.failed_test or call.when == "teardown":
                continue
        elif state.failure is not None:
            continue
        if state.output is None:
            continue
        try:
            lines = state.output().splitlines()[-_OUTPUT_LINES_IN_REPORT:]
        except Exception as error:  # the report must not fail because the log is gone
            lines = [f"(output unavailable: {error})"]
        if lines:
            which = f", server with {state.label}" if state.label else ""
            report.sections.append(
                (f"hosted API server output{which} (last {len(lines)} lines)", "\n".join(lines))
            )
    add_grace_hint(report, call, item.stash.get(_VIRTUAL_GRACE, None))
    return report


# trylast: inside logging's and capture's wrappers, as when these were module-level hooks (the
# plugin module is registered before them); an error raised here must find them set up.
@pytest.hookimpl(wrapper=True, trylast=True)
def _runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Report a server start failure in full once; later tests point to that first report."""
    __tracebackhide__ = True
    item.config.stash[_HOLDERS].start_test(item)
    try:
        pool = item.config.stash.get(_POOL, None)
        if pool is not None and "hosted_api_server" in getattr(item, "fixturenames", ()):
            pool.revive((), pool.default_url)  # cached URL: a dead server comes back there
        return (yield)
    except Exception as error:
        server_error = _server_error(error)
        if server_error is None:
            raise
        raise _reported(item, server_error) from None


@pytest.hookimpl(wrapper=True, trylast=True)
def _runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    """From here on a factory call is no longer the test's: it is held until the session ends.

    After the last test the session fixtures let go of their servers: the pool then stops
    them all at once instead of one by one as each hold ends.
    """
    __tracebackhide__ = True
    pool = item.config.stash.get(_POOL, None)
    if pool is not None and (
        _USED in item.stash or "hosted_api_server" in getattr(item, "fixturenames", ())
    ):
        pool.note_deaths(item.nodeid)  # a server it used that is gone died during this test
    item.config.stash[_HOLDERS].start_test(None)
    if nextitem is None and pool is not None:
        pool.session_ending()
    return (yield)


@pytest.hookimpl(wrapper=True, trylast=True)
def _fixture_setup(request: pytest.FixtureRequest) -> Generator[None, object, object]:
    """Note which fixture is being set up: a factory call in it is held for its lifetime."""
    __tracebackhide__ = True
    holders = request.config.stash.get(_HOLDERS, None)
    if holders is None or (request.scope == "function" and _POOL not in request.config.stash):
        return (yield)  # nothing can ask for a server before the pool exists
    holders.setup_begins(request)
    try:
        return (yield)
    finally:
        holders.setup_ends(request)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def _runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail clearly when a shared server's owner died; run virtual_clock tests in virtual time."""
    __tracebackhide__ = True
    if _config(item.config).shared:
        for state in _servers_of(item):
            if state.owner_alive is not None and not state.owner_alive():
                pytest.fail(
                    f"{state.what}: the shared server is gone: {state.owner_description}, "
                    "which started it, has died (the server stops with the process that "
                    "started it).",
                    pytrace=False,
                )
            if state.shared_answers is not None and not state.shared_answers():
                pytest.fail(
                    f"{state.what}: the shared server has exited: it no longer accepts "
                    f"connections, though {state.owner_description}, which started it, runs "
                    "on. A shared server that dies is not started again within the run; the "
                    "warning at the session's end gives its exit code and log. Without "
                    "--hosted-api-shared, each worker starts a server that died again.",
                    pytrace=False,
                )
    block = item.stash.get(_VIRTUAL, None)
    function = item if block is not None and isinstance(item, pytest.Function) else None
    original = function.obj if function is not None else None
    if function is not None and block is not None:
        function.obj = wrap_in_virtual_time(function.obj, block)
    try:
        return (yield)
    except Exception as error:  # hosted_api_server_factory called in the test body
        server_error = _server_error(error)
        if server_error is None:
            raise
        raise _reported(item, server_error) from None
    finally:
        if function is not None:
            function.obj = original


# --- configuration fixtures (override them in a conftest) ---------------------------------------


@pytest.fixture(scope="session")
def hosted_api_env() -> Mapping[str, str | None]:
    """The environment merged over ``os.environ`` for the hosted server (None removes a key).

    Must be a mapping of names to strings; the ``hosted_api_server_env`` option is merged over
    it. Default: every registered settings-override setting as the tests currently see it, so the
    server uses the same settings (and database) as the tests.

    Redefine it in a ``conftest.py`` (session scope); it may request your own fixtures, which
    then exist before the server starts.
    """
    return default_child_env()


@pytest.fixture(scope="session")
def hosted_api_settings_override() -> SettingsOverride:
    """A callable taking ``{setting name: string value}`` and returning a context manager.

    ``use_hosted_api_server`` enters it for each test with the URL setting and the
    ``hosted_api_extra_settings``. Default: ``settings_override.temporary_settings(...,
    mirror_environ=True)`` for registered settings (the context manager yields its snapshot;
    None when no name is a registered setting), and a process-environment override for names
    no registry knows. Redefine it in a ``conftest.py`` (session scope) to apply them your way.
    """
    return default_settings_override()


@pytest.fixture(scope="session")
def hosted_api_on_reuse() -> Callable[[str], object] | None:
    """With ``hosted_api_reuse``: called with the API URL of a kept server before this session
    adopts it (default: None, nothing). Redefine it in a ``conftest.py`` (session scope) to reset
    the state a kept server holds, e.g. empty its database; if it raises, the kept server is
    stopped and a fresh one started."""
    return None


# --- the documented fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def _hosted_api_pool(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    """The session's servers, one per environment, stopped when the session ends.

    Its dependencies are asked for in its body, not in its signature: pytest looks up every
    fixture of a test's closure for every test, and these are needed once. They are set up
    before the pool all the same, and torn down after it.
    """
    from ._pool import DEFAULT, ServerPool, Sharing

    hosted_api_env: object = request.getfixturevalue("hosted_api_env")  # checked on first use
    hosted_api_on_reuse: Callable[[str], object] | None = request.getfixturevalue(
        "hosted_api_on_reuse"
    )
    tmp_path_factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    config = request.config
    bundle = _config(config)
    holders = config.stash[_HOLDERS]
    workerinput = getattr(config, "workerinput", {})
    worker = str(workerinput.get("workerid", ""))
    sharing = None
    if bundle.shared and worker:
        shared_dir = tmp_path_factory.getbasetemp().parent
        run_key = str(workerinput.get("testrunuid") or shared_dir)
        sharing = Sharing(shared_dir, run_key, worker)
    pool = ServerPool(
        config=bundle,
        user_env=hosted_api_env,
        python_path=child_python_path(config, _BASELINE_SYS_PATH),
        log_dir=lambda: tmp_path_factory.mktemp("hosted-api-server"),
        stats=config.stash[_STATS],
        current_test=lambda: holders.current_test,
        worker=worker,
        sharing=sharing,
        environ_undo=holders.environ_undo,
        fixture_request=holders.fixture_request,
    )
    pool.state(DEFAULT).used_by.add("hosted_api_server")
    reuse = config.stash[_REUSE]
    if reuse.active:
        from ._reuse import Keeper, state_root

        slot = "shared" if sharing is not None else worker  # shared: one per environment
        pool.keeper = Keeper(
            bundle, reuse, state_root(config), slot, pool.keeping, hosted_api_on_reuse
        )
    config.stash[_POOL] = pool
    _use_per_test_hooks(config, getattr(request, "_pyfuncitem", None))
    try:
        yield pool
    finally:
        pool.close()
        if pool.keeper is not None:
            config.stash[_KEPT_NOTES].extend(pool.keeper.summary())


@pytest.fixture(scope="session")
def hosted_api_server(
    request: pytest.FixtureRequest, _hosted_api_pool: ServerPool
) -> Iterator[str]:
    """Run the configured ASGI app in a uvicorn subprocess; yield its API URL.

    The URL is ``http://127.0.0.1:<port><prefix>``. The server starts when a test first needs
    it, once per session (per xdist worker, or once for all workers with
    ``--hosted-api-shared``), and stops at the session's end. Its environment is ``os.environ``
    with the ``hosted_api_env`` fixture's mapping and the ``hosted_api_server_env`` option merged
    over it. It is the default server: ``hosted_api_env`` markers do not change it.

    If it cannot start, the first test that uses it errors with the reason and the server's
    output; later tests error with one line pointing to that report.
    """
    _check_late(request)
    with _hosted_api_pool.hold(()) as url:
        _hosted_api_pool.default_url = url
        yield url


@pytest.fixture
def use_hosted_api_server(
    hosted_api_settings_override: SettingsOverride,
    _hosted_api_pool: ServerPool,  # here, not looked up: set up before function fixtures
) -> Iterator[str]:
    """For one test, point the URL setting at the hosted server and apply the extra settings.

    Yields the server's API URL. The URL setting (``hosted_api_url_setting``) and the
    ``hosted_api_extra_settings`` are applied through the ``hosted_api_settings_override``
    fixture and restored after the test. They apply in the test process only (where the client
    runs); the server never sees them. The server is the default one, or, under
    ``@pytest.mark.hosted_api_env(...)``, the pooled server started with that environment, held
    until the test's teardown.
    """
    pool = _hosted_api_pool
    request = _own_request(pool, "use_hosted_api_server")
    bundle = _config(request.config)
    _check_late(request)
    overrides = marker_env(request.node)
    with ExitStack() as stack:
        if overrides is None:
            _note_used(request.node, pool.state(()))
            url = _default_server_url(request, pool)
            url = pool.revive(()) or url  # a dead server is reported once, then started again
        else:
            problems = environment_problems(overrides)  # a registry defined after collection
            if problems:
                pytest.fail(
                    f"{request.node.nodeid}: @pytest.mark.{MARKER}: "
                    + " ".join(problem.message for problem in problems),
                    pytrace=False,
                )
            variant = pool.variant(overrides)
            _note_used(request.node, pool.state(variant))
            url = stack.enter_context(pool.hold(variant))
        updates = {bundle.url_setting: url, **bundle.extra_settings}
        stack.enter_context(hosted_api_settings_override(updates))
        yield url


def _own_request(pool: ServerPool, fixture: str) -> pytest.FixtureRequest:
    """The request of ``fixture``, being set up now, as the plugin's setup hook noted it.

    Not a ``request`` argument: pytest (9) builds a fixture definition for every ``request``
    a test's fixtures name, for every test, about a third of what the fixture costs a test.
    The hook is in place whenever the pool exists, which such a fixture asks for first.
    """
    request = pool.fixture_request()
    if request is None or request.fixturename != fixture:  # pragma: no cover - a bug of ours
        raise RuntimeError(f"pytest-bundle: {fixture} is set up outside its setup hook")
    return request


def _default_server_url(request: pytest.FixtureRequest, pool: ServerPool) -> str:
    """The ``hosted_api_server`` fixture's value for this test.

    Asked for dynamically (a test under a marker must not start the default server), which
    costs pytest a fixture lookup per test. Once the plugin's own session fixture has its URL,
    it is read from the pool instead, wherever no conftest or module redefines the fixture.
    """
    url = pool.default_url
    if url is not None and _default_is_ours(request):
        return url
    value: str = request.getfixturevalue("hosted_api_server")
    return value


def _default_is_ours(request: pytest.FixtureRequest) -> bool:
    """Whether the plugin's is the only ``hosted_api_server`` fixture this test can see;
    found once per module or class (a redefinition lives in a conftest, module or class)."""
    known = request.config.stash.setdefault(_DEFAULT_IS_OURS, {})
    parent = request.node.parent
    where = parent.nodeid if parent is not None else ""
    ours = known.get(where)
    if ours is None:
        try:  # pytest's lookup by node (pytest >= 8.1); anything else: ask pytest every time
            # The plugin's own definition is always one of them: alone, it is the one used.
            found = request._fixturemanager.getfixturedefs("hosted_api_server", request.node)
            ours = found is not None and len(found) == 1
        except Exception:
            ours = False
        known[where] = ours
    return ours


@pytest.fixture(scope="session")
def hosted_api_server_factory(
    request: pytest.FixtureRequest, _hosted_api_pool: ServerPool
) -> HostedApiServerFactory:
    """A callable ``(env={}) -> str``: the API URL of a server started with ``env`` over the
    default server's environment (None removes a name).

    Servers come from the same pool as the default one and the markers' (the same environment
    gives the same server). The server stays held, never stopped to make room, while whoever
    called the factory lives: the fixture being set up (a session fixture: the whole session),
    else the running test. A call raises ``TypeError`` for anything but a mapping of names to
    strings (or None), and ``ValueError`` for a near miss of a registered setting or a value
    that does not fit one.
    """
    _check_late(request)
    return make_factory(_hosted_api_pool, request.config.stash[_HOLDERS], _note_used)


def _check_late(request: pytest.FixtureRequest) -> None:
    """Check settings registered after collection; a problem fails the test, stops the session."""
    problems = request.config.stash[_RECHECK].problems(_config(request.config))
    if problems:
        request.session.shouldstop = "pytest-bundle: a misconfigured option (see the error above)"
        pytest.fail("\n".join(problems), pytrace=False)


class _Autouse:
    """Registered only with ``hosted_api_autouse = true``: otherwise no test pays a fixture."""

    @pytest.fixture(autouse=True)
    def _hosted_api_autouse(self, request: pytest.FixtureRequest) -> None:
        """With ``hosted_api_autouse = true`` every test runs under use_hosted_api_server."""
        request.getfixturevalue("use_hosted_api_server")


@pytest.fixture
def mock_anyio_sleep(request: pytest.FixtureRequest) -> Iterator[SleepRecorder]:
    """Fake ``anyio.sleep`` (and the configured targets); shift ``pendulum.now`` by the sleeps.

    Yields a ``fake_sleep.SleepRecorder``: the ``unittest.mock.AsyncMock`` assertion API plus
    ``assert_sleeps_for(seconds, extra_tolerance=0)``, ``assert_sleeps``, ``delays`` and
    ``total``. Not faked, they keep real time: ``asyncio.sleep``, ``trio.sleep``,
    ``anyio.sleep_until``, ``anyio.sleep_forever`` and timeouts (``fail_after``,
    ``move_on_after``, ``asyncio.wait_for``, ``asyncio.timeout``). A test cannot also use
    ``virtual_clock``.
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
    Only for async test functions (anyio or pytest-asyncio; a sync test fails), on asyncio and
    trio. A test cannot also use ``mock_anyio_sleep``. ``@pytest.mark.virtual_clock(io_grace=...,
    end=..., max_jumps=...)`` on the test, its class or module sets the clock's options (else
    the ``virtual_clock_io_grace``, ``virtual_clock_end`` and ``virtual_clock_max_jumps``
    options) and gives the fixture to every async test it covers.
    """
    from ._virtual import refuse_both

    refuse_both(request)  # with mock_anyio_sleep, the mock would silently win
    _use_per_test_hooks(request.config)  # its test runs in virtual time through them
    function = getattr(request.node, "obj", None)
    if function is None or not inspect.iscoroutinefunction(function):
        pytest.fail(
            "virtual_clock works only in async test functions (anyio or pytest-asyncio); "
            f"{request.node.nodeid} is not one.",
            pytrace=False,
        )
    from fake_sleep import virtual_time

    bundle = _config(request.config)
    options = marker_options(request.node)  # checked after collection
    end = options.get("end", bundle.virtual_clock_end)
    grace = options.get("io_grace", bundle.virtual_clock_io_grace)
    source = (
        "@pytest.mark.virtual_clock"
        if "io_grace" in options
        else "the virtual_clock_io_grace option"
    )
    request.node.stash[_VIRTUAL_GRACE] = (grace, source)
    max_jumps = options.get("max_jumps", bundle.virtual_clock_max_jumps)
    given: dict[str, Any] = {"end": end}  # unset ones: fake-sleep's defaults
    if grace is not None:
        given["io_grace"] = grace
    if max_jumps is not None:
        given["max_jumps"] = max_jumps
    block = virtual_time(**given)
    request.node.stash[_VIRTUAL] = block
    return block.clock
