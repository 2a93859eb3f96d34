"""A tiny ASGI app used as the embedded default server by the bundle and by the tests.

It has no dependencies beyond the standard library so that it starts as fast as uvicorn can.
Routes (under an optional prefix, ``/api`` by default through ``DEMO_API_PREFIX``):

- ``GET {prefix}/health`` -> ``200 true``, and ``GET /health`` at the root too, so that the
  launcher's defaults (``launch_server()``, ``python -m server_launcher``) find it ready
- ``GET|POST {prefix}/echo`` -> JSON with the method, path, query string and body it received
- ``GET {prefix}/env/{NAME}`` -> JSON ``{"name": NAME, "value": os.environ.get(NAME)}``
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _send_json(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def create_app(prefix: str | None = None) -> ASGIApp:
    """Build the demo app; ``prefix`` defaults to ``$DEMO_API_PREFIX`` or ``/api``."""
    root = (prefix if prefix is not None else os.environ.get("DEMO_API_PREFIX", "/api")).rstrip("/")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/health":  # the launcher's default health path, whatever the prefix
            await _send_json(send, 200, True)
            return
        if not path.startswith(root + "/"):
            await _send_json(send, 404, {"detail": f"not found: {path}"})
            return
        route = path[len(root) :]
        if route == "/health":
            await _send_json(send, 200, True)
        elif route == "/echo":
            body = await _read_body(receive)
            await _send_json(
                send,
                200,
                {
                    "method": scope["method"],
                    "path": path,
                    "query": scope.get("query_string", b"").decode(),
                    "body": body.decode(errors="replace"),
                },
            )
        elif route.startswith("/env/"):
            name = route[len("/env/") :]
            await _send_json(send, 200, {"name": name, "value": os.environ.get(name)})
        else:
            await _send_json(send, 404, {"detail": f"not found: {path}"})

    return app
