"""``HostedApiServerError``: what a test or fixture can catch when its server is not there.

It is a ``server_launcher.ServerStartError`` (so an ``Exception``, never a pytest outcome),
which is why this module imports server_launcher and is loaded only when a server is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server_launcher import ServerStartError

__all__ = ["HostedApiServerError"]


class HostedApiServerError(ServerStartError):
    """A hosted API server could not start, or it died while the session still needed it.

    Raised by ``hosted_api_server_factory`` (and by the server fixtures, whose errors pytest
    reports). The message holds the reason, the command, the kept log file and the tail of the
    server's output; no environment value is ever part of it.
    """

    # The plugin's record of the server, to report a start failure in full once (private).
    _pytest_bundle_state: Any = None

    def __init__(
        self,
        reason: str,
        *,
        server: str,
        command: Sequence[str] = (),
        returncode: int | None = None,
        output_tail: Sequence[str] = (),
        log_path: str | None = None,
        log_incomplete: str | None = None,
        test: str | None = None,
    ) -> None:
        super().__init__(
            reason,
            command=command,
            returncode=returncode,
            output_tail=output_tail,
            log_path=log_path,
            log_incomplete=log_incomplete,
        )
        self.server: str = server
        """How reports name the server: ``hosted_api_server``, or its differing keys."""
        self.test: str | None = test
        """The test during which the server died (None: a start failure, or between tests)."""

    def brief(self, *, tail_inline: bool) -> str:
        """The message for a test report: the tail inline, or pointing to the report section."""
        lines = [self.reason]
        if self.command:
            lines.append(f"command: {' '.join(self.command)}")
        if self.log_path:
            incomplete = f" ({self.log_incomplete})" if self.log_incomplete else ""
            lines.append(f"full output kept in: {self.log_path}{incomplete}")
        if not self.output_tail:
            lines.append("the server printed nothing")
        elif tail_inline:
            lines.append(f"its last {len(self.output_tail)} lines of output:")
            lines.extend("    " + line for line in self.output_tail)
        else:
            lines.append(
                f"its last {len(self.output_tail)} lines of output are in the section below"
            )
        return "\n".join(lines)


# Reprs, tracebacks and pickles show the name users import.
HostedApiServerError.__module__ = "pytest_bundle"
