"""Drain the child's output at all times: into memory, a private log file, and an optional stream.

An unread pipe blocks a chatty child (mirakuru#98); a thread that reads until EOF never lets it.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import tempfile
import threading
from collections.abc import Callable
from typing import IO, Any

#: Memory kept for ``output()``; older output is dropped (the log file keeps all of it).
MEMORY_LIMIT = 8 * 1024 * 1024
TAIL_LINES = 50

_URL_PORT = re.compile(rb"https?://(?:\[[^\]\s]*\]|[A-Za-z0-9.\-]+):(\d{1,5})")


class OutputSink:
    """Everything the child printed, readable while it runs and after it has exited."""

    def __init__(
        self, stream: IO[Any] | None, on_port: Callable[[int], None] | None = None
    ) -> None:
        fd, self.log_path = tempfile.mkstemp(prefix="server-launcher-", suffix=".log")
        self._log_fd: int | None = fd  # mkstemp creates it readable by this user only (0600)
        self._stream = stream
        self._stream_binary = isinstance(stream, (io.RawIOBase, io.BufferedIOBase))
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._on_port = on_port
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._size = 0
        self._dropped = 0
        self._thread: threading.Thread | None = None
        self._scan = b""

    def start(self, pipe: IO[bytes]) -> None:
        """Start draining ``pipe`` in a daemon thread; it ends at EOF."""
        self._thread = threading.Thread(
            target=self._drain, args=(pipe,), name="server-output", daemon=True
        )
        self._thread.start()

    def _drain(self, pipe: IO[bytes]) -> None:
        fd = pipe.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                break
            if not data:
                break
            self._keep(data)
        with contextlib.suppress(OSError):
            pipe.close()

    def _keep(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            self._size += len(data)
            while self._size > MEMORY_LIMIT and len(self._chunks) > 1:
                dropped = self._chunks.pop(0)
                self._size -= len(dropped)
                self._dropped += len(dropped)
            if self._log_fd is not None:
                with contextlib.suppress(OSError):
                    os.write(self._log_fd, data)
        if self._on_port is not None:
            self._scan = (self._scan + data)[-4096:]
            match = _URL_PORT.search(self._scan)
            if match:
                callback, self._on_port = self._on_port, None
                callback(int(match.group(1)))
        if self._stream is not None:
            try:
                if self._stream_binary:
                    self._stream.write(data)
                else:
                    self._stream.write(self._decoder.decode(data))
                self._stream.flush()
            except (OSError, ValueError):
                self._stream = None  # a closed or broken stream must not stop the draining

    def note(self, text: str) -> None:
        """Add a line of the launcher's own to the kept output, the log and the stream."""
        self._keep(f"{text}\n".encode())

    def wait_drained(self, timeout: float) -> None:
        """Wait for EOF (the whole group has exited) so that the tail is complete."""
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None

    def text(self) -> str:
        """Everything kept so far, decoded as UTF-8 (undecodable bytes replaced)."""
        with self._lock:
            data = b"".join(self._chunks)
            dropped = self._dropped
        text = data.decode("utf-8", errors="replace")
        if dropped:
            where = f" (full output in {self.log_path})" if self._log_fd is not None else ""
            text = f"[... {dropped} earlier bytes not kept in memory{where}]\n" + text
        return text

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last ``lines`` lines of output."""
        return self.text().splitlines()[-lines:]

    def close(self, *, keep_log: bool) -> str | None:
        """Close the log file; remove it unless ``keep_log``. Returns the kept path."""
        if self._log_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._log_fd)
            self._log_fd = None
            if not keep_log:
                with contextlib.suppress(OSError):
                    os.unlink(self.log_path)
                return None
        return self.log_path if keep_log else None
