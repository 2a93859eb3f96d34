"""Every difference between POSIX and Windows lives here, for both sides of the launch.

Parent side (imported by the package): how the port is held, how the child is spawned, signalled
and watched. Child side (this file run as a script, standard library only so that it starts
fast): the bootstrap that makes sure no server outlives the process that launched it.

POSIX: the parent binds and listens and passes the socket (``--fd``); the child runs in its own
session (its own process group); the bootstrap stays as a tiny *sentinel* parent of the server:
it sets ``PR_SET_PDEATHSIG`` on Linux and watches its stdin pipe (EOF means the launcher died) and
then kills the whole process group, and it relays the server's exit status. The server itself
gets ``PR_SET_PDEATHSIG(SIGKILL)`` against the single-threaded sentinel.

Windows (written and type-checked, not tested here): the server binds port 0 and the parent
reads the port it reports; the child gets ``CREATE_NEW_PROCESS_GROUP`` and is stopped with
``CTRL_BREAK_EVENT``; there is no orphan protection (a Job object would be needed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

IS_WINDOWS = sys.platform == "win32"
IS_LINUX = sys.platform.startswith("linux")
#: Whether a listening socket can be handed to the child (``--fd`` / ``{fd}``).
CAN_PASS_FD = not IS_WINDOWS

#: Signals whose death counts as a clean stop (besides exit status 0).
CLEAN_SIGNALS: frozenset[int] = (
    frozenset() if IS_WINDOWS else frozenset({signal.SIGTERM, signal.SIGINT})
)

_PR_SET_PDEATHSIG = 1
_BOOTSTRAP = os.path.abspath(__file__)


def is_clean_exit(returncode: int | None) -> bool:
    """Exit status 0, or death by the signal we sent to stop it."""
    if returncode is None:
        return False
    return returncode == 0 or (returncode < 0 and -returncode in CLEAN_SIGNALS)


def listening_socket(host: str) -> socket.socket:
    """Bind and listen in the parent: the port is ours before the child even starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # uvicorn rebuilds a passed socket as AF_UNIX (socket.fromfd), so asyncio never sets
        # TCP_NODELAY on the connections it accepts: every keep-alive request would then stall
        # ~40 ms on Nagle + delayed ACK. Accepted sockets inherit the option from the listener.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, 0))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def port_reservation(host: str) -> socket.socket:
    """Hold a port for a server that binds it itself (``{port}`` without ``{fd}``).

    On Linux and macOS a socket bound with SO_REUSEADDR but not listening keeps the port out of
    everyone else's hands while still letting the child (which sets SO_REUSEADDR too, like
    uvicorn, hypercorn and http.server do) bind and listen on it. Windows has no such sharing:
    the port is picked and released, which is racy, and documented as such.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if not IS_WINDOWS:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def status_pipe() -> tuple[int, int] | None:
    """A pipe the sentinel writes the server's pid into (POSIX only)."""
    if IS_WINDOWS:
        return None
    return os.pipe()


def child_argv(
    kind: str, args: Sequence[str], *, status_fd: int | None, python: str = sys.executable
) -> list[str]:
    """The argv that runs ``args`` (a module to run, or a program to exec) under the bootstrap."""
    if IS_WINDOWS or status_fd is None:
        if kind == "module":
            return [python, "-u", "-m", *args]
        return list(args)
    # -S: the sentinel needs only the standard library (the server re-runs site when it is a
    # module; an exec'd program starts its own interpreter anyway). -u: unbuffered server output.
    flags = ["-u"] if kind == "module" else ["-S"]
    return [python, *flags, _BOOTSTRAP, str(os.getpid()), str(status_fd), kind, "--", *args]


def popen_options(pass_fds: Sequence[int]) -> dict[str, Any]:
    """Spawn options: a new process group (to signal the whole tree) and the passed fds."""
    if IS_WINDOWS:
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True, "pass_fds": tuple(pass_fds)}


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """Ask the server's whole process group to stop."""
    if IS_WINDOWS:
        with contextlib.suppress(OSError):
            proc.send_signal(getattr(signal, "CTRL_BREAK_EVENT", signal.SIGTERM))
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the server's whole process group.

    Safe to call until the leader has been reaped: while it is unreaped (even as a zombie) its
    pid, and so the group id, cannot be reused by an unrelated process.
    """
    if IS_WINDOWS:
        with contextlib.suppress(OSError):
            proc.kill()
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class ExitWatch:
    """Something a selector can wait on that becomes readable when the child has exited.

    It never reaps the child: the caller kills what is left of the group first, then reaps.
    Linux: a pidfd. Elsewhere: a thread blocked in ``waitid(..., WNOWAIT)`` (or ``wait`` on
    Windows) that writes to a socket pair.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._fd: int | None = None
        self._pair: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None
        if IS_LINUX and hasattr(os, "pidfd_open"):
            try:
                self._fd = os.pidfd_open(proc.pid)
                return
            except OSError:
                self._fd = None
        self._pair = socket.socketpair()
        writer = self._pair[1]
        self._thread = threading.Thread(
            target=_wait_then_notify, args=(proc, writer), name="server-exit-watch", daemon=True
        )
        self._thread.start()

    def fileno(self) -> int:
        if self._fd is not None:
            return self._fd
        assert self._pair is not None
        return self._pair[0].fileno()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._pair is not None:
            for sock in self._pair:
                sock.close()
            self._pair = None


def _wait_then_notify(proc: subprocess.Popen[bytes], writer: socket.socket) -> None:
    try:
        if IS_WINDOWS or not hasattr(os, "waitid"):
            proc.wait()
        else:
            while True:
                try:
                    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
                    break
                except ChildProcessError:
                    break
    finally:
        with contextlib.suppress(OSError):
            writer.send(b"x")


# --------------------------------------------------------------------------------------------
# Child side: ``python -u _platform.py LAUNCHER_PID STATUS_FD module|exec -- ARGS...``


def _set_parent_death_signal(sig: int) -> bool:
    """Linux only: have the kernel send ``sig`` to us when our parent thread dies."""
    if not IS_LINUX:
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0


def _kill_own_group(*_: object) -> None:
    with contextlib.suppress(OSError):
        os.killpg(0, signal.SIGKILL)
    os._exit(1)


def _watch_stdin() -> None:
    """The launcher holds the only write end of our stdin: EOF means it is gone."""
    while True:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    _kill_own_group()


def _run_server(kind: str, args: list[str], sentinel: int) -> None:
    """In the forked server process: die with the sentinel, then become the server."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != sentinel:
        os._exit(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if kind == "module":
        import runpy

        sys.argv = [args[0], *args[1:]]
        sys.path[0] = os.getcwd()  # what ``python -m`` does, instead of this file's directory
        runpy.run_module(args[0], run_name="__main__", alter_sys=True)
        return
    try:
        os.execvp(args[0], args)
    except OSError as exc:
        print(f"server-launcher: cannot run {args[0]!r}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)


def _child_main(argv: list[str]) -> None:
    launcher, status_fd, kind = int(argv[0]), int(argv[1]), argv[2]
    args = argv[4:]
    # The launcher can die at any moment from here on: both paths kill our group.
    signal.signal(signal.SIGUSR1, _kill_own_group)
    _set_parent_death_signal(signal.SIGUSR1)
    if os.getppid() != launcher:
        _kill_own_group()
    sentinel = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(status_fd)
        _run_server(kind, args, sentinel)
        return
    for ignored in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(ignored, signal.SIG_IGN)  # the group is signalled: the server handles it
    os.write(status_fd, f"{pid}\n".encode())
    os.closerange(3, 1 << 16)  # the listening socket and the status pipe belong to the server
    threading.Thread(target=_watch_stdin, daemon=True).start()
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):  # SIGKILL's disposition cannot be set
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
