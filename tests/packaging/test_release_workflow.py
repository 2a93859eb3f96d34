"""The release workflow's tag check, and the rules both workflow files follow.

These are quick (no build, no install), so they run in `hatch test` too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".github" / "scripts" / "release_tag.py"
WORKFLOWS = ROOT / ".github" / "workflows"
PACKAGES = ("settings-override", "fake-sleep", "server-launcher", "pytest-bundle")


def release_tag(*args: str | Path, github_output: Path | None = None):
    """Run the release job's check as the workflow does; never touch a real GITHUB_OUTPUT."""
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_OUTPUT"}
    if github_output is not None:
        env["GITHUB_OUTPUT"] = str(github_output)
    return subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def declared_version(name: str) -> str:
    text = (ROOT / "packages" / name / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    assert found is not None
    return found.group(1)


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A repository with one package, fake-sleep, at version 1.2.3."""
    package = tmp_path / "packages" / "fake-sleep"
    package.mkdir(parents=True)
    (package / "pyproject.toml").write_text(
        '[project]\nname = "fake-sleep"\nversion = "1.2.3"\n\n[tool.x]\nversion = "9"\n',
        encoding="utf-8",
    )
    return tmp_path


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_can_be_released_at_its_declared_version(name, tmp_path):
    version = declared_version(name)
    output = tmp_path / "github_output"
    result = release_tag(f"{name}-v{version}", github_output=output)
    assert result.returncode == 0, result.stderr
    assert output.read_text(encoding="utf-8") == f"package={name}\nversion={version}\n"


def test_a_tag_whose_version_differs_from_pyproject_is_refused(fake_root):
    result = release_tag("fake-sleep-v1.2.4", "--root", fake_root)
    assert result.returncode == 1
    assert "packages/fake-sleep/pyproject.toml declares version '1.2.3'" in result.stderr
    assert "tag fake-sleep-v1.2.3" in result.stderr


@pytest.mark.parametrize("tag", ["fake-sleep-1.2.3", "fake_sleep-v1.2.3", "other-v1.2.3", "v1.2.3"])
def test_a_tag_naming_no_package_is_refused(fake_root, tag):
    result = release_tag(tag, "--root", fake_root)
    assert result.returncode == 1
    assert "names no package" in result.stderr
    assert "fake-sleep-v<version>" in result.stderr


def test_the_project_version_is_read_not_another_tables(fake_root):
    assert release_tag("fake-sleep-v1.2.3", "--root", fake_root).returncode == 0
    assert release_tag("fake-sleep-v9", "--root", fake_root).returncode == 1


def test_release_workflow_triggers_on_each_packages_tag():
    text = (WORKFLOWS / "release.yml").read_text(encoding="utf-8")
    patterns = re.findall(r'^\s+- "([a-z-]+)-v\*"$', text, re.MULTILINE)
    assert sorted(patterns) == sorted(PACKAGES)


@pytest.mark.parametrize("workflow", ["ci.yml", "release.yml"])
def test_every_action_is_pinned_by_commit_with_its_version_named(workflow):
    text = (WORKFLOWS / workflow).read_text(encoding="utf-8")
    uses = re.findall(r"^\s*(?:- )?uses: (.+)$", text, re.MULTILINE)
    assert uses
    for line in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*", line), line


@pytest.mark.parametrize("workflow", ["ci.yml", "release.yml"])
def test_workflows_grant_nothing_by_default_and_keep_no_credentials(workflow):
    text = (WORKFLOWS / workflow).read_text(encoding="utf-8")
    assert re.search(r"^permissions: \{\}$", text, re.MULTILINE)
    checkouts = text.count("uses: actions/checkout@")
    assert text.count("persist-credentials: false") == checkouts
