"""Kept servers (``hosted_api_reuse``): servers that outlive the session, adopted by the next.

A kept server is found again by its *slot* (the xdist worker and the pool variant it serves) in
a private folder under pytest's cache dir of the rootdir. Each slot holds one folder per kept
server; a session holds the server it uses (an exclusive lock; the kernel drops it when the
session dies, even by SIGKILL), so two sessions running at once never share one. A kept server
is adopted only when its *key* still matches: the options that decide what it serves, its whole
environment (less pytest's per-run variables), the Python, and the module files it imported
(each fingerprinted by the server as it imported it: ``KeptServer.code_changed``). Otherwise
it is stopped and a new one started, with the reason said once. The server itself exits after
``hosted_api_reuse_idle`` seconds with no holder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._config import BundleConfig

if TYPE_CHECKING:
    from server_launcher import KeptHold, KeptServer

    from ._hosted import ServerState, StartStats

# Variables pytest and xdist set per run or per test: never part of the key, never inherited.
_VOLATILE = frozenset(
    {
        "PYTEST_CURRENT_TEST",
        "PYTEST_VERSION",
        "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT",
        "PYTEST_XDIST_TESTRUNUID",
        "_",
    }
)
_MODES = {"": "false", "0": "false", "false": "false", "no": "false", "off": "false",
          "1": "true", "true": "true", "yes": "true", "on": "true", "always": "always"}  # fmt: skip
_STATE_DIR = "pytest-bundle-kept"


@dataclass(frozen=True)
class ReuseOptions:
    """``hosted_api_reuse`` (false, true, always), its idle time, and ``--hosted-api-stop-kept``."""

    mode: str = "false"
    idle: float = 1800.0
    stop_kept: bool = False
    under_ci: bool = False

    @property
    def active(self) -> bool:
        return self.mode == "always" or (self.mode == "true" and not self.under_ci)

    def header(self) -> str | None:
        """The report header line, when reuse was asked for."""
        if self.mode == "false":
            return None
        if not self.active:
            return (
                "pytest-bundle: hosted_api_reuse is off under CI (the CI variable is set); "
                "set hosted_api_reuse = always to keep servers there too"
            )
        return (
            f"pytest-bundle: kept servers on (they stop after {self.idle:g} s idle; "
            "pytest --hosted-api-stop-kept stops them now)"
        )


def add_reuse_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("pytest-bundle")
    parser.addini(
        "hosted_api_reuse",
        "Keep the servers the session starts for the next session, which adopts one whose code, "
        "environment and options still match: false (default), true (off when CI is set) or "
        "always.",
        type="string",
        default=None,
    )
    parser.addini(
        "hosted_api_reuse_idle",
        "Seconds a kept server with no session attached lives on before it exits (1800).",
        type="string",
        default=None,
    )
    group.addoption(
        "--hosted-api-reuse",
        nargs="?",
        const="true",
        default=None,
        dest="hosted_api_reuse",
        metavar="always",
        help="Keep servers between runs (=always: also under CI). Overrides the ini key.",
    )
    group.addoption(
        "--no-hosted-api-reuse",
        action="store_const",
        const="false",
        dest="hosted_api_reuse",
        help="Turn off --hosted-api-reuse.",
    )
    group.addoption(
        "--hosted-api-reuse-idle",
        default=None,
        dest="hosted_api_reuse_idle",
        metavar="SECONDS",
        help="Seconds a kept server with no session lives on (1800). Overrides the ini key.",
    )
    group.addoption(
        "--hosted-api-stop-kept",
        action="store_true",
        default=False,
        dest="hosted_api_stop_kept",
        help="Stop every kept hosted API server of this rootdir and exit.",
    )


def read_reuse(config: pytest.Config) -> ReuseOptions:
    """The reuse options, validated; ``pytest.UsageError`` names a bad one."""
    where = "hosted_api_reuse (ini) / --hosted-api-reuse[=always] (command line)"
    raw = config.getoption("hosted_api_reuse", default=None)
    if raw is None:
        raw = config.getini("hosted_api_reuse") or "false"
    mode = _MODES.get(str(raw).strip().lower())
    if mode is None:
        raise pytest.UsageError(
            f"{where}: expected false, true or always, got {raw!r}. On the command line write "
            "--hosted-api-reuse or --hosted-api-reuse=always (the flag takes no other value: "
            "put test paths before it)."
        )
    idle_raw = config.getoption("hosted_api_reuse_idle", default=None)
    if idle_raw is None:
        idle_raw = config.getini("hosted_api_reuse_idle") or "1800"
    try:
        idle = float(str(idle_raw).strip())
    except ValueError:
        idle = -1.0
    if not (0 < idle < float("inf")):
        raise pytest.UsageError(
            "hosted_api_reuse_idle (ini) / --hosted-api-reuse-idle (command line): expected a "
            f"positive, finite number of seconds, got {idle_raw!r}."
        )
    return ReuseOptions(
        mode=mode,
        idle=idle,
        stop_kept=bool(config.getoption("hosted_api_stop_kept", default=False)),
        under_ci=bool(os.environ.get("CI")),
    )


def state_root(config: pytest.Config) -> Path:
    """Where kept servers of this rootdir are recorded: ``<cache_dir>/d/pytest-bundle-kept``."""
    cache_dir = os.path.expanduser(os.path.expandvars(str(config.getini("cache_dir"))))
    return Path(config.rootpath) / cache_dir / "d" / _STATE_DIR


def _private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) or check it: ours, and no one else may read it."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        cache = path.parent.parent
        ignore = cache / ".gitignore"
        if not ignore.exists():  # a cache dir we created: keep it out of version control
            with contextlib.suppress(OSError):
                ignore.write_text("# Created by pytest-bundle automatically.\n*\n")
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise pytest.UsageError(
            f"hosted_api_reuse: {path} belongs to another user; remove it or turn reuse off."
        )
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def stop_kept(root: Path, timeout: float = 10.0) -> tuple[int, list[int]]:
    """Stop every kept server under ``root``; (how many stopped, pids of sessions holding one).

    A server a running session holds is left alone (that session would lose it mid-test).
    """
    from server_launcher import KeptServer, hold_kept

    stopped = 0
    busy: list[int] = []
    lock = threading.Lock()

    def stop_one(folder: Path) -> None:
        nonlocal stopped
        hold = hold_kept(folder)
        if hold is None:
            with lock:
                busy.append(_holder(folder))
            return
        try:
            kept = KeptServer.load(folder)
            if kept is not None:
                kept.stop(timeout)
                with lock:
                    stopped += 1
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            hold.release()

    folders = [f for slot in _children(root) for f in _children(slot)]
    threads = [threading.Thread(target=stop_one, args=(f,)) for f in folders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for slot in _children(root):
        with contextlib.suppress(OSError):
            slot.rmdir()  # only when empty
    return stopped, busy


def _children(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir())
    except OSError:
        return []


def _holder(folder: Path) -> int:
    try:
        return int((folder / "holder").read_text())
    except (OSError, ValueError):
        return 0


def server_environment(env: Mapping[str, str | None]) -> dict[str, str]:
    """The kept server's whole environment: ``os.environ`` with ``env`` over it, less pytest's
    per-run variables (a kept server outlives the run they describe)."""
    merged = dict(os.environ)
    for name, value in env.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return {name: value for name, value in merged.items() if name not in _VOLATILE}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _options_key(config: BundleConfig, idle: float) -> dict[str, object]:
    """Everything but the environment and the code that decides what the server serves."""
    import server_launcher

    tls = []
    for path in (config.ssl_certfile, config.ssl_keyfile):
        if path is not None:
            with contextlib.suppress(OSError):
                info = os.stat(path)
                tls.append([path, info.st_size, info.st_mtime_ns])
    return {
        "hosted_api_app": config.app,
        "hosted_api_factory": config.factory,
        "hosted_api_prefix": config.prefix,
        "hosted_api_health_path": config.health_path,
        "hosted_api_shutdown_timeout": config.shutdown_timeout,
        "hosted_api_ssl_certfile": tls,
        "hosted_api_reuse_idle": idle,
        "rootdir": config.rootdir,
        "python": [sys.executable, sys.version],
        "server-launcher": server_launcher.__version__,
    }


def _env_key(env: Mapping[str, str], salt: str) -> dict[str, str]:
    """Each name with a salted digest of its value: the state file never holds a value."""
    return {name: _digest(salt, name, value) for name, value in env.items()}


def why_stale(
    saved: Mapping[str, Any], options: Mapping[str, object], env: Mapping[str, str], root: str
) -> str | None:
    """Why a kept server (its saved key) must not be adopted now; None when it may be."""
    old_options = saved.get("options", {})
    for name, value in options.items():
        if old_options.get(name) != json.loads(json.dumps(value)):
            what = "Python changed" if name == "python" else f"option changed: {name}"
            return what if name != "server-launcher" else "server-launcher changed"
    old_env = saved.get("env", {})
    new_env = _env_key(env, str(saved.get("salt", "")))
    differ = {name for name in new_env if old_env.get(name) != new_env[name]}
    changed = sorted(set(old_env) ^ set(new_env) | differ)
    if changed:
        more = len(changed) - 3
        shown = ", ".join(changed[:3]) + (f" and {more} more" if more > 0 else "")
        return f"environment changed: {shown}"
    return None


def code_changed(kept: KeptServer, root: str) -> str | None:
    """Why the kept server's code may not be the code on disk: the first module file (the
    rootdir's first) that changed since the server imported it, or a missing record; None
    when its code is the code on disk."""
    found = kept.code_changed(first_under=root or None)
    if found is None:
        return None
    path, what = found
    if what == "unrecorded":  # no code fingerprint to check: never adopt what might be stale
        return "its list of imported modules is missing or unreadable"
    prefix = os.path.join(root, "")
    shown = path[len(prefix) :] if root and path.startswith(prefix) else path
    return f"app code changed: {shown}" + (" (gone)" if what == "gone" else "")


@dataclass
class _KeptContext:
    """What the pool enters and leaves for one kept server: leaving keeps it when the session
    is ending, and stops it otherwise (evicted to stay within the pool size, or dead)."""

    server: KeptServer
    hold: KeptHold
    keep_now: Callable[[], bool]
    timeout: float

    def __enter__(self) -> KeptServer:
        return self.server

    def __exit__(self, *exc: object) -> None:
        try:
            if not self.keep_now() or not self.server.alive():
                self.server.stop(self.timeout)
                shutil.rmtree(self.server.folder, ignore_errors=True)
        finally:
            self.hold.release()


class _Launch:
    def __init__(self, run: Callable[[], tuple[_KeptContext, KeptServer]]) -> None:
        self._run = run
        self._context: _KeptContext | None = None

    def __enter__(self) -> KeptServer:
        self._context, server = self._run()
        return server

    def __exit__(self, *exc: object) -> None:
        context, self._context = self._context, None
        if context is not None:
            context.__exit__(*exc)


@dataclass
class Keeper:
    """Adopts or starts the kept server of each slot for one session (or xdist worker).

    Thread-safe: ``run`` may be called from several threads (for different variants).
    """

    config: BundleConfig
    options: ReuseOptions
    root: Path
    worker: str
    keep_now: Callable[[], bool]
    on_reuse: Callable[[str], object] | None = None
    notes: list[str] = field(default_factory=list)
    adopted: int = 0
    kept: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def launch(
        self,
        variant: tuple[tuple[str, str | None], ...],
        env: Mapping[str, str | None],
        state: ServerState,
        stats: StartStats,
        port: int | None = None,
    ) -> _Launch:
        """A context manager like ``run_server``'s: entering adopts or starts the server."""
        return _Launch(lambda: self.run(variant, env, state, stats, port))

    def run(
        self,
        variant: tuple[tuple[str, str | None], ...],
        env: Mapping[str, str | None],
        state: ServerState,
        stats: StartStats,
        port: int | None = None,
    ) -> tuple[_KeptContext, KeptServer]:
        """Adopt a matching kept server of the slot, or start one; (context, server)."""
        from server_launcher import KeptServer, hold_kept

        slot = _private_dir(_private_dir(self.root) / _digest(self.worker, repr(variant)))
        full_env = server_environment(env)
        options = _options_key(self.config, self.options.idle)
        reason: str | None = None
        # A restart on a given port (the default server died mid-session) starts a new one.
        for folder in _children(slot) if port is None else []:
            hold = hold_kept(folder)
            if hold is None:
                continue  # another session holds it now
            kept = KeptServer.load(folder)
            stale = self._stale(folder, kept, options, full_env)
            if kept is not None and stale is None:
                adopted = self._adopt(kept, hold, state)
                if adopted is not None:
                    return adopted
                stale = "hosted_api_on_reuse failed"
            if kept is not None:
                kept.stop(self.config.shutdown_timeout)
            reason = reason or stale
            shutil.rmtree(folder, ignore_errors=True)
            hold.release()
        return self._start(slot, full_env, options, state, stats, port, reason)

    def _stale(
        self,
        folder: Path,
        kept: KeptServer | None,
        options: Mapping[str, object],
        env: Mapping[str, str],
    ) -> str | None:
        if kept is None:
            return None
        try:
            saved = json.loads((folder / "key.json").read_text())
        except (OSError, ValueError):
            return "its key file is unreadable"
        root = self.config.rootdir or ""
        return why_stale(saved, options, env, root) or code_changed(kept, root)

    def _adopt(
        self, kept: KeptServer, hold: KeptHold, state: ServerState
    ) -> tuple[_KeptContext, KeptServer] | None:
        if self.on_reuse is not None:
            try:
                self.on_reuse(kept.url + self.config.prefix)
            except Exception as error:
                with self._lock:
                    self.notes.append(
                        f"hosted_api_on_reuse raised {type(error).__name__} for the kept server "
                        f"(pid {kept.pid}): a new one is started"
                    )
                return None
        state.output = kept.output
        with self._lock:
            self.adopted += 1
        context = _KeptContext(kept, hold, self.keep_now, self.config.shutdown_timeout)
        return context, kept

    def _start(
        self,
        slot: Path,
        env: dict[str, str],
        options: dict[str, object],
        state: ServerState,
        stats: StartStats,
        port: int | None,
        reason: str | None,
    ) -> tuple[_KeptContext, KeptServer]:
        import time

        from server_launcher import ServerStartError, hold_kept, start_kept_server

        folder = _private_dir(slot / secrets.token_hex(6))
        hold = hold_kept(folder)
        assert hold is not None  # a new folder no one else knows
        salt = secrets.token_hex(8)
        key = {"salt": salt, "options": options, "env": _env_key(env, salt)}
        fd = os.open(folder / "key.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(key, f)
        started = time.perf_counter()
        try:
            server = start_kept_server(
                folder,
                self.config.app,
                factory=self.config.factory,
                health_path=self.config.full_health_path,
                env=env,
                cwd=self.config.rootdir,
                idle_timeout=self.options.idle,
                startup_timeout=self.config.startup_timeout,
                shutdown_timeout=self.config.shutdown_timeout,
                port=port,
                ssl_certfile=self.config.ssl_certfile,
                ssl_keyfile=self.config.ssl_keyfile,
            )
        except ServerStartError as error:
            failure: ServerStartError | None = error
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            hold.release()
            raise
        else:
            failure = None
        if failure is not None:
            hold.release()
            tail = list(failure.output_tail)
            shutil.rmtree(folder, ignore_errors=True)
            if port is not None:
                raise failure  # the pool tries a new port
            stats.count_failure()
            state.output = lambda: "\n".join(tail)
            state.fail(
                f"{state.what} could not start: {failure.reason}",
                command=failure.command,
                returncode=failure.returncode,
                output_tail=tail,
            )
        stats.count_start(time.perf_counter() - started)
        state.output = server.output
        with self._lock:
            self.kept += 1
            if reason is not None:
                self.notes.append(f"{state.what} restarted: {reason}")
        return _KeptContext(server, hold, self.keep_now, self.config.shutdown_timeout), server

    def summary(self) -> list[str]:
        """Lines for the terminal summary: the reasons for restarts, then the counts."""
        with self._lock:
            lines = [f"pytest-bundle: {note}" for note in self.notes]
            if self.adopted or self.kept:
                lines.append(
                    f"pytest-bundle: kept servers: {self.adopted} adopted, {self.kept} started "
                    f"(each stops after {self.options.idle:g} s idle; pytest "
                    "--hosted-api-stop-kept stops them now)"
                )
        return lines
