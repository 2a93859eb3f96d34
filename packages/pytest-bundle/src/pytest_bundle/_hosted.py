"""Starting the hosted API server for a session, and the child's environment.

Everything heavy (server_launcher, httpx, uvicorn, settings_override) is imported inside the
functions here, which run only when a test asks for a server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._config import BundleConfig

ChildEnv = Mapping[str, "str | None"]
SettingsOverride = Callable[[Mapping[str, str]], AbstractContextManager[object]]


@dataclass
class ServerState:
    """What the plugin knows about the session's server, for reports and per-test checks."""

    output: Callable[[], str] | None = None
    failure: str | None = None
    owner_alive: Callable[[], bool] | None = None
    owner_description: str = ""


def default_child_env() -> dict[str, str | None]:
    """Every registered setting as the child should see it: set values, and None for restored."""
    from settings_override import get_current_settings

    return dict(get_current_settings().environment_changes())


def build_child_env(
    config: BundleConfig, user_env: ChildEnv, python_path: list[str]
) -> dict[str, str | None]:
    """The mapping merged over ``os.environ`` for the child: the user's env plus import roots."""
    env: dict[str, str | None] = dict(user_env)
    inherited = env.get("PYTHONPATH", os.environ.get("PYTHONPATH"))
    parts = [*python_path, *(inherited.split(os.pathsep) if inherited else [])]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in parts if p))
    if config.uses_demo_app:
        env.setdefault("DEMO_API_PREFIX", config.prefix)
    return env


@contextmanager
def run_server(
    config: BundleConfig, env: ChildEnv, state: ServerState, log_dir: Path
) -> Iterator[str]:
    """Start the configured app, yield the API URL, stop it; a start failure fails the test.

    The server's log goes under ``log_dir`` (pytest's temp folder, which pytest's retention
    cleans), never into the system temp folder.
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
    )
    try:
        server = launcher.__enter__()
    except ServerStartError as error:
        failure: ServerStartError | None = error
    else:
        failure = None
    if failure is not None:  # fail outside the except block: one clean message, no chain
        state.failure = str(failure)
        tail = "\n".join(failure.output_tail)
        state.output = lambda: tail
        pytest.fail(f"hosted_api_server could not start:\n{failure}", pytrace=False)
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
