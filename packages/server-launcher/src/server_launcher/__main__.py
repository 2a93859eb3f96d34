"""``python -m server_launcher pkg.mod:create_app``: serve an app until Ctrl-C.

Prints the URL on stdout (one line, for scripts), streams the server's output to stderr, and
stops the server cleanly on Ctrl-C (SIGINT) or SIGTERM; a second one kills it at once.
"""

from __future__ import annotations

import argparse
import contextlib
import select
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Sequence

from ._errors import ServerStartError, ServerStopWarning
from ._launch import DEMO_APP, RunningServer, ServerLauncher, launch_server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server_launcher",
        description="Run an ASGI app under uvicorn on a free port until Ctrl-C.",
    )
    parser.add_argument(
        "app", nargs="?", default=DEMO_APP, help=f"import string (default {DEMO_APP})"
    )
    parser.add_argument(
        "--health-path", default="/health", help="must answer 200 (default /health)"
    )
    parser.add_argument("--no-factory", action="store_true", help="app is the ASGI app itself")
    parser.add_argument("--startup-timeout", type=float, default=20.0)
    parser.add_argument("--shutdown-timeout", type=float, default=10.0)
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="set for the server"
    )
    return parser


class _Signals:
    """Ctrl-C and SIGTERM, handled without ever raising: they can arrive between any two lines.

    The first asks the supervisor to stop the server (with its shutdown grace); a second one
    kills it at once. Both only set a flag and send a byte (``Supervisor.request_stop`` /
    ``request_kill``), which is safe in a signal handler. A signal that comes before the
    launcher exists is remembered and acted on as soon as it does.

    The wake socket is also the process's signal wakeup fd: Python runs a handler only when the
    main thread runs bytecode, and a signal caught by another thread, or by the main thread just
    before it enters ``select``, would otherwise leave it asleep there for good.
    """

    def __init__(self) -> None:
        self.count = 0
        self.launcher: ServerLauncher | None = None
        # Woken by each signal and by the server's end: the main thread waits on it.
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self.wake_w.send(b"!")

    def wait(self) -> None:
        select.select([self.wake_r], [], [])
        with contextlib.suppress(OSError):
            self.wake_r.recv(4096)

    def install(self) -> int:
        """Install the handlers and the wakeup fd; returns the previous wakeup fd to restore."""
        previous = signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: object) -> None:
        self.count += 1
        self.act()
        self.wake()

    def act(self) -> None:
        """Pass what was received on to the supervisor (again: it is idempotent)."""
        launcher = self.launcher
        supervisor = launcher._supervisor if launcher is not None else None
        if supervisor is None or self.count == 0:
            return
        if self.count == 1:
            supervisor.request_stop()
        else:
            supervisor.request_kill()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; installs SIGINT and SIGTERM handlers for the rest of the process."""
    signals = _Signals()
    previous_wakeup_fd = signals.install()  # first: nothing may start before Ctrl-C is handled
    try:
        args = _parser().parse_args(argv)
        env: dict[str, str | None] = {}
        for item in args.env:
            name, sep, value = item.partition("=")
            if not sep:
                _parser().error(f"--env needs NAME=VALUE, got {item!r}")
            env[name] = value
        with warnings.catch_warnings():
            # A forced stop or a server that exits on its own is said in one line of our own.
            warnings.simplefilter("ignore", ServerStopWarning)
            return _serve(args, env, signals)
    finally:
        # The wake socket is closed with ``signals``: no later signal may write to its number.
        signal.set_wakeup_fd(previous_wakeup_fd)


def _serve(args: argparse.Namespace, env: dict[str, str | None], signals: _Signals) -> int:
    try:
        launcher = launch_server(
            args.app,
            factory=not args.no_factory,
            health_path=args.health_path,
            env=env,
            startup_timeout=args.startup_timeout,
            shutdown_timeout=args.shutdown_timeout,
            output=sys.stderr,
        )
    except (ValueError, TypeError) as exc:
        print(f"server-launcher: {exc}", file=sys.stderr)
        return 2
    signals.launcher = launcher
    try:
        with launcher as server:
            signals.act()  # a signal that came before the supervisor existed
            if signals.count == 0:
                print(server.url, flush=True)
                print(
                    f"server-launcher: serving {args.app} at {server.url} (pid {server.pid}); "
                    "press Ctrl-C to stop",
                    file=sys.stderr,
                    flush=True,
                )
            _wait_for_the_end(server, signals)
        returncode = server.returncode
    except ServerStartError as exc:
        print(f"server-launcher: {exc}", file=sys.stderr)
        return 1
    except RuntimeError:  # stopped by a signal before it was ready
        if signals.count == 0:
            raise
        print("server-launcher: interrupted before the server was ready", file=sys.stderr)
        return 130
    if signals.count == 0:
        print("server-launcher: the server exited on its own", file=sys.stderr)
        return 1
    if signals.count > 1 and returncode == -signal.SIGKILL:
        print("server-launcher: second signal: the server was killed at once", file=sys.stderr)
        return 1
    print("server-launcher: stopped", file=sys.stderr, flush=True)
    return 0


def _wait_for_the_end(server: RunningServer, signals: _Signals) -> None:
    """Until a signal stops the server or it exits on its own; says once that it is stopping."""

    def notify_end() -> None:
        server.wait()
        signals.wake()

    threading.Thread(target=notify_end, name="server-launcher-cli", daemon=True).start()
    announced = False
    while server.returncode is None:
        if signals.count and not announced:
            announced = True
            print(
                "server-launcher: stopping; press Ctrl-C again to kill it at once",
                file=sys.stderr,
                flush=True,
            )
        signals.wait()


if __name__ == "__main__":
    sys.exit(main())
