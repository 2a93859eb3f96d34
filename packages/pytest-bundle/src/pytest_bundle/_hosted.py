"""Starting one hosted API server, and the child's environment.

Everything heavy (server_launcher, httpx, uvicorn, settings_override) is imported inside the
functions here, which run only when a test asks for a server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from ._checks import short_repr
from ._config import BundleConfig

if TYPE_CHECKING:
    from server_launcher import ServerStartError

ChildEnv = Mapping[str, "str | None"]
SettingsOverride = Callable[[Mapping[str, str]], AbstractContextManager[object]]


class ServerStartFailed(pytest.fail.Exception):  # type: ignore[misc,name-defined]
    """A server could not start: reported in full once, then in one short line.

    ``state`` is the server's (one per environment), which remembers the test that reported it.
    """

    state: ServerState | None = None


@dataclass
class ServerState:
    """What the plugin knows about one server (one environment), for reports and checks."""

    # The environment keys that differ from the default server's, secrets masked ("" for the
    # default server): how reports and errors name this server.
    label: str = ""
    output: Callable[[], str] | None = None
    start_error: ServerStartFailed | None = None
    # The test whose set-up first reported the start failure; later tests point to it.
    failed_test: str | None = None
    # The test being set up now (a start failure is reported in its name).
    current_test: str = ""
    owner_alive: Callable[[], bool] | None = None
    owner_description: str = ""
    # The xdist worker id ("gw0"), or "" outside xdist: test ids repeat across workers.
    worker: str = ""
    # Fixtures holding this server: a failing test that uses one gets the server's output.
    used_by: set[str] = field(default_factory=set)

    @property
    def what(self) -> str:
        """How messages name this server."""
        return f"the hosted API server with {self.label}" if self.label else "hosted_api_server"

    def fail(self, message: str) -> NoReturn:
        """Fail this test with a start failure that later tests only point to."""
        error = ServerStartFailed(message, pytrace=False)
        error.state = self
        self.start_error = error
        raise error

    def short_failure(self) -> str:
        """The one line every test after the first reports."""
        first = f", in {self.failed_test}" if self.failed_test else ""
        if self.worker:
            first += f" on xdist worker {self.worker}"
        return f"{self.what} could not start; see the first error{first}."


@dataclass
class StartStats:
    """How many servers this session started, and what that cost (the terminal summary)."""

    started: int = 0
    seconds: float = 0.0
    failed: int = 0
    stopped_early: int = 0
    workers: int = 0  # xdist workers whose figures were added on the controller

    def as_dict(self) -> dict[str, float]:
        return {
            "started": self.started,
            "seconds": self.seconds,
            "failed": self.failed,
            "stopped_early": self.stopped_early,
        }

    def add(self, figures: Mapping[str, float]) -> None:
        """Add an xdist worker's figures (sent through ``workeroutput``)."""
        self.started += int(figures.get("started", 0))
        self.seconds += float(figures.get("seconds", 0.0))
        self.failed += int(figures.get("failed", 0))
        self.stopped_early += int(figures.get("stopped_early", 0))
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
                f"hosted_api_pool_size = {pool_size}"
            )
        if self.failed:
            line += f"; {self.failed} failed to start"
        return line


def default_child_env() -> dict[str, str | None]:
    """Every registered setting as the child should see it: set values, and None for restored."""
    from settings_override import get_current_settings

    return dict(get_current_settings().environment_changes())


def _checked_user_env(user_env: object, state: ServerState) -> dict[str, str | None]:
    """The ``hosted_api_env`` mapping, or a start failure saying what it must be instead."""
    expected = (
        "hosted_api_env must return a mapping of environment names to strings (a value of None "
        "removes the name from the server's environment)"
    )
    if not isinstance(user_env, Mapping):
        state.fail(
            f"hosted_api_server could not start: {expected}; your hosted_api_env returned "
            f"{type(user_env).__name__}: {short_repr(user_env)}."
        )
    env: dict[str, str | None] = {}
    for name, value in user_env.items():
        if not isinstance(name, str) or not (value is None or isinstance(value, str)):
            state.fail(
                f"hosted_api_server could not start: {expected}; your hosted_api_env maps "
                f"{short_repr(name)} to {type(value).__name__} {short_repr(value)}. Convert "
                "values with str()."
            )
        env[name] = value
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


def _start_failure(error: ServerStartError, what: str) -> str:
    """The launcher's error without its output tail, which the report shows in its own section."""
    lines = [f"{what} could not start: {error.reason}"]
    lines.append(f"command: {' '.join(error.command)}")
    if error.log_path:
        lines.append(f"full output kept in: {error.log_path}")
    if error.output_tail:
        lines.append(f"its last {len(error.output_tail)} lines of output are in the section below")
    else:
        lines.append("the server printed nothing")
    return "\n".join(lines)


@contextmanager
def run_server(
    config: BundleConfig, env: ChildEnv, state: ServerState, log_dir: Path, stats: StartStats
) -> Iterator[str]:
    """Start the configured app, yield the API URL, stop it; a start failure fails the test.

    The server's log goes under ``log_dir`` (pytest's temp folder, which pytest's retention
    cleans), never into the system temp folder. ``stats`` counts the start and its time.
    """
    from server_launcher import ServerStartError, launch_server

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
    )
    started = time.perf_counter()
    try:
        server = launcher.__enter__()
    except ServerStartError as error:
        failure: ServerStartError | None = error
    else:
        failure = None
    if failure is not None:  # fail outside the except block: one clean message, no chain
        stats.failed += 1
        tail = "\n".join(failure.output_tail)
        state.output = lambda: tail
        state.fail(_start_failure(failure, state.what))
    stats.started += 1
    stats.seconds += time.perf_counter() - started
    state.output = server.output
    try:
        yield server.url + config.prefix
    finally:
        launcher.__exit__(None, None, None)


def default_settings_override() -> SettingsOverride:
    """Registered settings through ``temporary_settings`` (mirrored), the rest through the env."""

    @contextmanager
    def override(updates: Mapping[str, str]) -> Iterator[object]:
        from settings_override import is_registered, temporary_environ, temporary_settings

        registered = {name: value for name, value in updates.items() if is_registered(name)}
        unregistered = {name: value for name, value in updates.items() if name not in registered}
        with ExitStack() as stack:
            snapshot = stack.enter_context(temporary_settings(registered, mirror_environ=True))
            if unregistered:
                stack.enter_context(temporary_environ(unregistered))
            yield snapshot

    return override
