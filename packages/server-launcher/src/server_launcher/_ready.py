"""The health probe: one raw HTTP/1.1 GET over a non-blocking socket, driven by a selector.

No HTTP client is created per start (an ``httpx.AsyncClient`` costs 30-75 ms for its SSL
context). Against a socket the parent already listens on, the first probe's connection simply
waits in the backlog until the server accepts, i.e. right after its start-up completed, so
readiness is seen the moment it exists, without a poll interval.
"""

from __future__ import annotations

import contextlib
import errno
import socket

_MAX_RESPONSE = 1 << 20


class ProbeFailed(Exception):
    """The connection was refused or reset, or the answer was not HTTP."""


class HealthProbe:
    """One GET request; feed it selector events until ``status`` is set or it fails."""

    def __init__(self, connect_host: str, port: int, path: str) -> None:
        host_header = f"[{connect_host}]" if ":" in connect_host else connect_host
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host_header}:{port}\r\n"
            "User-Agent: server-launcher\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        family = socket.AF_INET6 if ":" in connect_host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.connected = False
        self._buffer = b""
        self.status: int | None = None
        code = self.sock.connect_ex((connect_host, port))
        if code == 0:
            self._on_connected()
        elif code not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self.close()
            raise ProbeFailed(f"connect: {errno.errorcode.get(code, code)}")

    def fileno(self) -> int:
        return self.sock.fileno()

    def _on_connected(self) -> None:
        self.connected = True
        try:
            self.sock.sendall(self._request)  # tiny: fits the socket buffer at once
        except OSError as exc:
            raise ProbeFailed(f"send: {exc}") from exc

    def on_writable(self) -> None:
        """The non-blocking connect finished (or failed)."""
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise ProbeFailed(f"connect: {errno.errorcode.get(code, code)}")
        self._on_connected()

    def on_readable(self) -> bool:
        """Read what arrived; True once the response is complete (``status`` is set)."""
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            raise ProbeFailed(f"recv: {exc}") from exc
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if not data:
                raise ProbeFailed("connection closed before a complete HTTP answer")
            if len(self._buffer) > _MAX_RESPONSE:
                raise ProbeFailed("response headers too large")
            return False
        head = self._buffer[:head_end].decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProbeFailed(f"not an HTTP answer: {status_line[:80]!r}")
        status = int(parts[1])
        length: int | None = None
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
        body = len(self._buffer) - head_end - 4
        # Read the whole (small) body so the server never sees a reset mid-response.
        if data and (length is None or body < length) and len(self._buffer) < _MAX_RESPONSE:
            return False
        self.status = status
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
