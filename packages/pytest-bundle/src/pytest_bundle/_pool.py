"""The session's hosted API servers, one per environment, started on first use and reused.

The default server and every variant (a ``hosted_api_env`` marker, ``hosted_api_server_factory``)
come from one pool, keyed by how the environment differs from the default one, so every test
that asks for the same environment shares one server. The pool is bounded
(``hosted_api_pool_size``): past the bound the least recently used idle server is stopped. A
held server (by a running test, or by the fixture that asked for it) never is, so the pool may
run over the bound until a hold ends; it is trimmed back then.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ._checks import looks_secret, short_repr
from ._config import BundleConfig
from ._hosted import ServerState, StartStats, base_env, child_env, run_server

if TYPE_CHECKING:
    from ._sharing import SharedSlot

# How an environment differs from the default server's: sorted (name, value) pairs, a value of
# None removing the name. The default server's is ().
Variant = tuple[tuple[str, "str | None"], ...]
DEFAULT: Variant = ()
_ABSENT = object()


def _all_at_once(calls: list[Callable[[], None]]) -> None:
    """Run the calls in a thread each and wait for all; then raise the first error, if any.

    Stopping a server is safe from any thread (the launcher's own thread keeps it tied to this
    process); each stop mostly waits for the server to exit, so they overlap completely.
    """
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    errors: list[BaseException] = []

    def run(call: Callable[[], None]) -> None:
        try:
            call()
        except BaseException as error:  # re-raised below, in the session's thread
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(call,), name="pytest-bundle stop") for call in calls
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def variant_label(variant: Variant) -> str:
    """How reports name a server: its differing keys, values of secret-looking names masked."""
    parts = []
    for name, value in variant:
        if value is None:
            parts.append(f"{name} removed")
        elif looks_secret(name):
            parts.append(f"{name}=***")
        else:
            parts.append(f"{name}={short_repr(value)}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Sharing:
    """Where and how xdist workers share servers (``--hosted-api-shared``)."""

    shared_dir: Path  # pytest's base temp directory of the whole run
    run_key: str  # the same in every worker of one run (xdist's testrunuid)
    worker: str


@dataclass(eq=False)
class _Entry:
    variant: Variant
    state: ServerState
    url: str | None = None  # while running (started here, or attached in shared mode)
    holds: int = 0
    last_used: int = 0
    owned: bool = False  # this process runs the server: it counts toward the bound
    stop: Callable[[], None] | None = None  # per-worker mode: leave the run_server context
    slot: SharedSlot | None = None  # shared mode


@dataclass(eq=False)
class ServerPool:
    """Servers keyed by their environment; ``hold(variant)`` gives one's URL for a while."""

    config: BundleConfig
    user_env: object  # the hosted_api_env fixture's value, checked on first use
    python_path: list[str]
    log_dir: Callable[[], Path]  # a new folder under pytest's tmp_path_factory per start
    stats: StartStats
    current_test: Callable[[], str]
    worker: str = ""
    sharing: Sharing | None = None
    _entries: dict[Variant, _Entry] = field(init=False, default_factory=dict)
    _clock: Iterator[int] = field(init=False, default_factory=lambda: itertools.count(1))
    _base: dict[str, str | None] | None = field(init=False, default=None)
    _closed: bool = field(init=False, default=False)
    _ending: bool = field(init=False, default=False)

    @property
    def size(self) -> int:
        return self.config.pool_size

    def states(self) -> list[ServerState]:
        """Every server's state (running or not), for reports."""
        return [entry.state for entry in self._entries.values()]

    def state(self, variant: Variant) -> ServerState:
        """The state of the server for ``variant`` (known before it starts, for its reports)."""
        return self._entry(variant).state

    def variant(self, overrides: Mapping[str, str | None]) -> Variant:
        """How the default environment with ``overrides`` over it differs from the default."""
        base = self._base_env()
        changed = {
            name: value for name, value in overrides.items() if base.get(name, _ABSENT) != value
        }
        return tuple(sorted(changed.items()))

    @contextmanager
    def hold(self, variant: Variant) -> Iterator[str]:
        """The API URL of the server for ``variant``, kept running while the block runs."""
        url = self.acquire(variant)
        try:
            yield url
        finally:
            self.release(variant)

    def acquire(self, variant: Variant) -> str:
        """Hold the server for ``variant`` (started if need be) and return its API URL."""
        if self._closed:
            raise RuntimeError(
                "the hosted API server pool is closed: the session is ending; ask for servers "
                "in tests and fixtures, not in their finalizers"
            )
        entry = self._entry(variant)
        if entry.state.start_error is not None:
            raise entry.state.start_error  # reported in full once; later tests get a pointer
        if entry.url is None:
            self._start(entry)
        assert entry.url is not None
        entry.holds += 1
        entry.last_used = next(self._clock)
        self._make_room(self.size)  # only when all were held when this one started
        return entry.url

    def release(self, variant: Variant) -> None:
        """End one hold; trim the pool back to its bound."""
        entry = self._entries.get(variant)
        if entry is None or entry.holds == 0 or self._closed:
            return
        entry.holds -= 1
        entry.last_used = next(self._clock)
        if entry.holds == 0 and entry.slot is not None and not entry.owned:
            # Shared mode: a user leaves as soon as it holds nothing, so that the owner may
            # retire the server; attaching again later costs a lock and a file read.
            slot, entry.slot, entry.url = entry.slot, None, None
            slot.leave()
        self._make_room(self.size)

    def session_ending(self) -> None:
        """The last test's teardown begins: no more trimming, ``close`` stops them all at once."""
        self._ending = True

    def close(self) -> None:
        """Stop (or leave) every server: at session end, after every fixture let go.

        Users leave first (an owner waits for them); then the servers this process runs stop
        all at once, so a pool of N servers stops in the time of one.
        """
        self._closed = True
        running = [entry for entry in self._entries.values() if entry.url is not None]
        users = [entry for entry in running if not entry.owned]
        owned = [entry for entry in running if entry.owned]
        with ExitStack() as stack:  # every server is stopped even when leaving one raises
            stack.callback(_all_at_once, [partial(self._close_entry, e) for e in owned])
            for entry in users:
                stack.callback(self._close_entry, entry)

    # --- internals ------------------------------------------------------------------------

    def _entry(self, variant: Variant) -> _Entry:
        entry = self._entries.get(variant)
        if entry is None:
            state = ServerState(label=variant_label(variant), worker=self.worker)
            entry = self._entries[variant] = _Entry(variant, state)
        return entry

    def _base_env(self) -> dict[str, str | None]:
        if self._base is None:
            default = self.state(DEFAULT)
            if default.start_error is not None:
                raise default.start_error  # hosted_api_env itself was refused before
            self._base = base_env(self.config, self.user_env, default)
        return self._base

    def _start(self, entry: _Entry) -> None:
        state = entry.state
        state.current_test = self.current_test()
        env = child_env(self.config, {**self._base_env(), **dict(entry.variant)}, self.python_path)
        if self.sharing is None:
            self._make_room(self.size - 1)  # stop an idle one first: never over the bound
            context = run_server(self.config, env, state, self.log_dir(), self.stats)
            entry.url = context.__enter__()
            entry.owned = True

            def stop() -> None:
                context.__exit__(None, None, None)

            entry.stop = stop
            return
        from ._sharing import SharedSlot, slot_name  # hashlib and filelock: shared mode only

        slot = SharedSlot(
            self.config,
            env,
            state,
            self.sharing.shared_dir,
            slot_name(entry.variant, self.sharing.run_key),
            self.sharing.worker,
            self.log_dir,
            self.stats,
        )
        entry.url = slot.attach()
        entry.slot = slot
        entry.owned = slot.owner

    def _make_room(self, keep: int) -> None:
        """Stop least recently used idle servers this process runs until at most ``keep`` run."""
        if self._ending:
            return
        running = [entry for entry in self._entries.values() if entry.url and entry.owned]
        excess = len(running) - keep
        idle = sorted((entry for entry in running if not entry.holds), key=lambda e: e.last_used)
        for entry in idle:
            if excess <= 0:
                return
            if self._stop_early(entry):
                excess -= 1

    def _stop_early(self, entry: _Entry) -> bool:
        if entry.slot is not None:
            if not entry.slot.try_retire():  # another worker's running test holds it
                return False
            entry.slot, entry.url = None, None
        else:
            stop, entry.stop, entry.url = entry.stop, None, None
            if stop is not None:
                stop()
        self.stats.stopped_early += 1
        return True

    def _close_entry(self, entry: _Entry) -> None:
        entry.holds = 0
        entry.url = None
        slot, entry.slot = entry.slot, None
        stop, entry.stop = entry.stop, None
        if slot is not None:
            slot.close()
        elif stop is not None:
            stop()
