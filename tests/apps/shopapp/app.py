"""The shop's HTTP API as a plain ASGI app factory (no framework, so it starts fast)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .settings import CSRF_ENABLED, DATABASE_PATH

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def _reply(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app() -> Callable[..., Awaitable[None]]:
    """Build the app; it reads its settings (database, CSRF) from its own environment."""
    database = DATABASE_PATH.value()
    sqlite3.connect(database).close()  # fail at start-up, loudly, when the database is missing

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path, method = scope["path"], scope["method"]
        if path == "/api/health":
            await _reply(send, 200, True)
        elif path == "/api/items" and method == "GET":
            with sqlite3.connect(database) as connection:
                rows = connection.execute("select name from items order by rowid").fetchall()
            await _reply(send, 200, [{"name": name} for (name,) in rows])
        elif path == "/api/settings":
            await _reply(send, 200, {"database": database, "csrf": CSRF_ENABLED.value()})
        else:
            await _reply(send, 404, {"detail": "not found"})

    return app
