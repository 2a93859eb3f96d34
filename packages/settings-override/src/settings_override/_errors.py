"""The errors a user can cause, each saying what was wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial

__all__ = [
    "DuplicateSettingError",
    "SettingValidationError",
    "UnknownSettingError",
]


def close_matches(name: str, candidates: Iterable[str]) -> list[str]:
    """Suggest registered names that look like a misspelt `name` (case-insensitive)."""
    import difflib  # only on the error path: keeps `import settings_override` light

    by_upper: dict[str, str] = {}
    for candidate in candidates:
        by_upper.setdefault(candidate.upper(), candidate)
    found = difflib.get_close_matches(name.upper(), list(by_upper), n=3, cutoff=0.6)
    return [by_upper[match] for match in found]


class UnknownSettingError(KeyError):
    """A key names no registered setting.

    A `KeyError`, so code that catches missing keys keeps working. `names` lists every unknown
    key and `suggestions` maps each to the registered names it most resembles.
    """

    def __init__(self, names: Iterable[str], suggestions: Mapping[str, list[str]]) -> None:
        self.names: tuple[str, ...] = tuple(names)
        """Every unknown key, in the order given."""
        self.suggestions: dict[str, list[str]] = {
            n: list(suggestions.get(n, ())) for n in self.names
        }
        """For each unknown key, the registered names it most resembles (may be empty)."""
        super().__init__(self.message)

    def __reduce__(self) -> tuple[type[UnknownSettingError], tuple[object, ...]]:
        # The default rebuilds from `args` (the message), which `__init__` does not take.
        return type(self), (self.names, self.suggestions)

    @property
    def message(self) -> str:
        """The full, human readable explanation."""
        parts = []
        for name in self.names:
            hint = self.suggestions.get(name)
            if hint:
                parts.append(f"{name!r} (did you mean {' or '.join(map(repr, hint))}?)")
            else:
                parts.append(repr(name))
        noun = "setting" if len(parts) == 1 else "settings"
        return (
            f"unknown {noun}: {', '.join(parts)}. Keys must be Setting objects or the environment "
            "name of a setting defined with SettingsRegistry.define(); nothing was changed."
        )

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return self.message


class SettingValidationError(ValueError):
    """One or more values do not fit their settings' types.

    `problems` maps every bad key (environment name) to what is wrong with it, so one run shows
    every mistake at once. Values of secret settings never appear in the message.
    """

    def __init__(self, problems: Mapping[str, str], *, nothing_changed: bool = True) -> None:
        self.problems: dict[str, str] = dict(problems)
        """Every bad key (environment name) and what is wrong with it."""
        self._nothing_changed = nothing_changed
        lines = [f"  {name}: {problem}" for name, problem in self.problems.items()]
        noun = "value" if len(lines) == 1 else "values"
        tail = "\nNothing was changed." if nothing_changed else ""
        super().__init__(f"invalid setting {noun}:\n" + "\n".join(lines) + tail)

    def __reduce__(self) -> tuple[Callable[..., SettingValidationError], tuple[object, ...]]:
        # The default rebuilds from `args` (the message), which `__init__` does not take.
        return partial(type(self), nothing_changed=self._nothing_changed), (self.problems,)


class DuplicateSettingError(ValueError):
    """An environment name is already defined by another setting in this process.

    Environment names are process-wide: give each registry its own prefix, or `close()` the
    registry that holds the name when it is no longer needed (tests).
    """
