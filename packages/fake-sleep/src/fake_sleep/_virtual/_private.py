"""The shape of the tables of other libraries' private names (``_private_*`` modules).

Each ``_private_<library>`` module keeps every private name of that library the virtual
clock reads in one table, ``NAMES``. Its docstring is written from that table (`describe`),
and ``tests/test_private_names.py`` checks each entry on the running Python, trio and anyio,
so the list read by people and the list tested are the same list.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["TESTED", "Missing", "PrivateName", "describe"]

#: The versions these names are tested on: every Python of the CI matrix, each with the
#: lowest (``fake-sleep-lowest`` env) and the newest anyio and trio.
TESTED = "Python 3.10 to 3.13, anyio 4.4.0 to 4.16.0, trio 0.26.0 to 0.35.0"


class Missing(LookupError):
    """A private name the driver needs is missing or has another shape (the message says which).

    The driver turns it into `unsupported(...)`, which names the loop and the versions tested.
    """


class PrivateName(NamedTuple):
    """One private name of another library, why it is read and what happens without it."""

    #: Where it is, spelled as code reads it (``loop._ready``, ``trio._threads.start_thread_soon``).
    name: str
    #: What it gives that no public API does.
    why: str
    #: What happens when it is missing: "refused" (the driver raises `unsupported(...)`
    #: before anything changes) or "not seen" (that kind of wait is not seen).
    missing: str


def describe(intro: str | None, names: tuple[PrivateName, ...]) -> str:
    """A module docstring: `intro`, then one line per name, then the versions tested."""
    lines = [(intro or "").rstrip(), "", "Private names read (the module's ``NAMES``):", ""]
    lines.extend(f"- ``{item.name}``: {item.why}. Missing: {item.missing}." for item in names)
    lines += ["", f"Tested on {TESTED} (``tests/test_private_names.py``)."]
    return "\n".join(lines) + "\n"
