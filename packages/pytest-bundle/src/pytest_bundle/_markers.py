"""``@pytest.mark.hosted_api_env(NAME="value", ...)``: reading it, and checking it at collection.

On a test, a class or a module; the closest marker wins per name, and None removes a name from
the server's environment. Checked right after collection, before any server starts, so that a
misspelt setting never silently starts a server without the flag the test is about.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from ._checks import looks_secret, short_repr
from ._environment import environment_problems

MARKER = "hosted_api_env"
MARKER_HELP = (
    "hosted_api_env(NAME='value', ...): use_hosted_api_server in this test (class, module) "
    "points at a hosted server started with these environment variables over the default "
    "server's (None removes a name); the closest marker wins per name."
)


def marker_env(item: pytest.Item) -> dict[str, str | None] | None:
    """The environment the item's markers ask for (closest wins per name); None: no marker."""
    marks = [mark for _, mark in item.iter_markers_with_node(MARKER)]  # closest first
    if not marks:
        return None
    env: dict[str, str | None] = {}
    for mark in reversed(marks):
        env.update(mark.kwargs)
    return env


def marker_problems(items: Iterable[pytest.Item]) -> list[str]:
    """One line per problem of a marker, naming where it is written and the setting.

    A marker on a class or module is reported once, under the class or module, not once per
    test it applies to.
    """
    return mark_problems(items, MARKER, _mark_problems)


def mark_problems(
    items: Iterable[pytest.Item], marker: str, problems_of: Callable[[pytest.Mark], list[str]]
) -> list[str]:
    """``problems_of`` each ``marker`` mark, one line each, under the node that carries it."""
    problems: list[str] = []
    seen: set[str] = set()
    for item in items:
        for node, mark in item.iter_markers_with_node(marker):
            where = node.nodeid
            if isinstance(node, pytest.Function):
                where = where.partition("[")[0]  # one line for all parameters of a test
            for problem in problems_of(mark):
                line = f"{where}: @pytest.mark.{marker}: {problem}"
                if line not in seen:
                    seen.add(line)
                    problems.append(line)
    return problems


def _mark_problems(mark: pytest.Mark) -> list[str]:
    found = []
    if mark.args:
        found.append(
            f"takes NAME='value' keyword arguments only, got positional arguments "
            f"{short_repr(mark.args)}; write @pytest.mark.{MARKER}(FEATURE_X='on') (None "
            "removes a name)."
        )
    strings: dict[object, object] = {}
    for name, value in mark.kwargs.items():
        if value is None or isinstance(value, str):
            strings[name] = value
            continue
        shown = "***" if looks_secret(name) else short_repr(value)
        suggestion = "'...'" if looks_secret(name) else repr(str(value))
        found.append(
            f"{name}={shown} is {type(value).__name__}, but environment values are strings "
            f"(None removes the name): write {name}={suggestion}."
        )
    found.extend(problem.message for problem in environment_problems(strings))
    return found
