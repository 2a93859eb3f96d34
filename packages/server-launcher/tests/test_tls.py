"""HTTPS: real TLS on loopback with certificates from a throwaway CA (trustme)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from server_launcher import DEMO_APP, ServerStartError, launch_server

APPS = Path(__file__).parent / "apps"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cert_files(ca: trustme.CA, tmp_path: Path) -> tuple[str, str]:
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(certfile))
    leaf.private_key_pem.write_to_path(str(keyfile))
    return str(certfile), str(keyfile)


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client that trusts only the test CA: it verifies the server's certificate for real."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_serves_https_with_a_verified_certificate(
    cert_files: tuple[str, str], client_context: ssl.SSLContext
) -> None:
    certfile, keyfile = cert_files
    with launch_server(
        DEMO_APP, health_path="/api/health", ssl_certfile=certfile, ssl_keyfile=keyfile
    ) as server:
        assert server.url == f"https://127.0.0.1:{server.port}"
        with httpx.Client(verify=client_context) as client:
            response = client.get(server.url + "/api/health")
        assert response.status_code == 200
        assert response.json() is True
        # the server speaks TLS only: plain HTTP on the same port gets no HTTP answer
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/api/health", timeout=10)
    assert server.returncode is not None


@pytest.mark.anyio
async def test_serves_https_from_async_code(
    cert_files: tuple[str, str], client_context: ssl.SSLContext
) -> None:
    certfile, keyfile = cert_files
    async with launch_server(
        DEMO_APP, health_path="/api/health", ssl_certfile=certfile, ssl_keyfile=keyfile
    ) as server:
        assert server.url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(verify=client_context) as client:
            response = await client.get(server.url + "/api/echo?tls=1")
        assert response.status_code == 200
        assert response.json()["query"] == "tls=1"


def test_a_certificate_file_holding_its_key_is_enough(
    ca: trustme.CA, tmp_path: Path, client_context: ssl.SSLContext
) -> None:
    both = tmp_path / "both.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(both))
    with launch_server(DEMO_APP, health_path="/api/health", ssl_certfile=both) as server:
        assert httpx.get(server.url + "/api/health", verify=client_context).status_code == 200


def _encrypted_key(keyfile: str, path: Path, password: bytes) -> str:
    with open(keyfile, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    return str(path)


def test_a_password_protected_key_never_shows_its_password(
    cert_files: tuple[str, str], client_context: ssl.SSLContext, tmp_path: Path
) -> None:
    certfile, keyfile = cert_files
    secret = "s3cret-passw0rd"
    locked = _encrypted_key(keyfile, tmp_path / "locked.pem", secret.encode())
    launcher = launch_server(
        DEMO_APP,
        health_path="/api/health",
        ssl_certfile=certfile,
        ssl_keyfile=locked,
        ssl_keyfile_password=secret,
    )
    assert secret not in repr(launcher)
    with launcher as server:
        assert httpx.get(server.url + "/api/health", verify=client_context).status_code == 200
        assert secret not in " ".join(server.command)
        with open(f"/proc/{server.pid}/cmdline", "rb") as f:  # what `ps` shows anyone
            assert secret.encode() not in f.read()
        assert secret not in repr(server)


def test_a_wrong_password_is_a_tls_error_before_anything_starts(
    cert_files: tuple[str, str], tmp_path: Path, resources: Callable[[], dict[str, int]]
) -> None:
    certfile, keyfile = cert_files
    locked = _encrypted_key(keyfile, tmp_path / "locked.pem", b"right-one")
    before = resources()
    for password in ("wrong-one", None):  # None: no terminal prompt, an error at once
        with pytest.raises(ServerStartError, match="TLS") as info:
            with launch_server(
                DEMO_APP, ssl_certfile=certfile, ssl_keyfile=locked, ssl_keyfile_password=password
            ):
                pytest.fail("must not start")
        assert "wrong-one" not in str(info.value)
        assert "right-one" not in str(info.value)
        assert info.value.returncode is None  # nothing ran
    assert resources() == before


def test_a_key_of_another_certificate_is_a_tls_error_before_anything_starts(
    ca: trustme.CA,
    cert_files: tuple[str, str],
    tmp_path: Path,
    resources: Callable[[], dict[str, int]],
) -> None:
    certfile, _ = cert_files
    other_key = tmp_path / "other-key.pem"
    ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other_key))
    before = resources()
    with pytest.raises(ServerStartError) as info:
        with launch_server(DEMO_APP, ssl_certfile=certfile, ssl_keyfile=other_key):
            pytest.fail("must not start")
    message = str(info.value)
    assert message.startswith("TLS: the server cannot serve TLS")
    assert "the key does not belong to the certificate" in message
    assert "nothing was started" in message
    assert resources() == before


@pytest.mark.anyio
async def test_a_server_that_does_not_speak_tls_fails_at_once_naming_tls(
    cert_files: tuple[str, str], resources: Callable[[], dict[str, int]]
) -> None:
    """The handshake fails (a plain HTTP answer): no waiting for the start-up timeout."""
    certfile, keyfile = cert_files
    before = resources()
    started = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        async with launch_server(
            command=["{python}", "-I", "-S", str(APPS / "plainserver.py"), "{fd}"],
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            startup_timeout=60,
        ):
            pytest.fail("must not start")
    assert time.monotonic() - started < 30  # far less than startup_timeout: not a timeout
    message = str(info.value)
    assert "the TLS handshake with the server failed" in message
    assert f"ssl_certfile={certfile!r}" in message
    assert "the server was killed" in message
    assert resources() == before


def test_a_custom_command_gets_the_certificate_through_placeholders(
    cert_files: tuple[str, str], client_context: ssl.SSLContext
) -> None:
    certfile, keyfile = cert_files
    command = [
        "{python}",
        "-m",
        "hypercorn",
        "--bind",
        "fd://{fd}",
        "--certfile",
        "{ssl_certfile}",
        "--keyfile",
        "{ssl_keyfile}",
        "server_launcher.demo:create_app()",
    ]
    pytest.importorskip("hypercorn")
    with launch_server(
        command=command, health_path="/api/health", ssl_certfile=certfile, ssl_keyfile=keyfile
    ) as server:
        assert server.url.startswith("https://")
        assert httpx.get(server.url + "/api/health", verify=client_context).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"server_args": ["--ssl-certfile", "c.pem"]}, ValueError, r"ssl_certfile="),
        ({"server_args": ["--ssl-keyfile=k.pem"]}, ValueError, r"ssl_keyfile="),
        ({"server_args": ["--ssl-ca-certs", "ca.pem"]}, ValueError, "owns uvicorn's TLS"),
        ({"ssl_keyfile": __file__}, ValueError, "need ssl_certfile"),
        ({"ssl_certfile": "/no/such/cert.pem"}, ValueError, "is not a file"),
        ({"ssl_certfile": __file__, "ssl_keyfile_password": 1234}, TypeError, "must be a string"),
        (
            {
                "ssl_certfile": __file__,
                "ssl_keyfile_password": "pw-s3cret",
                "command": ["x", "{fd}"],
            },
            ValueError,
            "not supported with command=",
        ),
        ({"command": ["x", "{ssl_certfile}", "{fd}"]}, ValueError, "no ssl_certfile= was given"),
    ],
)
def test_bad_tls_arguments_are_refused_up_front(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        launch_server(**kwargs)
    assert "1234" not in str(info.value)  # a password is never shown
    assert "pw-s3cret" not in str(info.value)
