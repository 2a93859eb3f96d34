"""Outside I/O: which waits on file descriptors keep the virtual clock from jumping.

A jump past a timer is only honest when nothing real can still happen before it. A task
waiting on a socket to a real server (or on a subprocess's pipe) may be woken by the outside
world at any moment, so while such a wait is *in progress* the clock stands still and the loop
waits for it in real time. The backends report which descriptors are being waited on; this
module decides which of them lead outside the event loop and whether they are in progress.

Outside: any descriptor except listening sockets, unnamed UNIX socket pairs and sockets whose
other end belongs to this loop (a client connected to an in-process listener, the server side
of such a connection, or a peer whose address another socket of this loop has). Those inner
waits can only be satisfied by this loop's own tasks, which the non-blocking poll before every
jump already sees.

In progress, for a descriptor the loop reads only while a task asks for data (every trio wait;
on asyncio anyio's streams and raw ``sock_recv``/``add_reader`` waits): from the start of the
wait until ``grace`` real seconds pass without an event on it. For an asyncio transport that
reads all the time (asyncio's own streams and protocols): from a write on it until the first
data comes back (at most ``grace`` seconds), and for `SETTLE` seconds after data arrived, so a
reply split over several packets is read whole.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterable
from typing import Any

__all__ = ["SETTLE", "OutsideIO"]

#: Real seconds a continuously read transport stays in progress after data arrived.
SETTLE = 0.05

_Address = Any  # what getsockname()/getpeername() return: a tuple, a str or bytes


class _Fd:
    """What is known about one waited-on descriptor during one wait (one ``token``)."""

    __slots__ = ("continuous", "outside", "received", "sent", "since", "token")

    def __init__(self, token: object, outside: bool, continuous: bool, now: float) -> None:
        self.token = token
        self.outside = outside
        self.continuous = continuous
        self.since = now
        self.sent = -1.0
        self.received = -1.0


def _host_port(address: _Address) -> tuple[object, object] | None:
    if isinstance(address, tuple) and len(address) >= 2:
        return address[0], address[1]
    return None


class OutsideIO:
    """Per event loop: classify waited-on descriptors and time their waits (real seconds)."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._fds: dict[int, _Fd] = {}
        self._listeners: set[object] = set()  # local addresses of listening sockets seen
        self._locals: set[object] = set()  # local addresses of every socket seen

    def hold(self, watched: Iterable[tuple[int, object, bool]], now: float) -> float:
        """Real seconds for which the waits in `watched` keep the clock still (0: jump).

        `watched` holds ``(fd, token, continuous)`` for every descriptor being waited on:
        ``token`` changes when a new wait starts on the same descriptor number, ``continuous``
        says the loop reads it all the time (see the module docstring).
        """
        known = self._fds
        current: dict[int, _Fd] = {}
        longest = 0.0
        for fd, token, continuous in watched:
            state = known.get(fd)
            if state is None or state.token is not token:
                state = self._classify(fd, token, continuous, now)
            current[fd] = state
            if not state.outside:
                continue
            if not state.continuous:
                left = state.since + self.grace - now
            elif state.sent > state.received:
                left = state.sent + self.grace - now
            else:
                left = state.received + SETTLE - now
            longest = max(longest, left)
        self._fds = current
        return longest

    def received(self, fd: int, now: float) -> None:
        """The loop saw an event on `fd`: its wait is alive again."""
        state = self._fds.get(fd)
        if state is not None:
            state.since = state.received = now

    def sent(self, fd: int, now: float) -> None:
        """Something was written to `fd` through a continuously reading transport."""
        state = self._fds.get(fd)
        if state is not None:
            state.sent = now
        else:
            # Not classified yet (first look pending): remember the write for that look.
            state = self._fds[fd] = _Fd(_PENDING, True, True, now)
            state.sent = now

    def _classify(self, fd: int, token: object, continuous: bool, now: float) -> _Fd:
        previous = self._fds.get(fd)
        outside, is_socket = self._is_outside(fd)
        # Only a socket carries request and reply both ways; a pipe's writes go elsewhere.
        state = _Fd(token, outside, continuous and is_socket, now)
        if previous is not None and previous.token is _PENDING:
            state.sent = previous.sent  # a write that came before the first look
        return state

    def _is_outside(self, fd: int) -> tuple[bool, bool]:
        """(whether the other end is outside this loop, whether it is a socket)."""
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                return True, False  # a pipe, a pidfd, a terminal: the other end is outside
        except OSError:  # pragma: no cover - closed under us, or Windows socket handles
            pass
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            return True, False
        try:
            try:
                local: _Address = sock.getsockname()
                listening = bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
            except OSError:
                return True, True
            try:
                peer: _Address = sock.getpeername()
            except OSError:
                peer = None  # not connected (yet): a connect in progress, or datagrams
            family = sock.family
        finally:
            sock.detach()
        self._locals.add(_key(local))
        if listening:
            self._listeners.add(_key(local))
            return False, True
        if family == getattr(socket, "AF_UNIX", None) and not peer:
            return False, True  # an unnamed pair, made by this process (socket.socketpair())
        if peer is None:
            return True, True
        inner = self._is_listener(peer) or self._is_listener(local) or _key(peer) in self._locals
        return not inner, True

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


_PENDING = object()


def _key(address: _Address) -> object:
    """A hashable, comparable form of a socket address (IPv6 flow info and scope dropped)."""
    host_port = _host_port(address)
    if host_port is not None:
        return host_port
    return address
