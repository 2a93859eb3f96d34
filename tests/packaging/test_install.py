"""Each wheel installed the way a user installs it: into a fresh venv, from the package index."""

from __future__ import annotations

import re
import shutil

import pytest

pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(600)]

SIBLINGS = ("settings-override", "fake-sleep", "server-launcher")
FIXTURES = ("hosted_api_server", "use_hosted_api_server", "mock_anyio_sleep", "virtual_clock")
HEAVY = ("httpx", "uvicorn", "anyio", "pendulum")

# What installing one piece alone must never bring in: the other pieces, the test runner, and
# the optional extras' dependencies.
NEVER_PULLED = {
    "fake-sleep": {
        "httpx", "uvicorn", "pendulum", "trio", "pytest",
        "settings-override", "server-launcher", "pytest-bundle",
    },
    "server-launcher": {
        "pendulum", "pytest", "trio", "pydantic-settings",
        "settings-override", "fake-sleep", "pytest-bundle",
    },
}  # fmt: skip


def test_settings_override_installs_alone_and_pulls_nothing(built, make_venv):
    venv = make_venv("settings-override")
    dist = built["settings-override"]
    venv.install(dist.wheel)
    assert venv.distributions() == {"settings-override": dist.version}
    venv.python_run("-c", "import settings_override")


@pytest.mark.parametrize("name", ["fake-sleep", "server-launcher"])
def test_piece_installs_alone_with_its_own_dependencies_only(built, make_venv, name):
    venv = make_venv(name)
    dist = built[name]
    venv.install(dist.wheel)
    installed = venv.distributions()
    assert installed[name] == dist.version
    assert "anyio" in installed, "its declared dependency came from the index"
    unexpected = NEVER_PULLED[name] & set(installed)
    assert not unexpected, f"installing {name} alone pulled {sorted(unexpected)}"
    venv.python_run("-c", f"import {dist.import_name}")
    if name == "server-launcher":
        # The embedded demo app (the bundle's default) runs on server-launcher's deps alone.
        venv.python_run("-c", "import server_launcher.demo")


def test_bundle_installs_with_its_siblings_and_imports(built, bundle_venv):
    installed = bundle_venv.distributions()
    for name in (*SIBLINGS, "pytest-bundle"):
        assert installed[name] == built[name].version
    assert {"pytest", "pendulum", "anyio", "httpx", "uvicorn"} <= set(installed)
    bundle_venv.python_run("-c", "import pytest_bundle.plugin")


def test_bundle_fixtures_exist_with_no_conftest(bundle_venv, pytester):
    assert not list(pytester.path.iterdir()), "an empty folder: no conftest, no ini file"
    result = pytester.run(
        bundle_venv.python, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider"
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    lines = result.outlines
    for fixture in FIXTURES:
        pattern = re.compile(rf"^{fixture}( \[\w+ scope\])? -- .*pytest_bundle")
        found = [index for index, line in enumerate(lines) if pattern.match(line)]
        assert found, f"{fixture} is not listed by `pytest --fixtures`:\n{result.stdout.str()}"
        docstring = lines[found[0] + 1].strip()
        assert docstring, f"{fixture} is undocumented"
        assert docstring != "no docstring available", f"{fixture} is undocumented"


LIGHT_SESSION = f"""
import sys

def test_nothing_heavy_is_loaded():
    assert "pytest_bundle.plugin" in sys.modules, "the plugin was not loaded"
    loaded = sorted(name for name in sys.modules if name.partition(".")[0] in {HEAVY!r})
    assert loaded == [], "the plugin imported " + ", ".join(loaded)
"""


def test_loading_the_plugin_imports_nothing_heavy(bundle_venv, pytester):
    """A session that uses none of the fixtures, in the fresh venv, through the entry point."""
    pytester.makepyfile(test_light=LIGHT_SESSION)
    # anyio ships its own pytest plugin, which imports anyio: switch it off to see ours alone.
    result = pytester.run(
        bundle_venv.python, "-m", "pytest", "-p", "no:anyio", "-p", "no:cacheprovider", "-v"
    )
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*test_nothing_heavy_is_loaded PASSED*"])


@pytest.fixture(scope="module")
def empty_venv(make_venv):
    """A venv with nothing installed: the resolver sees only what the request brings."""
    return make_venv("resolve")


@pytest.fixture(scope="module")
def out_of_range_links(built, repo_root, build_wheel, tmp_path_factory):
    """A find-links folder where settings-override exists only at 0.2.0 (outside
    pytest-bundle's range), next to the in-range fake-sleep and server-launcher wheels."""
    source = tmp_path_factory.mktemp("settings-override-0.2.0") / "settings-override"
    shutil.copytree(
        repo_root / "packages" / "settings-override",
        source,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"),
    )
    pyproject = source / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    bumped = text.replace(
        f'version = "{built["settings-override"].version}"', 'version = "0.2.0"', 1
    )
    assert bumped != text, "could not find the static version line"
    pyproject.write_text(bumped, encoding="utf-8")
    links = tmp_path_factory.mktemp("links")
    wheel = build_wheel(source, links)
    assert wheel.name == "settings_override-0.2.0-py3-none-any.whl"
    for name in ("fake-sleep", "server-launcher"):
        shutil.copy2(built[name].wheel, links)
    return links


@pytest.mark.parametrize(
    "request_",
    ["settings-override", "settings-override==0.2.0"],
    ids=["whatever-is-there", "pinned-by-the-user"],
)
def test_resolver_refuses_a_sibling_outside_the_bundles_range(
    built, empty_venv, out_of_range_links, request_
):
    bundle = built["pytest-bundle"].wheel
    result = empty_venv.resolve(bundle, request_, find_links=out_of_range_links)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the resolver accepted settings-override 0.2.0:\n{output}"
    message = " ".join(output.split())
    # uv explains: "pytest-bundle==0.1.0 depends on settings-override>=0.1,<0.2 ... your
    # requirements are unsatisfiable".
    assert "depends on settings-override>=" in message, message
    assert "unsatisfiable" in message, message


def test_resolver_accepts_the_in_range_siblings(built, empty_venv, wheelhouse):
    """The control for the refusal above: the same request with 0.1.x siblings resolves."""
    bundle = built["pytest-bundle"].wheel
    result = empty_venv.resolve(bundle, "settings-override", find_links=wheelhouse)
    assert result.returncode == 0, result.stdout + result.stderr
