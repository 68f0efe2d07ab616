"""Loopback TCP servers that record every connection: canaries for the URL guard's tests.

A :class:`RawServer` accepts connections on one loopback address, records each one (and the bytes
of the request head it read), then lets a ``reply`` function answer on the raw socket: a normal
HTTP/1.0 answer with ``Connection: close``, a redirect, or a body trickled byte by byte. A test
asserts ``server.connections == 0`` to prove nothing reached it.

127.0.0.2 (any 127/8 address routes to loopback on Linux) stands in for "the public internet" in
tests that make the guard treat it as public; 127.0.0.1 stays the private canary.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

__all__ = ["RawServer", "http_reply", "redirect_to", "trickle"]

Reply = Callable[[socket.socket, bytes], None]


def http_reply(
    body: bytes = b"canary", status: str = "200 OK", headers: dict[str, str] | None = None
) -> Reply:
    """Answer every request with one HTTP/1.0 response and close (so ``Connection: close``)."""

    def reply(conn: socket.socket, _request: bytes) -> None:
        head = {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))}
        head.update(headers or {})
        lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
        conn.sendall(f"HTTP/1.0 {status}\r\n{lines}Connection: close\r\n\r\n".encode() + body)

    return reply


def redirect_to(location: str) -> Reply:
    return http_reply(b"", "302 Found", {"Location": location})


def trickle(size: int = 1000, every: float = 0.1, head_too: bool = False) -> Reply:
    """Announce ``size`` bytes, then send one byte every ``every`` seconds (the head too if asked)."""

    def reply(conn: socket.socket, _request: bytes) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {size}\r\n\r\n".encode()
        try:
            if head_too:
                for byte in head:
                    conn.sendall(bytes([byte]))
                    time.sleep(every)
            else:
                conn.sendall(head)
            for _ in range(size):
                conn.sendall(b"x")
                time.sleep(every)
        except OSError:
            pass

    return reply


class RawServer:
    """``with RawServer("127.0.0.1", reply) as server: server.port, server.connections``."""

    def __init__(self, host: str = "127.0.0.1", reply: Reply | None = None, port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.host, self.port = host, int(self.sock.getsockname()[1])
        self.reply = reply or http_reply()
        self.requests: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            request = b""
            try:
                while b"\r\n\r\n" not in request and len(request) < 65536:
                    data = conn.recv(4096)
                    if not data:
                        break
                    request += data
            except OSError:
                pass
            with self._lock:
                self.requests.append(request)
            if request:
                with contextlib.suppress(OSError):
                    self.reply(conn, request)

    def __enter__(self) -> RawServer:
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
