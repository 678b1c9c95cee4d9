"""The HTTP layer: a ThreadingHTTPServer on 127.0.0.1 that parses requests, applies faults,
authenticates, dispatches to the router, logs, and validates JSON responses against the schema."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.cvat_standin import access
from tests.cvat_standin.faults import FaultInjector
from tests.cvat_standin.routing import HttpError, Request, Response, Router
from tests.cvat_standin.schema import validate_response
from tests.cvat_standin.world import World

log = logging.getLogger(__name__)
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 410: "Gone", 429: "Too Many Requests", 500: "Internal Server Error",
           503: "Service Unavailable"}


class StandInHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: App) -> None:
        self.app = app
        super().__init__(("127.0.0.1", 0), _Handler)


class App:
    """Everything the handler needs: world, router, faults, logs and the validation switch."""

    def __init__(self, world: World, router: Router, faults: FaultInjector, *, validate: bool,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.world = world
        self.router = router
        self.faults = faults
        self.validate = validate
        self.sleep = sleep
        self.base_url = ""
        self.request_log: list[tuple[str, str, int]] = []
        self.schema_errors: list[str] = []
        self._log_lock = threading.Lock()

    def record(self, method: str, path: str, status: int, errors: list[str]) -> None:
        with self._log_lock:
            self.request_log.append((method, path, status))
            self.schema_errors.extend(errors)

    def handle(self, ctx: Request) -> Response:
        """Authenticate, resolve the org context and run the route (errors become responses)."""
        try:
            found = self.router.match(ctx.method, ctx.path)
            with self.world.lock:
                user = access.authenticate(self.world, ctx)
                if found is None:
                    raise HttpError(404, {"detail": "Not found."})
                route, params = found
                ctx.params = {k: urllib.parse.unquote(v) for k, v in params.items()}
                if user is None and not route.anonymous:
                    raise access.unauthorized("Authentication credentials were not provided.")
                ctx.user = user
                access.resolve_org(self.world, ctx)
                return route.handler(ctx)
        except HttpError as err:
            return Response(err.status, err.body, headers=dict(err.headers))
        except Exception:  # a stand-in bug: answer 500 and make the test fail via schema_errors
            trace = traceback.format_exc()
            log.exception("standin: %s %s crashed", ctx.method, ctx.path)
            with self._log_lock:
                self.schema_errors.append(f"INTERNAL ERROR in {ctx.method} {ctx.path}:\n{trace}")
            return Response(500, {"detail": "stand-in internal error (see schema_errors)"})


class _Handler(BaseHTTPRequestHandler):
    server: StandInHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes; without this Nagle + delayed ACK add ~40 ms a call
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("standin: " + format, *args)

    def _serve(self) -> None:
        app = self.server.app
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        method = self.command

        fault = app.faults.take(method, path)
        if fault is not None:
            if fault.kind == "reset":
                app.record(method, path, 0, [])
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault.kind == "status":
                app.record(method, path, fault.status, [])
                self._write(Response(fault.status, {"detail": "injected fault"}))
                return
            if fault.kind == "retry_after":
                app.record(method, path, 429, [])
                self._write(Response(429, {"detail": "Request was throttled."},
                                     headers={"Retry-After": f"{fault.retry_after_s:g}"}))
                return
            app.sleep(fault.delay_s)  # "timeout": answer late, after the client gave up

        ctx = Request(method=method, path=path, query=query,
                      headers={k.lower(): v for k, v in self.headers.items()}, raw_body=raw,
                      world=app.world, base_url=app.base_url)
        resp = app.handle(ctx)
        if resp.finalize is not None:
            resp.body = resp.finalize()
        errors: list[str] = []
        if app.validate and resp.raw is None:
            errors = validate_response(method, path, resp.status, resp.content_type, resp.body)
        app.record(method, path, resp.status, errors)
        try:
            self._write(resp)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("standin: client went away before %s %s was answered", method, path)

    def _write(self, resp: Response) -> None:
        if resp.raw is not None:
            payload = resp.raw
        elif resp.body is None and resp.status == 204:
            payload = b""
        else:
            payload = json.dumps(resp.body).encode("utf-8")
        self.send_response(resp.status, REASONS.get(resp.status))
        if resp.content_type:  # CVAT's empty upload answers carry none (recording T01)
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for key, value in resp.headers.items():
            self.send_header(key, value)
        for name, value in resp.cookies.items():
            self.send_header("Set-Cookie", f"{name}={value}; Path=/")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve
