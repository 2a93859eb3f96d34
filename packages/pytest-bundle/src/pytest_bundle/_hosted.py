"""Starting one hosted API server, and the child's environment.

Everything heavy (server_launcher, httpx, uvicorn, settings_override) is imported inside the
functions here, which run only when a test asks for a server.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

from ._checks import looks_secret, short_repr
from ._config import BundleConfig
from ._environment import environment_problems, shown_name

if TYPE_CHECKING:
    from server_launcher import RunningServer

    from ._errors import HostedApiServerError

ChildEnv = Mapping[str, "str | None"]
SettingsOverride = Callable[[Mapping[str, str]], AbstractContextManager[object]]


@dataclass
class ServerState:
    """What the plugin knows about one server (one environment), for reports and checks."""

    # The environment keys that differ from the default server's, secrets masked ("" for the
    # default server): how reports and errors name this server.
    label: str = ""
    output: Callable[[], str] | None = None
    # Why the server could not start (HostedApiServerError's fields): every later ask gets a
    # fresh, short error built from them, never the same exception object again.
    failure: dict[str, Any] | None = None
    # The test whose set-up first reported the start failure; later tests point to it.
    failed_test: str | None = None
    # The test being set up now (a start failure is reported in its name).
    current_test: str = ""
    owner_alive: Callable[[], bool] | None = None
    # Shared mode: whether the shared server still accepts connections (it can die while
    # the worker that owns it runs on).
    shared_answers: Callable[[], bool] | None = None
    owner_description: str = ""
    # The xdist worker id ("gw0"), or "" outside xdist: test ids repeat across workers.
    worker: str = ""
    # Fixtures holding this server: a failing test that uses one gets the server's output.
    used_by: set[str] = field(default_factory=set)

    @property
    def what(self) -> str:
        """How messages name this server."""
        return f"the hosted API server with {self.label}" if self.label else "hosted_api_server"

    def fail(
        self,
        reason: str,
        *,
        command: Sequence[str] = (),
        returncode: int | None = None,
        output_tail: Sequence[str] = (),
        log_path: str | None = None,
        log_incomplete: str | None = None,
    ) -> NoReturn:
        """Remember that this server cannot start, and raise its error."""
        self.failure = {
            "reason": reason,
            "command": list(command),
            "returncode": returncode,
            "output_tail": list(output_tail),
            "log_path": log_path,
            "log_incomplete": log_incomplete,
        }
        raise self.start_error()

    def start_error(self) -> HostedApiServerError:
        """A new error for the remembered start failure (one short traceback per raise)."""
        from ._errors import HostedApiServerError

        assert self.failure is not None
        error = HostedApiServerError(**self.failure, server=self.what)
        error._pytest_bundle_state = self  # the plugin reports it in full once, then points
        return error

    def short_failure(self) -> str:
        """The one line every test after the first reports."""
        first = f", in {self.failed_test}" if self.failed_test else ""
        if self.worker:
            first += f" on xdist worker {self.worker}"
        return f"{self.what} could not start; see the first error{first}."


@dataclass
class StartStats:
    """How many servers this session started, and what that cost (the terminal summary).

    Counted from any thread (the factory is thread-safe): use the ``count_*`` methods.
    """

    started: int = 0
    seconds: float = 0.0
    failed: int = 0
    stopped_early: int = 0
    stop_seconds: float = 0.0  # spent stopping the servers stopped early (in the background)
    workers: int = 0  # xdist workers whose figures were added on the controller
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_start(self, seconds: float) -> None:
        with self._lock:
            self.started += 1
            self.seconds += seconds

    def count_failure(self) -> None:
        with self._lock:
            self.failed += 1

    def count_stopped_early(self) -> None:
        with self._lock:
            self.stopped_early += 1

    def count_stop(self, seconds: float) -> None:
        with self._lock:
            self.stop_seconds += seconds

    def as_dict(self) -> dict[str, float]:
        return {
            "started": self.started,
            "seconds": self.seconds,
            "failed": self.failed,
            "stopped_early": self.stopped_early,
            "stop_seconds": self.stop_seconds,
        }

    def add(self, figures: Mapping[str, float]) -> None:
        """Add an xdist worker's figures (sent through ``workeroutput``)."""
        self.started += int(figures.get("started", 0))
        self.seconds += float(figures.get("seconds", 0.0))
        self.failed += int(figures.get("failed", 0))
        self.stopped_early += int(figures.get("stopped_early", 0))
        self.stop_seconds += float(figures.get("stop_seconds", 0.0))
        self.workers += 1

    def summary(self, pool_size: int) -> str | None:
        """One line for the terminal summary, or None when no server was asked for."""
        if not self.started and not self.failed:
            return None
        plural = "" if self.started == 1 else "s"
        line = (
            f"pytest-bundle: {self.started} hosted API server{plural} started, "
            f"{self.seconds:.2f} s in total"
        )
        if self.workers:
            line += f" (across {self.workers} xdist workers)"
        if self.stopped_early:
            line += (
                f"; {self.stopped_early} stopped early to stay within "
                f"hosted_api_pool_size = {pool_size} ({self.stop_seconds:.2f} s stopping them, "
                "in the background)"
            )
        if self.failed:
            line += f"; {self.failed} failed to start"
        return line


def default_child_env() -> dict[str, str | None]:
    """Every registered setting as the child should see it: set values, and None for restored."""
    if "settings_override" not in sys.modules:
        return {}  # nothing imported it, so no setting was registered or overridden
    from settings_override import get_current_settings

    return dict(get_current_settings().environment_changes())


def _checked_user_env(user_env: object, state: ServerState) -> dict[str, str | None]:
    """The ``hosted_api_env`` mapping, or a start failure saying what it must be instead."""
    expected = (
        "hosted_api_env must return a mapping of environment names to strings (a value of None "
        "removes the name from the server's environment)"
    )
    if not isinstance(user_env, Mapping):
        shown = short_repr(user_env)
        state.fail(
            f"hosted_api_server could not start: {expected}; your hosted_api_env returned "
            f"{type(user_env).__name__}" + ("." if looks_secret(shown) else f": {shown}.")
        )
    env: dict[str, str | None] = {}
    for name, value in user_env.items():
        if not isinstance(name, str) or not (value is None or isinstance(value, str)):
            secret = isinstance(name, str) and looks_secret(name)
            state.fail(
                f"hosted_api_server could not start: {expected}; your hosted_api_env maps "
                f"{shown_name(name)} to {type(value).__name__} "
                f"{'***' if secret else short_repr(value)}. Convert values with str()."
            )
        env[name] = value
    problems = environment_problems(env)
    if problems:
        state.fail(
            "hosted_api_server could not start: the mapping your hosted_api_env fixture "
            "returned has a problem: " + " ".join(problem.message for problem in problems)
        )
    return env


def base_env(config: BundleConfig, user_env: object, state: ServerState) -> dict[str, str | None]:
    """The default server's environment: ``hosted_api_env``, then ``hosted_api_server_env``."""
    env = _checked_user_env(user_env, state)
    env.update(config.server_env)
    return env


def child_env(
    config: BundleConfig, env: Mapping[str, str | None], python_path: list[str]
) -> dict[str, str | None]:
    """The mapping merged over ``os.environ`` for the child: ``env`` plus the import roots.

    The import roots go first on ``PYTHONPATH``, so the server imports what the tests import.
    """
    merged = dict(env)
    inherited = merged.get("PYTHONPATH", os.environ.get("PYTHONPATH"))
    parts = [*python_path, *(inherited.split(os.pathsep) if inherited else [])]
    merged["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in parts if p))
    if config.uses_demo_app:
        merged.setdefault("DEMO_API_PREFIX", config.prefix)
    return merged


@contextmanager
def run_server(
    config: BundleConfig,
    env: ChildEnv,
    state: ServerState,
    log_dir: Path,
    stats: StartStats,
    *,
    port: int | None = None,
) -> Iterator[RunningServer]:
    """Start the configured app, yield the running server, stop it.

    A start failure raises ``HostedApiServerError`` (and is remembered in ``state``). The
    server's log goes under ``log_dir`` (pytest's temp folder, which pytest's retention
    cleans), never into the system temp folder. ``stats`` counts the start and its time.
    ``port``: listen on this port (a restart on the address tests already hold); a failure
    to start there raises the launcher's ``ServerStartError`` and is not remembered.
    """
    from server_launcher import ServerStartError, launch_server

    from ._startwatch import StartWatch

    watch = StartWatch(config)
    launcher = launch_server(
        config.app,
        factory=config.factory,
        health_path=config.full_health_path,
        env=dict(env),
        startup_timeout=config.startup_timeout,
        shutdown_timeout=config.shutdown_timeout,
        log_dir=log_dir,
        cwd=config.rootdir,  # the server imports the app from the rootdir first, as pytest does
        ssl_certfile=config.ssl_certfile,
        ssl_keyfile=config.ssl_keyfile,
        port=port,  # a restart comes back on the address tests already hold
        output=cast("IO[str]", watch),  # write() and flush() are all it uses
    )
    started = time.perf_counter()
    try:
        server = launcher.__enter__()
    except ServerStartError as error:
        if port is not None:
            raise  # the caller tries a new port: not this server's start failure yet
        failure: ServerStartError | None = error
    else:
        failure = None
    if failure is not None:  # fail outside the except block: one clean message, no chain
        stats.count_failure()
        tail = "\n".join(failure.output_tail)
        state.output = lambda: tail
        state.fail(
            f"{state.what} could not start: {watch.verdict or failure.reason}",
            command=failure.command,
            returncode=failure.returncode,
            output_tail=failure.output_tail,
            log_path=failure.log_path,
            log_incomplete=failure.log_incomplete,
        )
    stats.count_start(time.perf_counter() - started)
    state.output = server.output
    try:
        yield server
    finally:
        launcher.__exit__(None, None, None)


def default_settings_override() -> SettingsOverride:
    """Registered settings through ``temporary_settings`` (mirrored), the rest through the env."""
    return _DefaultOverride


class _DefaultOverride:
    """The default ``hosted_api_settings_override``: a context manager per call.

    It runs for every test that uses ``use_hosted_api_server``, so it does only what the
    updates need: ``temporary_settings`` only when a name is a registered setting (it yields
    that override's snapshot, else None), ``temporary_environ`` only for the other names.
    """

    __slots__ = ("_entered", "_updates")

    def __init__(self, updates: Mapping[str, str]) -> None:
        self._updates = updates
        self._entered: list[AbstractContextManager[object]] = []

    def __enter__(self) -> object:
        from settings_override import is_registered, temporary_environ, temporary_settings

        registered: dict[str, str] = {}
        unregistered: dict[str, str | None] = {}
        for name, value in self._updates.items():
            if is_registered(name):
                registered[name] = value
            else:
                unregistered[name] = value
        # Both validate before anything changes; created first, so a bad name changes nothing.
        managers: list[AbstractContextManager[object]] = []
        if registered:
            managers.append(temporary_settings(registered, mirror_environ=True))
        if unregistered:
            managers.append(temporary_environ(unregistered))
        snapshot: object = None
        try:
            for manager in managers:
                entered = manager.__enter__()
                self._entered.append(manager)
                if snapshot is None and registered:
                    snapshot = entered
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return snapshot

    def __exit__(self, *exc_info: object) -> None:
        entered, self._entered = self._entered, []
        for manager in reversed(entered):
            manager.__exit__(None, None, None)
