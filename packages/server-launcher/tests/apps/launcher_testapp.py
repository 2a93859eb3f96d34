"""A misbehaving ASGI app for the launcher's tests, steered by environment variables.

TESTAPP_STARTUP=raise|fail|hang   raise in the factory, fail the lifespan start-up, or hang in it
TESTAPP_HEALTH_STATUS=N           status of GET /health (default 200)
TESTAPP_IGNORE_SIGTERM=1          ignore SIGTERM once started
TESTAPP_PRINT_BYTES=N             print N bytes to stdout during start-up
TESTAPP_SPAWN_CHILD=1             start a grandchild process and print its pid
TESTAPP_SPAWN_SESSION=1           start a helper in a session of its own (start_new_session) that
                                  prints a tick to the server's stdout every 10 ms; print its pid
Routes: /health, /pid, /env/NAME, /stream (never ends), /print?n=N (prints N bytes),
/say?TEXT (prints "said TEXT" as one line, then answers).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any

_children: list[subprocess.Popen[bytes]] = []
# Survives a broken pipe (its reader gone): only a kill ends it.
_TICKER = """import sys, time
while True:
    try:
        print('helper tick', flush=True)
    except OSError:
        sys.stdout = open('/dev/null', 'w')
    time.sleep(0.01)
"""


async def _send(send: Any, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def create_app() -> Any:
    mode = os.environ.get("TESTAPP_STARTUP", "")
    if mode == "raise":
        raise RuntimeError("testapp refuses to start (TESTAPP_STARTUP=raise)")
    health = int(os.environ.get("TESTAPP_HEALTH_STATUS", "200"))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if mode == "fail":
                        await send({"type": "lifespan.startup.failed", "message": "testapp: no"})
                        return
                    if mode == "hang":
                        await asyncio.Event().wait()
                    if os.environ.get("TESTAPP_IGNORE_SIGTERM"):
                        signal.signal(signal.SIGTERM, signal.SIG_IGN)
                    count = int(os.environ.get("TESTAPP_PRINT_BYTES", "0"))
                    if count:
                        sys.stdout.write("x" * (count - 1) + "\n")
                        sys.stdout.flush()
                        print("testapp: printed", count, flush=True)
                    if os.environ.get("TESTAPP_SPAWN_SESSION"):
                        helper = subprocess.Popen(  # noqa: ASYNC220 - once, at start-up
                            [sys.executable, "-u", "-c", _TICKER], start_new_session=True
                        )
                        _children.append(helper)
                        print(f"testapp: session helper pid {helper.pid}", flush=True)
                    if os.environ.get("TESTAPP_SPAWN_CHILD"):
                        child = subprocess.Popen(  # noqa: ASYNC220 - once, at start-up
                            [sys.executable, "-c", "import time; time.sleep(60)"]
                        )
                        _children.append(child)
                        print(f"testapp: grandchild pid {child.pid}", flush=True)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/health":
            await _send(send, health, health == 200)
        elif path == "/pid":
            await _send(send, 200, os.getpid())
        elif path.startswith("/env/"):
            await _send(send, 200, os.environ.get(path[len("/env/") :]))
        elif path == "/print":
            count = int(scope["query_string"].decode().partition("=")[2] or "0")
            sys.stdout.write("y" * count + "\n")
            sys.stdout.flush()
            await _send(send, 200, count)
        elif path == "/say":
            text = scope["query_string"].decode()
            print(f"said {text}", flush=True)
            await _send(send, 200, text)
        elif path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.05)
        else:
            await _send(send, 404, path)

    return app
