"""Build every package once, and make fresh virtual environments, for the packaging checks.

These tests build sdists and wheels and install them into new venvs, which takes a while and
needs the package index; `hatch run packaging:test` runs them (it sets FIXTURES_PACKAGING=1).
Everywhere else (`hatch test`, a bare `pytest`) they are collected and skipped.

Only the standard library and pytest are imported here: the `packaging` hatch environment
holds pytest, pytest-timeout and uv, not the packages themselves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "settings-override": "settings_override",
    "fake-sleep": "fake_sleep",
    "server-launcher": "server_launcher",
    "pytest-bundle": "pytest_bundle",
}
ENABLE_VARIABLE = "FIXTURES_PACKAGING"
COMMAND_TIMEOUT = 240.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the packaging tests unless they were asked for explicitly."""
    if os.environ.get(ENABLE_VARIABLE) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"packaging checks build and install wheels: run `hatch run packaging:test` "
        f"(or set {ENABLE_VARIABLE}=1)"
    )
    for item in items:
        if item.get_closest_marker("packaging") is not None:
            item.add_marker(skip)


def normalize(name: str) -> str:
    """PEP 503 name normalisation: `Fake_Sleep` and `fake-sleep` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_version(package_dir: Path) -> str:
    """The static `version = "..."` of a package's `[project]` table (no tomllib on 3.10)."""
    text = (package_dir / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^version\s*=\s*"([^"]+)"', project, re.MULTILINE)
    assert found is not None, f"{package_dir}/pyproject.toml has no static [project] version"
    return found.group(1)


def run(args: list[str | Path], *, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; never inherit an activated venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Fail the test with the command's output when it did not succeed."""
    if result.returncode != 0:
        pytest.fail(
            f"command failed with exit code {result.returncode}: {' '.join(result.args)}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}",
            pytrace=False,
        )
    return result


@pytest.fixture(scope="session")
def uv() -> str:
    """The uv executable (a dependency of the packaging environment)."""
    try:
        from uv import find_uv_bin  # the `uv` distribution's helper

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            pytest.fail("uv is needed to build and install: `python -m pip install uv`")
        return found


@dataclass(frozen=True)
class Built:
    """One package's freshly built distributions."""

    name: str
    import_name: str
    version: str
    wheel: Path
    sdist: Path

    def wheel_names(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.namelist()

    def wheel_text(self, member: str) -> str:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.read(member).decode("utf-8")

    def sdist_names(self) -> list[str]:
        """Member paths relative to the sdist's top folder (`name-version/`)."""
        with tarfile.open(self.sdist) as archive:
            return [member.name.partition("/")[2] for member in archive.getmembers()]

    def sdist_text(self, member: str) -> str:
        """One file of the sdist, by its path relative to the top folder."""
        with tarfile.open(self.sdist) as archive:
            top = archive.getmembers()[0].name.partition("/")[0]
            extracted = archive.extractfile(f"{top}/{member}")
            assert extracted is not None, f"{member} is not a file in {self.sdist.name}"
            return extracted.read().decode("utf-8")


def build_package(uv: str, source: Path, out_dir: Path, *, wheel_only: bool = False) -> None:
    """`uv build`: the sdist, then the wheel built from that sdist (or just a wheel)."""
    args: list[str | Path] = [uv, "build", "--out-dir", out_dir, source]
    if wheel_only:
        args.insert(2, "--wheel")
    check(run(args))


@pytest.fixture(scope="session")
def dist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's builds go: one folder per package, plus `wheelhouse/`."""
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="session")
def built(uv: str, dist_root: Path) -> dict[str, Built]:
    """Every package built once per session, in parallel; wheels also land in one wheelhouse."""
    root = dist_root
    with ThreadPoolExecutor(max_workers=len(PACKAGES)) as pool:
        futures = [
            pool.submit(build_package, uv, ROOT / "packages" / name, root / name)
            for name in PACKAGES
        ]
        for future in futures:
            future.result()
    wheelhouse = root / "wheelhouse"
    wheelhouse.mkdir()
    result = {}
    for name, import_name in PACKAGES.items():
        version = declared_version(ROOT / "packages" / name)
        wheels = sorted((root / name).glob("*.whl"))
        sdists = sorted((root / name).glob("*.tar.gz"))
        assert len(wheels) == 1, f"{name}: built {wheels}"
        assert len(sdists) == 1, f"{name}: built {sdists}"
        shutil.copy2(wheels[0], wheelhouse)
        result[name] = Built(name, import_name, version, wheels[0], sdists[0])
    return result


@pytest.fixture(scope="session")
def wheelhouse(built: dict[str, Built], dist_root: Path) -> Path:
    """A folder holding the four freshly built wheels (for `--find-links`)."""
    return dist_root / "wheelhouse"


@dataclass
class Venv:
    """A fresh virtual environment made by uv, with no pip or setuptools in it."""

    uv: str
    path: Path
    python: Path = field(init=False)

    def __post_init__(self) -> None:
        scripts = "Scripts" if sys.platform == "win32" else "bin"
        suffix = ".exe" if sys.platform == "win32" else ""
        self.python = self.path / scripts / f"python{suffix}"

    def install(self, *requirements: str | Path, find_links: Path | None = None) -> None:
        args: list[str | Path] = [self.uv, "pip", "install", "--python", self.python]
        if find_links is not None:
            args += ["--find-links", find_links]
        check(run([*args, *requirements]))

    def resolve(
        self, *requirements: str | Path, find_links: Path
    ) -> subprocess.CompletedProcess[str]:
        """`uv pip install --dry-run` into this venv: resolve without changing anything."""
        args: list[str | Path] = [self.uv, "pip", "install", "--dry-run", "--python", self.python]
        return run([*args, "--find-links", find_links, *requirements])

    def python_run(self, *args: str | Path, cwd: Path | None = None) -> str:
        return check(run([self.python, *args], cwd=cwd)).stdout

    def distributions(self) -> dict[str, str]:
        """Installed distributions: normalised name -> version."""
        code = (
            "import importlib.metadata as m, json; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
        )
        found = json.loads(self.python_run("-c", code))
        return {normalize(name): version for name, version in found.items()}


@pytest.fixture(scope="session")
def make_venv(uv: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Venv]:
    """Make an empty venv on the running Python: `make_venv("fake-sleep-alone")`."""

    def make(label: str) -> Venv:
        path = tmp_path_factory.mktemp(f"venv-{label}")
        check(run([uv, "venv", "--quiet", "--python", sys.executable, path]))
        return Venv(uv, path)

    return make


@pytest.fixture(scope="session")
def bundle_venv(
    built: dict[str, Built], wheelhouse: Path, make_venv: Callable[[str], Venv]
) -> Venv:
    """The pytest-bundle wheel installed alone: its siblings come from the built wheels (the
    wheelhouse), pinned to the versions just built, and third-party packages from the index."""
    venv = make_venv("bundle")
    siblings = [f"{b.name}=={b.version}" for b in built.values() if b.name != "pytest-bundle"]
    venv.install(built["pytest-bundle"].wheel, *siblings, find_links=wheelhouse)
    return venv


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (where `packages/` lives)."""
    return ROOT


@pytest.fixture(scope="session")
def build_wheel(uv: str) -> Callable[[Path, Path], Path]:
    """Build a project folder's wheel into a folder; return the wheel's path."""

    def build(source: Path, out_dir: Path) -> Path:
        build_package(uv, source, out_dir, wheel_only=True)
        (wheel,) = out_dir.glob("*.whl")
        return wheel

    return build
