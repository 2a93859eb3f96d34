"""Check a release tag against the package it names; print the package and version.

The release workflow runs this on a tag ``<package>-v<version>``: the package must be one of
the four, and ``version`` must equal the static version in ``packages/<package>/pyproject.toml``.
Anything else exits 1 with a message saying what to fix, before anything is built.
When ``GITHUB_OUTPUT`` is set, ``package=`` and ``version=`` lines are appended to it.

Usage: python .github/scripts/release_tag.py <tag> [--root <repository root>]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli is the same parser (pytest brings it there)
    import tomli as tomllib  # type: ignore[no-redef]

PACKAGES = ("settings-override", "fake-sleep", "server-launcher", "pytest-bundle")
TAG = re.compile(r"^(?P<package>[a-z][a-z-]*[a-z])-v(?P<version>[0-9][0-9A-Za-z.+!-]*)$")


def check(tag: str, root: Path) -> tuple[str, str]:
    """Return ``(package, version)`` for a valid tag, or raise ``SystemExit`` saying why not."""
    match = TAG.match(tag)
    if match is None or match["package"] not in PACKAGES:
        expected = ", ".join(f"{name}-v<version>" for name in PACKAGES)
        raise SystemExit(f"release tag {tag!r} names no package; expected one of: {expected}")
    package, version = match["package"], match["version"]
    pyproject = f"packages/{package}/pyproject.toml"
    project = tomllib.loads((root / pyproject).read_text(encoding="utf-8"))["project"]
    declared = project.get("version")
    if declared is None:
        raise SystemExit(f"{pyproject} has no static [project] version; set one (e.g. 0.1.0)")
    if declared != version:
        raise SystemExit(
            f"release tag {tag!r} says {package} {version}, but {pyproject} declares version "
            f"{declared!r}; bump the version in pyproject.toml (and CHANGELOG.md) and tag that "
            f"commit, or tag {package}-v{declared}"
        )
    return package, version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser.parse_args(argv)
    package, version = check(args.tag, args.root)
    print(f"package={package}\nversion={version}")
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as stream:
            stream.write(f"package={package}\nversion={version}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
