"""Servers shared by all pytest-xdist workers on this machine (``--hosted-api-shared``).

Each pooled environment has a slot: a state file and a file lock in pytest's shared base temp
directory, named after the environment's fingerprint (the default server keeps the plain names
``hosted_api_server.json`` / ``.lock``). The first worker that needs the environment starts its
server under the lock and records it; the others attach and register as users. The starting
worker (the owner) must outlive the users, because the launcher kills the server with the
process that started it: at its session end it waits until every other worker of the run has
ended its session or died (``RunSessions``, one file for the whole run), then stops the
server; before that, its pool may retire the server only while nobody else uses it. A worker
whose server environment differs is refused with the keys that differ; the record keeps
secret-looking values only as digests salted per shared server, and the slot's file name is a
digest keyed by the run's id, so no file name or record holds a secret in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ._checks import looks_secret, short_repr
from ._config import BundleConfig
from ._hosted import ServerState, StartStats, run_server

_DEFAULT_SLOT = "hosted_api_server"
_RUN_SESSIONS = "hosted_api_sessions"
_WAIT_STEP = 0.05


def _digest(salt: str, value: str) -> str:
    return "hmac-sha256:" + hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()


def slot_name(variant: tuple[tuple[str, str | None], ...], run_key: str) -> str:
    """The file name stem of an environment's slot; the default server keeps the plain name.

    Every worker of one run computes the same name (``run_key`` is the run's id, which xdist
    gives every worker), and the name reveals nothing of the values.
    """
    if not variant:
        return _DEFAULT_SLOT
    digest = hmac.new(run_key.encode(), json.dumps(variant).encode(), hashlib.sha256)
    return f"{_DEFAULT_SLOT}-{digest.hexdigest()[:24]}"


def _describe(
    config: BundleConfig, env: Mapping[str, str | None], salt: str
) -> dict[str, dict[str, str | None]]:
    """What makes two servers interchangeable, as the state file keeps it.

    Values of secret-looking names are kept only as digests salted per shared server, so the
    file never holds a secret in clear and equal values still compare equal.
    """
    return {
        "config": {
            "hosted_api_app": config.app,
            "hosted_api_factory": str(config.factory).lower(),
            "hosted_api_prefix": config.prefix,
            "hosted_api_health_path": config.health_path,
        },
        "env": {
            name: _digest(salt, value) if value is not None and looks_secret(name) else value
            for name, value in sorted(env.items())
        },
    }


def _shown(name: str, values: Mapping[str, str | None]) -> str:
    if name not in values:
        return "not set"
    value = values[name]
    if value is None:
        return "removed (None)"
    return "***" if looks_secret(name) else short_repr(value)


def _differences(
    mine: Mapping[str, Mapping[str, str | None]], theirs: Mapping[str, Mapping[str, str | None]]
) -> list[str]:
    """One phrase per key whose value differs, secret-looking values masked."""
    found = []
    for part in ("config", "env"):
        here, there = mine.get(part, {}), theirs.get(part, {})
        for name in sorted(set(here) | set(there)):
            if name not in here or name not in there or here[name] != there[name]:
                found.append(f"{name} is {_shown(name, here)} here but {_shown(name, there)} there")
    return found


def _alive(pid: int) -> bool:
    """Whether the process runs; a zombie counts as dead (``/proc`` on Linux, else the kernel)."""
    from server_launcher import pid_alive

    return pid_alive(pid)


def _accepts_connections(url: str) -> bool:
    """Whether the shared server still listens. Without ``/proc`` a dead owner that its parent
    has not reaped yet still looks alive; its server, killed with it, refuses at once."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), 5).close()
    except OSError:
        return False
    return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


class RunSessions:
    """The xdist workers of this run whose sessions have not ended yet, in one file.

    Every worker in shared mode begins its session here before its collection ends, and xdist
    runs no test before every worker has collected, so a worker is listed before any owner
    could stop a server it will ask for (issue 18: an owner that waited only for the workers
    that had attached to its server stopped it under a worker that had not asked for it yet,
    and that worker started a second one).
    """

    def __init__(self, shared_dir: Path) -> None:
        from filelock import FileLock

        self._path = shared_dir / f"{_RUN_SESSIONS}.json"
        self._lock = FileLock(str(shared_dir / f"{_RUN_SESSIONS}.lock"))
        self._me = os.getpid()

    def begin(self) -> None:
        """This worker's session began: owners wait for it to end before stopping a server."""
        self._update(lambda pids: pids | {self._me})

    def end(self) -> None:
        """This worker's session is ending (again is harmless): owners no longer wait for it."""
        self._update(lambda pids: pids - {self._me})

    def others(self) -> set[int]:
        """The other workers whose sessions have not ended (a dead one has ended)."""
        with self._lock:
            return {pid for pid in self._pids() if pid != self._me and _alive(pid)}

    def _pids(self) -> set[int]:
        data = _read(self._path) or {}
        return {int(pid) for pid in data.get("sessions", [])}

    def _update(self, change: Callable[[set[int]], set[int]]) -> None:
        with self._lock:
            _write(self._path, {"sessions": sorted(change(self._pids()))})


class SharedSlot:
    """One environment's server as the xdist workers share it: attach, leave, retire, close."""

    def __init__(
        self,
        config: BundleConfig,
        env: Mapping[str, str | None],
        state: ServerState,
        shared_dir: Path,
        slot: str,
        worker: str,
        log_dir: Callable[[], Path],
        stats: StartStats,
        launch: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        from filelock import FileLock

        self._config = config
        self._env = env
        self._state = state
        self._worker = worker
        self._log_dir = log_dir
        self._stats = stats
        self._launch = launch  # kept servers (hosted_api_reuse): adopt one or start a kept one
        self._path = shared_dir / f"{slot}.json"
        self._lock = FileLock(str(shared_dir / f"{slot}.lock"))
        self._me = os.getpid()
        self._owner_pid: int | None = None
        self._server: Any = None  # the run_server context while this worker owns the server
        self.owner = False

    def attach(self) -> str:
        """Attach to the workers' server for this environment, starting it if there is none."""
        config, state = self._config, self._state
        with self._lock.acquire(timeout=config.startup_timeout + 30):
            data = _read(self._path)
            if data is not None and _alive(int(data["owner_pid"])):
                self._refuse_if_different(data)
                if data.get("failure"):
                    state.fail(
                        f"{state.what} could not start: the shared server failed to start in "
                        f"xdist worker {data['owner_worker']}, whose report (in "
                        f"{data.get('failed_test') or 'its first server test'}) has the full "
                        f"error: {data['failure']}"
                    )
                data["users"] = [pid for pid in data["users"] if _alive(int(pid))] + [self._me]
                _write(self._path, data)
                self.owner = False
            else:
                data = self._start()
                self.owner = True
        owner_pid = int(data["owner_pid"])
        self._owner_pid = owner_pid
        url = str(data["url"])
        state.owner_alive = lambda: _alive(owner_pid)
        state.shared_answers = lambda: _accepts_connections(url)
        state.owner_description = f"xdist worker {data['owner_worker']} (pid {owner_pid})"
        return str(data["url"])

    def _refuse_if_different(self, data: Mapping[str, Any]) -> None:
        state = self._state
        differences = _differences(
            _describe(self._config, self._env, str(data["salt"])), data["server"]
        )
        if not differences:
            return
        marker = "" if not state.label else " and the hosted_api_env marker's"
        state.fail(
            f"{state.what}: shared mode (--hosted-api-shared) cannot serve xdist worker "
            f"{self._worker}: its hosted_api_env (with hosted_api_server_env{marker}) differs "
            f"from the one the shared server was started with by worker {data['owner_worker']}: "
            f"{'; '.join(differences)}. Give every worker the same environment, or drop "
            "--hosted-api-shared so each worker starts its own server."
        )

    def _start(self) -> dict[str, Any]:
        """Start the server as its owner (under the lock) and record it, or record the failure."""
        state = self._state
        salt = secrets.token_hex(16)
        record: dict[str, Any] = {
            "owner_pid": self._me,
            "owner_worker": self._worker,
            "salt": salt,
            "server": _describe(self._config, self._env, salt),
        }
        context = (
            self._launch()
            if self._launch is not None
            else run_server(self._config, self._env, state, self._log_dir(), self._stats)
        )
        try:
            url = context.__enter__().url + self._config.prefix
        except BaseException as error:
            failure = state.failure["reason"] if state.failure else str(error)
            reason = (failure or "the server did not start").splitlines()
            record.update(
                failure=reason[0].removeprefix(f"{state.what} could not start: "),
                failed_test=state.current_test,
                users=[],
            )
            _write(self._path, record)
            raise
        self._server = context
        data = {**record, "url": url, "users": [self._me]}
        _write(self._path, data)
        return data

    def leave(self) -> None:
        """A user (not the owner) stops using the server; the owner may then retire it."""
        with self._lock:
            current = _read(self._path)
            if current is not None and current.get("owner_pid") == self._owner_pid:
                current["users"] = [pid for pid in current["users"] if pid != self._me]
                _write(self._path, current)

    def try_retire(self) -> Callable[[], None] | None:
        """The owner retires the server if no other worker uses it now (None if one does) and
        gets back what stops it, for the pool to run off the test's path.

        The record goes under the lock, so no worker can attach to a server being stopped: the
        next one to need this environment starts it again.
        """
        with self._lock:
            data = _read(self._path) or {"users": []}
            if any(pid != self._me and _alive(int(pid)) for pid in data["users"]):
                return None
            self._path.unlink(missing_ok=True)
        return self._stop

    def close(self, sessions: RunSessions) -> None:
        """At session end: a user leaves; the owner waits for the users and for every other
        worker's session to end (this one's ended already), then stops it.

        Every worker, not only those that attached so far: one lagging behind may not have
        asked for this server yet, and would start a second one once this is stopped.
        """
        if not self.owner:
            self.leave()
            return
        while True:
            with self._lock:
                data = _read(self._path) or {}
                users = {int(pid) for pid in data.get("users", [])}
                others = {pid for pid in users if pid != self._me and _alive(pid)}
                if not others and not sessions.others():
                    self._path.unlink(missing_ok=True)
                    break
            time.sleep(_WAIT_STEP)
        self._stop()

    def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.__exit__(None, None, None)
