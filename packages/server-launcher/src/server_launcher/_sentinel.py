"""The child side of a launch: the sentinel that makes sure no server outlives its launcher.

Run by the launcher as ``python -u -c <loader> LAUNCHER_PID STATUS_FD module|exec -- ARGS...``
(the loader imports this file from its folder, so the cached bytecode is used). Standard library
only, and nothing imported that the sentinel does not need, so that it starts fast.

The sentinel forks the server and stays as its parent: it dies with the launcher (its
``PR_SET_PDEATHSIG`` on Linux, and EOF on its stdin pipe everywhere) and then kills the whole
process group; otherwise it relays the server's exit status. The server gets
``PR_SET_PDEATHSIG(SIGKILL)`` against the single-threaded sentinel.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1
# The same switch as the launcher's (the child inherits its environment).
_USE_PDEATHSIG = sys.platform.startswith("linux") and os.environ.get(
    "SERVER_LAUNCHER_PORTABLE", ""
) in ("", "0")


def _set_parent_death_signal(sig: int) -> bool:
    """Linux only: have the kernel send ``sig`` to us when our parent thread dies."""
    if not _USE_PDEATHSIG:
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
    sys.modules.pop("_sentinel", None)  # imported by the loader under this name: not the app's
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


def main(argv: list[str]) -> None:
    """Fork the server, then watch over it and relay its exit status."""
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
