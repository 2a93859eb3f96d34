"""The watchdog: a tiny process that kills a server, and all it started, once its launcher is gone.

The launcher spawns it right after the server and before it hands the server its bootstrap (the
server waits for that on its stdin), so no server ever runs unguarded, and the spawn is off the
server's path to ready: the server starts its interpreter meanwhile. (The server used to spawn
it itself, and waited each time for a ``/bin/sh`` to be scheduled; on a busy machine that was
most of what the launcher added to the floor's start-to-ready.)

It is a ``/bin/sh`` in a session of its own that reads a pipe whose only write end the launcher
holds: EOF means the launcher is gone (any POSIX system). It then kills every descendant of the
server (Linux: in any session, found in ``/proc``; the server is a child subreaper, so nothing
it started can be orphaned away from it while it lives) and the server's process group. Its
own session keeps it out of the signals the launcher sends the server's group, and out of a
terminal's. On a normal stop the launcher kills it (it is the launcher's child, so its pid is
safe to signal until reaped) before it reaps the server, whose pid then still names its group.
Without ``/bin/sh`` the watchdog is ``python -I -S`` running the same loop.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

__all__ = ["Watchdog", "command"]

# $1 is the server's pid (and its group's id). Read stdin until EOF (a stray line is ignored),
# then kill the server's process group.
_GROUP_SH = "trap '' TERM INT HUP; while read -r _; do :; done; kill -s KILL -- -$1"
# Linux: first every descendant of the server, in any session, pass after pass until none is
# left but zombies; only while the server still leads its group (its pid not reused).
_TREE_SH = """trap '' TERM INT HUP
while read -r _; do :; done
s=$1
if read -r l < /proc/$s/stat 2>/dev/null; then
  r=${l##*) }; set -- $r
  if [ "$1" != Z ] && [ "$3" = "$s" ]; then
    t=" $s "; k=1
    while [ $k = 1 ]; do
      k=0
      for f in /proc/[0-9]*/stat; do
        read -r l < "$f" 2>/dev/null || continue
        p=${f#/proc/}; p=${p%/stat}; r=${l##*) }; set -- $r
        case "$t" in *" $2 "*) ;; *) continue;; esac
        case "$t" in *" $p "*) ;; *) t="$t$p ";; esac
        [ "$1" = Z ] || { kill -s KILL "$p" 2>/dev/null && k=1; }
      done
    done
  fi
fi
kill -s KILL -- -$s"""
_GROUP_PY = (
    "import os,signal as s,sys\n"
    "for n in (s.SIGTERM,s.SIGINT,s.SIGHUP): s.signal(n,s.SIG_IGN)\n"
    "try:\n while os.read(0,512): pass\nexcept OSError: pass\n"
    "os.killpg(int(sys.argv[1]),s.SIGKILL)"
)
_SH = "/bin/sh"


def command(server_pid: int, *, tree: bool) -> list[str]:
    """The watchdog's argv for ``server_pid`` (``tree``: also its descendants, from /proc)."""
    if os.path.exists(_SH):
        return [_SH, "-c", _TREE_SH if tree else _GROUP_SH, "sh", str(server_pid)]
    return [sys.executable, "-I", "-S", "-c", _GROUP_PY, str(server_pid)]


class Watchdog:
    """The running watchdog of one server and the write end of its pipe (the lifeline)."""

    def __init__(self, server_pid: int, *, tree: bool) -> None:
        read_end, self.lifeline = os.pipe()
        try:
            self._proc = subprocess.Popen(
                command(server_pid, tree=tree),
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,
                env={},
            )
        except BaseException:
            os.close(self.lifeline)
            raise
        finally:
            os.close(read_end)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def kill(self) -> None:
        """Stand it down without letting it act (SIGKILL: no code of its own runs after this)."""
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()

    def reap(self, timeout: float) -> None:
        """Wait for it to be gone (after ``kill``), then close the lifeline."""
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            self._proc.wait(timeout=timeout)
        with contextlib.suppress(OSError):
            os.close(self.lifeline)
