"""The base of cvat-ext's small stdlib HTTP endpoints (the functions gateway, the sidecar server):
one way to answer with a body or JSON, and request logs at debug level only."""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler
from typing import Any

logger = logging.getLogger(__name__)


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
