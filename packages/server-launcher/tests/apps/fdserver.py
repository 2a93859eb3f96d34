"""The smallest HTTP server that serves a listening socket passed by fd (argv[1]).

Run with ``python -I -S``: it starts in a few milliseconds, so many launches stay cheap.
GET /health -> 200 with this process's pid as the body.
"""

import os
import socket
import sys

listener = socket.socket(fileno=int(sys.argv[1]))
body = str(os.getpid()).encode()
while True:
    conn, _ = listener.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        status = b"200 OK" if data.startswith(b"GET /health ") else b"404 Not Found"
        conn.sendall(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
