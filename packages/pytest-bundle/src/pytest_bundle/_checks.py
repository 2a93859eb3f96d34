"""Start-up checks that need the user's own modules: registered settings and sleep targets.

``read_config`` checks what the options say on their own; whether a setting name is misspelt,
whether a value fits its setting's type and whether a sleep target exists can only be known once
the user's modules are imported. The plugin runs these checks at session start (for what the
conftests imported) and again after collection (test modules usually import the settings
module). ``settings_override`` is used only when something already imported it, and only the
sleep targets and clocks the user configured are imported: a session that uses none of this
pays nothing.
"""

from __future__ import annotations

import inspect
import reprlib
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._config import BundleConfig, where

if TYPE_CHECKING:
    from settings_override import Setting

# Environment names whose values are never shown: a name containing one of these is masked.
_SECRET_MARKERS = (
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "KEY",
    "AUTH",
    "CREDENTIAL",
    "PRIVATE",
    "DSN",
)
# How close an unregistered name must be to a registered one to count as a misspelling. Strict
# on purpose: a plain environment variable that merely resembles a setting (DEBUG next to
# APP_DEBUG) must not stop the session; a swapped or missing letter must.
_TYPO_CUTOFF = 0.8
# A URL of the shape use_hosted_api_server writes into the URL setting.
_SAMPLE_URL = "http://127.0.0.1:8000/api"
_NO_VALUE: Any = object()

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


def short_repr(value: object) -> str:
    """A repr short enough for a one-line error."""
    return _short.repr(value)


def looks_secret(name: str) -> bool:
    """Whether an environment name looks like it holds a secret (its value is never shown)."""
    upper = name.upper()
    if any(marker in upper for marker in _SECRET_MARKERS):
        return True
    module = sys.modules.get("settings_override")
    if module is None or not module.is_registered(name):
        return False
    return bool(module.lookup(name).secret)


# --- registered settings -------------------------------------------------------------------


def registries_key() -> tuple[tuple[int, int], ...] | None:
    """What identifies the open settings registries now (None: settings_override not loaded).

    The checks need to run again only when this changed.
    """
    module = sys.modules.get("settings_override")
    if module is None:
        return None
    return tuple((id(registry), len(registry)) for registry in module.open_registries())


def _registered() -> dict[str, Setting[Any]]:
    module = sys.modules.get("settings_override")
    if module is None:
        return {}
    return {setting.name: setting for registry in module.open_registries() for setting in registry}


def _misspelling_of(name: str, registered: Iterable[str]) -> str | None:
    """The registered name that `name` most likely misspells, if one is close enough."""
    import difflib  # here, not at the top: the plugin's import stays cheap

    by_upper = {candidate.upper(): candidate for candidate in registered}
    found = difflib.get_close_matches(name.upper(), list(by_upper), n=1, cutoff=_TYPO_CUTOFF)
    return by_upper[found[0]] if found else None


def _named_values(config: BundleConfig) -> Iterator[tuple[str, str, object]]:
    """(option, name, value) for every setting name the options give; the URL has no value yet."""
    yield "hosted_api_url_setting", config.url_setting, _NO_VALUE
    for name, value in config.extra_settings.items():
        yield "hosted_api_extra_settings", name, value
    for name, value in config.server_env.items():
        yield "hosted_api_server_env", name, value


def setting_problems(config: BundleConfig) -> list[str]:
    """Misspelt setting names and values that do not fit their registered settings.

    A name no registry defines, and none is close to, is a plain environment variable: allowed.
    """
    registered = _registered()
    if not registered:
        return []
    problems = []
    for option, name, value in _named_values(config):
        setting = registered.get(name)
        if setting is None:
            problem = _name_problem(name, registered)
        elif value is _NO_VALUE:
            problem = _url_problem(setting)
        else:
            assert isinstance(value, str)
            problem = _value_problem(setting, value, comma_hint=True)
        if problem is not None:
            problems.append(f"{where(option)}: {problem}")
    return problems


def env_problems(values: Mapping[str, object]) -> list[str]:
    """Problems of an environment a test asks for (a marker, the factory), one per name.

    The same rules as the options: a near miss of a registered setting, or a value that does not
    fit one. Each problem starts with the name it is about; None (remove the name) always fits.
    """
    registered = _registered()
    if not registered:
        return []
    problems = []
    for name, value in values.items():
        setting = registered.get(name)
        if setting is None:
            problem = _name_problem(name, registered)
        elif isinstance(value, str):
            problem = _value_problem(setting, value, comma_hint=False)
        else:
            problem = None
        if problem is not None:
            problems.append(problem)
    return problems


def _name_problem(name: str, registered: Mapping[str, Setting[Any]]) -> str | None:
    close = _misspelling_of(name, registered)
    if close is None:
        return None
    return (
        f"{name!r} is not a registered setting, but {close!r} is: did you mean {close!r}? A name "
        "no settings registry defines is set as a plain environment variable, so a misspelt "
        "setting would silently have no effect."
    )


def _url_problem(setting: Setting[Any]) -> str | None:
    try:
        setting.check(_SAMPLE_URL)
    except ValueError as error:
        return (
            f"the setting {setting.name} is {setting.type_name}, so it cannot hold the server's "
            f"URL ({error}). Name a str setting."
        )
    return None


def _value_problem(setting: Setting[Any], value: str, *, comma_hint: bool) -> str | None:
    try:
        setting.check(value)
    except ValueError as error:
        shown = "***" if setting.secret or looks_secret(setting.name) else repr(value)
        hint = ""
        if comma_hint and "," in value:
            hint = " Values may contain commas, so write one NAME=value per line."
        return (
            f"{setting.name}={shown} does not fit the registered setting {setting.name} "
            f"({setting.type_name}): {error}.{hint}"
        )
    return None


# --- sleep targets and clocks --------------------------------------------------------------


def _top_level_modules() -> set[str]:
    import pkgutil  # only on the error path

    names = {module.name for module in pkgutil.iter_modules()}
    names.update(name.partition(".")[0] for name in list(sys.modules))
    names.update(sys.builtin_module_names)
    return names


def _attribute_names(owner: object) -> set[str]:
    import pkgutil  # only on the error path

    names = set(dir(owner))
    path = getattr(owner, "__path__", None)
    if path is not None:  # a package: its submodules are names too, imported or not
        names.update(module.name for module in pkgutil.iter_modules(path))
    return names


def _did_you_mean(parts: list[str], index: int, candidates: Iterable[str]) -> str:
    import difflib  # only on the error path

    found = difflib.get_close_matches(parts[index], sorted(candidates), n=1)
    if not found:
        return ""
    return f"; did you mean {'.'.join([*parts[:index], found[0], *parts[index + 1 :]])!r}?"


def _resolve(path: str) -> tuple[object, str | None]:
    """What a dotted path names, resolved by fake-sleep's own resolver (the one
    ``patch_sleep`` uses: the longest importable module prefix, then attributes), or why it
    cannot be, with the closest real name."""
    # Here, not at the top: only a session that configured targets or clocks imports it.
    from fake_sleep import UnknownTargetError, resolve_target

    try:
        return resolve_target(path), None
    except UnknownTargetError as error:
        if not error.missing:  # not a dotted path: read_config refuses those first
            return None, str(error)
        parts = path.split(".")
        if not error.found:
            hint = _did_you_mean(parts, 0, _top_level_modules())
            return None, f"no module named {parts[0]!r}{hint}"
        index = len(error.found.split("."))
        hint = _did_you_mean(parts, index, _attribute_names(error.owner))
        return None, f"{error.found!r} has no attribute {parts[index]!r}{hint}"
    except ImportError as error:
        if error.__cause__ is None:
            raise  # not fake-sleep's "this module failed to import"
        cause = error.__cause__
        return None, f"importing {error.name!r} failed: {type(cause).__name__}: {cause}"


def sleep_path_problems(config: BundleConfig) -> list[str]:
    """Configured sleep targets and clocks that do not exist, or are not what they must be.

    Only values the user gave are resolved: the defaults must not import anything (pendulum
    may well be absent, and ``patch_sleep`` skips its default clock then).
    """
    problems = []
    seen: dict[str, str] = {}
    for option, paths, kind in (
        ("mock_anyio_sleep_targets", config.sleep_targets, "target"),
        ("mock_anyio_sleep_clocks", config.sleep_clocks, "clock"),
    ):
        if option not in config.given:
            continue
        for path in paths:
            if path in seen:
                problems.append(
                    f"{where(option)}: {path!r} is listed twice (also in {seen[path]}); "
                    "list each target or clock once."
                )
                continue
            seen[path] = option
            value, problem = _resolve(path)
            if problem is None:
                problem = _kind_problem(path, value, kind)
            if problem is not None:
                end = "" if problem.endswith("?") else "."
                problems.append(f"{where(option)}: cannot use {path!r}: {problem}{end}")
    return problems


def _kind_problem(path: str, value: object, kind: str) -> str | None:
    if kind == "target" and not inspect.iscoroutinefunction(value):
        return (
            f"it is {short_repr(value)}, not an async function; targets are async sleeps such "
            "as 'anyio.sleep' (clocks such as 'time.time' go in mock_anyio_sleep_clocks)"
        )
    if kind == "clock" and not callable(value):
        return f"it is {short_repr(value)}, which is not callable; a clock is a function"
    return None


def startup_problems(config: BundleConfig) -> list[str]:
    """Every problem the checks above find, one line each."""
    return [*setting_problems(config), *sleep_path_problems(config)]


class SettingsRecheck:
    """Checks the settings again when the registries changed since the last check.

    A registry defined after collection (by a fixture or a test) is checked when the server
    fixtures next run; comparing the registries costs about a microsecond per test.
    """

    def __init__(self) -> None:
        self._key: tuple[tuple[int, int], ...] | None = None

    def mark_checked(self) -> None:
        self._key = registries_key()

    def problems(self, config: BundleConfig) -> list[str]:
        key = registries_key()
        if key is None or key == self._key:
            return []
        self._key = key
        return setting_problems(config)
