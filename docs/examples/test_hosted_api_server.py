"""hosted_api_server: a real uvicorn child serving the app, one per session."""

import httpx


def test_the_server_is_healthy(hosted_api_server: str) -> None:
    # http://127.0.0.1:<port>/api: a real server on a free port, answering.
    assert hosted_api_server.startswith("http://127.0.0.1:")
    assert httpx.get(f"{hosted_api_server}/health").json() is True


def test_the_server_is_shared_by_the_session(hosted_api_server: str) -> None:
    url = f"{hosted_api_server}/echo?hello=world"
    reply = httpx.post(url, content=b"ping").json()
    assert reply == {
        "method": "POST",
        "path": "/api/echo",
        "query": "hello=world",
        "body": "ping",
    }
