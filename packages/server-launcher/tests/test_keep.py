"""Kept servers: found again by their folder, held by one process at a time, expiring when idle."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from server_launcher import KeptServer, ServerStartError, hold_kept, pid_alive, start_kept_server

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
            path.endswith(os.path.join("server_launcher", "demo.py"))
            for path, _, _ in found.modules()
        )
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
