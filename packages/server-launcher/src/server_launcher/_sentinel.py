"""The child side of a launch: a short bootstrap that becomes the server.

Run by the launcher as ``python -u -c <loader> LAUNCHER_PID module|exec -- ARGS...``: the
launcher compiles this file once and writes the marshalled code into the child's stdin, and
the loader reads and runs it (never compiled per start, even without cached bytecode). It
imports nothing the server would not import anyway.

The launched process *is* the server, the launcher's own child (its exit status is the server's).
The launcher writes the bootstrap only once the server's watchdog runs (``_watchdog.py``): if
the launcher dies first, the loader reads EOF and exits. Before it becomes the server (``runpy``
for a module, ``exec`` for a program) the bootstrap

- on Linux, becomes a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): a process the server
  starts in a session of its own (out of reach of a signal to the group) cannot be orphaned
  away from it while it lives, so the watchdog and the launcher can find it and kill it;
- points its own stdin at ``/dev/null``.
"""

import os
import sys


def _on_linux() -> bool:
    """Linux and not on the portable paths (``SERVER_LAUNCHER_PORTABLE``, from the launcher)."""
    return sys.platform.startswith("linux") and os.environ.get("SERVER_LAUNCHER_PORTABLE", "") in (
        "",
        "0",
    )


def _become_subreaper() -> bool:
    """Linux: ``prctl(PR_SET_CHILD_SUBREAPER, 1)``, through ``_ctypes`` (``ctypes``: ~2 ms more).

    Whatever the server starts, even in a session of its own, stays its descendant while it
    lives, so the watchdog and the launcher can find and kill it. True when it took effect.
    """
    try:
        import _ctypes

        prctl = _ctypes.dlsym(_ctypes.dlopen(None, os.RTLD_NOW), "prctl")  # type: ignore[arg-type]
        return _ctypes.call_function(prctl, (36, 1, 0, 0, 0)) == 0  # type: ignore[no-any-return]
    except (ImportError, AttributeError, OSError):  # not CPython's private helpers
        import ctypes

        return bool(ctypes.CDLL(None).prctl(36, 1, 0, 0, 0) == 0)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """Run the atexit handlers, then die of SIGTERM as before.

    uvicorn re-raises SIGTERM after its graceful shutdown, and the default action ends the
    process without any atexit handler: coverage (run with ``patch = ["subprocess"]``) would
    never save the server's data. uvicorn restores this handler before it re-raises.
    """
    import atexit
    import signal

    atexit._run_exitfuncs()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> None:
    """Make sure nothing the server starts escapes its watchdog, then become the server."""
    launcher, kind, args = int(argv[0]), argv[1], argv[3:]
    if _on_linux():
        _become_subreaper()
    if os.getppid() != launcher:  # the launcher died already (its watchdog kills us anyway)
        os._exit(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the server reads nothing from the launcher
    os.close(devnull)
    if kind == "module":
        import runpy
        import signal

        signal.signal(signal.SIGTERM, _exit_on_sigterm)

        sys.argv = args
        sys.path[0] = os.getcwd()  # what ``python -m`` does (the loader's ``-c`` put "" there)
        runpy.run_module(args[0], run_name="__main__", alter_sys=True)
        return
    try:
        os.execvp(args[0], args)
    except OSError as exc:
        print(f"server-launcher: cannot run {args[0]!r}: {exc}", file=sys.stderr, flush=True)
        os._exit(127)
