"""One stdlib HTTP server for ``/healthz``, ``/metrics``, ``POST /webhooks/cvat`` and the report pages
(``/login``, ``/reports``; :mod:`cvat_ext.reports.pages`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from cvat_ext.errors import HttpInputError
from cvat_ext.http_endpoint import BoundedHTTPServer, HttpLimits, JsonRequestHandler, bind_server
from cvat_ext.reports.pages import MAX_FORM_BYTES, ReportPages
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.webhooks import MAX_BODY_BYTES, WebhookReceiver

log = logging.getLogger(__name__)


class SidecarHttpServer:
    """Serve in a daemon thread; ``port`` 0 picks a free one (see :attr:`url`).

    ``health()`` returns (ok, details); ``/healthz`` answers 200 or 503 with the details as JSON.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        metrics: SidecarMetrics,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        webhooks: WebhookReceiver | None = None,
        reports: ReportPages | None = None,
        limits: HttpLimits | None = None,
    ) -> None:
        outer = self

        class Handler(JsonRequestHandler):
            server_version = "cvat-ext-sidecar"

            def _report(self, method: str, path: str, body: bytes) -> None:
                assert outer.reports is not None
                answer = outer.reports.handle(method, path, dict(self.headers.items()), body)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(answer.body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if outer.reports is not None and outer.reports.handles(path):
                    self._report("GET", path, b"")
                elif path == "/healthz":
                    ok, details = outer.health()
                    self.send_json(200 if ok else 503, {"ok": ok, **details})
                elif path == "/metrics":
                    self.send_body(200, outer.metrics.render(), CONTENT_TYPE_LATEST)
                else:
                    self.send_json(404, {"error": "not found"})

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                if outer.reports is not None and outer.reports.handles(path):
                    try:
                        form = self.read_body(MAX_FORM_BYTES)
                    except HttpInputError as exc:
                        self.send_refusal(exc)
                        return
                    self._report("POST", path, form)
                    return
                if path != "/webhooks/cvat" or outer.webhooks is None:
                    self.discard_body()
                    self.send_json(404, {"error": "not found"})
                    return
                try:
                    body = self.read_body(MAX_BODY_BYTES)
                except HttpInputError as exc:
                    self.send_refusal(exc)
                    return
                status, data = outer.webhooks.handle(dict(self.headers.items()), body)
                self.send_json(status, data)

        self.metrics = metrics
        self.health = health
        self.webhooks = webhooks
        self.reports = reports
        self._httpd = bind_server(
            lambda address: BoundedHTTPServer(address, Handler, limits=limits), host, port, what="sidecar HTTP server"
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._httpd.server_address[0])
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def start(self) -> SidecarHttpServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="sidecar-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SidecarHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
