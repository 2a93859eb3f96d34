"""The session's hosted API servers, one per environment, started on first use and reused.

The default server and every variant (a ``hosted_api_env`` marker, ``hosted_api_server_factory``)
come from one pool, keyed by how the environment differs from the default one, so every test
that asks for the same environment shares one server. The pool is bounded
(``hosted_api_pool_size``): past the bound the least recently used idle server is stopped. A
held server (by a running test, or by the fixture that asked for it) never is, so the pool may
run over the bound until a hold ends; it is trimmed back then. An evicted server stops in a
background thread (an app's slow shutdown is not waited for on a test's path): it serves nothing
from the moment it leaves the pool, so it does not count toward the bound; ``close`` waits for it.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._checks import looks_secret, short_repr
from ._config import BundleConfig
from ._hosted import ServerState, StartStats, base_env, child_env, run_server

if TYPE_CHECKING:
    import pytest

    from server_launcher import RunningServer

    from ._errors import HostedApiServerError
    from ._reuse import Keeper
    from ._sharing import RunSessions, SharedSlot

# How an environment differs from the default server's: sorted (name, value) pairs, a value of
# None removing the name. The default server's is ().
Variant = tuple[tuple[str, "str | None"], ...]
DEFAULT: Variant = ()
_ABSENT = object()
_TAIL_LINES = 50


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


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited, reaped or not: one system call, no file read
    (it runs for every test that uses a server)."""
    waitid = getattr(os, "waitid", None)
    if waitid is None:  # pragma: no cover - every POSIX system the launcher runs on has it
        from server_launcher import pid_alive

        return not pid_alive(pid)
    try:
        return waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped already
        return True


def _describe_exit(status: int | None) -> str:
    if status is None:
        return "an unknown status"
    if status < 0:
        import signal

        try:
            return f"signal {signal.Signals(-status).name} (returncode {status})"
        except ValueError:
            return f"signal {-status} (returncode {status})"
    return f"exit code {status}"


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
    starting: bool = False  # a thread is starting it now; others wait for that start
    server: RunningServer | None = None  # per-worker mode: shows when it exits on its own
    watcher: threading.Thread | None = None  # notes the test during which the server died
    died_during: str | None = None
    restart_port: int | None = None  # the default server comes back on the address it had
    exit_status: int | None = None  # how the server that died exited
    moved_because: str | None = None  # why it could not come back on its old port

    def dead(self) -> bool:
        """Whether the server exited on its own; an exit the launcher has not reaped yet counts
        (the kernel knows first), so a test that waited for the process sees it as dead."""
        server = self.server
        if server is None:
            return False
        if server.returncode is not None:
            return True
        if not _exited(server.pid):
            return False
        server.wait(timeout=10)  # the launcher's thread reaps it any moment now
        return True


@dataclass(eq=False)
class ServerPool:
    """Servers keyed by their environment; ``hold(variant)`` gives one's URL for a while.

    Thread-safe: its state changes under one lock; a server starts outside it, and a second
    caller asking for a server being started waits for that start instead of starting another.
    """

    config: BundleConfig
    user_env: object  # the hosted_api_env fixture's value, checked on first use
    python_path: list[str]
    log_dir: Callable[[], Path]  # a new folder under pytest's tmp_path_factory per start
    stats: StartStats
    current_test: Callable[[], str]
    worker: str = ""
    sharing: Sharing | None = None
    # What undoes the running test's function-scoped environment changes (a server outlives it).
    environ_undo: Callable[[], dict[str, str | None]] = dict
    # The request of the fixture being set up now, if any (the plugin's fixtures take their own
    # from it rather than naming ``request``).
    fixture_request: Callable[[], pytest.FixtureRequest | None] = lambda: None
    _entries: dict[Variant, _Entry] = field(init=False, default_factory=dict)
    _clock: Iterator[int] = field(init=False, default_factory=lambda: itertools.count(1))
    _base: dict[str, str | None] | None = field(init=False, default=None)
    _closed: bool = field(init=False, default=False)
    _ending: bool = field(init=False, default=False)
    _changed: threading.Condition = field(init=False, default_factory=threading.Condition)
    _stoppers: list[threading.Thread] = field(init=False, default_factory=list)
    _stop_errors: list[BaseException] = field(init=False, default_factory=list)
    # The URL the session-scoped hosted_api_server fixture gave (pytest caches it).
    default_url: str | None = field(init=False, default=None)
    # Kept servers (hosted_api_reuse): adopted from, and left for, other sessions.
    keeper: Keeper | None = field(init=False, default=None)

    @property
    def size(self) -> int:
        return self.config.pool_size

    def states(self) -> list[ServerState]:
        """Every server's state (running or not), for reports."""
        with self._changed:
            return [entry.state for entry in self._entries.values()]

    def state(self, variant: Variant) -> ServerState:
        """The state of the server for ``variant`` (known before it starts, for its reports)."""
        with self._changed:
            return self._entry(variant).state

    def variant(self, overrides: Mapping[str, str | None]) -> Variant:
        """How the default environment with ``overrides`` over it differs from the default."""
        with self._changed:
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
        """Hold the server for ``variant`` (started if need be) and return its API URL.

        A server that died is reported once (``HostedApiServerError``, naming the test during
        which it died); the next ask starts a new one.
        """
        dead: Callable[[], None] | None = None
        victims: list[Callable[[], None]] = []
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError(
                        "the hosted API server pool is closed: the session is ending; ask for "
                        "servers in tests and fixtures, not in their finalizers"
                    )
                entry = self._entry(variant)
                if entry.starting:
                    self._changed.wait()
                    continue
                if entry.state.failure is not None:
                    raise entry.state.start_error()  # reported in full once; later a pointer
                if entry.url is not None and entry.dead():
                    dead = self._detach(entry, died=True)
                    break
                if entry.url is not None:
                    entry.holds += 1
                    entry.last_used = next(self._clock)
                    return entry.url
                env = child_env(
                    self.config,
                    {**self.environ_undo(), **self._base_env(), **dict(entry.variant)},
                    self.python_path,
                )
                entry.state.current_test = self.current_test()
                entry.starting = True
                entry.owned = self.sharing is None  # counts toward the bound from now on
                try:
                    victims = self._take_victims(self.size)  # this one counts: never over
                    log_dir = self.log_dir() if self.sharing is None else None
                except BaseException:
                    entry.starting = False
                    self._changed.notify_all()
                    raise
                break
        if dead is not None:
            raise self._bury(entry, dead)
        try:
            self._stop_in_background(victims)
            url = self._start(entry, env, log_dir)
        except BaseException:
            with self._changed:
                entry.starting = False
                self._changed.notify_all()
            raise
        with self._changed:
            entry.starting = False
            entry.holds += 1
            entry.last_used = next(self._clock)
            self._changed.notify_all()
            victims = self._take_victims(self.size)  # only when all were held at the start
        self._stop_in_background(victims)
        return url

    def revive(self, variant: Variant, cached_url: str | None = None) -> str | None:
        """For a URL a test already has (the session's ``hosted_api_server``): if its server
        died, report that once, then start it again on the same address.

        Returns the server's URL now (None: not started yet). When it had to come back on
        another port, a test holding ``cached_url`` gets an error saying so.
        """
        with self._changed:
            entry = self._entries.get(variant)
            if entry is None or entry.starting:
                return None if entry is None else entry.url
            revived = entry.url is None or entry.dead()
            if entry.url is None and entry.restart_port is None:
                return None  # not started yet (or stopped to make room): its fixture starts it
        if revived:
            self.acquire(variant)
            self.release(variant)
        with self._changed:
            url, moved = entry.url, entry.moved_because
        if cached_url is not None and url is not None and url != cached_url and moved:
            from ._errors import HostedApiServerError

            raise HostedApiServerError(
                f"{entry.state.what} died, and the new server could not listen on the old "
                f"address {cached_url}, which this test got from the session-scoped "
                f"hosted_api_server fixture: {moved}. It now serves {url}: use "
                "use_hosted_api_server or hosted_api_server_factory(), which give the current "
                "URL of the default server.",
                server=entry.state.what,
            )
        return url

    def note_deaths(self, test: str) -> None:
        """At the end of ``test``: a server of this process that is gone died during it.

        The watcher thread may wake only after the next test began; this check runs first.
        """
        with self._changed:
            for entry in self._entries.values():
                server = entry.server
                if server is not None and entry.died_during is None and _exited(server.pid):
                    entry.died_during = test

    def release(self, variant: Variant) -> None:
        """End one hold; trim the pool back to its bound."""
        with self._changed:
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
            victims = self._take_victims(self.size)
        self._stop_in_background(victims)

    def session_ending(self) -> None:
        """The last test's teardown begins: no more trimming, ``close`` stops them all at once."""
        with self._changed:
            self._ending = True

    def close(self) -> None:
        """Stop (or leave) every server: at session end, after every fixture let go.

        Users leave first (an owner waits for them); then the servers this process runs stop
        all at once, so a pool of N servers stops in the time of one; then the evicted servers
        still stopping in the background are waited for (an error of theirs is raised here).
        """
        with self._changed:
            self._closed = True
            running = [entry for entry in self._entries.values() if entry.url is not None]
        sessions = None
        if self.sharing is not None:
            from ._sharing import RunSessions

            sessions = RunSessions(self.sharing.shared_dir)
            sessions.end()  # before this worker, as an owner, waits for the others' to end
        users = [entry for entry in running if not entry.owned]
        owned = [entry for entry in running if entry.owned]
        with ExitStack() as stack:  # every server is stopped even when leaving one raises
            stack.callback(self._join_stoppers)
            stack.callback(_all_at_once, [partial(self._close_entry, e, sessions) for e in owned])
            for entry in users:
                stack.callback(self._close_entry, entry, sessions)

    # --- internals (the ones named "under the lock" expect the caller to hold it) -----------

    def _entry(self, variant: Variant) -> _Entry:
        entry = self._entries.get(variant)
        if entry is None:
            state = ServerState(label=variant_label(variant), worker=self.worker)
            entry = self._entries[variant] = _Entry(variant, state)
        return entry

    def _base_env(self) -> dict[str, str | None]:
        """Under the lock: the default server's environment, checked once."""
        if self._base is None:
            default = self._entry(DEFAULT).state
            if default.failure is not None:
                raise default.start_error()  # hosted_api_env itself was refused before
            self._base = base_env(self.config, self.user_env, default)
        return self._base

    def _start(self, entry: _Entry, env: dict[str, str | None], log_dir: Path | None) -> str:
        """Outside the lock: start (or, shared, attach to) the server; return its API URL."""
        state = entry.state
        if self.sharing is None:
            assert log_dir is not None
            context, server = self._run(entry, env, log_dir)
            url = server.url + self.config.prefix
            expected = threading.Event()  # set before we stop it: an exit we asked for

            def stop() -> None:
                expected.set()
                context.__exit__(None, None, None)

            watcher = threading.Thread(
                target=self._watch,
                args=(entry, server, expected),
                name="pytest-bundle server watch",
                daemon=True,
            )
            with self._changed:
                entry.url, entry.server, entry.stop, entry.owned = url, server, stop, True
                entry.watcher, entry.died_during, entry.restart_port = watcher, None, None
            watcher.start()
            return url
        from ._sharing import SharedSlot, slot_name  # hashlib and filelock: shared mode only

        keeper = self.keeper  # the owner adopts a kept server (or keeps the one it starts)
        launch = None
        if keeper is not None:
            launch = partial(keeper.launch, entry.variant, env, state, self.stats)
        slot = SharedSlot(
            self.config,
            env,
            state,
            self.sharing.shared_dir,
            slot_name(entry.variant, self.sharing.run_key),
            self.sharing.worker,
            self.log_dir,
            self.stats,
            launch,
        )
        url = slot.attach()
        with self._changed:
            entry.url, entry.slot, entry.owned = url, slot, slot.owner
        return url

    def _run(
        self, entry: _Entry, env: dict[str, str | None], log_dir: Path
    ) -> tuple[AbstractContextManager[RunningServer], RunningServer]:
        """Start the server, on its old port first when it comes back after dying."""
        from server_launcher import ServerStartError

        if entry.restart_port is not None:
            context = self._launch(entry, env, log_dir, entry.restart_port)
            try:
                server = context.__enter__()
            except ServerStartError as error:  # the port is taken (or still in TIME_WAIT)
                entry.moved_because = error.reason
            else:
                entry.moved_because = None
                return context, server
        context = self._launch(entry, env, log_dir, None)
        return context, context.__enter__()

    def _launch(
        self, entry: _Entry, env: dict[str, str | None], log_dir: Path, port: int | None
    ) -> AbstractContextManager[RunningServer]:
        """Start a server of this session, or adopt a kept one (``hosted_api_reuse``)."""
        if self.keeper is not None:
            launch: AbstractContextManager[Any] = self.keeper.launch(
                entry.variant, env, entry.state, self.stats, port
            )
            return launch
        return run_server(self.config, env, entry.state, log_dir, self.stats, port=port)

    def keeping(self) -> bool:
        """Whether a server leaving the pool now is kept: the session is ending."""
        with self._changed:
            return self._closed

    def _watch(self, entry: _Entry, server: RunningServer, expected: threading.Event) -> None:
        """Wait for the server's exit; one we did not ask for is noted with the running test."""
        server.wait()
        if not expected.is_set() and entry.died_during is None:
            entry.died_during = self.current_test() or None

    def _detach(self, entry: _Entry, *, died: bool = False) -> Callable[[], None]:
        """Under the lock: take a server out of the pool; return what stops it."""
        stop, server = entry.stop, entry.server
        entry.stop, entry.url, entry.server = None, None, None
        if died and server is not None:
            entry.exit_status = server.returncode
            if entry.variant == DEFAULT:
                entry.restart_port = server.port  # tests cached its URL: it comes back there
        return stop or (lambda: None)

    def _bury(self, entry: _Entry, stop: Callable[[], None]) -> HostedApiServerError:
        """Outside the lock: reap a server that exited on its own; the error saying so."""
        from ._errors import HostedApiServerError

        watcher = entry.watcher
        if watcher is not None:
            watcher.join(timeout=10)  # it saw the same exit: the test name is there at once
        server = entry.state.output
        tail = server().splitlines()[-_TAIL_LINES:] if server is not None else []
        with suppress(Warning):  # the launcher's ServerStopWarning under filterwarnings = error
            stop()
        during = f" during {entry.died_during}" if entry.died_during else " between tests"
        code = _describe_exit(entry.exit_status)
        return HostedApiServerError(
            f"{entry.state.what} died{during}: it exited on its own with {code}. "
            + (
                "It is started again, on the same address, for the next test that uses it."
                if entry.variant == DEFAULT
                else "A new one is started for the next test that asks for it."
            ),
            server=entry.state.what,
            output_tail=tail,
            test=entry.died_during,
        )

    def _take_victims(self, keep: int) -> list[Callable[[], None]]:
        """Under the lock: take least recently used idle servers this process runs out of the
        pool until at most ``keep`` run (or start); return what stops them."""
        if self._ending:
            return []
        running = [
            entry
            for entry in self._entries.values()
            if entry.owned and (entry.url is not None or entry.starting)
        ]
        excess = len(running) - keep
        idle = sorted(
            (e for e in running if not e.holds and not e.starting and e.url is not None),
            key=lambda e: e.last_used,
        )
        victims = []
        for entry in idle:
            if excess <= 0:
                break
            if entry.slot is not None:
                stop = entry.slot.try_retire()
                if stop is None:  # another worker's running test holds it
                    continue
                entry.slot, entry.url = None, None
                victims.append(stop)
            else:
                victims.append(self._detach(entry))
            self.stats.count_stopped_early()
            excess -= 1
        return victims

    def _stop_in_background(self, stops: list[Callable[[], None]]) -> None:
        """Stop evicted servers in threads of their own; the caller goes on at once.

        Each stop's time is added to the summary line; ``close`` joins the threads.
        """
        for stop in stops:
            thread = threading.Thread(
                target=self._timed_stop, args=(stop,), name="pytest-bundle evicted stop"
            )
            with self._changed:
                self._stoppers.append(thread)
            thread.start()

    def _timed_stop(self, stop: Callable[[], None]) -> None:
        started = time.perf_counter()
        try:
            stop()
        except BaseException as error:  # raised by close, in the session's thread
            with self._changed:
                self._stop_errors.append(error)
        finally:
            self.stats.count_stop(time.perf_counter() - started)

    def _join_stoppers(self) -> None:
        """Wait for every evicted server's stop; raise the first error one of them had."""
        with self._changed:
            stoppers, self._stoppers = self._stoppers, []
        for thread in stoppers:
            thread.join()
        with self._changed:
            errors, self._stop_errors = self._stop_errors, []
        if errors:
            raise errors[0]

    def _close_entry(self, entry: _Entry, sessions: RunSessions | None) -> None:
        with self._changed:
            entry.holds = 0
            slot, entry.slot = entry.slot, None
            stop = self._detach(entry)
        if slot is not None:
            assert sessions is not None  # a slot exists in shared mode only
            slot.close(sessions)
        else:
            stop()
