"""App objects for the app-object tests: imported by the tests and, by name, by the server."""

from typing import Any

from server_launcher.demo import create_app

app = create_app()  # an app instance


def factory() -> Any:
    """An app factory."""
    return create_app()


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    """A bare ASGI app (an async function): answers every request with 200 'raw'."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw"})
