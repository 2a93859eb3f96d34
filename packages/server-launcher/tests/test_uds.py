"""Unix domain sockets: the launcher binds the socket, the server serves it, the file goes."""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from server_launcher import DEMO_APP, ServerStartError, launch_server


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short folder: a socket path must fit in ~104 bytes (pytest's tmp_path may not)."""
    folder = tempfile.mkdtemp(prefix="sl-", dir="/tmp")
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_serves_a_unix_socket_and_removes_it(short_dir: Path) -> None:
    path = str(short_dir / "api.sock")
    with launch_server(DEMO_APP, uds=path, health_path="/api/health") as server:
        assert server.uds == path
        assert server.port is None
        assert server.url == "http://localhost"
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        transport = httpx.HTTPTransport(uds=server.uds)
        with httpx.Client(transport=transport, base_url=server.url) as client:
            assert client.get("/api/health").json() is True
            assert client.get("/api/echo?via=uds").json()["query"] == "via=uds"
    assert not os.path.lexists(path)


@pytest.mark.anyio
async def test_serves_a_unix_socket_from_async_code(short_dir: Path) -> None:
    path = short_dir / "api.sock"  # a Path works too
    async with launch_server(DEMO_APP, uds=path, health_path="/api/health") as server:
        assert server.uds == str(path)
        transport = httpx.AsyncHTTPTransport(uds=server.uds)
        async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
            assert (await client.get("/api/health")).status_code == 200
    assert not path.exists()


def test_a_command_gets_the_unix_socket_by_fd(short_dir: Path, fdserver_command: list[str]) -> None:
    path = str(short_dir / "fd.sock")
    with launch_server(command=fdserver_command, uds=path) as server:
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport) as client:
            response = client.get(server.url + "/health")
        assert (response.status_code, response.text) == (200, str(server.pid))
    assert not os.path.lexists(path)


def test_https_over_a_unix_socket(short_dir: Path, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    certfile, keyfile = tmp_path / "c.pem", tmp_path / "k.pem"
    leaf.cert_chain_pems[0].write_to_path(str(certfile))
    leaf.private_key_pem.write_to_path(str(keyfile))
    path = str(short_dir / "tls.sock")
    with launch_server(
        DEMO_APP,
        uds=path,
        health_path="/api/health",
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    ) as server:
        assert server.url == "https://localhost"
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        transport = httpx.HTTPTransport(uds=path, verify=client_context)
        with httpx.Client(transport=transport) as client:
            assert client.get(server.url + "/api/health").status_code == 200


def test_a_path_that_appears_before_the_start_is_an_error_naming_it(
    short_dir: Path, resources: Callable[[], dict[str, int]]
) -> None:
    path = short_dir / "taken.sock"
    launcher = launch_server(DEMO_APP, uds=path)
    path.write_text("someone else's file")
    before = resources()
    with pytest.raises(ServerStartError, match=r"already exists.*nothing was started"):
        with launcher:
            pytest.fail("must not start")
    assert path.read_text() == "someone else's file"  # not ours: never removed
    assert resources() == before


@pytest.mark.parametrize(
    ("make_kwargs", "match"),
    [
        (lambda d: {"uds": d / "x.sock", "port": 8123}, "not both"),
        (lambda d: {"uds": d / ("x" * 120)}, "too long"),
        (lambda d: {"uds": d / "missing" / "x.sock"}, "does not exist"),
        (lambda d: {"uds": d}, "already exists"),
        (lambda d: {"uds": d / "x.sock", "command": ["srv", "{port}"]}, r"needs the \{fd\}"),
    ],
)
def test_bad_unix_socket_arguments_are_refused_up_front(
    short_dir: Path, make_kwargs: Callable[[Path], dict[str, object]], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        launch_server(**make_kwargs(short_dir))  # type: ignore[arg-type]
    assert list(short_dir.iterdir()) == []
