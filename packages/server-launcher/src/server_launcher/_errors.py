"""The errors and warnings a launch can produce: they carry what a user needs to fix the cause."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ServerStartError", "ServerStartTimeout", "ServerStopWarning"]

_INDENT = "    "


def _format_tail(output_tail: Sequence[str]) -> str:
    if not output_tail:
        return "the server printed nothing"
    lines = "\n".join(_INDENT + line for line in output_tail)
    return f"last {len(output_tail)} lines of its output:\n{lines}"


class ServerStartError(RuntimeError):
    """The server process could not be started or exited before it was ready.

    Attributes:
        returncode: the child's exit status (negative: killed by that signal), or None when it
            never ran.
        command: the server command line, as a list of arguments.
        output_tail: the last lines (at most 50) the server printed.
        log_path: the kept log file with everything it printed, if any.
    """

    def __init__(
        self,
        reason: str,
        *,
        command: Sequence[str],
        returncode: int | None = None,
        output_tail: Sequence[str] = (),
        log_path: str | None = None,
    ) -> None:
        self.reason = reason
        self.returncode = returncode
        self.command = list(command)
        self.output_tail = list(output_tail)
        self.log_path = log_path
        parts = [reason, f"command: {' '.join(self.command)}"]
        if log_path:
            parts.append(f"full output kept in: {log_path}")
        parts.append(_format_tail(self.output_tail))
        super().__init__("\n".join(parts))


class ServerStartTimeout(ServerStartError):
    """The server stayed alive but its health endpoint never answered 200 in time.

    The process has been killed before this is raised.

    Attributes:
        timeout: the start-up timeout in seconds.
        last_health_status: the last HTTP status the health endpoint answered, or None when it
            never answered.
    """

    def __init__(
        self,
        reason: str,
        *,
        command: Sequence[str],
        timeout: float,
        last_health_status: int | None,
        returncode: int | None = None,
        output_tail: Sequence[str] = (),
        log_path: str | None = None,
    ) -> None:
        self.timeout = timeout
        self.last_health_status = last_health_status
        super().__init__(
            reason,
            command=command,
            returncode=returncode,
            output_tail=output_tail,
            log_path=log_path,
        )


class ServerStopWarning(UserWarning):
    """The server did not stop cleanly (it needed SIGKILL, or exited with an error status)."""
