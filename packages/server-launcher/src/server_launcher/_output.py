"""Drain the child's output at all times: into memory, a private log file, and an optional stream.

An unread pipe blocks a chatty child (mirakuru#98); a thread that reads until EOF never lets it.
A reader thread alone is not enough for ``output()``: a line the server wrote just before it
answered a request may still sit in the pipe when the answer arrives. So the pipe is read
non-blocking, under one lock, by the thread *and* by every ``text()`` call, which first takes
whatever is pending: what the server wrote before the call is always in what it returns.
Until the server is ready, the launcher's supervising thread reads it (``pump``) instead of the
thread: no second thread wakes up on the path to ready.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import selectors
import tempfile
import threading
from collections.abc import Callable
from typing import IO, Any

from . import _platform

#: Memory kept for ``output()``; older output is dropped (the log file keeps more of it).
MEMORY_LIMIT = 8 * 1024 * 1024
#: The log file keeps the first ``LOG_LIMIT`` bytes; past that, only the last ``MEMORY_LIMIT``
#: bytes are added when it is closed, after a line saying how much was left out.
LOG_LIMIT = 32 * 1024 * 1024
TAIL_LINES = 50
#: At most this much is read from the pipe by one ``text()`` call (a bound against a child
#: that writes faster than we read; what was pending at the call is far less than this).
_SYNC_READ_LIMIT = 16 * 1024 * 1024
_BATCH_WAIT = 0.005

_URL_PORT = re.compile(rb"https?://(?:\[[^\]\s]*\]|[A-Za-z0-9.\-]+):(\d{1,5})")


class OutputSink:
    """Everything the child printed, readable while it runs and after it has exited."""

    def __init__(
        self,
        stream: IO[Any] | None,
        on_port: Callable[[int], None] | None = None,
        log_dir: str | None = None,
    ) -> None:
        self.log_path: str | None = None
        self._log_dir = log_dir
        self._log_fd: int | None = None
        self._log_written = 0  # bytes of output the log's head has taken (up to LOG_LIMIT)
        self._log_bytes = 0  # bytes really written to the log file
        #: Why the log file is incomplete (a write failed: a full disk, a size limit), or None.
        self.log_problem: str | None = None
        self._stream = stream
        self._stream_binary = isinstance(stream, (io.RawIOBase, io.BufferedIOBase))
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._on_port = on_port
        self._lock = threading.Lock()  # the kept chunks
        self._read_lock = threading.Lock()  # the pipe: one reader at a time, so order is kept
        self._chunks: list[bytes] = []
        self._size = 0
        self._total = 0
        self._dropped = 0
        self._thread: threading.Thread | None = None
        self._pipe: IO[bytes] | None = None
        self._pipe_fd: int | None = None
        self._scan = b""
        self._hurry = threading.Event()

    def start(self, pipe: IO[bytes]) -> None:
        """Open the log and take ``pipe``; the drain thread starts later (``start_draining``).

        Until then the owner reads the pipe itself (``pump``) when its selector says so: a thread
        woken by the start's last lines, right when the server starts answering, competed with
        the launcher's own threads (the GIL, a core) and delayed "ready" under CPU load.
        """
        fd, self.log_path = tempfile.mkstemp(
            prefix="server-launcher-", suffix=".log", dir=self._log_dir
        )
        self._log_fd = fd  # mkstemp creates it readable by this user only (0600)
        self._pipe = pipe
        self._pipe_fd = pipe.fileno()
        os.set_blocking(self._pipe_fd, False)  # read by the thread and by text() alike

    def fileno(self) -> int:
        """The pipe's descriptor, for the owner's selector until the drain thread runs."""
        assert self._pipe_fd is not None
        return self._pipe_fd

    def pump(self) -> bool:
        """Keep what the pipe holds now (from the owner's thread); True at EOF."""
        with self._read_lock:
            return self._read_pending(limit=1024 * 1024)

    def start_draining(self) -> None:
        """Start the daemon thread that drains the pipe until EOF (idempotent)."""
        if self._thread is not None or self._pipe_fd is None:
            return
        self._thread = threading.Thread(target=self._drain, name="server-output", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        fd = self._pipe_fd
        assert fd is not None
        with _platform.new_selector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            at_eof = False
            while not at_eof:
                sel.select()
                if self._on_port is None:
                    # Let a burst (e.g. one access-log line per request) gather before reading:
                    # waking per line takes GIL time from this process, which is usually the
                    # client too. output() reads what is pending itself, so it is never late.
                    # Not once the server is stopped: wait_drained() sets _hurry.
                    self._hurry.wait(_BATCH_WAIT)
                with self._read_lock:
                    at_eof = self._read_pending(limit=1024 * 1024)
                    if at_eof:
                        sel.unregister(fd)
                        self._close_pipe()

    def _read_pending(self, limit: int) -> bool:
        """Keep what the pipe holds now (caller holds ``_read_lock``); True at EOF.

        Only the drain thread closes the pipe, so a caller that sees EOF first never pulls
        the descriptor from under the thread's selector.
        """
        fd = self._pipe_fd
        if fd is None:
            return True
        taken = 0
        while taken < limit:
            try:
                data = os.read(fd, 65536)
            except InterruptedError:
                continue
            except BlockingIOError:
                return False
            except OSError:
                return True
            if not data:
                return True
            taken += len(data)
            self._keep(data)
        return False

    def _close_pipe(self) -> None:
        self._pipe_fd = None
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.close()
            self._pipe = None

    def sync(self) -> None:
        """Take in everything the child has written so far (it may still sit in the pipe)."""
        if self._pipe_fd is None:
            return
        with self._read_lock:
            self._read_pending(limit=_SYNC_READ_LIMIT)

    def _keep(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            self._size += len(data)
            self._total += len(data)
            while self._size > MEMORY_LIMIT and len(self._chunks) > 1:
                dropped = self._chunks.pop(0)
                self._size -= len(dropped)
                self._dropped += len(dropped)
            room = LOG_LIMIT - self._log_written
            if self._log_fd is not None and room > 0:
                piece = data[:room]
                self._write_log(piece)
                self._log_written += len(piece)
        if self._on_port is not None:
            self._scan = (self._scan + data)[-4096:]
            match = _URL_PORT.search(self._scan)
            if match:
                callback, self._on_port = self._on_port, None
                callback(int(match.group(1)))
        stream = self._stream  # once: wait_drained() may drop it meanwhile
        if stream is not None:
            try:
                if self._stream_binary:
                    stream.write(data)
                else:
                    stream.write(self._decoder.decode(data))
                stream.flush()
            except (OSError, ValueError):
                self._stream = None  # a closed or broken stream must not stop the draining

    def _write_log(self, data: bytes) -> None:
        """Append to the log (caller holds ``_lock``); a failed write stops the log for good and
        says why, since a log cut without saying so misleads whoever reads it."""
        view = memoryview(data)
        while view and self._log_fd is not None and self.log_problem is None:
            try:
                written = os.write(self._log_fd, view)
            except InterruptedError:
                continue
            except OSError as error:
                why = error.strerror or type(error).__name__
                self.log_problem = f"incomplete: {why} after {self._log_bytes} bytes"
                return
            self._log_bytes += written
            view = view[written:]

    def note(self, text: str) -> None:
        """Add a line of the launcher's own to the kept output, the log and the stream."""
        with self._read_lock:  # after whatever the child wrote before it
            self._read_pending(limit=_SYNC_READ_LIMIT)
            self._keep(f"{text}\n".encode())

    def wait_drained(self, timeout: float) -> None:
        """Wait for EOF (the whole group has exited) so that the tail is complete.

        If something outside the group still holds the pipe, take what is pending and go on.
        """
        self._hurry.set()  # no batching wait on the way to EOF
        self.start_draining()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None
                return
        self.sync()
        # The server is stopped: whatever still writes into the pipe is not its output, and
        # must not reach the caller's stream any more.
        self._stream = None

    def text(self) -> str:
        """Everything the child wrote up to this call, decoded as UTF-8 (bad bytes replaced)."""
        self.sync()
        with self._lock:
            data = b"".join(self._chunks)
            dropped = self._dropped
        text = data.decode("utf-8", errors="replace")
        if dropped:
            where = f" (the log {self.log_path} keeps more)" if self._log_fd is not None else ""
            text = f"[... {dropped} earlier bytes not kept in memory{where}]\n" + text
        return text

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last ``lines`` lines of output."""
        return self.text().splitlines()[-lines:]

    def close(self, *, keep_log: bool) -> str | None:
        """Close the log file; remove it unless ``keep_log``. Returns the kept path."""
        if self._log_fd is None:
            return self.log_path if keep_log else None
        if keep_log:
            self._append_tail_to_log()
        with contextlib.suppress(OSError):
            os.close(self._log_fd)
        self._log_fd = None
        if not keep_log and self.log_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)
            self.log_path = None
        return self.log_path

    def _append_tail_to_log(self) -> None:
        """A log cut at ``LOG_LIMIT`` gets the last output (the part that matters) at its end."""
        assert self._log_fd is not None
        with self._lock:
            if self._total <= self._log_written:
                return
            start = max(self._log_written, self._dropped)
            tail = b"".join(self._chunks)[start - self._dropped :]
            left_out = start - self._log_written
            marker = (
                f"\n[server-launcher: {left_out} bytes left out: the log keeps the first "
                f"{LOG_LIMIT} bytes and the last {len(tail)}]\n"
            ).encode()
            self._write_log(marker + tail)
