"""An app object (or factory) instead of an import string: served by its module-level name."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from server_launcher import launch_server
from server_launcher.demo import create_app

APPS = Path(__file__).parent / "apps"
Get = Callable[..., tuple[int, bytes]]


@pytest.fixture
def objapps(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """tests/apps/objapps.py, imported as the server will import it (from its folder)."""
    monkeypatch.syspath_prepend(str(APPS))
    import objapps

    yield objapps
    sys.modules.pop("objapps", None)


def test_an_installed_factory_function_is_served_by_its_name(get: Get) -> None:
    with launch_server(create_app, health_path="/api/health") as server:
        assert "server_launcher.demo:create_app" in server.command
        assert "--factory" in server.command
        assert get(server.url + "/api/health") == (200, b"true")


def test_an_app_instance_is_served_by_the_name_it_is_bound_to(get: Get, objapps: Any) -> None:
    with launch_server(objapps.app, factory=False, cwd=APPS, health_path="/api/health") as server:
        assert "objapps:app" in server.command
        assert "--factory" not in server.command
        assert get(server.url + "/api/health") == (200, b"true")


@pytest.mark.anyio
async def test_app_objects_from_async_code(get: Get, objapps: Any) -> None:
    async with launch_server(objapps.factory, cwd=APPS, health_path="/api/health") as server:
        assert "objapps:factory" in server.command
        assert get(server.url + "/api/health")[0] == 200
    async with launch_server(objapps.raw_app, factory=False, cwd=APPS, health_path="/") as raw:
        assert "objapps:raw_app" in raw.command
        assert get(raw.url + "/") == (200, b"raw")


def test_an_app_defined_inside_a_function_is_refused_saying_why() -> None:
    async def local_app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("never served")

    with pytest.raises(ValueError, match=r"is defined inside a function \(.*<locals>.local_app\)"):
        launch_server(local_app, factory=False)


def test_an_unbound_instance_is_refused_saying_why() -> None:
    made_here = create_app()  # a closure bound to no module-level name
    with pytest.raises(ValueError, match="defined inside a function") as info:
        launch_server(made_here, factory=False)
    assert "import string" in str(info.value)


def test_a_lambda_is_refused_saying_why() -> None:
    with pytest.raises(ValueError, match="is a lambda that is not bound"):
        launch_server(lambda scope, receive, send: None, factory=False)


def test_an_app_in_main_is_refused_saying_why(tmp_path: Path) -> None:
    """A script's own app: the server process would run a different ``__main__``."""
    script = tmp_path / "serve.py"
    script.write_text(
        textwrap.dedent(
            """
            from server_launcher import launch_server
            from server_launcher.demo import create_app

            app = create_app()

            def factory():
                return create_app()

            for obj, factory_flag in ((factory, True), (app, False)):
                try:
                    launch_server(obj, factory=factory_flag)
                except ValueError as exc:
                    print("refused:", exc)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    for line in lines:
        assert "is defined in __main__ (the script being run)" in line


def test_factory_must_match_the_object(objapps: Any) -> None:
    with pytest.raises(ValueError, match=r"an async function .* pass factory=False"):
        launch_server(objapps.raw_app)  # factory=True by default, as for import strings
    with pytest.raises(ValueError, match=r"an app object, not a factory .* factory=False"):
        launch_server(objapps.app.__call__)  # a bound method: no module-level name either
    with pytest.raises(ValueError, match=r"takes no arguments .* pass factory=True"):
        launch_server(objapps.factory, factory=False)


def test_a_non_callable_app_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"import string 'package\.module:attribute' or an ASGI"):
        launch_server(42)  # type: ignore[arg-type]
