"""Starting, watching, stopping and reaping one server process: the single implementation.

Each launch gets one supervisor thread that spawns the child and lives until the child has been
reaped (a server started from a short-lived worker thread must outlive that thread). It runs
a small selector loop over the child's exit (a pidfd on Linux), the health probe, and a control
socket; the sync and async front ends only wait for its state changes (a ``threading.Event``,
or a readable socket that anyio can wait on), so both share every decision made here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from . import _platform
from ._errors import ServerStartError, ServerStartTimeout
from ._output import OutputSink
from ._ready import HealthProbe, ProbeFailed, TLSFailed, client_tls_context
from ._watchdog import Watchdog

PortMode = Literal["fd", "reserve", "report"]

_BACKOFF_START = 0.001
_BACKOFF_MAX = 0.05
_REAP_CAP = 10.0  # after SIGKILL; only a process stuck in the kernel takes longer
# The longest single wait handed to a selector: epoll and poll take milliseconds in a C int, so
# a huge timeout would overflow. Loops re-check their deadline, so any finite timeout works.
_MAX_WAIT = 3600.0


@dataclass(frozen=True)
class TLSFiles:
    """The certificate and key the server serves TLS with (checked in the parent first)."""

    certfile: str
    keyfile: str | None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        key = f", ssl_keyfile={self.keyfile!r}" if self.keyfile else ""
        return f"ssl_certfile={self.certfile!r}{key}"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a launch needs, validated by ``launch_server``."""

    kind: Literal["module", "exec"]
    build_args: Callable[[int | None, int | None], list[str]]  # (fd, port) -> server argv
    display_prefix: tuple[str, ...]
    host: str
    connect_host: str
    health_path: str
    env: Mapping[str, str | None] = field(repr=False)  # merged over os.environ at spawn time
    startup_timeout: float
    shutdown_timeout: float
    port_mode: PortMode
    stream: IO[Any] | None
    log_dir: str | None = None
    tls: TLSFiles | None = None  # serve https (and probe over TLS)
    uds: str | None = None  # listen on this Unix socket instead of a TCP port
    port: int | None = None  # a fixed port instead of a free one
    cwd: str | None = None  # the server's working directory (and so its first import root)

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def display_command(self, port: int | None = None) -> list[str]:
        """The command line as shown in messages (no fd yet)."""
        return [*self.display_prefix, *self.build_args(None, port)]


class Supervisor:
    """One server process from spawn to reap. Thread-safe; driven by its own thread."""

    def __init__(self, spec: LaunchSpec) -> None:
        self.spec = spec
        self.command: list[str] = []
        self.port: int | None = None
        self.pid: int | None = None
        self.returncode: int | None = None
        self.error: ServerStartError | None = None
        self.killed = False
        self.exited_on_its_own = False
        self.stop_requested = False
        self.kill_requested = False  # a deliberate kill (a second Ctrl-C): a clean stop
        self.log_path: str | None = None
        self.ready = threading.Event()  # set when ready, or when finished without being ready
        self.finished = threading.Event()
        # One socket pair per async waiter (a socket can be awaited by one task at a time).
        self._waiters: set[socket.socket] = set()
        self._waiters_lock = threading.Lock()
        self._control_r, self._control_w = socket.socketpair()
        self._control_r.setblocking(False)
        self._control_w.setblocking(False)
        self._listener: socket.socket | None = None
        self._created_uds = False
        self._cwd = spec.cwd or ""
        self._tls_context: ssl.SSLContext | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: Watchdog | None = None
        self._exit_watch: _platform.ExitWatch | None = None
        self._failure: tuple[str, str] | None = None  # (kind, reason), built into an error later
        self._last_status: int | None = None
        self._last_problem = ""
        self._strays: list[_platform.Stray] = []
        # Only a server that reports its port has its output scanned for one.
        on_port = self._port_reported if spec.port_mode == "report" else None
        self.output = OutputSink(spec.stream, on_port, spec.log_dir)
        self._thread = threading.Thread(target=self._main, name="server-launcher", daemon=True)

    # -- front-end side -------------------------------------------------------------------

    def start(self) -> None:
        """Take the port now (errors raise here), then spawn from the supervisor thread."""
        spec = self.spec
        try:
            if spec.tls is not None:
                self._tls_context = _check_tls(spec)
            try:
                if spec.uds is not None:
                    self._listener = _platform.unix_listening_socket(spec.uds)
                    self._created_uds = True
                elif spec.port_mode == "fd":
                    listener = _platform.listening_socket(spec.host, spec.port or 0)
                    self._listener = listener
                    self.port = listener.getsockname()[1]
                elif spec.port_mode == "reserve":
                    reservation = _platform.port_reservation(spec.host, spec.port or 0)
                    self.port = reservation.getsockname()[1]
                    self._listener = reservation
            except OSError as exc:
                if spec.uds is None and not (spec.port and exc.errno == errno.EADDRINUSE):
                    raise  # e.g. an address on no interface: the OSError says it best
                raise self._address_error(exc) from None
        except BaseException:
            self.close()
            raise
        self._thread.start()

    def _address_error(self, exc: OSError) -> ServerStartError:
        spec = self.spec
        if spec.uds is not None:
            if exc.errno == errno.EADDRINUSE:
                what = (
                    f"the Unix socket path {spec.uds!r} (uds=) already exists: remove it (a "
                    "socket a server left behind) or choose another path"
                )
            else:
                what = f"cannot listen on the Unix socket {spec.uds!r} (uds=): {exc.strerror}"
        else:
            what = (
                f"port {spec.port} on {spec.host} is already in use (port={spec.port}): stop "
                "what listens there, or choose another port (or none, for a free one)"
            )
        return ServerStartError(
            f"{what}; nothing was started", command=spec.display_command(spec.port)
        )

    def address_known(self) -> bool:
        """Whether the probe knows where to connect (a reported port may come later)."""
        return self.spec.uds is not None or self.port is not None

    def health_url(self) -> str:
        spec = self.spec
        if spec.uds is not None:
            return f"{spec.scheme}://localhost{spec.health_path} (Unix socket {spec.uds})"
        base = url_for(spec.connect_host, self.port, spec.scheme)
        return f"{base}{spec.health_path}"

    def request_stop(self) -> None:
        """Ask the supervisor to stop the server (idempotent, non-blocking, any thread)."""
        self.stop_requested = True
        with contextlib.suppress(OSError):
            self._control_w.send(b"s")

    def request_kill(self) -> None:
        """Kill the server's group at once, without the shutdown grace (a second Ctrl-C).

        Idempotent, non-blocking, any thread, and safe from a signal handler: only a flag and
        a non-blocking send. The stop counts as deliberate: no warning, no kept log.
        """
        self.kill_requested = True
        self.stop_requested = True
        with contextlib.suppress(OSError):
            self._control_w.send(b"k")

    async def wait_async(self, event: threading.Event) -> None:
        """Wait for ``event`` without blocking the event loop (asyncio or trio, via anyio)."""
        import anyio

        if event.is_set():
            return
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        with self._waiters_lock:
            self._waiters.add(writer)
        try:
            while not event.is_set():  # checked after registering: no wake-up can be missed
                await anyio.wait_readable(reader)
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    reader.recv(4096)
        finally:
            with self._waiters_lock:
                self._waiters.discard(writer)
            reader.close()
            writer.close()

    def close(self) -> None:
        """Release what the front end shares with the supervisor (after ``finished``)."""
        if self._thread.is_alive():
            self._thread.join()
        for sock in (self._control_r, self._control_w):
            sock.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._remove_uds()

    def _remove_uds(self) -> None:
        """Remove the Unix socket file we created (the server is gone: nobody listens)."""
        if self._created_uds and self.spec.uds is not None:
            self._created_uds = False
            with contextlib.suppress(OSError):
                os.unlink(self.spec.uds)

    def note(self, text: str) -> None:
        """Add a line of our own to the server's log."""
        self.output.note(text)

    # -- supervisor thread ------------------------------------------------------------------

    def _poke(self) -> None:
        with self._waiters_lock:
            for writer in self._waiters:
                with contextlib.suppress(OSError):
                    writer.send(b"!")

    def _port_reported(self, port: int) -> None:
        if self.port is None:
            self.port = port
            with contextlib.suppress(OSError):
                self._control_w.send(b"p")

    def _main(self) -> None:
        try:
            self._spawn()
        except Exception as exc:  # the command could not be run at all
            self._failure = ("spawn", f"could not start the server: {exc}")
            self._finish()
            return
        try:
            with _platform.new_selector() as sel:
                assert self._exit_watch is not None
                sel.register(self._exit_watch, selectors.EVENT_READ, "exit")
                sel.register(self._control_r, selectors.EVENT_READ, "control")
                # Until ready (and until the first output after it) this thread reads the
                # output itself: no second thread wakes up on the path to ready.
                sel.register(self.output.fileno(), selectors.EVENT_READ, "output")
                if self._wait_ready(sel):
                    self.ready.set()
                    self._poke()
                    self._wait_stop_or_exit(sel)
                elif self.stop_requested and self._failure is None:
                    # Stopped (Ctrl-C, cancellation) before it was ready: nothing of value can
                    # be lost, so it is killed at once rather than given the shutdown grace.
                    self._kill_all()
        except BaseException as exc:  # a bug here must not leave the child running
            self._failure = ("internal", f"server-launcher failed while supervising: {exc!r}")
        self._finish()

    def _spawn(self) -> None:
        spec = self.spec
        fd = self._listener.fileno() if spec.port_mode == "fd" and self._listener else None
        args = spec.build_args(fd, self.port)
        self.command = [*spec.display_prefix, *args]
        pass_fds = [fd] if fd is not None else []
        self._cwd = spec.cwd or os.getcwd()
        try:
            argv = _platform.child_argv(spec.kind, args)
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=merged_env(spec.env),
                cwd=spec.cwd,
                close_fds=True,
                **_platform.popen_options(pass_fds),
            )
            # The child waits for its bootstrap on stdin: it gets it only once its watchdog
            # runs (if we die first, the child reads EOF and exits). Until then the child
            # starts its interpreter, so the watchdog's spawn is off its path to ready.
            self._watchdog = Watchdog(self._proc.pid, tree=_platform.HAS_PROC)
            _platform.hold_lifeline(self._watchdog.lifeline)
            assert self._proc.stdin is not None
            _platform.send_bootstrap(self._proc.stdin)
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        finally:
            if spec.port_mode == "fd" and self._listener is not None:
                # The child holds the socket now; without our copy, its death resets our probe.
                self._listener.close()
                self._listener = None
        self.pid = self._proc.pid  # the bootstrap becomes the server: same process
        assert self._proc.stdout is not None
        self.output.start(self._proc.stdout)
        self._exit_watch = _platform.ExitWatch(self._proc)

    def _wait_ready(self, sel: selectors.BaseSelector) -> bool:
        spec = self.spec
        deadline = time.monotonic() + spec.startup_timeout
        probe: HealthProbe | None = None
        next_probe = time.monotonic()
        backoff = _BACKOFF_START

        def drop_probe(problem: str) -> None:
            nonlocal probe, next_probe, backoff
            if probe is not None:
                sel.unregister(probe)
                probe.close()
                probe = None
            self._last_problem = problem
            next_probe = time.monotonic() + backoff
            backoff = min(backoff * 2, _BACKOFF_MAX)

        try:
            while True:
                now = time.monotonic()
                if probe is None and self.address_known() and now >= next_probe:
                    try:
                        probe = HealthProbe(
                            spec.connect_host,
                            self.port,
                            spec.health_path,
                            uds=spec.uds,
                            tls=self._tls_context,
                        )
                        sel.register(probe, probe.events, "probe")
                    except ProbeFailed as exc:
                        probe = None
                        drop_probe(str(exc))
                if now >= deadline:
                    self._failure = ("timeout", "")
                    self._kill_all()
                    return False
                wait = deadline - now
                if probe is None and self.address_known():
                    wait = min(wait, max(next_probe - now, 0.0))
                for key, _ in sel.select(min(wait, _MAX_WAIT)):
                    tag = key.data
                    if tag == "exit":
                        self._failure = ("exit", "")
                        return False
                    if tag == "output":
                        if self.output.pump():  # EOF: the drain thread closes it later
                            sel.unregister(key.fileobj)
                    elif tag == "control":
                        self._drain_control()
                        if self.stop_requested:
                            return False
                    elif tag == "probe" and probe is not None:
                        try:
                            if probe.on_event():
                                status = probe.status
                                self._last_status = status
                                if status == 200:
                                    drop_probe("")
                                    return True
                                drop_probe(f"health answered {status}")
                            elif probe.events != key.events:
                                sel.modify(probe, probe.events, "probe")
                        except TLSFailed as exc:  # the server cannot serve TLS: say so now
                            self._failure = ("tls", str(exc))
                            _platform.kill(self._proc_or_fail())
                            return False
                        except ProbeFailed as exc:
                            drop_probe(str(exc))
        finally:
            if probe is not None:
                probe.close()

    def _kill_all(self) -> None:
        """SIGKILL the group and everything the server started outside it (Linux)."""
        proc = self._proc_or_fail()
        self._strays += _platform.strays(proc.pid)  # none once the server has exited
        _platform.kill_strays(self._strays)
        _platform.kill(proc)

    def _drain_control(self) -> bytes:
        """Everything sent so far: a byte left unread would wake every later select at once."""
        data = b""
        while True:
            try:
                chunk = self._control_r.recv(4096)
            except (BlockingIOError, InterruptedError):
                return data
            except OSError:
                return data
            if not chunk:
                return data
            data += chunk

    def _proc_or_fail(self) -> subprocess.Popen[bytes]:
        assert self._proc is not None
        return self._proc

    def _hand_output_over(self, sel: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        """The first output after ready: from now on the drain thread reads it (in batches)."""
        sel.unregister(key.fileobj)
        self.output.start_draining()

    def _wait_stop_or_exit(self, sel: selectors.BaseSelector) -> None:
        while True:
            for key, _ in sel.select():
                if key.data == "output":
                    self._hand_output_over(sel, key)
                elif key.data == "exit":
                    self.exited_on_its_own = True
                    return
                if key.data == "control":
                    self._drain_control()
                    if self.stop_requested:
                        self._stop(sel)
                        return

    def _stop(self, sel: selectors.BaseSelector) -> None:
        """SIGTERM to the group, wait on the process itself, SIGKILL after the grace period.

        A stop request that comes meanwhile (a second ``stop()``) is read and dropped; a kill
        request (``request_kill``) ends the grace at once.
        """
        proc = self._proc_or_fail()
        # What the server started in sessions of its own gets no signal to the group: found
        # now, while the server (a subreaper) still holds them, and killed once it is gone.
        self._strays = _platform.strays(proc.pid)
        if not self.kill_requested:
            _platform.terminate(proc)
        kill_at = time.monotonic() + self.spec.shutdown_timeout
        while True:
            if self.kill_requested:
                self._kill_all()
                return
            remaining = kill_at - time.monotonic()
            if remaining <= 0:
                self.killed = True
                self._kill_all()
                return
            for key, _ in sel.select(min(remaining, _MAX_WAIT)):
                if key.data == "output":
                    self._hand_output_over(sel, key)
                elif key.data == "exit":
                    return
                elif key.data == "control":
                    self._drain_control()

    def _finish(self) -> None:
        """Kill what is left of the group, reap, drain the output, report."""
        proc = self._proc
        if proc is not None:
            self._kill_all()  # leftovers (workers); the unreaped leader keeps the group id ours
            if self._watchdog is not None:
                # Its work is done: killed before the server is reaped (never acts on a pid
                # that may be reused), and its lifeline forgotten before it is closed.
                self._watchdog.kill()
                _platform.release_lifeline(self._watchdog.lifeline)
            try:
                proc.wait(timeout=_REAP_CAP)
            except subprocess.TimeoutExpired:  # pragma: no cover - stuck in the kernel
                self._failure = self._failure or ("internal", "the server could not be reaped")
            self.returncode = proc.returncode
            self.output.wait_drained(2.0)
            if self._watchdog is not None:  # dying since before the reap: seldom waited for
                self._watchdog.reap(_REAP_CAP)
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        if self._exit_watch is not None:
            self._exit_watch.close()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._remove_uds()
        if self.killed:
            self.note(
                f"server-launcher: the server did not exit within {self.spec.shutdown_timeout:g} s "
                "of SIGTERM and was killed with SIGKILL"
            )
        failed = self._failure is not None and not (
            self.stop_requested and not self.ready.is_set() and self._failure[0] == "exit"
        )
        unclean = (
            self.killed
            or self.exited_on_its_own
            or (
                self.ready.is_set()
                and not self.kill_requested
                and not _platform.is_clean_exit(self.returncode)
            )
        )
        self.log_path = self.output.close(keep_log=failed or unclean)
        if self._failure is not None and not (self.stop_requested and not self.ready.is_set()):
            self.error = self._build_error(*self._failure)
        self.finished.set()
        self.ready.set()
        self._poke()

    def _build_error(self, kind: str, reason: str) -> ServerStartError:
        spec = self.spec
        tail = self.output.tail()
        command = self.command or list(spec.display_prefix)
        url = self.health_url()
        if kind == "timeout":
            seen = (
                f"the health check last answered {self._last_status}"
                if self._last_status is not None
                else f"the health check never answered ({self._last_problem or 'no answer'})"
            )
            return ServerStartTimeout(
                f"the server was not ready within {spec.startup_timeout:g} s (startup_timeout): "
                f"GET {url} never answered 200; {seen}; the server was killed",
                command=command,
                timeout=spec.startup_timeout,
                last_health_status=self._last_status,
                returncode=self.returncode,
                output_tail=tail,
                log_path=self.log_path,
                log_incomplete=self.output.log_problem,
            )
        if kind == "exit":
            reason = (
                f"the server exited with {describe_returncode(self.returncode)} before it was "
                f"ready (health check GET {url})"
            )
            if spec.kind == "module":  # where a ModuleNotFoundError in the tail looked first
                reason += f"; it imported from the working directory {self._cwd!r} first"
        elif kind == "tls" and spec.tls is not None:
            reason = (
                f"{reason} (health check GET {url}, serving TLS with {spec.tls.describe()}); "
                "the server was killed"
            )
        return ServerStartError(
            reason,
            command=command,
            returncode=self.returncode,
            output_tail=tail,
            log_path=self.log_path,
            log_incomplete=self.output.log_problem,
        )


def describe_returncode(returncode: int | None) -> str:
    """``exit code 1`` or ``signal SIGKILL``, for messages."""
    if returncode is None:
        return "no exit status"
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"signal {name} (returncode {returncode})"
    return f"exit code {returncode}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def url_for(host: str, port: int | None, scheme: str = "http") -> str:
    """``http://127.0.0.1:PORT`` (IPv6 hosts in brackets)."""
    return f"{scheme}://{_url_host(host)}:{port}"


def _no_password() -> str:
    return ""


def _tls_hint(tls: TLSFiles, exc: OSError) -> str:
    """What most likely went wrong, in words (OpenSSL's reason is often just "PEM lib")."""
    if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
        return "the key does not belong to the certificate"
    if not isinstance(exc, ssl.SSLError):
        return "a file cannot be read"
    try:
        with open(tls.keyfile or tls.certfile, "rb") as f:
            key_text = f.read(1 << 20)
    except OSError:
        key_text = b""
    if b"ENCRYPTED" in key_text:
        if tls.password is None:
            return "the key is encrypted: pass its password as ssl_keyfile_password="
        return "the key's password (ssl_keyfile_password) is wrong"
    if b"PRIVATE KEY" not in key_text:
        where = "ssl_keyfile" if tls.keyfile else "ssl_certfile (no ssl_keyfile= was given)"
        return f"no PEM private key found in {where}"
    return "the certificate or key is not valid PEM"


def _check_tls(spec: LaunchSpec) -> ssl.SSLContext:
    """Load the certificate and key as the server will, before anything starts; the probe's
    (non-verifying) client context."""
    tls = spec.tls
    assert tls is not None
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # Never None: OpenSSL would then prompt on the terminal for an encrypted key's password.
        server_side.load_cert_chain(tls.certfile, tls.keyfile, tls.password or _no_password)
    except (ssl.SSLError, OSError) as exc:
        detail = exc.strerror or str(exc)
        raise ServerStartError(
            f"TLS: the server cannot serve TLS with {tls.describe()}: {_tls_hint(tls, exc)} "
            f"({detail}); nothing was started",
            command=spec.display_command(spec.port),
        ) from None
    return client_tls_context()


def merged_env(env: Mapping[str, str | None] | None) -> dict[str, str]:
    """``os.environ`` with ``env`` on top; a None value removes that key."""
    result = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result
