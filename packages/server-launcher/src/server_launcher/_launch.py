"""``launch_server``: validation, the command line, and the sync and async front ends."""

from __future__ import annotations

import dataclasses
import inspect
import ipaddress
import math
import os
import re
import string
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import IO, Any

from . import _platform
from ._errors import ServerStopWarning
from ._importpath import check_import_root
from ._spawn import LaunchSpec, PortMode, Supervisor, TLSFiles, describe_returncode, url_for

__all__ = ["DEMO_APP", "RunningServer", "ServerLauncher", "launch_server"]

DEMO_APP = "server_launcher.demo:create_app"
"""Import string of the bundled demo app factory (``/health``, and ``/api/health``, ``/api/echo``,
``/api/env/NAME`` under its default prefix)."""

_PLACEHOLDERS = frozenset({"host", "port", "fd", "python", "app", "ssl_certfile", "ssl_keyfile"})
# uvicorn arguments the launcher sets itself, and the keyword that does it instead.
_OWNED_ARGS = {
    "--host": "host=",
    "--port": "port=",
    "--fd": "port= or uds=",
    "--uds": "uds=",
    "--ssl-certfile": "ssl_certfile=",
    "--ssl-keyfile": "ssl_keyfile=",
    "--ssl-keyfile-password": "ssl_keyfile_password=",
}
# The Unix socket path limit (sun_path: 108 bytes on Linux, 104 on macOS, with the final NUL).
_UDS_MAX = 103 if sys.platform == "darwin" else 107
_APP_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class RunningServer:
    """A server that answered its health check; yielded by the launcher's ``with`` blocks.

    Not created directly: ``with launch_server(...) as server`` gives you one.
    """

    def __init__(self, supervisor: Supervisor) -> None:
        assert supervisor.address_known()
        assert supervisor.pid is not None
        spec = supervisor.spec
        self._sup = supervisor
        self._finalized = False
        self._finalize_lock = threading.Lock()
        self.host: str = spec.host
        """The host the server's socket is bound to."""
        self.port: int | None = supervisor.port
        """The TCP port it listens on (None when it listens on a Unix socket)."""
        self.uds: str | None = spec.uds
        """The Unix socket it listens on (``uds=``), else None."""
        self.pid: int = supervisor.pid
        """Process id of the server process (the one running uvicorn or your command)."""
        self.url: str = (
            f"{spec.scheme}://localhost"
            if spec.uds is not None
            else url_for(spec.connect_host, supervisor.port, spec.scheme)
        )
        """``http://127.0.0.1:PORT`` (``https://`` with TLS; no trailing slash, never
        ``localhost``). On a Unix socket ``http://localhost``, for a client that connects to
        ``uds`` (e.g. ``httpx.HTTPTransport(uds=server.uds)``)."""
        self.command: list[str] = list(supervisor.command)
        """The server command line, as a list of arguments."""

    def __repr__(self) -> str:
        state = "stopped" if self._sup.finished.is_set() else "running"
        where = f" on {self.uds}" if self.uds is not None else ""
        return f"<RunningServer {self.url}{where} pid={self.pid} {state}>"

    def output(self) -> str:
        """Everything the server printed so far (stdout and stderr, as text)."""
        return self._sup.output.text()

    @property
    def returncode(self) -> int | None:
        """The exit status once stopped (negative: the signal that ended it), else None."""
        return self._sup.returncode if self._sup.finished.is_set() else None

    @property
    def log_path(self) -> str | None:
        """The log file: while running, and after a stop that was not clean (else removed)."""
        if self._sup.finished.is_set():
            return self._sup.log_path
        return self._sup.output.log_path

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the server to exit on its own (it is not stopped); its status, or None."""
        if not self._sup.finished.wait(timeout):
            return None
        return self._sup.returncode

    def stop(self) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL after ``shutdown_timeout``) and reap it.

        Idempotent. Blocks: from async code use ``await server.astop()``. Returns the exit status.
        """
        self._sup.request_stop()
        self._sup.finished.wait()
        self._finalize()
        return self._sup.returncode

    async def astop(self) -> int | None:
        """``stop()`` for async code (asyncio or trio); shielded from cancellation."""
        import anyio

        self._sup.request_stop()
        with anyio.CancelScope(shield=True):
            await self._sup.wait_async(self._sup.finished)
        self._finalize()
        return self._sup.returncode

    def restart(self) -> None:
        """Stop the server (as ``stop()``) and start it again on the same port or Unix socket.

        For testing a client's reconnect logic. ``pid``, ``command`` and ``output()`` then
        belong to the new server process. Raises ``ServerStartError`` when it cannot start
        again (the server is then stopped). Blocks: from async code use ``await
        server.arestart()``. Not thread-safe: one call on a server at a time.
        """
        launcher = ServerLauncher(self._restart_spec())
        self.stop()
        self._adopt(launcher.__enter__())

    async def arestart(self) -> None:
        """``restart()`` for async code (asyncio or trio)."""
        launcher = ServerLauncher(self._restart_spec())
        await self.astop()
        self._adopt(await launcher.__aenter__())

    def _restart_spec(self) -> LaunchSpec:
        spec = self._sup.spec
        if spec.uds is not None:
            return spec
        if spec.port_mode == "report":
            if spec.kind == "exec":
                raise RuntimeError(
                    "restart() needs a command with {fd} or {port}: the launcher cannot tell "
                    "this command which port to serve again"
                )
            return dataclasses.replace(spec, port=self.port, port_mode="reserve")
        return dataclasses.replace(spec, port=self.port)

    def _adopt(self, other: RunningServer) -> None:
        """Take over a freshly started server on the same address (restart)."""
        with self._finalize_lock:
            self._sup = other._sup
            self._finalized = False
        self.pid = other.pid
        self.command = other.command

    def _finalize(self) -> None:
        with self._finalize_lock:  # stop() may be called from many threads and tasks at once
            if self._finalized:
                return
            self._finalized = True
        sup = self._sup
        sup.close()
        kept = f"; its output is kept in {sup.log_path}" if sup.log_path else ""
        if kept and sup.output.log_problem:
            kept += f" ({sup.output.log_problem})"
        if sup.killed:
            message = (
                f"server {self.url} (pid {self.pid}) did not exit within "
                f"{sup.spec.shutdown_timeout:g} s of SIGTERM and was killed with SIGKILL{kept}"
            )
        elif sup.exited_on_its_own:
            message = (
                f"server {self.url} (pid {self.pid}) exited on its own with "
                f"{describe_returncode(sup.returncode)} while it was in use{kept}"
            )
        elif not sup.kill_requested and not _platform.is_clean_exit(sup.returncode):
            message = (
                f"server {self.url} (pid {self.pid}) stopped with "
                f"{describe_returncode(sup.returncode)}{kept}"
            )
        else:
            return
        warnings.warn(ServerStopWarning(message), stacklevel=4)


class ServerLauncher:
    """Returned by ``launch_server``: use it as ``with`` or ``async with`` (asyncio or trio).

    Not created directly: ``launch_server(...)`` validates the arguments and returns one.
    """

    def __init__(self, spec: LaunchSpec) -> None:
        self._spec = spec
        self._server: RunningServer | None = None
        self._supervisor: Supervisor | None = None

    def __repr__(self) -> str:
        return f"<ServerLauncher {' '.join(self._spec.build_args(None, self._spec.port))!r}>"

    def _begin(self) -> Supervisor:
        if self._supervisor is not None:
            raise RuntimeError("this launcher is already running a server; launch another one")
        supervisor = Supervisor(self._spec)
        supervisor.start()
        self._supervisor = supervisor
        return supervisor

    def _started(self, supervisor: Supervisor) -> RunningServer:
        if supervisor.finished.is_set():
            supervisor.close()
            self._supervisor = None
            error = supervisor.error
            if error is None:  # pragma: no cover - only when stopped while starting
                raise RuntimeError("the server was stopped before it was ready")
            raise error
        self._server = RunningServer(supervisor)
        return self._server

    def _abandon(self, supervisor: Supervisor) -> None:
        supervisor.close()
        self._supervisor = None

    def __enter__(self) -> RunningServer:
        supervisor = self._begin()
        try:
            supervisor.ready.wait()
        except BaseException:  # KeyboardInterrupt while starting: nothing may stay behind
            supervisor.request_stop()
            supervisor.finished.wait()
            self._abandon(supervisor)
            raise
        return self._started(supervisor)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server, self._supervisor = self._server, None, None
        if server is not None:
            server.stop()

    async def __aenter__(self) -> RunningServer:
        import anyio

        supervisor = self._begin()
        try:
            await supervisor.wait_async(supervisor.ready)
        except BaseException:  # cancelled while starting: stop and reap before going on
            supervisor.request_stop()
            with anyio.CancelScope(shield=True):
                await supervisor.wait_async(supervisor.finished)
            self._abandon(supervisor)
            raise
        return self._started(supervisor)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server, self._supervisor = self._server, None, None
        if server is not None:
            await server.astop()


def launch_server(
    app: str | Callable[..., Any] | None = None,
    *,
    factory: bool = True,
    host: str = "127.0.0.1",
    health_path: str = "/health",
    env: Mapping[str, str | None] | None = None,
    startup_timeout: float = 20.0,
    shutdown_timeout: float = 10.0,
    command: Sequence[str] | None = None,
    server_args: Sequence[str] = (),
    output: IO[Any] | None = None,
    allow_remote: bool = False,
    log_dir: str | os.PathLike[str] | None = None,
    port: int | None = None,
    uds: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    ssl_certfile: str | os.PathLike[str] | None = None,
    ssl_keyfile: str | os.PathLike[str] | None = None,
    ssl_keyfile_password: str | None = None,
) -> ServerLauncher:
    """Prepare a server launch; start it with ``with`` or ``async with``.

    Args:
        app: ``"pkg.module:attr"`` for uvicorn (a factory unless ``factory=False``); defaults
            to the bundled demo app. With ``command``, it fills the ``{app}`` placeholder.
            An app object (or factory function) bound to a name at the top level of an
            importable module is served by that name; one defined inside a function, in
            ``__main__`` or as a lambda is refused (a fresh process could not import it).
        factory: pass ``--factory`` to uvicorn (``app`` names a function returning the app).
        host: the address to bind; loopback by default. Anything else needs ``allow_remote``.
        health_path: the path that must answer 200 before the server counts as ready.
        env: variables for the child on top of ``os.environ`` as it is when the server starts
            (not when ``launch_server`` is called); a None value removes that key.
        startup_timeout: seconds until a server that is alive but not healthy is killed and
            ``ServerStartTimeout`` raised.
        shutdown_timeout: seconds between SIGTERM and SIGKILL when stopping.
        command: run this instead of uvicorn; placeholders ``{host}``, ``{port}``, ``{fd}``
            (a listening socket's file descriptor), ``{python}`` and ``{app}``. With ``{fd}``
            the parent holds the port; with ``{port}`` only, the port is reserved for the child;
            with neither, the port is read from the first ``http://host:port`` it prints.
        server_args: extra arguments appended to the server command, passed literally (no
            placeholders: a brace in them is just a brace).
        output: a file object (text or binary, e.g. ``sys.stderr``) that also receives the
            server's output as it comes. The output is always kept in memory (the last 8 MiB)
            and in a private log file that is removed after a clean stop; a kept log holds the
            first 32 MiB and the last 8 MiB of the output.
        allow_remote: allow a non-loopback ``host`` (the server is then reachable from outside).
        log_dir: an existing folder for the log file (e.g. pytest's ``tmp_path``); the system
            temporary folder by default.
        port: serve this fixed port instead of a free one. The launcher binds it before the
            server starts; a port in use raises ``ServerStartError`` naming it, before anything
            starts. With ``command``, the command needs ``{fd}`` or ``{port}``.
        uds: serve on a Unix socket at this path (created and removed by the launcher; it must
            not exist). The URL is then ``http://localhost``; connect with e.g.
            ``httpx.HTTPTransport(uds=server.uds)``. With ``command``, it needs ``{fd}``.
        cwd: the server's working directory, and so the first place it imports the app from
            (the caller's working directory by default, as for the tests themselves).
        ssl_certfile: serve HTTPS with this PEM certificate (uvicorn's ``--ssl-certfile``; with
            ``command``, the ``{ssl_certfile}`` placeholder). The health check speaks TLS
            without verifying: it only ever talks to this server.
        ssl_keyfile: the certificate's private key, when it is not in ``ssl_certfile``.
        ssl_keyfile_password: the key's password; given to uvicorn through its environment,
            never on its command line (not supported with ``command``).

    Raises:
        TypeError, ValueError: on bad arguments, before anything is started.
        RuntimeError: on Windows, which is not supported (POSIX process groups are needed).

    Entering the launcher raises ``ServerStartError`` when the port is in use or the
    certificate cannot be served, before anything starts.
    """
    if _platform.IS_WINDOWS:
        raise RuntimeError(_platform.WINDOWS_REFUSAL)
    if not isinstance(host, str) or not host:
        raise TypeError(f"host must be a non-empty string such as '127.0.0.1', got {host!r}")
    bind_host, connect_host = _check_host(host, allow_remote)
    if not isinstance(health_path, str) or not health_path.startswith("/"):
        raise ValueError(f"health_path must be a path starting with '/', got {health_path!r}")
    if any(ch.isspace() for ch in health_path) or any(ord(ch) < 32 for ch in health_path):
        raise ValueError(
            f"health_path must not contain spaces or control characters: {health_path!r}"
        )
    if not health_path.isascii():
        raise ValueError(
            f"health_path must be ASCII (percent-encode other characters, e.g. '/caf%C3%A9'), "
            f"got {health_path!r}"
        )
    if not isinstance(factory, bool):
        raise TypeError(f"factory must be True or False, got {factory!r}")
    startup = _check_timeout("startup_timeout", startup_timeout)
    shutdown = _check_timeout("shutdown_timeout", shutdown_timeout)
    child_env = dict(_check_env(env) or {})  # merged over os.environ when the server starts
    extra = _check_args("server_args", server_args, allow_empty=True)
    if output is not None and not callable(getattr(output, "write", None)):
        raise TypeError(
            f"output must be None or a writable file object such as sys.stderr, got {output!r}"
        )
    log_folder = _check_log_dir(log_dir)
    fixed_port = _check_port(port)
    socket_path = _check_uds(uds)
    if socket_path is not None and fixed_port is not None:
        raise ValueError("pass port= or uds=, not both: a server listens on one of them")
    work_dir = _check_dir("cwd", cwd)
    tls = _check_tls_args(ssl_certfile, ssl_keyfile, ssl_keyfile_password)
    if app is not None and not isinstance(app, str):
        app = _import_string_of(app, factory)
    assert app is None or isinstance(app, str)
    if app is not None and command is None and not _APP_RE.match(app):
        raise ValueError(f"app must be an import string 'package.module:attribute', got {app!r}")

    if command is None:
        _refuse_owned_args(extra)
        spec_app = app if app is not None else DEMO_APP
        check_import_root(spec_app, work_dir or os.getcwd(), extra, child_env)
        port_mode: PortMode = (
            "fd"
            if _platform.UVICORN_TAKES_FD or socket_path is not None
            else "reserve"
            if fixed_port is not None
            else "report"
        )
        args = ["uvicorn"]
        if factory:
            args.append("--factory")
        args.append(spec_app)
        if not any(a.startswith("--timeout-graceful-shutdown") for a in extra):
            # whole seconds, leaving uvicorn time to finish its lifespan shutdown before SIGKILL
            args += ["--timeout-graceful-shutdown", str(max(0, math.ceil(shutdown) - 1))]
        if tls is not None:
            args += ["--ssl-certfile", tls.certfile]
            if tls.keyfile is not None:
                args += ["--ssl-keyfile", tls.keyfile]
            if tls.password is not None:  # never on the command line, which anyone can read
                child_env["UVICORN_SSL_KEYFILE_PASSWORD"] = tls.password
        template = [*args, *extra]

        def build(fd: int | None, port: int | None) -> list[str]:
            if fd is not None:
                return [*template, "--fd", str(fd)]
            return [*template, "--host", bind_host, "--port", str(port or 0)]

        return ServerLauncher(
            LaunchSpec(
                kind="module",
                build_args=build,
                display_prefix=(sys.executable, "-m"),
                host=bind_host,
                connect_host=connect_host,
                health_path=health_path,
                env=child_env,
                startup_timeout=startup,
                shutdown_timeout=shutdown,
                port_mode=port_mode,
                stream=output,
                log_dir=log_folder,
                tls=tls,
                uds=socket_path,
                port=fixed_port,
                cwd=work_dir,
            )
        )

    cmd = _check_args("command", command, allow_empty=False)
    names = _placeholders(cmd)
    if "app" in names and app is None:
        raise ValueError("command uses {app} but no app was given")
    if app is not None and "app" not in names:
        raise ValueError(
            f"app={app!r} is not used: the command has no {{app}} placeholder; "
            "drop app or put {app} in the command"
        )
    mode: PortMode = "fd" if "fd" in names else "reserve" if "port" in names else "report"
    if socket_path is not None and mode != "fd":
        raise ValueError(
            "uds= with command= needs the {fd} placeholder: the launcher binds the Unix socket "
            "and passes it to your server as a file descriptor"
        )
    if fixed_port is not None and mode == "report":
        raise ValueError(
            f"port={fixed_port} with command= needs the {{fd}} or {{port}} placeholder, so that "
            "the server serves the port the launcher took"
        )
    for name in ("ssl_certfile", "ssl_keyfile"):
        if name in names and (tls is None or (name == "ssl_keyfile" and tls.keyfile is None)):
            raise ValueError(f"command uses {{{name}}} but no {name}= was given")
    if tls is not None and tls.password is not None:
        raise ValueError(
            "ssl_keyfile_password= is not supported with command=: give the password to your "
            "server through env= (never on its command line)"
        )

    def build_command(fd: int | None, port: int | None) -> list[str]:
        """The command with its placeholders filled; ``server_args`` are passed literally."""
        values = {
            "host": bind_host,
            "port": "" if port is None else str(port),
            "fd": "" if fd is None else str(fd),
            "python": sys.executable,
            "app": app or "",
            "ssl_certfile": tls.certfile if tls is not None else "",
            "ssl_keyfile": (tls.keyfile or "") if tls is not None else "",
        }
        return [*(part.format(**values) for part in cmd), *extra]

    return ServerLauncher(
        LaunchSpec(
            kind="exec",
            build_args=build_command,
            display_prefix=(),
            host=bind_host,
            connect_host=connect_host,
            health_path=health_path,
            env=child_env,
            startup_timeout=startup,
            shutdown_timeout=shutdown,
            port_mode=mode,
            stream=output,
            log_dir=log_folder,
            tls=tls,
            uds=socket_path,
            port=fixed_port,
            cwd=work_dir,
        )
    )


def _check_host(host: str, allow_remote: bool) -> tuple[str, str]:
    """(address to bind, address to connect to)."""
    if host == "localhost":
        return "127.0.0.1", "127.0.0.1"  # resolving 'localhost' costs time and may give ::1
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"host must be an IP address such as '127.0.0.1' or '::1', got {host!r}"
        ) from None
    if address.is_loopback:
        return host, host
    if not allow_remote:
        raise ValueError(
            f"host={host!r} would make the server reachable from other machines; "
            "pass allow_remote=True if that is really what you want"
        )
    if address.is_unspecified:
        return host, "::1" if address.version == 6 else "127.0.0.1"
    return host, host


def _check_timeout(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def _check_log_dir(log_dir: object) -> str | None:
    if log_dir is None:
        return None
    if not isinstance(log_dir, (str, os.PathLike)):
        raise TypeError(f"log_dir must be a folder path (str or Path), got {log_dir!r}")
    folder = os.fspath(log_dir)
    if not isinstance(folder, str) or not os.path.isdir(folder):
        raise ValueError(f"log_dir must be an existing folder, got {log_dir!r}; create it first")
    return os.path.abspath(folder)


def _check_env(env: object) -> Mapping[str, str | None] | None:
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping of names to strings (or None), got {env!r}")
    problems = []
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            problems.append(f"bad variable name {key!r}")
        elif value is not None and not isinstance(value, str):
            # the type only: the value may be a secret
            problems.append(
                f"{key} is a {type(value).__name__}; pass a string (or None to remove it)"
            )
    if problems:
        raise TypeError("env: " + "; ".join(problems))
    nul = [key for key, value in env.items() if isinstance(value, str) and "\0" in value]
    if nul:  # the value is not shown: it may be a secret
        raise ValueError(
            f"env: the value of {', '.join(nul)} contains a NUL byte, which no environment "
            "variable can hold; remove it"
        )
    return env


def _check_args(name: str, value: object, *, allow_empty: bool) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{name} must be a list of strings (no shell is used), got {value!r}; "
            'e.g. ["{python}", "-m", "hypercorn", "--bind", "fd://{fd}", "pkg.mod:app"]'
        )
    items = list(value)
    bad = [item for item in items if not isinstance(item, str)]
    if bad:
        raise TypeError(f"{name} must contain only strings, got {bad[0]!r}")
    if not items and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    nul = [item for item in items if "\0" in item]
    if nul:
        raise ValueError(
            f"{name} must not contain a NUL byte (no program argument can), got {nul[0]!r}"
        )
    return items


def _placeholders(parts: Sequence[str]) -> set[str]:
    names: set[str] = set()
    for part in parts:
        try:
            parsed = list(string.Formatter().parse(part))
        except ValueError as exc:
            raise ValueError(
                f"bad placeholder in command argument {part!r}: {exc} (write {{{{ for a brace)"
            ) from None
        for _, field, spec, conversion in parsed:
            if field is None:
                continue
            if field not in _PLACEHOLDERS or spec or conversion:
                raise ValueError(
                    f"unknown placeholder {{{field}}} in command argument {part!r}; "
                    f"use {', '.join('{' + n + '}' for n in sorted(_PLACEHOLDERS))} "
                    "(write {{ and }} for literal braces)"
                )
            names.add(field)
    return names


def _check_port(port: object) -> int | None:
    if port is None:
        return None
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be a whole number such as 8000 (or None), got {port!r}")
    if not 1 <= port <= 65535:
        raise ValueError(
            f"port must be between 1 and 65535, got {port}; leave it out for a free port"
        )
    return port


def _check_path(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or Path), got {value!r}")
    path = os.fspath(value)
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError(f"{name} must be a non-empty path without NUL bytes, got {value!r}")
    return os.path.abspath(path)  # relative to the caller's working directory, not cwd=


def _check_dir(name: str, value: object) -> str | None:
    path = _check_path(name, value)
    if path is not None and not os.path.isdir(path):
        raise ValueError(f"{name} must be an existing folder, got {value!r}")
    return path


def _check_uds(uds: object) -> str | None:
    path = _check_path("uds", uds)
    if path is None:
        return None
    if len(os.fsencode(path)) > _UDS_MAX:
        raise ValueError(
            f"uds path {path!r} is too long for a Unix socket ({len(os.fsencode(path))} bytes, "
            f"at most {_UDS_MAX}); use a shorter path, e.g. in a short temporary folder"
        )
    if not os.path.isdir(os.path.dirname(path)):
        raise ValueError(f"uds={uds!r}: the folder {os.path.dirname(path)!r} does not exist")
    if os.path.lexists(path):
        raise ValueError(
            f"uds={uds!r} already exists: remove it (a socket a server left behind) or "
            "choose another path"
        )
    return path


def _check_tls_args(certfile: object, keyfile: object, password: object) -> TLSFiles | None:
    cert = _check_path("ssl_certfile", certfile)
    key = _check_path("ssl_keyfile", keyfile)
    if password is not None and not isinstance(password, str):
        raise TypeError(  # the value itself is never shown: it is a secret
            f"ssl_keyfile_password must be a string, got a {type(password).__name__}"
        )
    if cert is None:
        if key is not None or password is not None:
            raise ValueError(
                "ssl_keyfile= and ssl_keyfile_password= need ssl_certfile= (the certificate)"
            )
        return None
    for name, path in (("ssl_certfile", cert), ("ssl_keyfile", key)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{name}={path!r} is not a file")
    return TLSFiles(cert, key, password)


def _refuse_owned_args(extra: Sequence[str]) -> None:
    """Arguments the launcher sets for uvicorn are refused, never silently overridden."""
    for arg in extra:
        name = arg.split("=", 1)[0]
        if name in _OWNED_ARGS:
            raise ValueError(
                f"server_args: {name} is set by the launcher, which binds the server's socket "
                f"itself; use launch_server({_OWNED_ARGS[name]}) instead"
            )
        if name.startswith("--ssl-"):
            raise ValueError(
                f"server_args: {name}: the launcher owns uvicorn's TLS options (its health "
                "check must speak the same TLS); use ssl_certfile=, ssl_keyfile= and "
                "ssl_keyfile_password="
            )


def _import_string_of(app: object, factory: bool) -> str:
    """``module:name`` of an app object (or factory) a fresh process can import, or refuse."""
    label = getattr(app, "__qualname__", None) or type(app).__name__
    fix = "or pass an import string 'package.module:attribute'"
    if not callable(app):
        raise TypeError(
            f"app must be an import string 'package.module:attribute' or an ASGI app object "
            f"(or factory), got {app!r}"
        )
    is_function = inspect.isfunction(app)
    if factory and not (is_function or inspect.isclass(app)):
        raise ValueError(
            f"app {label} is an app object, not a factory function; pass factory=False"
        )
    if factory and inspect.iscoroutinefunction(app):
        raise ValueError(
            f"app {label} is an async function (an ASGI app), not a factory; pass factory=False"
        )
    if (
        is_function
        and not factory
        and not inspect.iscoroutinefunction(app)
        and not inspect.signature(app).parameters
    ):
        raise ValueError(f"app {label} takes no arguments (a factory); pass factory=True")
    module = getattr(app, "__module__", None)
    qualname = getattr(app, "__qualname__", None)
    defined_at = f"{module}:{qualname}"
    if module != "__main__" and isinstance(qualname, str) and _resolve(module, qualname) is app:
        return defined_at  # where it was defined
    found = _bound_names(app)
    if len(found) > 1:  # e.g. ``from app import app`` in a test module: prefer non-test modules
        found = [name for name in found if not _is_test_module(name)] or found
    if len(found) > 1:
        raise ValueError(
            f"app {label} is bound in several modules ({', '.join(found)}); "
            "pass the import string of the one to serve"
        )
    if found:
        return found[0]
    # Why a fresh process cannot import it.
    if getattr(app, "__name__", None) == "<lambda>":
        why = "is a lambda that is not bound to a name at the top level of any module"
    elif module == "__main__" or _bound_names(app, main=True):
        why = "is defined in __main__ (the script being run), which a fresh process cannot import"
    elif isinstance(qualname, str) and "<locals>" in qualname:
        why = f"is defined inside a function ({qualname})"
    else:
        why = "is not bound to a name at the top level of any imported module"
    raise ValueError(
        f"app {label} {why}, so the server process cannot import it; bind it to a name at the "
        f"top level of an importable module, {fix}"
    )


def _resolve(module: object, qualname: str) -> object:
    """``module.qualname`` if that module is imported and has it, else None."""
    target: object = sys.modules.get(module) if isinstance(module, str) else None
    for part in qualname.split("."):
        if target is None:
            return None
        target = getattr(target, part, None)
    return target


def _bound_names(app: object, *, main: bool = False) -> list[str]:
    """``module:name`` for every module-level name bound to ``app`` (importable modules)."""
    found = []
    for name, module in list(sys.modules.items()):
        if (name == "__main__") != main:
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or (
            not main and getattr(module, "__spec__", None) is None
        ):
            continue
        for key, value in list(namespace.items()):
            if value is app and isinstance(key, str) and key.isidentifier():
                found.append(f"{name}:{key}")
                break
    return found


def _is_test_module(name: str) -> bool:
    leaf = name.partition(":")[0].rsplit(".", 1)[-1]
    return leaf.startswith("test_") or leaf.endswith("_test") or leaf == "conftest"
