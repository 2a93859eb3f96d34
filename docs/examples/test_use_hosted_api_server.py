"""use_hosted_api_server: the URL setting points at the server, per test."""

import httpx
from example_settings import API_URL, CSRF_ENABLED


def fetch_health() -> bool:
    """Application code: it finds the API through its setting, like a client."""
    base = API_URL.value()
    assert base is not None, "EXAMPLE_API_URL is not set"
    return bool(httpx.get(f"{base}/health").json())


def test_the_client_reaches_the_hosted_server(
    use_hosted_api_server: str,
) -> None:
    assert API_URL.value() == use_hosted_api_server
    assert fetch_health() is True


def test_extra_settings_apply_inside_the_fixture(
    use_hosted_api_server: str,
) -> None:
    assert CSRF_ENABLED.value() is False


def test_everything_is_restored_after_the_test() -> None:
    assert API_URL.value() is None
    assert CSRF_ENABLED.value() is True
