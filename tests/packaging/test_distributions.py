"""What each package's wheel and sdist hold, straight from the freshly built archives."""

from __future__ import annotations

import email.parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("settings-override", "fake-sleep", "server-launcher", "pytest-bundle")

pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(600)]


def metadata(built):
    """The wheel's METADATA, parsed (a multi-valued header mapping)."""
    dist_info = f"{built.import_name}-{built.version}.dist-info"
    return email.parser.Parser().parsestr(built.wheel_text(f"{dist_info}/METADATA"))


@pytest.mark.parametrize("name", PACKAGES)
def test_file_names_carry_the_declared_version(built, name):
    dist = built[name]
    assert dist.wheel.name == f"{dist.import_name}-{dist.version}-py3-none-any.whl"
    assert dist.sdist.name == f"{dist.import_name}-{dist.version}.tar.gz"


@pytest.mark.parametrize("name", PACKAGES)
def test_wheel_holds_the_typed_package_and_its_licence_only(built, name):
    dist = built[name]
    names = dist.wheel_names()
    dist_info = f"{dist.import_name}-{dist.version}.dist-info"
    assert f"{dist.import_name}/__init__.py" in names
    assert f"{dist.import_name}/py.typed" in names
    assert f"{dist_info}/licenses/LICENSE" in names
    top_levels = {entry.split("/")[0] for entry in names}
    assert top_levels == {dist.import_name, dist_info}, "only the package and its metadata"


@pytest.mark.parametrize("name", PACKAGES)
def test_wheel_metadata(built, name):
    dist = built[name]
    meta = metadata(dist)
    assert meta["Name"] == name
    assert meta["Version"] == dist.version
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["License-Expression"] == "MIT"
    assert meta["Description-Content-Type"] == "text/markdown"
    readme = (REPO / "packages" / name / "README.md").read_text(encoding="utf-8")
    assert meta.get_payload().strip() == readme.strip(), "the README is the long description"
    assert "Typing :: Typed" in meta.get_all("Classifier", [])


def test_siblings_depend_on_no_sibling(built):
    siblings = set(PACKAGES) - {"pytest-bundle"}
    for name in siblings:
        requires = " ".join(metadata(built[name]).get_all("Requires-Dist", []))
        assert not [other for other in PACKAGES if other in requires], (name, requires)


def test_bundle_pins_every_sibling_to_a_compatible_range(built):
    requires = metadata(built["pytest-bundle"]).get_all("Requires-Dist", [])
    for name in ("settings-override", "fake-sleep", "server-launcher"):
        major, minor, _ = built[name].version.split(".", 2)
        (line,) = [req for req in requires if req.startswith(name)]
        assert f">={major}.{minor}" in line, line
        assert f"<{major}.{int(minor) + 1}" in line, line


def test_bundle_registers_its_plugin_through_the_pytest11_entry_point(built):
    dist = built["pytest-bundle"]
    entry_points = dist.wheel_text(f"{dist.import_name}-{dist.version}.dist-info/entry_points.txt")
    section = entry_points.split("[pytest11]", 1)[1].split("\n[", 1)[0]
    assert "pytest_bundle = pytest_bundle.plugin" in section


@pytest.mark.parametrize("name", PACKAGES)
def test_sdist_holds_readme_changelog_licence_types_and_tests(built, name):
    dist = built[name]
    names = set(dist.sdist_names())
    for required in ("README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", "PKG-INFO"):
        assert required in names, f"{required} missing from {dist.sdist.name}"
    assert f"src/{dist.import_name}/__init__.py" in names
    assert f"src/{dist.import_name}/py.typed" in names
    tests = [entry for entry in names if entry.startswith("tests/") and entry.endswith(".py")]
    assert any(entry.rpartition("/")[2].startswith("test_") for entry in tests), (
        f"{dist.sdist.name} ships no tests: {sorted(names)}"
    )
    assert "keepachangelog.com" in dist.sdist_text("CHANGELOG.md")
