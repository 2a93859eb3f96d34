"""Kept servers: found again by their folder, held by one process at a time, expiring when idle."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from server_launcher import (
    KeptHold,
    KeptServer,
    ServerStartError,
    hold_kept,
    pid_alive,
    start_kept_server,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")

DEMO = "server_launcher.demo:create_app"


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "kept"
    folder.mkdir(mode=0o700)
    return folder


def test_a_kept_server_is_found_again_and_expires_once_nobody_holds_it(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    hold = hold_kept(folder)
    assert hold is not None
    server = start_kept_server(folder, DEMO, health_path="/api/health", idle_timeout=0.5)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url + "/api/health").status_code == 200
        found = KeptServer.load(folder)
        assert found is not None
        assert (found.pid, found.url) == (server.pid, server.url)
        assert any(
            path.endswith(os.path.join("server_launcher", "demo.py")) for path in found.modules()
        )
        assert found.code_changed() is None
        assert hold_kept(folder, wait=0.05) is None  # held: nobody else gets it
        assert server.wait(timeout=2) is None  # held past its idle time: still serving
        hold.release()
        assert server.wait(timeout=60) is not None  # its own watchdog ended it
        assert KeptServer.load(folder) is None
        assert "idle for 0.5 s: exiting" in server.output()
    finally:
        hold.release()
        server.stop()
    assert not pid_alive(server.pid)


def test_a_server_that_cannot_start_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    with pytest.raises(ServerStartError) as caught:
        start_kept_server(folder, "no_such_module_here:app", idle_timeout=60)
    error = caught.value
    assert "exited before it was ready" in error.reason
    assert error.returncode not in (None, 0)
    assert any("no_such_module_here" in line for line in error.output_tail)
    assert KeptServer.load(folder) is None


def test_files_are_private(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    hold = hold_kept(folder)
    assert hold is not None
    server = start_kept_server(folder, DEMO, health_path="/api/health", idle_timeout=60)
    try:
        for name in ("lock", "holder", "state.json", "modules.json", "server.log"):
            assert (folder / name).stat().st_mode & 0o077 == 0, name
    finally:
        server.stop()
        hold.release()


def test_a_kept_server_serves_https(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(certfile))
    leaf.private_key_pem.write_to_path(str(keyfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    folder = _folder(tmp_path)
    hold = hold_kept(folder)
    assert hold is not None
    server = start_kept_server(
        folder,
        DEMO,
        health_path="/api/health",
        idle_timeout=60,
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
    )
    try:
        assert server.url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=context) as client:
            assert client.get(server.url + "/api/health").status_code == 200
    finally:
        server.stop()
        hold.release()


STARTAPP = """
import os
from pathlib import Path

import routes


def create_app():
    # The user saves routes.py while the server starts (after it was imported): same size.
    if os.environ.get("EDIT_WHILE_STARTING"):
        here = Path(routes.__file__)
        here.write_text(here.read_text().replace('"one"', '"two"'))

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"].endswith("shutdown"):
                    return
        if scope["path"] == "/lazy":
            import lazymod  # imported on request, long after ready

            body = lazymod.ANSWER.encode()
        else:
            body = routes.VERSION.encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app
"""


def _start_app(tmp_path: Path, **env: str) -> tuple[KeptServer, KeptHold]:
    (tmp_path / "startapp.py").write_text(STARTAPP)
    (tmp_path / "routes.py").write_text('VERSION = "one"\n')
    (tmp_path / "lazymod.py").write_text('ANSWER = "old"\n')
    folder = _folder(tmp_path)
    hold = hold_kept(folder)
    assert hold is not None
    try:
        server = start_kept_server(
            folder, "startapp:create_app", cwd=tmp_path, env={**os.environ, **env},
            idle_timeout=60,
        )  # fmt: skip
    except BaseException:
        hold.release()
        raise
    return server, hold


def test_a_file_edited_while_the_server_starts_is_a_change(tmp_path: Path) -> None:
    """Its fingerprint is taken when it is imported, not when the server is ready (issue 21)."""
    server, hold = _start_app(tmp_path, EDIT_WHILE_STARTING="1")
    try:
        assert httpx.get(server.url + "/").text == "one"  # the code it runs: the old one
        found = KeptServer.load(server.folder)
        assert found is not None
        assert found.code_changed(first_under=str(tmp_path)) == (
            str(tmp_path / "routes.py"),
            "changed",
        )
    finally:
        server.stop()
        hold.release()


def test_a_module_imported_later_is_on_record_before_it_runs(tmp_path: Path) -> None:
    """No tick to wait for: the next process to look sees the file, and an edit after it."""
    server, hold = _start_app(tmp_path)
    try:
        found = KeptServer.load(server.folder)
        assert found is not None
        lazy = str(tmp_path / "lazymod.py")
        assert lazy not in found.modules()
        assert found.code_changed() is None
        assert KeptServer(str(tmp_path), 0, 0, "").code_changed() == (
            str(tmp_path / "modules.json"),
            "unrecorded",
        )  # no record proves nothing: never "unchanged"
        assert httpx.get(server.url + "/lazy").text == "old"
        assert lazy in found.modules()  # at once
        # Another hard link to a file it imported (uv links one cached file into every
        # environment) changes the file's ctime, not its content: still current.
        os.link(tmp_path / "routes.py", tmp_path / "routes-link.py")
        assert found.code_changed() is None
        # Editing a file it imported before does not hide behind the later import.
        (tmp_path / "routes.py").write_text('VERSION = "two"\n')
        assert httpx.get(server.url + "/").text == "one"
        assert found.code_changed(first_under=str(tmp_path)) == (
            str(tmp_path / "routes.py"),
            "changed",
        )
        (tmp_path / "routes.py").unlink()
        assert found.code_changed(first_under=str(tmp_path)) == (
            str(tmp_path / "routes.py"),
            "gone",
        )
    finally:
        server.stop()
        hold.release()


def test_a_file_modified_just_before_its_import_is_compared_by_content(tmp_path: Path) -> None:
    """Timestamps are as coarse as a kernel tick: a same-size rewrite within that tick keeps
    size and mtime. Such a file's record carries a content digest, checked too."""
    import hashlib

    from server_launcher._keep import _compare, _fingerprint

    module = tmp_path / "fresh.py"
    module.write_text('VERSION = "one"\n')
    record = _fingerprint(str(module))
    assert record is not None
    assert isinstance(record[4], str)  # just written: its content is kept as a digest
    assert _compare(record) is None
    # What a same-tick rewrite leaves behind: the same stat, another content.
    other = hashlib.sha256(b'VERSION = "two"\n').hexdigest()
    assert _compare([*record[:4], other]) == "changed"
    # A file untouched for long is trusted on its stat alone (no read at adoption).
    settled = [*record[:4], None]
    assert _compare(settled) is None
