"""Coverage of the server's own lines: measured with coverage's ``patch = ["subprocess"]`` alone.

uvicorn re-raises SIGTERM after its graceful shutdown, which used to end the server without its
atexit handlers, so coverage never saved the server's data unless ``sigterm = true`` was set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="the launcher is POSIX only"),
]

APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"].endswith("/only-in-the-server"):
        body = b'"ran in the server"'  # ONLY-IN-THE-SERVER
    else:
        body = b"true"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""

# The configuration the docs give: coverage's own subprocess patch, and nothing else.
COVERAGERC = "[run]\npatch = subprocess\nsource = .\nomit = test_*\n"

PLAIN_TEST = """
import urllib.request
from server_launcher import launch_server

def test_served():
    with launch_server("covapp:app", factory=False) as server:
        with urllib.request.urlopen(server.url + "/only-in-the-server") as answer:
            assert answer.read() == b'"ran in the server"'
"""

BUNDLE_TEST = """
import urllib.request

def test_served(hosted_api_server):
    with urllib.request.urlopen(hosted_api_server + "/only-in-the-server") as answer:
        assert answer.read() == b'"ran in the server"'
"""

BUNDLE_INI = """[pytest]
hosted_api_app = covapp:app
hosted_api_factory = false
hosted_api_prefix =
"""


def _clean_env() -> dict[str, str]:
    """Our own environment without any coverage run of the outer test session."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE_", "COV_CORE"))}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _server_line_covered(project: Path) -> bool:
    """Whether the line only the server runs is reported as executed."""
    report = _run(["-m", "coverage", "json", "-o", "cov.json"], project)
    assert report.returncode == 0, report.stdout + report.stderr
    files = json.loads((project / "cov.json").read_text())["files"]
    source = (project / "covapp.py").read_text().splitlines()
    line = next(n for n, text in enumerate(source, 1) if "ONLY-IN-THE-SERVER" in text)
    return line in files["covapp.py"]["executed_lines"]


def test_coverage_run_measures_a_line_only_the_server_runs(pytester: pytest.Pytester) -> None:
    project = pytester.path
    (project / "covapp.py").write_text(APP)
    (project / ".coveragerc").write_text(COVERAGERC)
    (project / "test_plain.py").write_text(PLAIN_TEST)
    run = _run(["-m", "coverage", "run", "-m", "pytest", "-p", "no:cacheprovider"], project)
    assert run.returncode == 0, run.stdout + run.stderr
    combined = _run(["-m", "coverage", "combine"], project)
    assert combined.returncode == 0, combined.stdout + combined.stderr
    assert _server_line_covered(project)


def test_pytest_cov_measures_the_bundles_server(pytester: pytest.Pytester) -> None:
    project = pytester.path
    (project / "covapp.py").write_text(APP)
    (project / ".coveragerc").write_text(COVERAGERC)
    (project / "pytest.ini").write_text(BUNDLE_INI)
    (project / "test_bundle.py").write_text(BUNDLE_TEST)
    run = _run(
        ["-m", "pytest", "-p", "no:cacheprovider", "--cov", "--cov-report=term-missing"], project
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "covapp.py" in run.stdout
    assert _server_line_covered(project)
