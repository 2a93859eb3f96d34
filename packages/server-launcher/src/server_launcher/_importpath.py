"""Whether the server process can import the app from the same place the caller did.

The server is a fresh interpreter: its import path is its working directory, uvicorn's
``--app-dir``, ``PYTHONPATH`` and the site folders (with their ``.pth`` entries). Folders a
running program added to ``sys.path`` (pytest's rootdir, a conftest's ``sys.path.insert``) are
not on it. If the caller imported the app's package from such a folder, the server would not
find it there, and could silently import a same-named package from another tree (an editable
install of another project, say). That is refused before anything starts, with the fix.
"""

from __future__ import annotations

import functools
import os
import site
import sys
from collections.abc import Mapping, Sequence

__all__ = ["check_import_root"]


def _pth_entries(folder: str) -> list[str]:
    """The folders a site folder's ``.pth`` files add (``import`` lines are not followed)."""
    entries: list[str] = []
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(".pth"))
    except OSError:
        return entries
    for name in names:
        try:
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.strip()
            if line and not line.startswith(("#", "import ", "import\t")):
                entries.append(os.path.normpath(os.path.join(folder, line)))
    return entries


@functools.lru_cache(maxsize=1)
def _interpreter_folders() -> frozenset[str]:
    """The site folders, their ``.pth`` entries and the interpreter's own folders: the part of
    a fresh interpreter's path that does not depend on the launch (read once per process)."""
    site_folders = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE and hasattr(site, "getusersitepackages"):
        site_folders.append(site.getusersitepackages())
    folders: list[str] = []
    for folder in site_folders:
        folders += [folder, *_pth_entries(folder)]
    # The standard library, lib-dynload, a venv's own folders.
    prefixes = tuple(os.path.join(p, "") for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    folders += [entry for entry in sys.path if os.path.join(entry, "").startswith(prefixes)]
    return frozenset(os.path.normcase(os.path.abspath(folder)) for folder in folders)


def _child_path(cwd: str, app_dirs: Sequence[str], pythonpath: str | None) -> set[str]:
    """The folders on a fresh interpreter's import path, as far as they can be known here."""
    folders = [cwd, *app_dirs]
    folders += [entry for entry in (pythonpath or "").split(os.pathsep) if entry]
    own = {os.path.normcase(os.path.abspath(os.path.join(cwd, f))) for f in folders}
    return own | _interpreter_folders()


def _import_root(module_name: str) -> str | None:
    """The ``sys.path`` folder the caller imported ``module_name``'s top package from, or None
    (not imported, a namespace package, or found by an import hook rather than a folder)."""
    top = module_name.split(".")[0]
    module = sys.modules.get(top)
    location = getattr(module, "__file__", None)
    if not isinstance(location, str):
        return None
    location = os.path.abspath(location)
    if os.path.basename(location).startswith("__init__."):
        location = os.path.dirname(location)  # the package folder
    root = os.path.dirname(location)
    on_path = {os.path.normcase(os.path.abspath(entry or os.getcwd())) for entry in sys.path}
    return root if os.path.normcase(root) in on_path else None


def check_import_root(
    app: str, cwd: str, server_args: Sequence[str], env: Mapping[str, str | None]
) -> None:
    """Raise ``ValueError`` when the server could not import ``app`` from where the caller did."""
    module_name = app.partition(":")[0]
    root = _import_root(module_name)
    if root is None:
        return
    app_dirs = [
        arg.split("=", 1)[1] if "=" in arg else server_args[i + 1]
        for i, arg in enumerate(server_args)
        if arg.split("=", 1)[0] == "--app-dir" and ("=" in arg or i + 1 < len(server_args))
    ]
    pythonpath = env["PYTHONPATH"] if "PYTHONPATH" in env else os.environ.get("PYTHONPATH")
    if os.path.normcase(root) in _child_path(cwd, app_dirs, pythonpath):
        return
    top = module_name.split(".")[0]
    raise ValueError(
        f"app {app!r}: this process imported {top!r} from {root}, which is not on the server's "
        f"import path (its working directory is {cwd}), so the server could import another "
        f"{top!r} or none; pass cwd={root!r} (or add the folder to PYTHONPATH in env=)"
    )
