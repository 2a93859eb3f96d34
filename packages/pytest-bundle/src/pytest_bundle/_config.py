"""The plugin's ini options and their command-line twins, read into one typed config.

Every option is an ini key (``hosted_api_app = ...``) and a command-line option
(``--hosted-api-app=...``); the command line wins. Booleans take ``--hosted-api-X`` /
``--no-hosted-api-X`` so that an optional value can never swallow a test path. Values are
validated once, at start-up, and a bad one is a ``pytest.UsageError`` naming the option (what
needs the user's modules is checked by ``_checks`` once they are imported).
"""

from __future__ import annotations

import importlib.machinery
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

DEMO_APP = "server_launcher.demo:create_app"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class _Option:
    name: str
    help: str
    default: str
    # "string", "bool", "float", "optional-float", "grace" (empty, or seconds >= 0 or inf),
    # "optional-jumps" (empty, or a whole number >= 1, or inf),
    # "positive-int", "optional-file", "paths" (dotted paths, one per line or comma-separated)
    # or "pairs" (NAME=value, one per line: values may contain commas)
    kind: str = "string"

    @property
    def is_list(self) -> bool:
        return self.kind in {"paths", "pairs"}

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def negative_flag(self) -> str:
        return "--no-" + self.name.replace("_", "-")


OPTIONS: tuple[_Option, ...] = (
    _Option(
        "hosted_api_app",
        "ASGI app (or app factory) import string for the hosted server; "
        "default: the embedded demo app.",
        DEMO_APP,
    ),
    _Option(
        "hosted_api_factory",
        "Whether hosted_api_app names a factory to call (default true).",
        "true",
        "bool",
    ),
    _Option(
        "hosted_api_prefix", "Path prefix of the API under the server root (default /api).", "/api"
    ),
    _Option(
        "hosted_api_health_path",
        "Health endpoint under the prefix that must answer 200 (default /health).",
        "/health",
    ),
    _Option(
        "hosted_api_startup_timeout",
        "Seconds to wait for the server to get healthy (20).",
        "20",
        "float",
    ),
    _Option(
        "hosted_api_shutdown_timeout",
        "Seconds to wait after SIGTERM before SIGKILL (10).",
        "10",
        "float",
    ),
    _Option(
        "hosted_api_ssl_certfile",
        "PEM certificate the hosted server serves HTTPS with (relative to the rootdir); the "
        "URL setting then gets the https URL. Default: plain HTTP.",
        "",
        "optional-file",
    ),
    _Option(
        "hosted_api_ssl_keyfile",
        "Private key of hosted_api_ssl_certfile, when the certificate file does not hold it.",
        "",
        "optional-file",
    ),
    _Option(
        "hosted_api_url_setting",
        "Setting (environment name) that use_hosted_api_server "
        "points at the server (default API_URL).",
        "API_URL",
    ),
    _Option(
        "hosted_api_extra_settings",
        "NAME=value settings that use_hosted_api_server applies in the TEST process, for one "
        "test (the server does not see them: use hosted_api_server_env for the server). One per "
        "line in the ini file; on the command line repeat the option or separate with commas.",
        "",
        "pairs",
    ),
    _Option(
        "hosted_api_server_env",
        "NAME=value environment variables for the hosted SERVER process only, merged over the "
        "hosted_api_env fixture's mapping (the tests do not see them). One per line in the ini "
        "file; on the command line repeat the option or separate with commas.",
        "",
        "pairs",
    ),
    _Option(
        "hosted_api_autouse",
        "Every test uses use_hosted_api_server (default false).",
        "false",
        "bool",
    ),
    _Option(
        "hosted_api_shared",
        "Under pytest-xdist all workers share one server (default false).",
        "false",
        "bool",
    ),
    _Option(
        "hosted_api_pool_size",
        "Most hosted API servers (one per distinct environment: the default one, those of "
        "@pytest.mark.hosted_api_env and hosted_api_server_factory) kept running at once; past "
        "it the least recently used idle one is stopped (default 4).",
        "4",
        "positive-int",
    ),
    _Option(
        "mock_anyio_sleep_targets",
        "Dotted paths of the async sleep functions mock_anyio_sleep fakes, one per line or "
        "comma-separated (default anyio.sleep).",
        "anyio.sleep",
        "paths",
    ),
    _Option(
        "mock_anyio_sleep_clocks",
        "Dotted paths of the clocks mock_anyio_sleep shifts, one per line or comma-separated "
        "(default pendulum.now, skipped when pendulum is not installed).",
        "pendulum.now",
        "paths",
    ),
    _Option(
        "virtual_clock_end",
        "Virtual seconds after which a virtual_clock test fails as a livelock (default: "
        "fake-sleep's, ten virtual years).",
        "",
        "optional-float",
    ),
    _Option(
        "virtual_clock_max_jumps",
        "Jumps of virtual time after which a virtual_clock test fails as a livelock of short "
        "sleeps (default: fake-sleep's, a million; inf for none).",
        "",
        "optional-jumps",
    ),
    _Option(
        "virtual_clock_io_grace",
        "Real seconds a wait on outside I/O (a server, a subprocess, another thread's event loop) "
        "may hold a virtual_clock test's clock before time jumps; inf always waits (default: "
        "fake-sleep's io_grace).",
        "",
        "grace",
    ),
)


@dataclass(frozen=True)
class BundleConfig:
    """The validated configuration of one pytest session."""

    app: str
    factory: bool
    prefix: str
    health_path: str
    startup_timeout: float
    shutdown_timeout: float
    url_setting: str
    extra_settings: dict[str, str]
    server_env: dict[str, str]
    autouse: bool
    shared: bool
    pool_size: int
    sleep_targets: tuple[str, ...]
    sleep_clocks: tuple[str, ...]
    virtual_clock_end: float | None
    virtual_clock_io_grace: float | None
    virtual_clock_max_jumps: float | None
    # The server's working directory (pytest's rootdir) and its TLS files (absolute, or None).
    rootdir: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # The options the user set (ini or command line): only those are resolved at start-up, so
    # that the defaults (anyio.sleep, pendulum.now) never force an import.
    given: frozenset[str] = frozenset()

    @property
    def uses_demo_app(self) -> bool:
        return self.app == DEMO_APP

    @property
    def full_health_path(self) -> str:
        return self.prefix + self.health_path


def add_options(parser: pytest.Parser) -> None:
    """Register every option as an ini key and a command-line option."""
    group = parser.getgroup("pytest-bundle", "hosted API server, fake sleep and virtual clock")
    for option in OPTIONS:
        if option.is_list:
            parser.addini(option.name, option.help, type="linelist", default=None)
        else:
            parser.addini(option.name, option.help, type="string", default=None)
        dest = option.name
        if option.kind == "bool":
            group.addoption(
                option.flag, action="store_true", dest=dest, default=None, help=option.help
            )
            group.addoption(
                option.negative_flag,
                action="store_false",
                dest=dest,
                default=None,
                help=f"Turn off {option.flag}.",
            )
        else:
            group.addoption(
                option.flag,
                action="append" if option.is_list else "store",
                dest=dest,
                default=None,
                metavar={"pairs": "NAME=VALUE", "paths": "DOTTED.PATH"}.get(
                    option.kind, option.name.upper()
                ),
                help=option.help + " Overrides the ini key.",
            )


# Where one NAME=value pair ends and the next begins on a command line: a comma followed by an
# environment-style (upper-case) name and "=". Any other comma belongs to the value.
_NEXT_PAIR = re.compile(r",\s*(?=[A-Z_][A-Z0-9_]*\s*=)")


def _split_pairs(value: str) -> list[str]:
    """Split at each ``,NAME=`` that is not inside a double-quoted value."""
    parts, start = [], 0
    for found in _NEXT_PAIR.finditer(value):
        if value.count('"', start, found.start()) % 2 == 0:
            parts.append(value[start : found.start()])
            start = found.end()
    return [*parts, value[start:]]


def _split_cli(option: _Option, value: str) -> list[str]:
    if option.kind == "pairs":
        return _split_pairs(value)
    return value.split(",")


def _raw(config: pytest.Config, option: _Option) -> str | bool | list[str]:
    cli = config.getoption(option.name, default=None)
    if cli is not None:
        if option.is_list:
            values = cli if isinstance(cli, list) else [cli]
            return [part for value in values for part in _split_cli(option, str(value))]
        return cli  # type: ignore[no-any-return]
    ini = config.getini(option.name)
    if ini is None or ini == []:
        if option.is_list:
            return [line for line in option.default.splitlines() if line]
        return option.default
    return ini  # type: ignore[no-any-return]


def _given(config: pytest.Config, option: _Option) -> bool:
    """Whether the user set the option (on the command line or in the ini file)."""
    return config.getoption(option.name, default=None) is not None or config.getini(
        option.name
    ) not in (None, [])


def where(name: str) -> str:
    """How an error names an option: its ini key and its command-line flag."""
    option = _Option(name, "", "")
    return f"{option.name} (ini) / {option.flag} (command line)"


def _where(option: _Option) -> str:
    return where(option.name)


def _as_bool(option: _Option, value: str | bool | list[str]) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise pytest.UsageError(f"{_where(option)}: expected true or false, got {value!r}.")


def _as_float(option: _Option, value: str | bool | list[str], *, optional: bool) -> float | None:
    text = str(value).strip()
    if optional and text.lower() in {"", "none"}:
        return None
    try:
        number = float(text)
    except ValueError:
        raise pytest.UsageError(
            f"{_where(option)}: expected a number of seconds, got {value!r}."
        ) from None
    if not math.isfinite(number) or number <= 0:
        raise pytest.UsageError(
            f"{_where(option)}: expected a positive, finite number of seconds, got {value!r}."
        )
    return number


def _optional_number(value: str | bool | list[str]) -> float | None:
    """None when empty (fake-sleep's default), NaN when not a number (the caller refuses it)."""
    text = str(value).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return math.nan


def _as_grace(option: _Option, value: str | bool | list[str]) -> float | None:
    """Empty (fake-sleep's default), or real seconds >= 0; inf always waits for outside I/O."""
    number = _optional_number(value)
    if number is None:
        return None
    if math.isnan(number) or number < 0:
        raise pytest.UsageError(
            f"{_where(option)}: expected a number of real seconds >= 0, such as 10 (inf: always "
            f"wait for outside I/O; empty: fake-sleep's default), got {value!r}."
        )
    return number


def _as_jumps(option: _Option, value: str | bool | list[str]) -> float | None:
    """Empty (fake-sleep's default), a whole number of jumps >= 1, or inf (no limit)."""
    number = _optional_number(value)
    if number is None:
        return None
    if not (number >= 1 and (math.isinf(number) or number.is_integer())):
        raise pytest.UsageError(
            f"{_where(option)}: expected a whole number of jumps >= 1, such as 5000000 (inf: no "
            f"limit; empty: fake-sleep's default, a million), got {value!r}."
        )
    return number if math.isinf(number) else int(number)


def _as_positive_int(option: _Option, value: str | bool | list[str]) -> int:
    text = str(value).strip()
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise pytest.UsageError(
            f"{_where(option)}: expected a positive whole number (how many servers may run at "
            f"once), got {value!r}."
        )
    return number


def _as_lines(value: str | bool | list[str]) -> list[str]:
    if isinstance(value, list):
        return [line.strip() for line in value if line.strip()]
    return [line.strip() for line in str(value).splitlines() if line.strip()]


def _parse_pairs(option: _Option, lines: Sequence[str]) -> dict[str, str]:
    """NAME=value lines into a dict. A value in double quotes is taken literally (it may hold
    ``,NAME=``); otherwise several pairs on one line are refused, as is a name given twice.
    No error shows a value (it may be a secret)."""
    from ._environment import environment_problems

    pairs: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or any(ch.isspace() for ch in name):
            shown = repr(name + "=...") if sep else "a line without '='"
            raise pytest.UsageError(
                f"{_where(option)}: expected NAME=value, got {shown}. "
                "Write one NAME=value per line in the ini file."
            )
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]  # quoted: literally what is between the quotes
        elif _NEXT_PAIR.search(value):
            raise pytest.UsageError(
                f"{_where(option)}: the value of {name} looks like several NAME=value pairs on "
                "one line. Write one NAME=value per line in the ini file; if the value really "
                'holds ",NAME=", put it in double quotes: LABELS="tier=web,REGION=eu" (taken '
                "literally)."
            )
        if name in pairs:
            raise pytest.UsageError(
                f"{_where(option)}: {name} is given twice; give each name once (which value "
                "did you mean?)."
            )
        pairs[name] = value
    problems = environment_problems(pairs, settings=False)
    if problems:
        raise pytest.UsageError(
            f"{_where(option)}: " + " ".join(problem.message for problem in problems)
        )
    return pairs


def _parse_paths(option: _Option, lines: Sequence[str]) -> tuple[str, ...]:
    """Dotted paths, one per line or comma-separated (a dotted path never holds a comma)."""
    paths = [part.strip() for line in lines for part in line.split(",") if part.strip()]
    for path in paths:
        if not all(part.isidentifier() for part in path.split(".")) or "." not in path:
            raise pytest.UsageError(
                f"{_where(option)}: expected dotted paths such as 'anyio.sleep' (one per line, "
                f"or separated by commas), got {path!r}."
            )
    return tuple(paths)


def _check_path(option: _Option, value: str, *, allow_empty: bool) -> str:
    value = value.strip()
    if allow_empty and value in {"", "/"}:
        return ""
    if not value.startswith("/") or any(ch.isspace() for ch in value) or "?" in value:
        raise pytest.UsageError(
            f"{_where(option)}: expected a URL path starting with '/', got {value!r}."
        )
    return value.rstrip("/") if len(value) > 1 else value


def _check_app_string(option: _Option, app: str) -> str:
    app = app.strip()
    module, sep, attr = app.partition(":")
    if (
        not sep
        or not module
        or not attr
        or not all(part.isidentifier() for part in [*module.split("."), *attr.split(".")])
    ):
        raise pytest.UsageError(
            f"{_where(option)}: expected 'package.module:attribute', got {app!r}."
        )
    return app


def _as_file(option: _Option, value: str | bool | list[str], root: Path) -> str | None:
    """An existing file, relative to the rootdir; None when not set."""
    text = str(value).strip()
    if not text:
        return None
    path = (root / os.path.expanduser(text)).resolve()
    if not path.is_file():
        raise pytest.UsageError(f"{_where(option)}: no such file: {text!r} (looked at {path}).")
    return str(path)


# Every ini key the plugin owns starts with one of these: another key with the prefix is a typo.
_PREFIXES = ("hosted_api_", "mock_anyio_sleep_", "virtual_clock_")


def _misspelt_options(config: pytest.Config) -> list[str]:
    """Ini keys with one of the plugin's prefixes that no plugin registered, closest named.

    pytest only warns about an unknown key (unless ``--strict-config``), and the session would
    run on the defaults: the embedded demo app instead of the user's, say.
    """
    raw = getattr(config, "_inicfg", None)  # pytest 9, which deprecates ``inicfg``
    if raw is None:
        raw = getattr(config, "inicfg", {})  # pytest 8
    problems = []
    for key in sorted(str(key) for key in raw):
        if not key.startswith(_PREFIXES):
            continue
        try:
            config.getini(key)
        except ValueError:  # not registered by any plugin
            import difflib  # only on the error path

            names = [option.name for option in OPTIONS]
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            listed = ", ".join(names)
            hint = f"did you mean {close[0]!r}?" if close else f"the options are: {listed}."
            problems.append(f"{key} (ini): not an option of pytest-bundle; {hint}")
    return problems


def read_config(config: pytest.Config) -> BundleConfig:
    """Read and validate every option; raise ``pytest.UsageError`` naming a bad one.

    What needs the user's own modules (registered settings, sleep targets) is checked later,
    by ``_checks``, once they are imported.
    """
    misspelt = _misspelt_options(config)
    if misspelt:
        raise pytest.UsageError("\n".join(misspelt))
    by_name = {option.name: option for option in OPTIONS}

    def text(name: str) -> str:
        return str(_raw(config, by_name[name]))

    def flag(name: str) -> bool:
        return _as_bool(by_name[name], _raw(config, by_name[name]))

    def seconds(name: str) -> float:
        value = _as_float(by_name[name], _raw(config, by_name[name]), optional=False)
        assert value is not None
        return value

    def pairs(name: str) -> dict[str, str]:
        return _parse_pairs(by_name[name], _as_lines(_raw(config, by_name[name])))

    def dotted(name: str) -> tuple[str, ...]:
        return _parse_paths(by_name[name], _as_lines(_raw(config, by_name[name])))

    def file(name: str) -> str | None:
        return _as_file(by_name[name], _raw(config, by_name[name]), Path(config.rootpath))

    if file("hosted_api_ssl_keyfile") and not file("hosted_api_ssl_certfile"):
        raise pytest.UsageError(
            f"{_where(by_name['hosted_api_ssl_keyfile'])}: needs hosted_api_ssl_certfile too "
            "(the certificate the key belongs to)."
        )
    url_setting = text("hosted_api_url_setting").strip()
    if not url_setting or any(ch.isspace() or ch == "=" for ch in url_setting):
        raise pytest.UsageError(
            f"{_where(by_name['hosted_api_url_setting'])}: expected a setting name, "
            f"got {url_setting!r}."
        )
    return BundleConfig(
        app=_check_app_string(by_name["hosted_api_app"], text("hosted_api_app")),
        factory=flag("hosted_api_factory"),
        prefix=_check_path(
            by_name["hosted_api_prefix"], text("hosted_api_prefix"), allow_empty=True
        ),
        health_path=_check_path(
            by_name["hosted_api_health_path"], text("hosted_api_health_path"), allow_empty=False
        ),
        startup_timeout=seconds("hosted_api_startup_timeout"),
        shutdown_timeout=seconds("hosted_api_shutdown_timeout"),
        url_setting=url_setting,
        extra_settings=pairs("hosted_api_extra_settings"),
        server_env=pairs("hosted_api_server_env"),
        autouse=flag("hosted_api_autouse"),
        shared=flag("hosted_api_shared"),
        pool_size=_as_positive_int(
            by_name["hosted_api_pool_size"], _raw(config, by_name["hosted_api_pool_size"])
        ),
        sleep_targets=dotted("mock_anyio_sleep_targets"),
        sleep_clocks=dotted("mock_anyio_sleep_clocks"),
        virtual_clock_end=_as_float(
            by_name["virtual_clock_end"], _raw(config, by_name["virtual_clock_end"]), optional=True
        ),
        rootdir=str(config.rootpath),
        ssl_certfile=file("hosted_api_ssl_certfile"),
        ssl_keyfile=file("hosted_api_ssl_keyfile"),
        virtual_clock_io_grace=_as_grace(
            by_name["virtual_clock_io_grace"], _raw(config, by_name["virtual_clock_io_grace"])
        ),
        virtual_clock_max_jumps=_as_jumps(
            by_name["virtual_clock_max_jumps"], _raw(config, by_name["virtual_clock_max_jumps"])
        ),
        given=frozenset(option.name for option in OPTIONS if _given(config, option)),
    )


def child_python_path(config: pytest.Config, baseline: Sequence[str]) -> list[str]:
    """The import roots the server child needs to import what the tests can import.

    That is every ``sys.path`` entry pytest (or a conftest) added since the plugin was loaded,
    the ``pythonpath`` ini entries, the rootdir and the invocation directory, in that order.
    """
    seen: set[str] = set()
    roots: list[str] = []

    def add(entry: str | os.PathLike[str]) -> None:
        path = os.path.abspath(os.fspath(entry)) if entry else os.getcwd()
        if path not in seen and os.path.isdir(path):
            seen.add(path)
            roots.append(path)

    baseline_set = set(baseline)
    for entry in sys.path:
        if entry not in baseline_set:
            add(entry)
    for entry in config.getini("pythonpath") or []:
        add(entry)
    add(Path(config.rootpath))
    add(Path(config.invocation_params.dir))
    return roots


def check_app_importable(config: BundleConfig, roots: Sequence[str]) -> None:
    """Fail at start-up when the app's top-level module cannot be found (without importing it)."""
    top = config.app.partition(":")[0].split(".")[0]
    if top in sys.modules:
        return
    search = [*roots, *sys.path]
    if importlib.machinery.PathFinder.find_spec(top, search) is not None:
        return
    if top in sys.builtin_module_names:
        return
    raise pytest.UsageError(
        f"hosted_api_app (ini) / --hosted-api-app (command line): cannot find module {top!r} "
        f"of app {config.app!r} on the server's import path ({os.pathsep.join(roots)} plus "
        "sys.path). Check the spelling, or add its folder to the 'pythonpath' ini option."
    )
