"""A real line server for the outside-I/O tests, run as a subprocess: ``python slow_server.py``.

It prints its port, then serves each connection on its own thread, one request per line:

- ``<seconds>``: wait that many real seconds, then answer ``ok``;
- ``split <seconds>``: answer ``o``, wait that many real seconds, then ``k`` (a reply in two
  packets).

It stops when its standard input closes (the parent ended), so it never outlives a test run.
"""

from __future__ import annotations

import socket
import sys
import threading
import time


def serve(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn, conn.makefile("rb") as lines:
        for line in lines:
            words = line.split()
            if len(words) == 2 and words[0] == b"split":
                conn.sendall(b"o")
                time.sleep(float(words[1]))
                conn.sendall(b"k\n")
            else:
                time.sleep(float(words[0]))
                conn.sendall(b"ok\n")


def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()  # until the parent closes our input


if __name__ == "__main__":
    main()
