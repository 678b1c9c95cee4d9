"""The base of cvat-ext's small stdlib HTTP endpoints (the functions gateway, the sidecar server):
one way to bind (a busy port is one line, not a traceback), one way to answer with a body or JSON,
and request logs at debug level only."""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar

from cvat_ext.errors import ConfigError

logger = logging.getLogger(__name__)

S = TypeVar("S")

_BIND_PROBLEMS = {
    errno.EADDRINUSE: "is in use (another process listens there: stop it or pick another port)",
    errno.EACCES: "needs privileges to bind (ports below 1024: pick another port)",
    errno.EADDRNOTAVAIL: "is not an address of this machine",
}


def bind_server(make: Callable[[tuple[str, int]], S], host: str, port: int, *, what: str) -> S:
    """``make((host, port))`` (a server class bound to its handler), with the bind's ``OSError``
    turned into one :class:`ConfigError` line: ``sidecar: port 8080 on 127.0.0.1 is in use (...)``."""
    try:
        return make((host, port))
    except OSError as exc:
        problem = _BIND_PROBLEMS.get(exc.errno or -1, f"cannot be bound: {exc.strerror or exc}")
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"{what}: {host} {problem} (port {port})") from exc
        raise ConfigError(f"{what}: port {port} on {host} {problem}") from exc


class JsonRequestHandler(BaseHTTPRequestHandler):
    """A request handler with :meth:`send_body` / :meth:`send_json`; request lines go to debug logs."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s %s", type(self).__name__, self.address_string(), format % args)

    def send_body(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        """Answer ``status`` with ``body`` and its length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, payload: Any) -> None:
        """Answer ``status`` with ``payload`` as JSON (UTF-8)."""
        self.send_body(status, json.dumps(payload).encode("utf-8"))
