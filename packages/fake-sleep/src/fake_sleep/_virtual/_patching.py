"""Process-wide patches shared by every active block: the first installs, the last removes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["SharedPatch"]

_MISSING: Any = object()


class SharedPatch:
    """One attribute replaced while at least one `virtual_time()` block needs it.

    The replacement is made from what ``owner.__dict__`` held (so a classmethod stays one);
    the last user puts exactly that back (or deletes the attribute if it was inherited).
    """

    def __init__(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        self.owner = owner
        self.name = name
        self._make = make
        self._lock = threading.Lock()
        self._users = 0
        self._saved: Any = _MISSING

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Use the patch for the duration of a ``with`` block (or an `ExitStack` entry)."""
        with self._lock:
            if self._users == 0:
                namespace = vars(self.owner)
                saved = namespace.get(self.name, _MISSING)
                current = saved if saved is not _MISSING else getattr(self.owner, self.name)
                setattr(self.owner, self.name, self._make(current))
                self._saved = saved
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    if self._saved is _MISSING:
                        delattr(self.owner, self.name)
                    else:
                        setattr(self.owner, self.name, self._saved)
                    self._saved = _MISSING
