"""cwd=: the server runs in that folder and imports the app from there first."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server_launcher import ServerStartError, launch_server

Get = Callable[..., tuple[int, bytes]]

_APP = """
from server_launcher.demo import create_app as _create


def create_app():
    inner = _create("/api")

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/tree":
            await send({{"type": "http.response.start", "status": 200, "headers": []}})
            await send({{"type": "http.response.body", "body": b"{tree}"}})
            return
        await inner(scope, receive, send)

    return app
"""


def _tree(root: Path, name: str) -> Path:
    """A project folder with its own ``cwd_probe_app`` module that says which tree it is."""
    folder = root / name
    folder.mkdir()
    (folder / "cwd_probe_app.py").write_text(_APP.format(tree=name))
    return folder


def test_the_app_is_imported_from_cwd_first(get: Get, tmp_path: Path) -> None:
    """Another tree that also has the module, on PYTHONPATH, does not win over cwd."""
    mine, other = _tree(tmp_path, "mine"), _tree(tmp_path, "other")
    with launch_server(
        "cwd_probe_app:create_app",
        cwd=mine,
        env={"PYTHONPATH": str(other)},
        health_path="/api/health",
    ) as server:
        assert get(server.url + "/tree") == (200, b"mine")


@pytest.mark.anyio
async def test_the_callers_working_directory_by_default(
    get: Get, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, other = _tree(tmp_path, "mine"), _tree(tmp_path, "other")
    monkeypatch.chdir(mine)
    launcher = launch_server(
        "cwd_probe_app:create_app", env={"PYTHONPATH": str(other)}, health_path="/api/health"
    )
    async with launcher as server:
        assert get(server.url + "/tree") == (200, b"mine")


def test_relative_paths_are_the_callers_not_cwds(
    get: Get, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cwd="mine"`` is relative to the caller, as every other path argument is."""
    _tree(tmp_path, "mine")
    monkeypatch.chdir(tmp_path)
    with launch_server("cwd_probe_app:create_app", cwd="mine", health_path="/api/health") as s:
        assert get(s.url + "/tree") == (200, b"mine")


def test_an_app_missing_from_cwd_names_the_folder_it_looked_in(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ServerStartError) as info:
        with launch_server("cwd_probe_app:create_app", cwd=empty):
            pytest.fail("must not start")
    message = str(info.value)
    assert f"it imported from the working directory {str(empty)!r} first" in message
    assert 'Could not import module "cwd_probe_app"' in message


@pytest.mark.parametrize(
    ("cwd", "error", "match"),
    [
        ("/no/such/folder", ValueError, "must be an existing folder"),
        (__file__, ValueError, "must be an existing folder"),
        (42, TypeError, "must be a path"),
    ],
)
def test_a_bad_cwd_is_refused_up_front(cwd: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        launch_server(cwd=cwd)  # type: ignore[arg-type]


@pytest.fixture
def imported_from_a(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process imports ``cwd_probe_app`` from tree ``a`` (a folder it put on sys.path, as
    pytest does with a rootdir); tree ``c`` has a module of the same name. Runs elsewhere."""
    a, _ = _tree(tmp_path, "a"), _tree(tmp_path, "c")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.syspath_prepend(str(a))
    monkeypatch.chdir(elsewhere)
    import cwd_probe_app  # noqa: F401

    yield a
    sys.modules.pop("cwd_probe_app", None)


def test_an_app_the_server_would_import_from_another_tree_is_refused(
    imported_from_a: Path, tmp_path: Path, resources: Callable[[], dict[str, int]]
) -> None:
    """The server would not see tree ``a`` and would silently serve tree ``c``'s module."""
    before = resources()
    with pytest.raises(ValueError, match="this process imported 'cwd_probe_app' from") as info:
        launch_server("cwd_probe_app:create_app", env={"PYTHONPATH": str(tmp_path / "c")})
    message = str(info.value)
    assert str(imported_from_a) in message
    assert f"pass cwd={str(imported_from_a)!r}" in message
    assert resources() == before


@pytest.mark.anyio
async def test_the_same_tree_through_cwd_or_pythonpath_is_served(
    imported_from_a: Path, get: Get
) -> None:
    async with launch_server(
        "cwd_probe_app:create_app", cwd=imported_from_a, health_path="/api/health"
    ) as server:
        assert get(server.url + "/tree") == (200, b"a")
    with launch_server(
        "cwd_probe_app:create_app",
        env={"PYTHONPATH": str(imported_from_a)},
        health_path="/api/health",
    ) as server:
        assert get(server.url + "/tree") == (200, b"a")
