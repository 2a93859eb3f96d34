"""hosted_api_* options that change what the server is and where it finds the app."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_an_app_under_the_pythonpath_ini_reaches_the_child(pytester: pytest.Pytester) -> None:
    package = pytester.path / "src" / "srcapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "web.py").write_text(
        """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b'"src layout"' if scope["path"] == "/v1/who" else b"true"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""
    )
    pytester.makeini(
        """
        [pytest]
        pythonpath = src
        hosted_api_app = srcapp.web:app
        hosted_api_factory = false
        hosted_api_prefix = /v1
        hosted_api_health_path = /ready
        """
    )
    pytester.makepyfile(
        """
        import httpx

        def test_who(hosted_api_server):
            assert hosted_api_server.endswith("/v1")
            assert httpx.get(hosted_api_server + "/who").json() == "src layout"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    result.assert_outcomes(passed=1)


def test_autouse_puts_every_test_under_use_hosted_api_server(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nhosted_api_autouse = true\nhosted_api_url_setting = SVC_URL\n")
    pytester.makepyfile(
        """
        import os

        def test_one():
            assert os.environ["SVC_URL"].startswith("http://127.0.0.1:")

        def test_two():
            assert os.environ["SVC_URL"].endswith("/api")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    result.assert_outcomes(passed=2)
    off = pytester.runpytest_subprocess("-p", "no:randomly", "--no-hosted-api-autouse", timeout=60)
    off.assert_outcomes(failed=2)


def test_hosted_api_env_reaches_the_server_and_none_removes(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def hosted_api_env():
            return {"SHOP_REGION": "eu-test", "HOME_SECRET": None}
        """
    )
    pytester.makepyfile(
        """
        import httpx

        def test_env(hosted_api_server):
            assert httpx.get(hosted_api_server + "/env/SHOP_REGION").json()["value"] == "eu-test"
            assert httpx.get(hosted_api_server + "/env/HOME_SECRET").json()["value"] is None
        """
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME_SECRET", "must-not-reach-the-server")
        result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    result.assert_outcomes(passed=1)


def test_the_session_server_serves_sync_anyio_and_pytest_asyncio_tests(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("pytest_asyncio")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        """
        import httpx
        import pytest

        URLS = set()

        def test_sync(hosted_api_server):
            URLS.add(hosted_api_server)
            assert httpx.get(hosted_api_server + "/health").json() is True

        @pytest.mark.anyio
        async def test_anyio(hosted_api_server):
            URLS.add(hosted_api_server)
            async with httpx.AsyncClient() as client:
                assert (await client.get(hosted_api_server + "/health")).json() is True

        @pytest.mark.asyncio
        async def test_pytest_asyncio(use_hosted_api_server):
            URLS.add(use_hosted_api_server)
            async with httpx.AsyncClient() as client:
                assert (await client.get(use_hosted_api_server + "/health")).json() is True

        def test_one_server_for_all():
            assert len(URLS) == 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", timeout=60)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes["passed"] >= 4  # the anyio test runs once per installed backend
