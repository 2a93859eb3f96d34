"""hatch's custom environment collector: a missing Python is named in one line, not downloaded.

``hatch test --all`` runs the test matrix on Python 3.10 to 3.13. Where one of them is not
installed, hatch would try to download it (and, offline, fail with a long traceback). This
collector looks for each matrix Python before hatch does; a missing one gets one line on stderr
saying which and how to get it, and its environment is marked incompatible, so ``--all`` skips
it and runs the others.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from typing import Any

from hatch.env.collectors.plugin.interface import EnvironmentCollectorInterface

_TEST_MATRIX = "hatch-test.py"
_MISSING = "python-not-installed"


def _python_runs(version: str) -> bool:
    """Whether ``pythonX.Y`` is on PATH and really starts (a pyenv shim may not resolve)."""
    executable = shutil.which(f"python{version}")
    if executable is None:
        return False
    try:
        done = subprocess.run(
            [executable, "-I", "-S", "-c", ""], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


class MissingPythonCollector(EnvironmentCollectorInterface):
    """Marks test environments whose Python is not installed as incompatible, with a hint."""

    def finalize_environments(self, config: dict[str, dict[str, Any]]) -> None:
        for name, env in config.items():
            version = str(env.get("python", ""))
            if not name.startswith(_TEST_MATRIX) or not version or _python_runs(version):
                continue
            env["platforms"] = [_MISSING]
            print(
                f"hatch: Python {version} is not installed, so {name} is skipped; install it "
                f"(`pyenv install {version}`: .python-version lists it) or run one version "
                "with `hatch test -py 3.11`",
                file=sys.stderr,
            )
