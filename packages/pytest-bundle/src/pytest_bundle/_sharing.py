"""One hosted server for all pytest-xdist workers on this machine (``--hosted-api-shared``).

The first worker starts the server under a file lock and records it in pytest's shared base
temp directory; the others attach and register as users. The starting worker (the owner) must
outlive the users, because the launcher kills the server with the process that started it: at
its session end it waits until every other user has left or died, then stops the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ._config import BundleConfig
from ._hosted import ServerState, run_server

_STATE_FILE = "hosted_api_server.json"
_LOCK_FILE = "hosted_api_server.lock"
_WAIT_STEP = 0.05


def _env_fingerprint(config: BundleConfig, env: Mapping[str, str | None]) -> str:
    """A digest of what makes two servers interchangeable (for sharing between workers)."""
    payload = {
        "app": config.app,
        "factory": config.factory,
        "prefix": config.prefix,
        "health": config.health_path,
        "env": sorted(env.items(), key=lambda item: item[0]),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _alive(pid: int) -> bool:
    """Whether the process runs; a zombie (dead, not yet reaped by its parent) counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in {"Z", "X"}
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (macOS): ask the kernel instead
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
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
    fingerprint = _env_fingerprint(config, env)
    state_path = shared_dir / _STATE_FILE
    lock = FileLock(str(shared_dir / _LOCK_FILE))
    with lock.acquire(timeout=config.startup_timeout + 30):
        data = _read(state_path)
        if data is not None and _alive(int(data["owner_pid"])):
            if data["fingerprint"] != fingerprint:
                pytest.fail(
                    f"hosted_api_server: shared mode (--hosted-api-shared) cannot serve xdist "
                    f"worker {worker}: its hosted_api_env differs from the one the shared server "
                    f"was started with by worker {data['owner_worker']} (e.g. a per-worker "
                    "database). Give every worker the same environment, or drop "
                    "--hosted-api-shared so each worker starts its own server.",
                    pytrace=False,
                )
            if data.get("failure"):
                state.failure = data["failure"]
                pytest.fail(f"hosted_api_server could not start:\n{data['failure']}", pytrace=False)
            data["users"] = [pid for pid in data["users"] if _alive(int(pid))] + [me]
            _write(state_path, data)
            owner = False
        else:
            owner = True
            context = run_server(config, env, state, log_dir)
            try:
                url = context.__enter__()
            except BaseException:
                _write(
                    state_path,
                    {
                        "owner_pid": me,
                        "owner_worker": worker,
                        "fingerprint": fingerprint,
                        "failure": state.failure or "the server did not start",
                        "users": [],
                    },
                )
                raise
            data = {
                "url": url,
                "owner_pid": me,
                "owner_worker": worker,
                "fingerprint": fingerprint,
                "users": [me],
            }
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
