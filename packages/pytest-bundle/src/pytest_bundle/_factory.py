"""``hosted_api_server_factory``: a pooled server for an environment, held as long as its asker.

A URL is only useful while its server runs, so the server stays held (never stopped to make
room in the pool) for as long as whoever asked for it lives: the fixture being set up when the
factory was called (a session fixture holds it for the session), else the running test (until
its teardown), else the session.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from ._environment import environment_problems

if TYPE_CHECKING:
    import pytest

    from ._hosted import ServerState
    from ._pool import ServerPool

NO_ENV: Mapping[str, str | None] = MappingProxyType({})


class HostedApiServerFactory(Protocol):
    """The type of the ``hosted_api_server_factory`` fixture's value.

    Called with a mapping of environment names to strings (None removes a name), merged over
    the default server's environment; returns that server's API URL
    (``http://127.0.0.1:<port><prefix>``).
    """

    def __call__(self, env: Mapping[str, str | None] = NO_ENV) -> str: ...


def _environ_snapshot() -> dict[Any, Any]:
    """``os.environ`` as it is now, cheaply: its raw dict is copied (~0.2 us), decoded later."""
    data = getattr(os.environ, "_data", None)
    return dict(data) if isinstance(data, dict) else dict(os.environ)


def _decoded(value: Any) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else str(value)


class Holders:
    """Who is asking for a server right now: the fixture being set up, else the running test.

    It also keeps the environment as it was before the running test's function-scoped fixtures
    (and the test itself) changed it: a server outlives the test, so it must not start with
    what ``monkeypatch.setenv`` did for one test.
    """

    def __init__(self) -> None:
        self.item: pytest.Item | None = None  # from the test's setup to its teardown
        self._setting_up: list[pytest.FixtureRequest] = []
        self._baseline: dict[Any, Any] | None = None

    @property
    def current_test(self) -> str:
        return self.item.nodeid if self.item is not None else ""

    def start_test(self, item: pytest.Item | None) -> None:
        """A test's setup begins (None: its teardown began): remember the environment."""
        self.item = item
        self._baseline = _environ_snapshot() if item is not None else None

    def setup_begins(self, request: pytest.FixtureRequest) -> None:
        """A fixture's setup begins (a plain call, not a context manager: it runs for every
        fixture of every test that can reach a server)."""
        self._setting_up.append(request)

    def setup_ends(self, request: pytest.FixtureRequest) -> None:
        self._setting_up.pop()
        if request.scope != "function" and self._in_session_setup():
            # a session (or module...) fixture's changes are meant for the session
            self._baseline = _environ_snapshot() if self.item is not None else None

    def _in_session_setup(self) -> bool:
        return all(request.scope != "function" for request in self._setting_up)

    def environ_undo(self) -> dict[str, str | None]:
        """What undoes the running test's function-scoped environment changes, for a server's
        environment (None removes a name); empty outside a test and in a session fixture."""
        baseline = self._baseline
        if baseline is None or (self._setting_up and self._in_session_setup()):
            return {}
        now = _environ_snapshot()
        if now == baseline:
            return {}
        undo: dict[str, str | None] = {
            _decoded(name): None for name in now.keys() - baseline.keys()
        }
        for name, value in baseline.items():
            if now.get(name) != value:
                undo[_decoded(name)] = _decoded(value)
        undo.pop("PYTEST_CURRENT_TEST", None)  # pytest's own, set anew for every phase
        return undo

    def fixture_request(self) -> pytest.FixtureRequest | None:
        """The request of the fixture being set up (noted by the plugin's setup hook), if any."""
        return self._setting_up[-1] if self._setting_up else None

    def asker(self) -> str | None:
        """The name of the fixture being set up, if any: whose users see the server's output."""
        return self._setting_up[-1].fixturename if self._setting_up else None

    def hold_until_done(self, release: Callable[[], None]) -> None:
        """Run ``release`` when the asker is done (at session end when nobody asked)."""
        if self._setting_up:
            self._setting_up[-1].addfinalizer(release)
        elif self.item is not None:
            self.item.addfinalizer(release)
        # else: the pool's close at session end ends every hold


def checked_env(env: object) -> dict[str, str | None]:
    """The factory's argument as a dict, or a TypeError/ValueError naming the bad key."""
    if not isinstance(env, Mapping):
        raise TypeError(
            "hosted_api_server_factory takes a mapping of environment names to strings (None "
            f"removes a name), such as {{'FEATURE_X': 'on'}}; got a {type(env).__name__}."
        )
    problems = environment_problems(env)
    if problems:
        error = TypeError if any(problem.of_type for problem in problems) else ValueError
        raise error(
            "hosted_api_server_factory: " + " ".join(problem.message for problem in problems)
        )
    return dict(env)


def make_factory(
    pool: ServerPool, holders: Holders, note_used: Callable[[pytest.Item, ServerState], None]
) -> HostedApiServerFactory:
    """The fixture's callable: check, hold for the asker, return the URL. Thread-safe."""
    lock = threading.Lock()  # for the notes on who uses which server; the pool has its own

    def hosted_api_server_factory(env: Mapping[str, str | None] = NO_ENV) -> str:
        __tracebackhide__ = True
        variant = pool.variant(checked_env(env))
        state = pool.state(variant)
        with lock:
            asker = holders.asker()
            if asker is not None:
                state.used_by.add(asker)  # tests using that fixture get the server's output
            item = holders.item
            if item is not None:
                note_used(item, state)
        url = pool.acquire(variant)
        with lock:
            holders.hold_until_done(lambda: pool.release(variant))
        return url

    return hosted_api_server_factory
