"""The README's two commands for a clone are exactly what CI and the docs run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quick_start_commands(markdown: str) -> list[str]:
    section = markdown.split("## From a clone", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_has_two_commands_that_ci_and_docs_use_verbatim() -> None:
    commands = _quick_start_commands((ROOT / "README.md").read_text())
    assert commands == [
        "python -m pip install hatch && hatch run demo",
        "python -m pip install hatch && hatch test --all --parallel",
    ]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    docs = (ROOT / "docs" / "index.md").read_text()
    for command in commands:
        assert command in ci_lines, f"{command!r} is not a line of .ci/run"
        assert command in docs, f"{command!r} is not in docs/index.md"
