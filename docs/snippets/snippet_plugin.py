"""The snippet tests: every Python and shell snippet of docs/ and the READMEs runs as shown.

Loaded by `hatch run snippets:test` (`-p snippet_plugin`). sybil finds the fenced blocks, also
inside mkdocs-material's tabs and admonitions (indented fences); this module says what running
one means:

- A Python block whose first line is a file-name comment (`# conftest.py`, `# myapp/server.py`)
  or that sits under a tab titled with a file name (`=== "myapp/server.py"`) is written to that
  file in the page's working folder; so is an `ini` block (to `pytest.ini`, or its tab's name).
- A Python block that defines tests (`def test_...`), or is a file named `test_*.py`, is
  written to a test file there and run with pytest in a subprocess, the bundle's plugin loaded
  as installed: it must pass.
- Any other Python block is executed, in the page's working folder, in one namespace per page:
  a block may use what an earlier block of the same page defined.
- A shell (`bash`) block runs with `bash -eu`, in the page's working folder (or where an earlier
  block `cd`-ed to), in a fresh virtual environment first on PATH, so `pip install` reaches that
  venv and never the developer's. HOME is the page's own folder.
- `<!-- skip: next "reason" -->` before a block skips it, with the reason in the report (and the
  page's text says the same to the reader); `<!-- clear-namespace -->` starts a fresh namespace
  and working folder, for a page that moves on to another project.

Each page starts in a fresh temporary folder. A shell block right after
`<!-- snippets: cwd=clone -->` runs in the clone's root instead, as a visitor who just cloned
it would; a shell block that `cd`s somewhere moves the page's next blocks there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import ClearNamespaceParser, CodeBlockParser, SkipParser

import settings_override

ROOT = Path(__file__).resolve().parents[2]
_APPS = ROOT / "tests" / "apps"
_FILE_COMMENT = re.compile(r"#\s*(?P<path>[\w./-]+\.(?:py|ini|toml|cfg))\s*$")
_TAB_TITLE = re.compile(r'^\s*=== "(?P<title>[^"]+)"\s*$')
_CWD_DIRECTIVE = re.compile(r"<!--\s*snippets:\s*cwd=clone\s*-->")
_TEST_DEF = re.compile(r"^(async )?def test_\w+\(", re.M)
# A snippet that waits on a server or a subprocess is done in seconds; this only stops a hang.
_TIMEOUT = 300.0
_VENV: list[Path] = []
_SEED: list[str] = []


def _state(example: Example) -> dict[str, Any]:
    """The page's working folder and shell state, kept in its namespace (cleared with it)."""
    namespace = example.namespace
    state: dict[str, Any] | None = namespace.get("__snippets__")
    if state is None:
        home = Path(tempfile.mkdtemp(prefix="page-", dir=_basetemp(example)))
        state = {
            "home": home,
            "cwd": home,
            "modules": set(sys.modules),
            "registries": set(map(id, settings_override.open_registries())),
        }
        namespace["__snippets__"] = state
    return state


def _basetemp(example: Example) -> Path:
    """pytest's temp folder for this run (its retention removes old runs' folders)."""
    return Path(example.namespace["tmp_path_factory"].getbasetemp())


def _venv(example: Example) -> Path:
    """One fresh virtual environment for the session's shell snippets (made on first use).

    uv makes it and puts in, from its cache, the third-party packages the snippets' installs
    need (the versions this environment has), hatchling and uv: the snippets' own
    `pip install ./packages/...` then only builds our four packages, without build isolation,
    in seconds. The packaging checks (`hatch run packaging:test`) build them isolated, from
    nothing, in fresh venvs.
    """
    if not _VENV:
        _SEED[:] = _seed()
        path = Path(tempfile.mkdtemp(prefix="venv-", dir=_basetemp(example)))
        uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
        python = str(path / "bin" / "python")
        _check([uv, "venv", "--quiet", "--seed", "--python", sys.executable, str(path)])
        _check([uv, "pip", "install", "--quiet", "--python", python, *_SEED])
        _VENV.append(path)
    return _VENV[0]


def _check(command: list[str]) -> None:
    subprocess.run(command, check=True, timeout=_TIMEOUT, stdin=subprocess.DEVNULL)


def _seed() -> list[str]:
    """The installed versions of what the packages (and the snippets' commands) pull in."""
    from importlib.metadata import version

    names = ["hatchling", "uv", "anyio", "httpx", "uvicorn", "pendulum", "pytest", "filelock"]
    names += ["trio", "pydantic-settings"]
    return [f"{name}=={version(name)}" for name in names]


def _target_file(example: Example, source: str) -> str | None:
    """The file a block stands for: its first-line comment, or the title of its tab."""
    first = source.lstrip("\n").split("\n", 1)[0]
    match = _FILE_COMMENT.fullmatch(first.strip())
    if match:
        return match["path"]
    before = example.document.text[: example.start].rstrip("\n").rsplit("\n", 2)
    for line in reversed(before[-2:]):
        tab = _TAB_TITLE.match(line)
        if tab and re.fullmatch(r"[\w./-]+\.(py|ini|toml|cfg)", tab["title"]):
            return tab["title"]
    return None


def _env(state: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    # The page's own HOME, but the machine's download caches (pip, uv), as a visitor has them.
    env.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    env["HOME"] = str(state["home"])
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _write(state: dict[str, Any], name: str, source: str) -> None:
    path = Path(state["cwd"]) / name
    if Path(state["cwd"]) == ROOT:
        raise AssertionError(f"a snippet would write {name} into the clone: cd somewhere first")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    # A package folder needs its __init__.py (the pages say it is empty).
    for parent in path.relative_to(state["cwd"]).parents:
        if str(parent) != "." and path.suffix == ".py" and not parent.name.startswith("test"):
            (Path(state["cwd"]) / parent / "__init__.py").touch()


def _pytest(state: dict[str, Any], name: str) -> str | None:
    """Run one test file of the page with pytest, as its reader would: it must pass."""
    env = _env(state)
    # The fixtures page's shop example uses the cross-package tests' small shop application.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_APPS), env.get("PYTHONPATH")]))
    result = _run(
        [sys.executable, "-m", "pytest", name, "-p", "no:cacheprovider", "-p", "no:randomly"],
        Path(state["cwd"]),
        env,
    )
    if result.returncode != 0 or " passed" not in result.stdout:
        output = f"{result.stdout}\n{result.stderr}"
        return f"pytest on {name} failed (exit {result.returncode}):\n{output}"
    return None


def evaluate_python(example: Example) -> str | None:
    state = _state(example)
    source = textwrap.dedent(example.parsed)
    name = _target_file(example, source)
    if name is not None:
        _write(state, name, source)
        if Path(name).name.startswith("test_") and name.endswith(".py"):
            return _pytest(state, name)  # a test file the page shows: it must pass
        return None
    if _TEST_DEF.search(source):
        name = f"test_snippet_line{example.line}.py"
        _write(state, name, source)
        try:
            return _pytest(state, name)
        finally:
            (Path(state["cwd"]) / name).unlink()
    cwd = os.getcwd()
    os.chdir(state["cwd"])
    sys.path.insert(0, str(state["cwd"]))
    try:
        return PythonEvaluator()(example)
    finally:
        sys.path.remove(str(state["cwd"]))
        os.chdir(cwd)


def evaluate_ini(example: Example) -> str | None:
    state = _state(example)
    source = textwrap.dedent(example.parsed)
    _write(state, _target_file(example, source) or "pytest.ini", source)
    return None


def evaluate_bash(example: Example) -> str | None:
    state = _state(example)
    before = example.document.text[: example.start].rstrip("\n").rsplit("\n", 3)[-3:]
    in_clone = any(_CWD_DIRECTIVE.search(line) for line in before)
    start = ROOT if in_clone else Path(state["cwd"])
    env = _env(state)
    venv_path = _venv(example)
    env["PATH"] = f"{venv_path / 'bin'}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv_path)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_BUILD_ISOLATION"] = "0"  # pip reads this as --no-build-isolation (see _venv)
    marker = Path(state["home"]) / ".snippet-cwd"
    script = f"{textwrap.dedent(example.parsed)}\npwd > {marker}\n"
    result = _run(["bash", "-eu", "-c", script], start, env)
    if result.returncode != 0:
        output = f"{result.stdout}\n{result.stderr}"
        return f"the shell snippet failed (exit {result.returncode}):\n{output}"
    ended_in = Path(marker.read_text().strip())
    if ended_in != start:
        state["cwd"] = ended_in  # it cd-ed somewhere: the page's next blocks go on from there
    return None


def _teardown(namespace: dict[str, Any]) -> None:
    """Forget what the page's snippets made: modules, settings registries, files."""
    state = namespace.pop("__snippets__", None)
    if state is None:
        return
    for registry in settings_override.open_registries():
        if id(registry) not in state["registries"]:
            registry.close()
    for name in set(sys.modules) - state["modules"]:
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(state["home"])):
            del sys.modules[name]
    shutil.rmtree(state["home"], ignore_errors=True)


class _ClearNamespace(ClearNamespaceParser):
    """`<!-- clear-namespace -->`: the page moves on to another project, in a fresh folder."""

    def __call__(self, document: Document) -> Iterable[Region]:
        for region in super().__call__(document):
            region.evaluator = self._clear
            yield region

    @staticmethod
    def _clear(example: Example) -> None:
        _teardown(example.namespace)
        factory = example.namespace["tmp_path_factory"]
        example.namespace.clear()
        example.namespace["tmp_path_factory"] = factory


pytest_collect_file = Sybil(
    parsers=[
        CodeBlockParser("python", evaluate_python),
        CodeBlockParser("ini", evaluate_ini),
        CodeBlockParser("bash", evaluate_bash),
        SkipParser(),
        _ClearNamespace(),
    ],
    path=str(ROOT),
    patterns=["docs/*.md", "README.md", "packages/*/README.md"],
    teardown=_teardown,
    fixtures=["tmp_path_factory"],
).pytest()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """Remove the shell snippets' virtual environment: a run leaves nothing behind."""
    for path in _VENV:
        shutil.rmtree(path, onerror=_report_leftover)
    _VENV.clear()


def _report_leftover(function: Any, path: str, excinfo: Any) -> None:
    print(f"snippet tests: could not remove {path}: {excinfo[1]}", file=sys.stderr)
