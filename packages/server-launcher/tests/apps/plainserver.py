"""A server that answers every connection with plain HTTP, whatever it is sent: a TLS client
sees a handshake that fails (not a TLS server). argv[1]: the listening fd.

It reads what the client sent first and lets the client close first, so the client always
gets the answer (closing with unread data would reset the connection instead)."""

import socket
import sys

listener = socket.socket(fileno=int(sys.argv[1]))
while True:
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.shutdown(socket.SHUT_WR)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
