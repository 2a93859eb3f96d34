"""One hosted server for all pytest-xdist workers on this machine (``--hosted-api-shared``).

The first worker starts the server under a file lock and records it in pytest's shared base
temp directory; the others attach and register as users. The starting worker (the owner) must
outlive the users, because the launcher kills the server with the process that started it: at
its session end it waits until every other user has left or died, then stops the server.
A worker whose server environment differs is refused with the keys that differ; the record
keeps secret-looking values only as digests salted per shared server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._checks import looks_secret, short_repr
from ._config import BundleConfig
from ._hosted import ServerState, run_server

_STATE_FILE = "hosted_api_server.json"
_LOCK_FILE = "hosted_api_server.lock"
_WAIT_STEP = 0.05


def _digest(salt: str, value: str) -> str:
    return "hmac-sha256:" + hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()


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


@contextmanager
def shared_server(
    config: BundleConfig,
    env: Mapping[str, str | None],
    state: ServerState,
    shared_dir: Path,
    worker: str,
    log_dir: Path,
) -> Iterator[str]:
    """Attach to the workers' shared server, starting it when this worker is the first."""
    from filelock import FileLock

    me = os.getpid()
    state_path = shared_dir / _STATE_FILE
    lock = FileLock(str(shared_dir / _LOCK_FILE))
    with lock.acquire(timeout=config.startup_timeout + 30):
        data = _read(state_path)
        if data is not None and _alive(int(data["owner_pid"])):
            differences = _differences(_describe(config, env, str(data["salt"])), data["server"])
            if differences:
                state.fail(
                    f"hosted_api_server: shared mode (--hosted-api-shared) cannot serve xdist "
                    f"worker {worker}: its hosted_api_env (with hosted_api_server_env) differs "
                    f"from the one the shared server was started with by worker "
                    f"{data['owner_worker']}: {'; '.join(differences)}. Give every worker the "
                    "same environment, or drop --hosted-api-shared so each worker starts its "
                    "own server."
                )
            if data.get("failure"):
                state.fail(
                    "hosted_api_server could not start: the shared server failed to start in "
                    f"xdist worker {data['owner_worker']}, whose report (in "
                    f"{data.get('failed_test') or 'its first server test'}) has the full error: "
                    f"{data['failure']}"
                )
            data["users"] = [pid for pid in data["users"] if _alive(int(pid))] + [me]
            _write(state_path, data)
            owner = False
        else:
            owner = True
            salt = secrets.token_hex(16)
            record: dict[str, Any] = {
                "owner_pid": me,
                "owner_worker": worker,
                "salt": salt,
                "server": _describe(config, env, salt),
            }
            context = run_server(config, env, state, log_dir)
            try:
                url = context.__enter__()
            except BaseException as error:
                reason = (
                    str(state.start_error or error) or "the server did not start"
                ).splitlines()
                record.update(
                    failure=reason[0].removeprefix("hosted_api_server could not start: "),
                    failed_test=state.current_test,
                    users=[],
                )
                _write(state_path, record)
                raise
            data = {**record, "url": url, "users": [me]}
            _write(state_path, data)
    owner_pid = int(data["owner_pid"])
    shared_url = str(data["url"])
    state.owner_alive = lambda: _alive(owner_pid)
    state.owner_description = f"xdist worker {data['owner_worker']} (pid {owner_pid})"
    if not owner:
        try:
            yield shared_url
        finally:
            with lock:
                current = _read(state_path)
                if current is not None and current.get("owner_pid") == owner_pid:
                    current["users"] = [pid for pid in current["users"] if pid != me]
                    _write(state_path, current)
        return
    try:
        yield shared_url
    finally:
        _wait_for_users_then_close(lock, state_path, me)
        context.__exit__(None, None, None)


def _wait_for_users_then_close(lock: Any, state_path: Path, me: int) -> None:
    """Block the owner until every other user has left or died, then retire the record."""
    while True:
        with lock:
            data = _read(state_path) or {"users": []}
            others = [pid for pid in data["users"] if pid != me and _alive(int(pid))]
            if not others:
                state_path.unlink(missing_ok=True)
                return
        time.sleep(_WAIT_STEP)
