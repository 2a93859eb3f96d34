"""A server that answers every connection at once with plain HTTP, before reading anything:
a TLS client sees a handshake that fails (not a TLS server). argv[1]: the listening fd."""

import socket
import sys

listener = socket.socket(fileno=int(sys.argv[1]))
while True:
    conn, _ = listener.accept()
    with conn:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
