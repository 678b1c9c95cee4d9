"""A tiny scripted HTTP server standing in for CVAT in the client's transport tests.

Real sockets, real cvat-sdk: each test scripts the replies per ``(METHOD, path)`` and reads back
what arrived. Replies are consumed in order; the last one repeats. Besides normal answers a
reply can ``reset`` the connection (RST) or ``close`` it without answering.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as is
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "reply"  # reply | reset | close


@dataclass(frozen=True)
class Seen:
    method: str
    path: str  # decoded path, no query
    raw_path: str  # as sent, with query
    headers: dict[str, str]
    body: bytes

    @property
    def query(self) -> dict[str, list[str]]:
        from urllib.parse import parse_qs

        return parse_qs(urlsplit(self.raw_path).query)

    def json(self) -> Any:
        return json.loads(self.body)


class StubCvat:
    """``with StubCvat() as stub: stub.on("GET", "/api/jobs/1", Reply(200, {...}))``."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = unquote(urlsplit(self.path).path).rstrip("/") or "/"
                seen = Seen(self.command, path, self.path, dict(self.headers.items()), body)
                reply = stub._next(seen)
                if reply.action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if reply.action == "close":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                if reply.body is None:
                    data = b""
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/vnd.cvat+json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.routes[(method, path.rstrip("/"))] = list(replies)

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            queue = self.routes.get((seen.method, seen.path))
            if not queue:
                return Reply(404, {"detail": f"stub: no route for {seen.method} {seen.path}"})
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [s for s in self.seen if (method is None or s.method == method) and (path is None or s.path == path)]

    def __enter__(self) -> StubCvat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def free_port_url() -> str:
    """A URL on which nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeTime:
    """Injected clock + sleep: sleeping advances the clock and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
