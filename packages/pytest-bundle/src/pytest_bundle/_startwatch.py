"""Failing a start fast when the server's own output already says it will never be ready.

server-launcher waits for the health endpoint to answer 200, up to the start-up timeout. Two
answers from the app settle it much sooner: the health path answering 404 after uvicorn's
"Application startup complete" (a wrong ``hosted_api_prefix`` or health path), and every request
failing with "Exception in ASGI application" (``hosted_api_app`` names something that is not an
ASGI app, or a factory flag that does not match it). The watch reads the output as the launcher
drains it; once the same answer has lasted ``_SETTLED`` seconds, it stops the server, and the
start fails with a hint instead of waiting out the timeout.
"""

from __future__ import annotations

import os
import re
import signal
import time
from contextlib import suppress

from ._config import BundleConfig

_SETTLED = 1.0  # seconds the same wrong answer must last (the probe asks every <= 50 ms)
_PID = re.compile(r"Started server process \[(\d+)\]")
_COMPLETE = "Application startup complete"
_ASGI_ERROR = "Exception in ASGI application"


class StartWatch:
    """A text stream for ``launch_server(output=...)`` that watches the start's health answers."""

    def __init__(self, config: BundleConfig) -> None:
        self._config = config
        self._health = re.compile(
            r'"GET ' + re.escape(config.full_health_path) + r' HTTP/1\.[01]" (\d{3})'
        )
        self._buffer = ""
        self._pid: int | None = None
        self._complete = False
        self._asgi_error = False
        self._last_error_line = ""
        self._first: tuple[int, float] | None = None  # (status, when) of the first bad answer
        self.verdict: str | None = None  # why the server was stopped, once it was

    def write(self, text: str) -> int:
        if self.verdict is not None:
            return len(text)
        self._buffer += text
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._line(line.rstrip("\r"))
        return len(text)

    def flush(self) -> None:
        pass

    def _line(self, line: str) -> None:
        if self._pid is None:
            found = _PID.search(line)
            if found:
                self._pid = int(found.group(1))
        if _COMPLETE in line:
            self._complete = True
        if _ASGI_ERROR in line:
            self._asgi_error = True
        elif self._asgi_error and line and not line.startswith((" ", "INFO", "Traceback")):
            self._last_error_line = line.strip()  # the exception's last line: "TypeError: ..."
        found = self._health.search(line)
        if found is None or not self._complete:
            return
        status = int(found.group(1))
        if status == 200 or (status != 404 and not (status == 500 and self._asgi_error)):
            self._first = None
            return
        now = time.monotonic()
        if self._first is None or self._first[0] != status:
            self._first = (status, now)
        elif now - self._first[1] >= _SETTLED:
            self._stop(self._verdict(status))

    def _verdict(self, status: int) -> str:
        config = self._config
        if status == 404:
            return (
                f"its health path {config.full_health_path} answered 404 after the app's "
                "start-up completed, so it would never be ready. Check hosted_api_prefix "
                f"(now {config.prefix or '/'!r}) and hosted_api_health_path (now "
                f"{config.health_path!r}): the app serves its routes elsewhere."
            )
        kind = "an app factory (hosted_api_factory = true)" if config.factory else "an ASGI app"
        error = f" ({self._last_error_line})" if self._last_error_line else ""
        return (
            f"every request failed with 'Exception in ASGI application'{error}, so it would "
            f"never be ready. Check hosted_api_app = {config.app!r}: it must name {kind}; set "
            "hosted_api_factory to match what it names."
        )

    def _stop(self, verdict: str) -> None:
        self.verdict = verdict
        if self._pid is not None:
            with suppress(OSError):  # already gone
                os.killpg(self._pid, signal.SIGTERM)
