"""Kept servers: a server that outlives its launcher, found again by its folder, and that stops
itself when nobody has held it for ``idle_timeout`` seconds.

A kept server lives in a folder the caller owns (mode 0700). The folder holds:

- ``lock``: a process using the server holds an exclusive ``flock`` on it (``hold_kept``); the
  kernel releases it when that process ends, even by SIGKILL, so a dead holder never pins it;
- ``state.json``: the server's pid, port and URL, written once it answered 200 on its health
  path, removed when it expires;
- ``modules.json`` and ``modules.more``: a fingerprint of every module file the server imported
  (size, mtime in ns and inode, and a content hash when the file was modified just before),
  each taken once, when the import system found the file and before it read it, so a caller
  can tell whether the code it serves is still the code on disk (``KeptServer.code_changed``).
  ``modules.json`` holds those imported before ready; one line per file imported later is
  appended to ``modules.more`` before that module runs;
- ``server.log``: everything it printed.

The server runs detached (a session of its own, no tie to the launcher): its own watchdog, a
thread here, expires it. It listens on loopback only. POSIX only (``flock``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._errors import ServerStartError

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__all__ = ["KeptHold", "KeptServer", "hold_kept", "start_kept_server"]

_HOST = "127.0.0.1"
_TAIL_LINES = 50
_LOCK_WAIT = 0.2  # the server's own idle probe holds the lock for microseconds
# File timestamps are coarse (a kernel tick; 1-2 s on some file systems): a file modified this
# recently when its fingerprint is taken could change again with the same size and times.
_RACY_NS = 2_000_000_000
# One module file as it was when the server imported it:
# [path, size, mtime_ns, inode, sha256 of the content or None (not racy)]. Not ctime: it moves
# whenever the file gains a hard link (uv links one cached file into every environment).
_Record = list[object]


# --- the caller's side --------------------------------------------------------------------------


class KeptHold:
    """An exclusive hold on a kept server's folder; ``release()`` (or process exit) ends it.

    Thread-safe; releasing twice does nothing.
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock


def hold_kept(folder: str | os.PathLike[str], *, wait: float = _LOCK_WAIT) -> KeptHold | None:
    """Hold ``folder``'s server (created if need be), or None when another process holds it.

    Waits at most ``wait`` seconds, so that the server's own idle probe never makes a caller
    think it is taken. Thread-safe (each call has its own descriptor).
    """
    import fcntl

    path = os.path.join(os.fspath(folder), "lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + wait
    delay = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(delay)  # a lock has no wake-up to wait on: short backoff, bounded
            delay = min(delay * 2, 0.02)
            continue
        except BaseException:
            os.close(fd)
            raise
        _write_private(os.path.join(os.fspath(folder), "holder"), str(os.getpid()).encode())
        return KeptHold(fd)


_W = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


def _write_private(path: str, data: bytes) -> None:
    """Write a file readable by its owner only, atomically (a reader sees all of it or none)."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, _W, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass
class KeptServer:
    """A kept server: found by ``KeptServer.load(folder)`` or started by
    ``start_kept_server``. Its methods are thread-safe."""

    folder: str
    pid: int
    port: int
    url: str
    _child: bool = False  # our own child: wait() reaps it and knows its exit status
    _returncode: int | None = None

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> KeptServer | None:
        """The server of ``folder`` when it is ready and still runs; None otherwise."""
        try:
            with open(os.path.join(os.fspath(folder), "state.json"), encoding="utf-8") as f:
                state = json.load(f)
            pid, port, url = int(state["pid"]), int(state["port"]), str(state["url"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        server = cls(os.fspath(folder), pid, port, url)
        return server if server.alive() else None

    @property
    def returncode(self) -> int | None:
        """Its exit status when it was our child and has exited; 0 for another's that is gone."""
        if self._returncode is None and not self.alive():
            self._reap()
            if self._returncode is None and not self._child:
                self._returncode = 0  # another's process: its status is not ours to know
        return self._returncode

    def alive(self) -> bool:
        """Whether it runs, and is the server of this folder (not a reused pid)."""
        from ._platform import pid_alive

        return pid_alive(self.pid) and _runs_folder(self.pid, self.folder)

    def modules(self) -> list[str]:
        """The module files it imported (sorted paths); empty when its record is missing or
        unreadable (then nothing tells whether its code is still the code on disk)."""
        return sorted(_read_records(self.folder))

    def code_changed(self, first_under: str | None = None) -> tuple[str, str] | None:
        """Why its code may not be the code on disk: ``(path, "changed")`` or ``(path, "gone")``
        for the first module file it imported that is no longer what it imported, and
        ``(modules.json's path, "unrecorded")`` when its record is missing or unreadable (then
        nothing proves its code current); None when every file is unchanged.

        Files under ``first_under`` are checked first (so the answer names the app's own file).
        A file counts as changed when its size, mtime (ns) or inode differ; one modified
        within 2 s before the server imported it (timestamps are too coarse to prove it
        unchanged) is compared by content too.
        """
        records = _read_records(self.folder)
        if not records:
            return os.path.join(self.folder, "modules.json"), "unrecorded"
        prefix = os.path.join(first_under, "") if first_under else None
        for path in sorted(records, key=lambda p: (not (prefix and p.startswith(prefix)), p)):
            what = _compare(records[path])
            if what is not None:
                return path, what
        return None

    def output(self) -> str:
        """Everything it printed (its log file)."""
        try:
            with open(os.path.join(self.folder, "server.log"), encoding="utf-8") as f:
                return f.read()
        except OSError:
            return ""

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for it to exit (at most ``timeout`` seconds); its status, or None."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pidfd = _pidfd(self.pid)
        try:
            delay = 0.005
            while self.alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                if pidfd is not None:
                    select.select([pidfd], [], [], left)
                else:  # no pidfd (not Linux): poll with backoff
                    time.sleep(delay if left is None else min(delay, left))
                    delay = min(delay * 2, 0.1)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        return self.returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM its process group, SIGKILL after ``timeout`` s; remove its state file."""
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.folder, "state.json"))
        if not self.alive():
            return self.returncode
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)
        if self.wait(timeout) is None and self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self.wait(10)
        return self.returncode

    def _reap(self) -> None:
        if not self._child or self._returncode is not None:
            return
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._returncode = os.waitstatus_to_exitcode(status)


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd


def _runs_folder(pid: int, folder: str) -> bool:
    """Whether process ``pid``'s command line names ``folder`` (a pid can be reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.fsencode(folder) in f.read()
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        done = subprocess.run(
            ["ps", "-ww", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return True  # cannot tell: trust the state file
    return os.fsencode(folder) in done.stdout


def start_kept_server(
    folder: str | os.PathLike[str],
    app: str,
    *,
    factory: bool = True,
    health_path: str = "/health",
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    idle_timeout: float = 1800.0,
    startup_timeout: float = 20.0,
    shutdown_timeout: float = 10.0,
    port: int | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> KeptServer:
    """Start ``app`` under uvicorn as a kept server of ``folder`` (an existing, private folder
    the caller holds with ``hold_kept``); return once its health path answered 200.

    ``env`` is the server's whole environment (``os.environ`` when None). It listens on
    127.0.0.1 only and exits on its own after ``idle_timeout`` seconds with no holder.
    Raises ``ServerStartError`` (the child killed first) when it cannot become ready.
    """
    from ._platform import listening_socket

    where = os.fspath(folder)
    log_path = os.path.join(where, "server.log")
    sock = listening_socket(_HOST, port or 0)
    read_end, write_end = os.pipe()
    spec = {
        "folder": where,
        "app": app,
        "factory": factory,
        "health_path": health_path,
        "idle": idle_timeout,
        "fd": sock.fileno(),
        "status": write_end,
        "startup": startup_timeout,
        "grace": max(0, int(shutdown_timeout) - 1),
        "ssl_certfile": ssl_certfile,
        "ssl_keyfile": ssl_keyfile,
    }
    loader = "import sys; from server_launcher._keep import main; main(sys.argv[1:])"
    command = [sys.executable, "-c", loader, where, json.dumps(spec)]
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    proc = None
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(), write_end),
            cwd=cwd,
            env=dict(os.environ if env is None else env),
            start_new_session=True,  # Ctrl-C in the terminal is not for it
        )
    finally:
        os.close(log)
        os.close(write_end)
        sock.close()
        if proc is None:
            os.close(read_end)
    server = KeptServer(where, proc.pid, 0, "", _child=True)
    try:
        outcome = _wait_ready(read_end, startup_timeout)
    finally:
        os.close(read_end)
    if outcome == "ready":
        loaded = KeptServer.load(where)
        if loaded is not None:
            server.port, server.url = loaded.port, loaded.url
            proc.returncode = 0  # ours to reap through KeptServer; no "still running" warning
            return server
    exited_by_itself = False
    if outcome == "closed":
        # The status pipe closes as the child exits: give its exit (slow on a busy machine)
        # time to finish before the kill, so the error says what happened, not "timed out".
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(shutdown_timeout, 1.0))
            exited_by_itself = True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    returncode = proc.wait()
    tail = server.output().splitlines()[-_TAIL_LINES:]
    if exited_by_itself:
        reason = f"the kept server exited before it was ready (exit status {returncode})"
    elif outcome == "closed":
        reason = "the kept server closed its status pipe without becoming ready; it was killed"
    else:
        reason = (
            f"the kept server did not answer 200 on {health_path} within "
            f"{startup_timeout} s; it was killed"
        )
    raise ServerStartError(
        reason,
        command=[*command[:2], "server_launcher._keep", where],
        returncode=returncode,
        output_tail=tail,
        log_path=log_path,
    )


def _wait_ready(fd: int, timeout: float) -> Literal["ready", "closed", "timeout"]:
    """Read the child's status pipe: "ready", "closed" (EOF: it is exiting) or "timeout"."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            return "timeout"
        chunk = os.read(fd, 64)
        if not chunk:
            return "closed"
        data += chunk
        if b"ready" in data:
            return "ready"


# --- the server's side: python -c <loader> FOLDER SPEC -------------------------------------------


def _read_records(folder: str) -> dict[str, _Record]:
    """The kept server's module records by path; empty when missing or unreadable."""
    records: dict[str, _Record] = {}
    try:
        with open(os.path.join(folder, "modules.json"), encoding="utf-8") as f:
            rows: list[object] = json.load(f)
        try:
            with open(os.path.join(folder, "modules.more"), encoding="utf-8") as f:
                rows += [json.loads(line) for line in f]
        except FileNotFoundError:
            pass
        for row in rows:
            if not (isinstance(row, list) and len(row) == 5 and isinstance(row[0], str)):
                return {}
            records[row[0]] = row
    except (OSError, ValueError):  # a torn line is a ValueError too: never trust a partial record
        return {}
    return records


def _compare(record: _Record) -> str | None:
    """``"changed"`` or ``"gone"`` when the file is no longer what the record says; else None."""
    path, size, mtime, inode, digest = record
    try:
        info = os.stat(str(path))
    except OSError:
        return "gone"
    if (info.st_size, info.st_mtime_ns, info.st_ino) != (size, mtime, inode):
        return "changed"
    if digest is not None and _sha256(str(path)) != digest:
        return "changed"
    return None


def _sha256(path: str) -> str:
    """The file's content digest ("" when it cannot be read: never equal to a real one)."""
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return ""
    return digest.hexdigest()


def _fingerprint(path: str) -> _Record | None:
    """The record of ``path`` as it is now (None when it is not a regular file)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    recent = info.st_mtime_ns >= time.time_ns() - _RACY_NS  # or in the future
    digest = _sha256(path) if recent else None
    return [path, info.st_size, info.st_mtime_ns, info.st_ino, digest]


class _ImportNotes:
    """The server's record of its module files: each fingerprinted once, never refreshed.

    A later fingerprint of a file would describe the disk, not the code the server runs (issue
    21: re-noting every file when more were imported hid an edit made since). Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, _Record] = {}
        self._more: str | None = None  # once published: where later notes are appended
        self._inside = threading.local()

    def note(self, path: str) -> None:
        path = os.path.abspath(path)
        if path in self._records:
            return
        with self._lock:
            if path in self._records or getattr(self._inside, "busy", False):
                return
            self._inside.busy = True  # whatever noting imports is not noted (no recursion)
            try:
                record = _fingerprint(path)
                if record is None:
                    return
                self._records[path] = record
                if self._more is not None:
                    line = json.dumps(record).encode() + b"\n"
                    fd = os.open(self._more, _APPEND, 0o600)
                    try:
                        os.write(fd, line)  # one small append: a reader sees it whole or not
                    finally:
                        os.close(fd)
            finally:
                self._inside.busy = False

    def sweep(self) -> None:
        """Note every imported module file not noted yet (imported before the import hook was
        installed, or by a finder placed ahead of it)."""
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str):
                self.note(path)

    def publish(self, folder: str) -> None:
        """Write the record so far into ``modules.json``; later notes go to ``modules.more``."""
        with self._lock:
            rows = [self._records[path] for path in sorted(self._records)]
            _write_private(os.path.join(folder, "modules.json"), json.dumps(rows).encode())
            self._more = os.path.join(folder, "modules.more")


class _NoteImports:
    """First on ``sys.meta_path``: asks the finders after it, and fingerprints the file found
    before its loader reads it, so an edit made after that is always a difference."""

    def __init__(self, notes: _ImportNotes) -> None:
        self._notes = notes

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        finders = list(sys.meta_path)
        start = finders.index(self) + 1 if self in finders else 0
        for finder in finders[start:]:
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec: ModuleSpec | None = find(name, path, target)
            if spec is not None:
                if spec.has_location and isinstance(spec.origin, str):
                    self._notes.note(spec.origin)
                return spec
        return None

    def invalidate_caches(self) -> None:
        """Nothing cached here (the finders after it are asked by importlib itself)."""


def _watch_imports() -> _ImportNotes:
    """Fingerprint every module file this process imports from now on, and those it has."""
    import hashlib  # noqa: F401  (loaded before the hook: noting never imports)

    notes = _ImportNotes()
    notes.sweep()
    sys.meta_path.insert(0, _NoteImports(notes))
    return notes


def _health_ok(port: int, path: str, tls: bool, timeout: float) -> bool:
    import http.client

    connection: http.client.HTTPConnection
    if tls:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(_HOST, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(_HOST, port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _serve(spec: dict[str, object], notes: _ImportNotes) -> None:
    """Run uvicorn on the passed socket; a thread reports ready and expires it when idle."""
    import uvicorn

    folder = str(spec["folder"])
    sock = socket.socket(fileno=int(str(spec["fd"])))
    port = sock.getsockname()[1]
    tls = spec["ssl_certfile"] is not None
    config = uvicorn.Config(
        str(spec["app"]),
        factory=bool(spec["factory"]),
        timeout_graceful_shutdown=int(str(spec["grace"])),
        ssl_certfile=spec["ssl_certfile"],  # type: ignore[arg-type]
        ssl_keyfile=spec["ssl_keyfile"],  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    stop = threading.Event()

    def watchdog() -> None:
        try:
            _report_ready_then_expire(server, stop, folder, port, tls, spec, notes)
        except BaseException:  # never an orphan: a server without its watchdog exits
            import traceback

            traceback.print_exc()
            server.should_exit = True
            raise

    thread = threading.Thread(target=watchdog, name="kept-server watchdog", daemon=True)
    thread.start()
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()


def _report_ready_then_expire(
    server: object,
    stop: threading.Event,
    folder: str,
    port: int,
    tls: bool,
    spec: dict[str, object],
    notes: _ImportNotes,
) -> None:
    """Wait for the health path's 200, write the state files, report ready, then watch."""
    status = int(str(spec["status"]))
    deadline = time.monotonic() + float(str(spec["startup"]))
    while not stop.is_set():  # a connection waits in the backlog until uvicorn serves
        left = max(0.05, deadline - time.monotonic())
        if _health_ok(port, str(spec["health_path"]), tls, left):
            break
        if time.monotonic() >= deadline or stop.wait(0.01):
            os.close(status)
            return
    notes.sweep()
    notes.publish(folder)  # before state.json: nobody adopts it without its record
    scheme = "https" if tls else "http"
    state = {"pid": os.getpid(), "port": port, "url": f"{scheme}://{_HOST}:{port}"}
    _write_private(os.path.join(folder, "state.json"), json.dumps(state).encode())
    with contextlib.suppress(OSError):  # the launcher may be gone (killed): kept all the same
        os.write(status, b"ready\n")
    os.close(status)
    _expire_when_idle(folder, float(str(spec["idle"])), server, stop, notes)


def _expire_when_idle(
    folder: str, idle: float, server: object, stop: threading.Event, notes: _ImportNotes
) -> None:
    """Every tick: note modules the import hook did not see; exit once no holder came for
    ``idle`` s."""
    import fcntl

    tick = max(0.02, min(1.0, idle / 20))
    last_held = time.monotonic()
    lock = os.open(os.path.join(folder, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    count = len(sys.modules)
    while not stop.wait(tick):
        if len(sys.modules) != count:  # new entries: the hook noted files it found; the rest
            count = len(sys.modules)
            notes.sweep()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            last_held = time.monotonic()
            continue
        if time.monotonic() - last_held < idle:
            fcntl.flock(lock, fcntl.LOCK_UN)
            continue
        # Expired: keep the lock until the process ends, so nobody adopts it meanwhile.
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, "state.json"))
        print(f"server-launcher: kept server idle for {idle:g} s: exiting", flush=True)
        server.should_exit = True  # type: ignore[attr-defined]
        return


def main(argv: Sequence[str]) -> None:
    notes = _watch_imports()  # before uvicorn and the app are imported
    _serve(json.loads(argv[1]), notes)
