"""mkdocs hooks (`hooks:` in mkdocs.yml): what no plugin option does. Not part of the site.

- The footer names each package's version, read from its ``pyproject.toml`` at build time, so
  the site always says which release it documents.
- The changelog page is built from the four packages' ``CHANGELOG.md`` files (their own
  headings one level down, under one heading per package), so it can never fall behind them.
- The pytest-bundle page's reference of ini options is built from the plugin's own option table
  (``pytest_bundle._config.OPTIONS``) and marker help, so every option is listed with its type,
  default and command-line twin, and a new option cannot be left out.
- ``objects.inv`` lists public paths only.
- ``404.html`` works under any sub-path without ``site_url`` (which waits for a public URL):
  mkdocs writes its links from the server root (``/assets/...``), which break when the site is
  served from ``/<project>/``. Its links become relative, and a small script finds the site's
  root (the longest prefix of the missing page's path that has ``sitemap.xml``) and sets it
  as the page's ``<base>`` before anything loads. mkdocstrings also records the private module each
  object is defined in (``settings_override._registry.SettingsRegistry``) as a second name for
  the same anchor; those entries are dropped, so another project's cross-references resolve to
  the paths users import.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("settings-override", "fake-sleep", "server-launcher", "pytest-bundle")
_VERSION = re.compile(r'^version\s*=\s*"([^"]+)"', re.M)


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def on_config(config: Any, **kwargs: Any) -> Any:
    versions = []
    for package in _PACKAGES:
        match = _VERSION.search((_ROOT / "packages" / package / "pyproject.toml").read_text())
        versions.append(f"{package} {match[1] if match else '?'}")
    config["copyright"] = "Documents " + ", ".join(versions) + ". MIT licensed."
    return config


_KINDS = {
    "string": "text",
    "bool": "boolean (`true`/`false`, also `1/0`, `yes/no`, `on/off`)",
    "float": "seconds (a positive, finite number)",
    "optional-float": "seconds (a positive number), or empty for none",
    "grace": "real seconds (a number >= 0, `inf` to always wait), or empty: fake-sleep's default",
    "optional-jumps": "a whole number of jumps (>= 1, `inf` for none), or empty: fake-sleep's "
    "default",
    "optional-file": "a file path (relative to the rootdir), or empty for none",
    "positive-int": "a positive whole number",
    "paths": "dotted paths, one per line or comma-separated",
    "pairs": "`NAME=value` pairs, one per line (on the command line: repeat the option)",
}


def _ini_options() -> str:
    from pytest_bundle._config import OPTIONS

    parts = []
    for option in OPTIONS:
        flags = f"`{option.flag}`"
        if option.kind == "bool":
            flags += f" / `{option.negative_flag}`"
        default = f"`{option.default}`" if option.default else "none"
        if option.kind == "grace" and not option.default:
            default = "none: fake-sleep's `io_grace` (10 seconds)"
        elif option.name == "virtual_clock_end":
            default = "none: fake-sleep's ten virtual years"
        elif option.kind == "optional-jumps" and not option.default:
            default = "none: fake-sleep's `max_jumps` (a million)"
        parts.append(
            f"#### `{option.name}`\n\n{option.help}\n\n"
            f"- Type: {_KINDS[option.kind]}\n"  # a new kind fails the build until described
            f"- Default: {default}\n"
            f"- Command line: {flags} (wins over the ini key)\n"
        )
    return "\n".join(parts)


def _marker() -> str:
    from pytest_bundle._markers import MARKER_HELP

    name, _, rest = MARKER_HELP.partition(": ")
    return (
        f"#### `@pytest.mark.{name.split('(')[0]}`\n\n`@pytest.mark.{name}`: {rest}\n\n"
        "- On a test, a class, or a module (`pytestmark = pytest.mark.hosted_api_env(...)`).\n"
        "- Values are strings (or `None`); checked right after collection.\n"
        "- The guide: [Servers with other settings]"
        "(fixtures.md#servers-with-other-settings-pytestmarkhosted_api_env-and-hosted_api_server_factory).\n"
    )


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "pytest-bundle.md":
        markdown = markdown.replace("<!-- ini-options -->", _ini_options())
        return markdown.replace("<!-- marker -->", _marker())
    if page.file.src_uri != "changelog.md":
        return markdown
    parts = []
    for package in _PACKAGES:
        text = (_ROOT / "packages" / package / "CHANGELOG.md").read_text()
        # Drop the file's own title and introduction: everything before the first release.
        body = text[text.index("\n## ") + 1 :] if "\n## " in text else ""
        body = re.sub(r"^(#{2,5}) ", r"#\1 ", body, flags=re.M)
        parts.append(f"## {package}\n\n{body.strip()}\n")
    return markdown.replace("<!-- changelogs -->", "\n".join(parts))


_FIND_ROOT = """<script>(function () {
  var parts = location.pathname.split("/");
  for (var i = parts.length - 1; i >= 1; i--) {
    var root = parts.slice(0, i).join("/") + "/";
    try {
      var probe = new XMLHttpRequest();
      probe.open("HEAD", root + "sitemap.xml", false);
      probe.send();
      if (probe.status === 200) { document.write('<base href="' + root + '">'); return; }
    } catch (error) {}
  }
  document.write('<base href="/">');
})();</script>"""


def _relative_404(site_dir: Path) -> None:
    path = site_dir / "404.html"
    if not path.exists() or "<base " in path.read_text():
        return
    text = path.read_text()
    text = re.sub(r'(href|src)="/(?!/)', r'\1="', text)
    text = text.replace('"base": "/"', '"base": "."')
    text = text.replace("<head>", "<head>\n" + _FIND_ROOT, 1)
    path.write_text(text)


def on_post_build(config: Any, **kwargs: Any) -> None:
    if not config.get("site_url"):
        _relative_404(Path(config["site_dir"]))
    path = Path(config["site_dir"]) / "objects.inv"
    if not path.exists():
        return
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):  # four header lines, then the zlib-compressed body
        header_end = data.index(b"\n", header_end) + 1
    rows = zlib.decompress(data[header_end:]).decode().splitlines(keepends=True)
    kept = [row for row in rows if not _private(row.split(" ", 1)[0])]
    path.write_bytes(data[:header_end] + zlib.compress("".join(kept).encode(), 9))
