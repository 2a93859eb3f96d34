"""``hosted_api_server_factory``: a pooled server for an environment, held as long as its asker.

A URL is only useful while its server runs, so the server stays held (never stopped to make
room in the pool) for as long as whoever asked for it lives: the fixture being set up when the
factory was called (a session fixture holds it for the session), else the running test (until
its teardown), else the session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

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


class Holders:
    """Who is asking for a server right now: the fixture being set up, else the running test."""

    def __init__(self) -> None:
        self.item: pytest.Item | None = None  # from the test's setup to its teardown
        self._setting_up: list[pytest.FixtureRequest] = []

    @property
    def current_test(self) -> str:
        return self.item.nodeid if self.item is not None else ""

    @contextmanager
    def setting_up(self, request: pytest.FixtureRequest) -> Iterator[None]:
        self._setting_up.append(request)
        try:
            yield
        finally:
            self._setting_up.pop()

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
