"""Every difference between POSIX and Windows lives here, for both sides of the launch.

How the port is held, how the child is spawned, signalled and watched. The child side, the
bootstrap that makes sure no server outlives the process that launched it, is ``_sentinel.py``.

POSIX: the parent binds and listens and passes the socket (``--fd``); the child runs in its own
session (its own process group). The child is the server itself, after a short bootstrap: on
Linux it becomes a child subreaper (what it starts in other sessions stays its descendant).
The launcher starts a tiny ``/bin/sh`` *watchdog* beside it (``_watchdog.py``) that watches a
pipe (EOF means the launcher died) and then kills the server's descendants and its group.

Portable paths: where Linux has something better, the portable way is also written here (no
``/proc``: ``os.kill(pid, 0)``; no pidfd: a thread in ``waitid(WNOWAIT)``; no subreaper:
only the server's process group is killed; poll instead of epoll). macOS and other POSIX
systems take these. uvicorn takes the parent's socket on every platform; only
``SERVER_LAUNCHER_PORTABLE=1`` makes it bind port 0 and the parent read the port it reports.
That variable forces every portable path on Linux, so that each branch is tested here;
``SERVER_LAUNCHER_PORTABLE=nowaitid`` also acts as if there were no ``os.waitid`` (macOS has
none): ``ps`` tells a zombie, and the exit watch waits in ``kqueue`` (macOS, BSD) or, where
there is neither, reaps the child and kills its group at once.
Windows is refused (see ``launch_server``): its process model needs a tier of its own.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

IS_WINDOWS = sys.platform == "win32"
_PORTABLE = os.environ.get("SERVER_LAUNCHER_PORTABLE", "").strip().lower()
#: ``SERVER_LAUNCHER_PORTABLE=1``: take the portable paths even where Linux has better ones.
FORCE_PORTABLE = _PORTABLE not in ("", "0")
#: Whether ``os.waitid`` is used (``SERVER_LAUNCHER_PORTABLE=nowaitid``: as on macOS, not).
HAS_WAITID = hasattr(os, "waitid") and _PORTABLE != "nowaitid"
IS_LINUX = sys.platform.startswith("linux") and not FORCE_PORTABLE
#: Whether uvicorn gets the parent's socket (``--fd``) rather than binding port 0 and printing
#: its port, which the parent then reads (the portable path). ``{fd}`` commands always get it.
UVICORN_TAKES_FD = not FORCE_PORTABLE
#: Whether ``/proc/PID/stat`` tells a process's state.
HAS_PROC = IS_LINUX and os.path.isdir("/proc/self")

#: Signals whose death counts as a clean stop (besides exit status 0).
CLEAN_SIGNALS: frozenset[int] = frozenset({signal.SIGTERM, signal.SIGINT})
#: Why Windows is refused, for the error ``launch_server`` raises there.
WINDOWS_REFUSAL = (
    "server-launcher does not run servers on Windows: it relies on POSIX process groups, "
    "signals and fd passing to stop every server it starts and never leave one behind. "
    "Use Linux, macOS or WSL."
)

_SENTINEL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sentinel.py")
# Reads the bootstrap's code object, compiled once by the launcher and marshalled, from the head
# of the child's stdin (the lifeline pipe; the launcher writes it right after the spawn), and
# runs it. Importing _sentinel.py instead compiled it from source on every start wherever
# bytecode is not cached (PYTHONDONTWRITEBYTECODE): ~1.5-3 ms of CPU on the path to ready.
_SENTINEL_LOADER = (
    "import marshal,os,sys\nb=b''\nwhile len(b)<{size}:\n c=os.read(0,{size}-len(b))\n"
    " if not c:os._exit(1)\n b+=c\ng={{'__name__':'_sentinel','__file__':{path!r}}}\n"
    "exec(marshal.loads(b),g)\ndel b,c\ng['main'](sys.argv[1:])"
)
_bootstrap_code: bytes | None = None
_bootstrap_lock = threading.Lock()


def bootstrap_code() -> bytes:
    """The marshalled bootstrap (``_sentinel.py``), compiled once per launcher process.

    The child runs the same interpreter (``sys.executable``), so the marshal format matches.
    """
    global _bootstrap_code
    with _bootstrap_lock:
        if _bootstrap_code is None:
            with open(_SENTINEL_PATH, encoding="utf-8") as source:
                code = compile(source.read(), _SENTINEL_PATH, "exec", dont_inherit=True)
            _bootstrap_code = marshal.dumps(code)
        return _bootstrap_code


def send_bootstrap(stdin: IO[bytes]) -> None:
    """Hand the child its bootstrap through its stdin (it fits the pipe's buffer)."""
    with contextlib.suppress(OSError, ValueError):  # the child is gone: reported as its exit
        stdin.write(bootstrap_code())
        stdin.flush()


# The write ends of the pipes whose EOF tells each server's watchdog that its launcher is gone.
_LIFELINES: set[int] = set()


def _drop_lifelines_in_fork_child() -> None:
    """In a ``fork()``ed copy of the launcher (e.g. a multiprocessing worker), let go of every
    lifeline, so that the launcher's death still reaches the watchdogs while the copy lives.
    Each is pointed at /dev/null rather than closed: the copied file objects may close it later.
    """
    if not _LIFELINES:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in _LIFELINES:
            with contextlib.suppress(OSError):
                os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    _LIFELINES.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_lifelines_in_fork_child)


def hold_lifeline(fd: int) -> None:
    """Remember a server's lifeline (see ``_drop_lifelines_in_fork_child``)."""
    _LIFELINES.add(fd)


def release_lifeline(fd: int) -> None:
    """Forget a lifeline before it is closed."""
    _LIFELINES.discard(fd)


def new_selector() -> selectors.BaseSelector:
    """epoll on Linux; poll (what other POSIX systems have) on the portable paths."""
    if IS_LINUX or not hasattr(selectors, "PollSelector"):
        return selectors.DefaultSelector()
    return selectors.PollSelector()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs; a zombie (exited, not yet reaped) counts as gone.

    Linux reads the state from ``/proc``; elsewhere ``os.kill(pid, 0)`` says whether the pid
    exists, and a zombie is recognised when it is our own child (``waitid`` without reaping;
    where there is no ``waitid``, as on macOS, ``ps`` tells the state of any process).
    """
    if HAS_PROC:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (FileNotFoundError, ProcessLookupError):
            return False
        except OSError:
            pass  # fall through to the portable check
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, and belongs to someone else
    if HAS_WAITID:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # not our child: its zombie is its parent's to reap
            return True
        return info is None
    return not _is_zombie_by_ps(pid)


def _is_zombie_by_ps(pid: int) -> bool:
    """Without ``/proc`` and ``waitid`` (macOS): ask ``ps`` for the state; never reaps.

    A process ``ps`` no longer lists is gone too. When ``ps`` cannot run, it counts as alive.
    """
    try:
        done = subprocess.run(
            ["ps", "-o", "stat=", "-p", str(pid)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    state = done.stdout.strip()
    return not state or state.startswith("Z")


def is_clean_exit(returncode: int | None) -> bool:
    """Exit status 0, or death by the signal we sent to stop it."""
    if returncode is None:
        return False
    return returncode == 0 or (returncode < 0 and -returncode in CLEAN_SIGNALS)


def listening_socket(host: str, port: int = 0) -> socket.socket:
    """Bind and listen in the parent: the port is ours before the child even starts.

    SO_REUSEADDR, as servers set it: the connections a server accepted inherit it, so that a
    restart on the same port is not refused while the old server's connections linger
    (FIN_WAIT2, TIME_WAIT); a port someone listens on is still refused. For port 0 the kernel
    still picks a port no other socket is bound to.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # uvicorn rebuilds a passed socket as AF_UNIX (socket.fromfd), so asyncio never sets
        # TCP_NODELAY on the connections it accepts: every keep-alive request would then stall
        # ~40 ms on Nagle + delayed ACK. Accepted sockets inherit the option from the listener.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def unix_listening_socket(path: str) -> socket.socket:
    """Bind and listen on a Unix socket at ``path`` (which must not exist yet)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except BaseException:
        sock.close()
        raise
    try:
        sock.listen(128)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return sock


def port_reservation(host: str, port: int = 0) -> socket.socket:
    """Hold a port for a server that binds it itself (``{port}`` without ``{fd}``).

    On Linux and macOS a socket bound with SO_REUSEADDR but not listening keeps the port out of
    everyone else's hands while still letting the child (which sets SO_REUSEADDR too, like
    uvicorn, hypercorn and http.server do) bind and listen on it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def child_argv(kind: str, args: Sequence[str], *, python: str = sys.executable) -> list[str]:
    """The argv that runs ``args`` (a module to run, or a program to exec) under the bootstrap.

    The bootstrap becomes the server (``runpy`` or ``exec``), so the launched pid is the
    server's. Its code comes through the child's stdin: ``send_bootstrap`` right after spawning.
    """
    # A module runs in the bootstrap's own interpreter, which must start as ``python -u -m``
    # would (site, unbuffered output). A program is exec'd: its bootstrap needs no site (-S).
    flags = ["-u"] if kind == "module" else ["-S"]
    loader = _SENTINEL_LOADER.format(size=len(bootstrap_code()), path=_SENTINEL_PATH)
    return [python, *flags, "-c", loader, str(os.getpid()), kind, "--", *args]


def popen_options(pass_fds: Sequence[int]) -> dict[str, Any]:
    """Spawn options: a new process group (to signal the whole tree) and the passed fds."""
    return {"start_new_session": True, "pass_fds": tuple(pass_fds)}


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """Ask the server's whole process group to stop."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the server's whole process group.

    Safe to call until the leader has been reaped: while it is unreaped (even as a zombie) its
    pid, and so the group id, cannot be reused by an unrelated process.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


Stray = tuple[int, str]  # (pid, start time): a pid is only killed while it names the same process


def strays(pid: int) -> list[Stray]:
    """Linux: the descendants of ``pid`` outside its process group (started in a new session).

    Read from ``/proc/PID/task/TID/children``, i.e. only the server's subtree. The server is a
    child subreaper, so nothing it started can have been orphaned out of the subtree while it
    lives. Empty elsewhere, or when the kernel lacks those files.
    """
    if not HAS_PROC:
        return []
    found: list[Stray] = []
    todo, seen = [pid], {pid}
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as listing:
                    children = [int(child) for child in listing.read().split()]
            except (OSError, ValueError):
                continue
            for child in children:
                if child in seen:
                    continue
                seen.add(child)
                todo.append(child)
                fields = _stat_fields(child)
                if fields is not None and int(fields[2]) != pid:  # pgrp: not in the group
                    found.append((child, fields[19]))
    return found


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name: state, ppid, pgrp, ... (None: gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def kill_strays(found: list[Stray]) -> None:
    """SIGKILL each stray that still is the process it was (same start time) and not a zombie."""
    for pid, started in found:
        fields = _stat_fields(pid)
        if fields is None or fields[19] != started or fields[0] in ("Z", "X"):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class ExitWatch:
    """Something a selector can wait on that becomes readable when the child has exited.

    It never reaps the child: the caller kills what is left of the group first, then reaps.
    Linux: a pidfd. Elsewhere: a thread blocked in ``waitid(..., WNOWAIT)`` (without ``waitid``:
    in ``kqueue``; without either, in ``wait``, which reaps) that writes to a socket pair.
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
        if not HAS_WAITID and hasattr(select, "kqueue"):  # macOS, BSD: exit without reaping
            _wait_with_kqueue(proc.pid)
        elif not HAS_WAITID:
            # Nothing tells an exit without reaping: reap, then kill the rest of the group at
            # once, while the group (kept alive by any member left) still holds the id.
            proc.wait()
            kill(proc)
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


def _wait_with_kqueue(pid: int) -> None:  # pragma: no cover - macOS and BSD only
    """Block until ``pid`` exits (``EVFILT_PROC``/``NOTE_EXIT``); the zombie stays unreaped."""
    kq: Any = select  # typed for the platform mypy runs on, which may lack kqueue
    queue = kq.kqueue()
    try:
        event = kq.kevent(
            pid,
            filter=kq.KQ_FILTER_PROC,
            flags=kq.KQ_EV_ADD | kq.KQ_EV_ONESHOT,
            fflags=kq.KQ_NOTE_EXIT,
        )
        try:
            queue.control([event], 0, 0)
        except ProcessLookupError:  # already exited (and a zombie)
            return
        while not queue.control(None, 1, None):
            pass
    finally:
        queue.close()
