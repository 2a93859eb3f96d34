"""@pytest.mark.hosted_api_env: a test needs a server with other settings."""

import httpx
import pytest
from example_settings import API_URL


def server_sees(name: str) -> str | None:
    """Ask the server what its environment holds (the demo app's /env/NAME)."""
    base = API_URL.value()  # the client finds the server through its setting
    assert base is not None, "EXAMPLE_API_URL is not set"
    value = httpx.get(f"{base}/env/{name}").json()["value"]
    return None if value is None else str(value)


@pytest.mark.hosted_api_env(EXAMPLE_NEW_CHECKOUT="true")
def test_the_flag_test_gets_a_server_with_the_flag(
    use_hosted_api_server: str, hosted_api_server: str
) -> None:
    assert server_sees("EXAMPLE_NEW_CHECKOUT") == "true"
    # A second server, started for this environment and reused by every test
    # that asks for it; hosted_api_server stays the default one.
    assert use_hosted_api_server != hosted_api_server


def test_the_other_tests_keep_the_default_server(
    use_hosted_api_server: str, hosted_api_server: str
) -> None:
    assert server_sees("EXAMPLE_NEW_CHECKOUT") is None
    assert use_hosted_api_server == hosted_api_server
