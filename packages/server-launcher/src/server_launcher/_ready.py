"""The health probe: one raw HTTP/1.1 GET over a non-blocking socket, driven by a selector.

No HTTP client is created per start (an ``httpx.AsyncClient`` costs 30-75 ms for its SSL
context). Against a socket the parent already listens on, the first probe's connection simply
waits in the backlog until the server accepts, i.e. right after its start-up completed, so
readiness is seen the moment it exists, without a poll interval.

Over TLS the probe does not verify the certificate: it talks to our own child on loopback (or a
Unix socket we bound), and only needs to know that the server answers.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import ssl

_MAX_RESPONSE = 1 << 20


class ProbeFailed(Exception):
    """The connection was refused or reset, or the answer was not HTTP."""


class TLSFailed(ProbeFailed):
    """The server took the connection but the TLS handshake failed: retrying will not help."""


def client_tls_context() -> ssl.SSLContext:
    """A TLS client context that does not verify: the probe talks to our own child only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class HealthProbe:
    """One GET request; feed it selector events until ``status`` is set or it fails.

    Register it for ``events`` and call ``on_event()`` when the selector reports it; after each
    call ``events`` says what to wait for next (a TLS handshake may want either).
    """

    def __init__(
        self,
        connect_host: str,
        port: int | None,
        path: str,
        *,
        uds: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if uds is not None:
            host_header = "localhost"
        else:
            host_header = f"[{connect_host}]" if ":" in connect_host else connect_host
            host_header = f"{host_header}:{port}"
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\n"
            "User-Agent: server-launcher\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        if uds is not None:
            family, address = socket.AF_UNIX, uds
        else:
            family = socket.AF_INET6 if ":" in connect_host else socket.AF_INET
            address = (connect_host, port)  # type: ignore[assignment]
        self.sock: socket.socket = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self._tls = tls
        self.connected = False
        self.handshaken = tls is None
        self.events = selectors.EVENT_WRITE
        self._buffer = b""
        self.status: int | None = None
        code = self.sock.connect_ex(address)
        if code == 0:
            self._on_connected()
        elif code not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self.close()
            raise ProbeFailed(f"connect: {errno.errorcode.get(code, code)}")

    def fileno(self) -> int:
        return self.sock.fileno()

    def _on_connected(self) -> None:
        self.connected = True
        self.events = selectors.EVENT_READ
        if self._tls is not None:
            self.sock = self._tls.wrap_socket(self.sock, do_handshake_on_connect=False)
            self._handshake()
        else:
            self._send()

    def _handshake(self) -> None:
        try:
            self.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self.events = selectors.EVENT_READ
            return
        except ssl.SSLWantWriteError:
            self.events = selectors.EVENT_WRITE
            return
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
            raise ProbeFailed(f"TLS handshake: connection closed ({exc})") from exc
        except ssl.SSLError as exc:
            raise TLSFailed(f"the TLS handshake with the server failed: {exc}") from exc
        except OSError as exc:
            raise ProbeFailed(f"TLS handshake: {exc}") from exc
        self.handshaken = True
        self.events = selectors.EVENT_READ
        self._send()

    def _send(self) -> None:
        try:
            self.sock.sendall(self._request)  # tiny: fits the socket buffer at once
        except OSError as exc:
            raise ProbeFailed(f"send: {exc}") from exc

    def on_event(self) -> bool:
        """The selector reported ``events``; True once the response is complete."""
        if not self.connected:
            self.on_writable()
            return False
        if not self.handshaken:
            self._handshake()
            return False
        return self.on_readable()

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
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return False
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
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
