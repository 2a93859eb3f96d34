"""The one check every environment a server gets goes through.

The ``hosted_api_env`` marker, ``hosted_api_server_factory``, the ``hosted_api_env`` fixture's
mapping and the ``hosted_api_server_env`` option all pass their ``{name: value}`` here, before
anything starts: a name must be a non-empty string without ``=`` or NUL, a value a string
without NUL (or None, which removes the name), and a name close to a registered setting or a
value that does not fit one is a mistake. Each caller turns the problems into its own kind of
error (a usage error, a ``TypeError``/``ValueError``, a start failure) at the place the user
wrote the environment. No problem ever shows a value of a secret-looking name, nor what follows
an ``=`` in a name (``"TOKEN=hunter2"`` passed as a name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._checks import env_problems, looks_secret, short_repr


@dataclass(frozen=True)
class EnvProblem:
    """One problem, starting with the name it is about; ``of_type``: a wrong type (not a
    wrong value), which the factory raises as ``TypeError``."""

    message: str
    of_type: bool = False


def shown_name(name: object) -> str:
    """A name as errors show it: what follows an ``=`` (a value typed into the name) is hidden."""
    if isinstance(name, str) and "=" in name:
        return repr(name.partition("=")[0] + "=...")
    return short_repr(name)


def _entry_problem(name: object, value: object) -> EnvProblem | None:
    if not isinstance(name, str):
        return EnvProblem(
            f"the name {shown_name(name)} is {type(name).__name__}; names are strings.", True
        )
    if not name:
        return EnvProblem("an empty name; give the variable's name, such as 'FEATURE_X'.")
    if "=" in name:
        return EnvProblem(
            f"the name {shown_name(name)} contains '='; pass the name and the value "
            "separately: {'NAME': 'value'} (NAME='value' in a marker)."
        )
    if "\0" in name:
        return EnvProblem(f"the name {shown_name(name)} contains a NUL character.")
    if value is None:
        return None
    secret = looks_secret(name)
    if not isinstance(value, str):
        shown = "***" if secret else short_repr(value)
        return EnvProblem(
            f"{name}={shown} is {type(value).__name__}, but environment values are strings "
            "(None removes the name); convert it with str().",
            True,
        )
    if "\0" in value:
        return EnvProblem(
            f"the value of {name} contains a NUL character, which no environment variable can hold."
        )
    return None


def environment_problems(env: Mapping[Any, object], *, settings: bool = True) -> list[EnvProblem]:
    """Every problem of an environment a server would get, one per name, secrets masked.

    ``settings=False``: only what any environment must be (the options' own check, which
    runs before the user's settings are registered; they are checked again at session start).
    """
    problems: list[EnvProblem] = []
    good: dict[str, object] = {}
    for name, value in env.items():
        problem = _entry_problem(name, value)
        if problem is None:
            assert isinstance(name, str)
            good[name] = value
        else:
            problems.append(problem)
    if settings:
        problems.extend(EnvProblem(message) for message in env_problems(good))
    return problems
