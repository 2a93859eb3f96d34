"""Outside waits: which waits keep the virtual clock from jumping, and for how long.

A jump past a timer is only honest when nothing real can still happen before it. A task
waiting on a socket to a real server, a subprocess, or another event loop of this process may
be woken by the outside world at any moment, so while such a wait is *in progress* the clock
stands still and the loop waits for it in real time, up to ``grace`` real seconds.

The backends report every wait as ``(key, token, continuous)``: ``key`` is a file descriptor
or, for a wait that has none (a subprocess watched by a thread, another event loop that is
running), a string describing it; ``token`` changes when a new wait starts on the same key.

Inside (never holds), only where that is certain: a listening socket of this loop; a socket
connected to a listener of this loop (the server side is this loop's own task); the accepted
side of such a connection (its local address is this loop's listener, its peer a socket of
this process). A connection to a socket of this process that no listener of this loop
accepted is served by another thread (a threaded test server): outside.
Everything else is outside, in particular unnamed UNIX socket pairs (one end may have gone to
a child: ``multiprocessing.Pipe()``, a supervisor's wake-up pair), UNIX connections from
unnamed clients, pipes and any descriptor that cannot be inspected. Where uncertain, outside:
the cost is a real wait of at most ``grace``, never a timeout that fires early. The loops' own
wake-up sockets are left out by the backends.

In progress, for a wait the loop makes only while a task asks for data (every trio wait; on
asyncio anyio's streams and raw ``sock_recv``/``add_reader`` waits; every string key): from
the start of the wait until ``grace`` real seconds pass without an event on it. For an asyncio
transport that reads all the time (asyncio's own streams and protocols): from a write on it
until the first data comes back (at most ``grace`` seconds), and for `SETTLE` seconds after
data arrived, so a reply split over several packets is read whole.

A wait that held the clock for the whole grace is recorded in `OutsideIO.expired`: the driver
turns it into a note on the timeout that then fires (see ``_driver``).
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterable
from typing import Any

__all__ = ["SETTLE", "OutsideIO", "process_addresses"]

#: Real seconds a continuously read transport stays in progress after data arrived.
SETTLE = 0.05
#: Classifications kept per socket (by inode); cleared when it grows past this.
_CACHE_LIMIT = 4096

_Address = Any  # what getsockname()/getpeername() return: a tuple, a str or bytes


class _Wait:
    """What is known about one wait (one ``token``) on one key."""

    __slots__ = ("continuous", "noted", "outside", "received", "sent", "since", "token", "what")

    def __init__(
        self, token: object, outside: bool, continuous: bool, now: float, what: str
    ) -> None:
        self.token = token
        self.outside = outside
        self.continuous = continuous
        self.since = now
        self.sent = -1.0
        self.received = -1.0
        self.what = what
        self.noted = False


def _host_port(address: _Address) -> tuple[object, object] | None:
    if isinstance(address, tuple) and len(address) >= 2:
        return address[0], address[1]
    return None


def _key(address: _Address) -> object:
    """A hashable, comparable form of a socket address (IPv6 flow info and scope dropped)."""
    host_port = _host_port(address)
    if host_port is not None:
        return host_port
    return address


def _fd_folder() -> str | None:
    for folder in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(folder):
            return folder
    return None  # pragma: no cover - every POSIX system this runs on has one


def process_addresses() -> set[object]:
    """Local addresses of every connected (non-listening) socket open in this process."""
    found: set[object] = set()
    folder = _fd_folder()
    if folder is None:  # pragma: no cover
        return found
    try:
        names = os.listdir(folder)
    except OSError:  # pragma: no cover
        return found
    for name in names:
        try:
            fd = int(name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=fd)
        except (ValueError, OSError):
            continue
        try:
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                found.add(_key(sock.getsockname()))
        except OSError:
            pass
        finally:
            sock.detach()
    return found


class OutsideIO:
    """Per event loop: classify waits and time them (real seconds)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        #: Waits that held the clock for the whole grace: (what, real seconds held).
        self.expired: list[tuple[str, float]] = []
        self._waits: dict[object, _Wait] = {}
        self._listeners: set[object] = set()  # local addresses of listening sockets seen
        self._cache: dict[tuple[int, int], tuple[bool, bool, str]] = {}

    def hold(self, watched: Iterable[tuple[object, object, bool]], now: float) -> float:
        """Real seconds for which the waits in `watched` keep the clock still (0: jump)."""
        known = self._waits
        current: dict[object, _Wait] = {}
        longest = 0.0
        grace = self.grace
        for key, token, continuous in watched:
            state = known.get(key)
            if state is None or state.token is not token:
                state = self._classify(key, token, continuous, now)
            current[key] = state
            if not state.outside:
                continue
            if not state.continuous:
                left = state.since + grace - now
                began = state.since
            elif state.sent > state.received:
                left = state.sent + grace - now
                began = state.sent
            else:
                left = state.received + SETTLE - now
                began = -1.0
            if left > longest:
                longest = left
            elif left <= 0 and began >= 0 and grace > 0 and not state.noted:
                state.noted = True
                self.expired.append((state.what, now - began))
        self._waits = current
        return longest

    def forget(self) -> None:
        """No wait is in progress: what `hold` does when given none, at no cost."""
        if self._waits:
            self._waits = {}

    def received(self, key: object, now: float) -> None:
        """The loop saw an event on `key`: its wait is alive again."""
        state = self._waits.get(key)
        if state is not None:
            state.since = state.received = now
            state.noted = False

    def sent(self, key: object, now: float) -> None:
        """Something was written to `key` through a continuously reading transport."""
        state = self._waits.get(key)
        if state is not None:
            state.sent = now
            state.noted = False
        else:
            # Not classified yet (first look pending): remember the write for that look.
            state = self._waits[key] = _Wait(_PENDING, True, True, now, "")
            state.sent = now

    def _classify(self, key: object, token: object, continuous: bool, now: float) -> _Wait:
        previous = self._waits.get(key)
        if isinstance(key, int):
            outside, is_socket, what = self._is_outside(key)
        else:
            outside, is_socket, what = True, False, str(key)
        # Only a socket carries request and reply both ways; a pipe's writes go elsewhere.
        state = _Wait(token, outside, continuous and is_socket, now, what)
        if previous is not None and previous.token is _PENDING:
            state.sent = previous.sent  # a write that came before the first look
        return state

    def _is_outside(self, fd: int) -> tuple[bool, bool, str]:
        """(other end outside this loop, is a socket, a description) for a descriptor."""
        try:
            info = os.fstat(fd)
        except OSError:  # pragma: no cover - closed under us
            return True, False, f"descriptor {fd}"
        if not stat.S_ISSOCK(info.st_mode):
            kind = "a pipe" if stat.S_ISFIFO(info.st_mode) else "a descriptor"
            return True, False, f"{kind} (fd {fd})"
        cached = self._cache.get((fd, info.st_ino))
        if cached is not None:
            return cached
        result = self._inspect(fd)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[(fd, info.st_ino)] = result
        return result

    def _inspect(self, fd: int) -> tuple[bool, bool, str]:
        try:
            sock = socket.socket(fileno=fd)
        except OSError:  # pragma: no cover
            return True, False, f"a descriptor (fd {fd})"
        try:
            try:
                local: _Address = sock.getsockname()
                listening = bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
            except OSError:  # pragma: no cover
                return True, True, f"a socket (fd {fd})"
            try:
                peer: _Address = sock.getpeername()
            except OSError:
                peer = None  # not connected (yet): a connect in progress, or datagrams
            family = sock.family
        finally:
            sock.detach()
        if listening:
            self._listeners.add(_key(local))
            return False, True, f"a listening socket on {local!r}"
        if family == getattr(socket, "AF_UNIX", None) and not peer:
            # A socket pair, or a connection from an unnamed client: its other end may be in
            # a child process (multiprocessing.Pipe(), a supervisor's wake-up pair).
            return True, True, f"a UNIX socket pair or connection (fd {fd})"
        if peer is None:
            return True, True, f"an unconnected socket (fd {fd})"
        what = f"a socket to {_show(peer)}"
        if self._is_listener(peer):
            return False, True, what  # a client of this loop's own server
        if _key(peer) in process_addresses():
            if self._is_listener(local):
                return False, True, what  # this loop's server side; the client is in-process
            # A server in another thread of this process (a threaded test server): that
            # thread may be about to answer, which this loop's poll cannot see.
            return True, True, f"{what} (served by another thread of this process)"
        return True, True, what

    def _is_listener(self, address: _Address) -> bool:
        key = _key(address)
        if key in self._listeners:
            return True
        host_port = _host_port(address)
        if host_port is None:
            return False
        port = host_port[1]
        # A listener on a wildcard address serves every local address on its port.
        return any(("0.0.0.0", port) == item or ("::", port) == item for item in self._listeners)


def _show(address: _Address) -> str:
    host_port = _host_port(address)
    if host_port is not None:
        return f"{host_port[0]}:{host_port[1]}"
    return repr(address)


_PENDING = object()
