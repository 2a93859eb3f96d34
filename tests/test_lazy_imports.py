"""The plugin costs nothing in a session that uses none of its fixtures."""

from __future__ import annotations

import pytest

HEAVY = ("httpx", "uvicorn", "anyio", "pendulum", "server_launcher", "fake_sleep")

REPORT_MODULES = f"""
import sys

def test_plain():
    loaded = sorted(name for name in {HEAVY!r} if name in sys.modules)
    print("LOADED=" + ",".join(loaded))
"""


def test_plugin_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain=REPORT_MODULES)
    # anyio's own pytest plugin imports anyio; switch it off to see what *our* plugin imports.
    result = pytester.runpytest_subprocess("-p", "no:anyio", "-p", "no:randomly", "-s", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*pytest-bundle: hosted_api_app=*"])
    loaded = [line for line in result.outlines if "LOADED=" in line]
    assert loaded, result.stdout.str()
    assert loaded[0].split("LOADED=", 1)[1].strip() == ""
