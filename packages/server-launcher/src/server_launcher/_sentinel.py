"""The child side of a launch: a short bootstrap that becomes the server, and its watchdog.

Run by the launcher as ``python -u -c <loader> LAUNCHER_PID module|exec -- ARGS...``: the
launcher compiles this file once and writes the marshalled code into the child's stdin, and
the loader reads and runs it (never compiled per start, even without cached bytecode). It
imports nothing the server would not import anyway.

The launched process *is* the server, the launcher's own child (its exit status is the server's).
Before it becomes the server (``runpy`` for a module, ``exec`` for a program) it

- on Linux, becomes a *child subreaper* (``PR_SET_CHILD_SUBREAPER``): a process the server
  starts in a session of its own (out of reach of a signal to the group) cannot be orphaned
  away from it while it lives, so it can be found under the server and killed;
- spawns the *watchdog*, a ``/bin/sh`` in its process group that holds the read end of the
  launcher's stdin pipe. The launcher holds the only write end, so EOF means the launcher is gone
  (any POSIX system): the watchdog then kills every descendant of the server (Linux: in any
  session, found in ``/proc``) and the whole process group. It ignores SIGTERM, SIGINT and
  SIGHUP (the launcher stops the server by signalling the group) and dies with the group.
  (``PR_SET_PDEATHSIG`` is not used: it killed the server the instant the launcher died, before
  the watchdog could find what the server had started in other sessions);
- points its own stdin at ``/dev/null``.

Not a Python watchdog (nor a Python parent that forks the server, as before): a second CPython
keeps ~3 MiB of pages to itself once the server has written to the pages they shared, and the
fork's copy-on-write faults cost the server ~3 ms of start-up. A shell costs ~0.2 MiB and
``posix_spawn`` copies none of the server's memory. Without ``/bin/sh`` the watchdog is
``python -I -S`` running the same loop.
"""

import os
import sys

# Read stdin until EOF (a stray line is ignored), then kill the process group.
_WATCHDOG_SH = "trap '' TERM INT HUP; while read -r _; do :; done; kill -s KILL 0"
# Linux: the server is a child subreaper (nothing it started can be orphaned away from it while
# it lives), so on EOF the watchdog first kills every descendant of the server ($PPID, while it
# still is our parent), in any session, pass after pass until none is left but zombies.
_WATCHDOG_TREE_SH = """trap '' TERM INT HUP
while read -r _; do :; done
t=" $PPID "
read -r l < /proc/$$/stat; r=${l##*) }; set -- $r
if [ "$2" = "$PPID" ]; then
  k=1
  while [ $k = 1 ]; do
    k=0
    for f in /proc/[0-9]*/stat; do
      read -r l < "$f" 2>/dev/null || continue
      p=${f#/proc/}; p=${p%/stat}; r=${l##*) }; set -- $r
      case "$t" in *" $2 "*) ;; *) continue;; esac
      case "$t" in *" $p "*) ;; *) t="$t$p ";; esac
      [ "$p" = $$ ] || [ "$1" = Z ] || { kill -s KILL "$p" 2>/dev/null && k=1; }
    done
  done
fi
kill -s KILL 0"""
_WATCHDOG_PY = (
    "import os,signal as s\n"
    "for n in (s.SIGTERM,s.SIGINT,s.SIGHUP): s.signal(n,s.SIG_IGN)\n"
    "try:\n while os.read(0,512): pass\nexcept OSError: pass\n"
    "os.killpg(0,s.SIGKILL)"
)


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


def _spawn_watchdog(script: str) -> None:
    """Start the watchdog with our stdin (the launcher's pipe) and none of our other files."""
    actions: list[tuple[object, ...]] = [
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    for folder in ("/proc/self/fd", "/dev/fd"):  # e.g. the passed listening socket
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            try:
                if int(name) > 2 and os.get_inheritable(int(name)):
                    actions.append((os.POSIX_SPAWN_CLOSE, int(name)))
            except (ValueError, OSError):  # the listing's own descriptor, closed by now
                pass
        break
    try:
        os.posix_spawn("/bin/sh", ["sh", "-c", script], {}, file_actions=actions)
    except OSError:
        argv = [sys.executable, "-I", "-S", "-c", _WATCHDOG_PY]
        os.posix_spawn(argv[0], argv, {}, file_actions=actions)


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
    """Arm the kill switch, then become the server."""
    launcher, kind, args = int(argv[0]), argv[1], argv[3:]
    tree = _on_linux() and _become_subreaper()
    if os.getppid() != launcher:  # the launcher died already: the watchdog would see EOF
        os._exit(1)
    _spawn_watchdog(_WATCHDOG_TREE_SH if tree else _WATCHDOG_SH)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the pipe is the watchdog's alone now
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
