"""The errors and warnings a launch can produce: they carry what a user needs to fix the cause."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

__all__ = ["ServerStartError", "ServerStartTimeout", "ServerStopWarning"]

_INDENT = "    "


def _format_tail(output_tail: Sequence[str]) -> str:
    if not output_tail:
        return "the server printed nothing"
    lines = "\n".join(_INDENT + line for line in output_tail)
    return f"last {len(output_tail)} lines of its output:\n{lines}"


def kept_line(log_path: str, log_incomplete: str | None) -> str:
    """The line naming the kept log, saying so when a write to it failed."""
    line = f"full output kept in: {log_path}"
    return f"{line} ({log_incomplete})" if log_incomplete else line


class ServerStartError(RuntimeError):
    """The server process could not be started or exited before it was ready.

    Its message holds the reason, the command, the kept log file (if any) and the last lines
    the server printed.
    """

    _keywords: tuple[str, ...] = (
        "command",
        "returncode",
        "output_tail",
        "log_path",
        "log_incomplete",
    )

    def __init__(
        self,
        reason: str,
        *,
        command: Sequence[str],
        returncode: int | None = None,
        output_tail: Sequence[str] = (),
        log_path: str | None = None,
        log_incomplete: str | None = None,
    ) -> None:
        self.reason: str = reason
        """What went wrong; the message starts with it."""
        self.returncode: int | None = returncode
        """The child's exit status (negative: killed by that signal), or None when it never ran."""
        self.command: list[str] = list(command)
        """The server command line, as a list of arguments."""
        self.output_tail: list[str] = list(output_tail)
        """The last lines (at most 50) the server printed."""
        self.log_path: str | None = log_path
        """The kept log file with everything the server printed, if any."""
        self.log_incomplete: str | None = log_incomplete
        """Why the kept log lacks part of the output (``incomplete: No space left on device
        after 4096 bytes``), or None when it is complete."""
        parts = [reason, f"command: {' '.join(self.command)}"]
        if log_path:
            parts.append(kept_line(log_path, log_incomplete))
        parts.append(_format_tail(self.output_tail))
        super().__init__("\n".join(parts))

    def __reduce__(self) -> tuple[Callable[..., ServerStartError], tuple[object, ...]]:
        # The default rebuilds from `args` (the message); `__init__` needs its keywords back.
        keywords = {name: getattr(self, name) for name in self._keywords}
        return partial(type(self), **keywords), (self.reason,)


class ServerStartTimeout(ServerStartError):
    """The server stayed alive but its health endpoint never answered 200 in time.

    The process has been killed before this is raised.
    """

    _keywords = (*ServerStartError._keywords, "timeout", "last_health_status")

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
        log_incomplete: str | None = None,
    ) -> None:
        self.timeout: float = timeout
        """The start-up timeout, in seconds."""
        self.last_health_status: int | None = last_health_status
        """The last HTTP status the health endpoint answered, or None when it never answered."""
        super().__init__(
            reason,
            command=command,
            returncode=returncode,
            output_tail=output_tail,
            log_path=log_path,
            log_incomplete=log_incomplete,
        )


class ServerStopWarning(UserWarning):
    """The server did not stop cleanly (it needed SIGKILL, or exited with an error status)."""
