"""The hosted server over HTTPS (ini options and their command-line twins), and its working
directory: pytest's rootdir, so the app is imported from there first."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow  # each test runs a pytest session in a subprocess

HTTPS_TEST = """
import os
import ssl

import httpx


def test_https(use_hosted_api_server):
    assert use_hosted_api_server.startswith("https://127.0.0.1:")
    assert os.environ["API_URL"] == use_hosted_api_server  # the URL setting gets https too
    context = ssl.create_default_context(cafile="ca.pem")  # verified against the test CA
    response = httpx.get(use_hosted_api_server + "/health", verify=context)
    assert response.json() is True
"""


@pytest.fixture(scope="module")
def pems() -> tuple[bytes, bytes, bytes]:
    """A test CA and a certificate for 127.0.0.1, made once, before any pytester session:
    pytester drops modules imported during a test, and cryptography cannot be imported twice."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    return ca.cert_pem.bytes(), leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()


@pytest.fixture
def certificates(pytester: pytest.Pytester, pems: tuple[bytes, bytes, bytes]) -> None:
    """ca.pem, and certs/server.pem + certs/server-key.pem (issued for 127.0.0.1)."""
    certs = pytester.mkdir("certs")
    (pytester.path / "ca.pem").write_bytes(pems[0])
    (certs / "server.pem").write_bytes(pems[1])
    (certs / "server-key.pem").write_bytes(pems[2])


def test_ini_options_serve_https(pytester: pytest.Pytester, certificates: None) -> None:
    pytester.makeini(
        """
        [pytest]
        hosted_api_ssl_certfile = certs/server.pem
        hosted_api_ssl_keyfile = certs/server-key.pem
        """
    )
    pytester.makepyfile(HTTPS_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_command_line_options_serve_https(pytester: pytest.Pytester, certificates: None) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(HTTPS_TEST)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--hosted-api-ssl-certfile=certs/server.pem",
        "--hosted-api-ssl-keyfile",
        "certs/server-key.pem",
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("hosted_api_ssl_certfile = certs/missing.pem", "no such file: 'certs/missing.pem'"),
        ("hosted_api_ssl_keyfile = certs/server-key.pem", "needs hosted_api_ssl_certfile too"),
    ],
)
def test_bad_tls_options_are_usage_errors(
    pytester: pytest.Pytester, certificates: None, ini: str, message: str
) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_never(): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*hosted_api_ssl_*{message}*"])


ROOT_APP = """
from server_launcher.demo import create_app as _demo


def create_app():
    inner = _demo("/api")

    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/api/which":
            await send({{"type": "http.response.start", "status": 200, "headers": []}})
            await send({{"type": "http.response.body", "body": b"{which}"}})
            return
        await inner(scope, receive, send)

    return app
"""


def test_the_server_imports_the_app_from_the_rootdir(pytester: pytest.Pytester) -> None:
    """Run from a subfolder that has a module of the same name: the rootdir's is served."""
    pytester.makeini("[pytest]\nhosted_api_app = which_app:create_app\n")
    (pytester.path / "which_app.py").write_text(ROOT_APP.format(which="rootdir"))
    sub = pytester.mkdir("sub")
    (sub / "which_app.py").write_text(ROOT_APP.format(which="subfolder"))
    (sub / "test_which.py").write_text(
        "import httpx\n\n"
        "def test_which(hosted_api_server):\n"
        "    assert httpx.get(hosted_api_server + '/which').text == 'rootdir'\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(sub)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_which.py")
    result.assert_outcomes(passed=1)
    assert Path(str(pytester.path)).is_dir()
