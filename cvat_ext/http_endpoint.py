"""The base of cvat-ext's small stdlib HTTP endpoints (the functions gateway, the sidecar server):
one way to bind (a busy port is one line, not a traceback), one way to answer with a body or JSON,
one way to read a body, and the same bounds for both; request logs at debug level only.

Bounds (:class:`HttpLimits`, set in one place: defaults here, ``CVAT_EXT_HTTP_*`` environment):

* **headers**: the request line and headers must arrive within ``header_timeout_s`` (10 s) in
  total, not per read: a client trickling a byte every few seconds (slowloris) is cut off, and so
  is an idle keep-alive connection; the connection is closed and its thread freed.
* **body**: the whole body within ``body_timeout_s`` (60 s), else 408 and close.
* **Content-Length**: ASCII digits only (``abc``, ``-1``, ``+5`` -> 400); a length above the
  endpoint's limit -> 413 before reading (a 20-digit length is refused at once, never awaited);
  ``Transfer-Encoding`` -> 411 (CVAT always sends a length).
* **JSON depth**: a body that starts with ``[`` or ``{`` and nests deeper than ``max_json_depth``
  (64) -> 400, found by a non-recursive scan (:mod:`cvat_ext.json_depth`) before any parser runs.
* **listen backlog**: ``request_queue_size`` (128; the stdlib's 5 dropped connections in bursts).
* **connections**: at most ``max_connections`` (256) are served at once, one thread each; one more
  is answered 503 with ``Retry-After`` by a short-lived refusal thread (its request read within
  ``header_timeout_s``, so the client reads the answer instead of a reset), and at most
  ``max_connections // 8 + 1`` refusals run at once: beyond that a connection is closed unanswered.
  Threads are bounded however many clients arrive or stall.

Every refusal answers ``{"error": <message>, "field": <field or null>}`` with its 4xx status.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from cvat_ext.errors import ConfigError, HttpInputError
from cvat_ext.json_depth import json_depth

__all__ = ["BoundedHTTPServer", "HttpLimits", "JsonRequestHandler", "bind_server"]

logger = logging.getLogger(__name__)

S = TypeVar("S")

_BIND_PROBLEMS = {
    errno.EADDRINUSE: "is in use (another process listens there: stop it or pick another port)",
    errno.EACCES: "needs privileges to bind (ports below 1024: pick another port)",
    errno.EADDRNOTAVAIL: "is not an address of this machine",
}

ENV_PREFIX = "CVAT_EXT_HTTP_"
#: a refused over-limit body is read and dropped up to this many bytes past the limit, so the client
#: (still sending) reads the 413 instead of a reset; beyond it the connection is simply closed
DRAIN_CAP_BYTES = 8 << 20
_READ_CHUNK = 1 << 20
#: more digits than any body we accept could need (and int() of them stays cheap)
_MAX_LENGTH_DIGITS = 18
_JSON_CONTAINER_START = re.compile(rb"[ \t\r\n]*[\[{]")


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


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds shared by every cvat-ext HTTP endpoint (see the module docstring).

    Each field can be set from the environment as ``CVAT_EXT_HTTP_<FIELD>`` (upper case), e.g.
    ``CVAT_EXT_HTTP_HEADER_TIMEOUT_S=5``.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_json_depth: int = 64
    request_queue_size: int = 128
    max_connections: int = 256

    def __post_init__(self) -> None:
        for item in fields(self):
            if getattr(self, item.name) <= 0:
                raise ConfigError(f"HTTP limits: {item.name} must be > 0, got {getattr(self, item.name)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpLimits:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = env.get(ENV_PREFIX + item.name.upper())
            if raw is None or raw == "":
                continue
            kind = float if item.name.endswith("_s") else int
            try:
                values[item.name] = kind(raw)
            except ValueError as exc:
                raise ConfigError(f"{ENV_PREFIX}{item.name.upper()}={raw!r}: expected a {kind.__name__}") from exc
        return cls(**values)


class BoundedHTTPServer(ThreadingHTTPServer):
    """A threading server with :class:`HttpLimits` (``limits``, default from the environment);
    one daemon thread per connection, at most ``limits.max_connections`` at once (one more gets a
    503), listen backlog ``limits.request_queue_size``."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: Callable[..., BaseHTTPRequestHandler],
        *,
        limits: HttpLimits | None = None,
    ) -> None:
        self.limits = limits or HttpLimits.from_env()
        self.request_queue_size = self.limits.request_queue_size  # read by listen() in server_activate
        self._serving = threading.BoundedSemaphore(self.limits.max_connections)
        self._refusing = threading.BoundedSemaphore(self.limits.max_connections // 8 + 1)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._serving.acquire(blocking=False):
            self._start(self.process_request_thread, self._serving, request, client_address)
        elif self._refusing.acquire(blocking=False):
            self._start(self._refuse_busy, self._refusing, request, client_address)
        else:
            self.shutdown_request(request)  # a flood: no thread, no answer

    def _start(self, target: Callable[[Any, Any], None], slot: threading.BoundedSemaphore, *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            finally:
                slot.release()

        try:
            threading.Thread(target=run, daemon=True).start()
        except BaseException:
            slot.release()
            self.shutdown_request(args[0])
            raise

    def _refuse_busy(self, request: Any, client_address: Any) -> None:
        """503 to one connection over ``max_connections``: read its request head (bounded), answer,
        close."""
        body = json.dumps(
            {"error": f"busy: {self.limits.max_connections} connections in service, retry shortly", "field": None}
        ).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        deadline = time.monotonic() + self.limits.header_timeout_s
        try:
            seen, total = b"", 0
            while b"\r\n\r\n" not in seen and total < 65536:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                request.settimeout(left)
                chunk = request.recv(65536)
                if not chunk:
                    break
                seen, total = seen[-3:] + chunk, total + len(chunk)
            request.settimeout(self.limits.body_timeout_s)
            request.sendall(head.encode("ascii") + body)
        except OSError:
            pass  # the client left or stalled
        finally:
            self.shutdown_request(request)


class _DeadlineReader:
    """The request stream, read against one deadline at a time.

    Each call makes at most one ``recv`` with the socket timeout set to the time left, so the
    deadline holds for a whole request line or body however slowly the bytes arrive.
    """

    def __init__(self, raw: Any, sock: socket.socket) -> None:
        self._raw = raw
        self._sock = sock
        self._deadline = float("inf")
        #: bytes seen since the last answered request, whether the armed deadline passed, whether
        #: the current request was answered
        self.bytes_read = 0
        self.timed_out = False
        self.answered = False

    def arm(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds
        self.timed_out = False

    def next_request(self) -> None:
        """Forget the bytes of an answered request; blank lines the stdlib skipped without an
        answer still count, so a client that sent only those gets its 408 too."""
        if self.answered:
            self.bytes_read = 0
            self.answered = False

    def _before_recv(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            self.timed_out = True
            raise TimeoutError("deadline passed")
        self._sock.settimeout(left)

    def _recv(self, call: Callable[[int], bytes], size: int) -> bytes:
        try:
            data = call(size)
        except TimeoutError:
            self.timed_out = True
            raise
        self.bytes_read += len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        parts: list[bytes] = []
        size = 0
        while limit < 0 or size < limit:
            self._before_recv()
            buffered = self._recv(self._raw.peek, 1)  # at most one recv
            if not buffered:
                break
            room = len(buffered) if limit < 0 else min(len(buffered), limit - size)
            newline = buffered.find(b"\n", 0, room)
            take = newline + 1 if newline >= 0 else room
            parts.append(self._raw.read(take))  # already buffered
            size += take
            if newline >= 0:
                break
        return b"".join(parts)

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        left = n
        while left != 0:
            self._before_recv()
            want = _READ_CHUNK if left < 0 else min(left, _READ_CHUNK)
            chunk = self._recv(self._raw.read1, want)
            if not chunk:
                break
            parts.append(chunk)
            left = left - len(chunk) if left > 0 else left
        return b"".join(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class JsonRequestHandler(BaseHTTPRequestHandler):
    """A request handler with :meth:`send_body` / :meth:`send_json` / :meth:`read_body`; the bounds
    of :class:`HttpLimits` (from a :class:`BoundedHTTPServer`); request lines go to debug logs."""

    rfile: Any

    @property
    def limits(self) -> HttpLimits:
        return getattr(self.server, "limits", None) or _DEFAULT_LIMITS

    def setup(self) -> None:
        super().setup()
        self.rfile = _DeadlineReader(self.rfile, self.connection)

    def handle_one_request(self) -> None:
        # request line + headers within header_timeout_s. The stdlib closes the connection
        # silently on a timeout or a blank request line: a client that sent anything gets an answer
        reader = self.rfile
        reader.next_request()
        reader.arm(self.limits.header_timeout_s)
        super().handle_one_request()
        if reader.bytes_read and not reader.answered and (reader.timed_out or self.close_connection):
            if reader.timed_out:
                self._send_raw(408, "Request Timeout", "request not received in time")
            else:
                self._send_raw(400, "Bad Request", "empty request line")
            self.close_connection = True

    def _send_raw(self, status: int, reason: str, message: str) -> None:
        """An answer written without the stdlib's state (no request line was parsed)."""
        body = json.dumps({"error": message, "field": None}).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            self.connection.settimeout(self.limits.body_timeout_s)
            self.wfile.write(head.encode("ascii") + body)
        except OSError:
            pass  # the client left

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's framing errors, with client mistakes kept in 4xx: an unknown method is 405
        (stdlib 501), an unsupported HTTP version 400 (stdlib 505)."""
        code = {501: 405, 505: 400}.get(code, code)
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            # the stdlib answers a request line it could not parse HTTP/0.9 style, with no status
            # line at all; no client of ours speaks 0.9
            self.request_version = "HTTP/1.1"
            self.close_connection = True
        super().send_error(code, message, explain)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s %s", type(self).__name__, self.address_string(), format % args)

    def send_body(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        """Answer ``status`` with ``body`` and its length."""
        self.rfile.answered = True
        self.connection.settimeout(self.limits.body_timeout_s)  # a client that never reads is cut off too
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, payload: Any) -> None:
        """Answer ``status`` with ``payload`` as JSON (UTF-8)."""
        self.send_body(status, json.dumps(payload).encode("utf-8"))

    def send_refusal(self, exc: HttpInputError) -> None:
        """Answer a refused request: its status and ``{"error", "field"}``."""
        self.send_json(exc.status, {"error": str(exc), "field": exc.field})

    def content_length(self) -> int:
        """The declared body length; anything but one non-negative decimal integer -> 400 (411 for chunked)."""
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            raise HttpInputError(
                "Transfer-Encoding: not accepted, send Content-Length", status=411, field="Transfer-Encoding"
            )
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return 0
        texts = {value.strip() for value in values}
        text = texts.pop()
        if texts or not (text.isascii() and text.isdigit()) or len(text) > _MAX_LENGTH_DIGITS:
            self.close_connection = True  # the body's end is unknown: the connection cannot be reused
            shown = ", ".join(repr(v[:40]) for v in values)
            raise HttpInputError(
                f"Content-Length: expected one non-negative integer, got {shown}", field="Content-Length"
            )
        return int(text)

    def read_body(self, limit: int) -> bytes:
        """The request body (at most ``limit`` bytes), read within ``body_timeout_s``.

        Raises :class:`HttpInputError`: 400 bad ``Content-Length``, cut-off body or JSON nested
        deeper than ``max_json_depth``; 411 chunked; 413 over ``limit``; 408 too slow.
        """
        length = self.content_length()
        self.rfile.arm(self.limits.body_timeout_s)
        if length > limit:
            self._drop_body(length, limit)
            raise HttpInputError(f"body: {length} bytes, limit {limit}", status=413, field="body")
        try:
            body = self.rfile.read(length)
        except TimeoutError as exc:
            self.close_connection = True
            raise HttpInputError(
                f"body: not received within {self.limits.body_timeout_s:g} s", status=408, field="body"
            ) from exc
        if len(body) < length:
            self.close_connection = True
            raise HttpInputError(f"body: {len(body)} of {length} bytes received", field="body")
        self._check_json_depth(body)
        return body

    def discard_body(self) -> None:
        """Read and drop the body of a request answered without it (e.g. 404), within the bounds."""
        try:
            length = self.content_length()
        except HttpInputError:
            return  # content_length() marked the connection to close
        self.rfile.arm(self.limits.body_timeout_s)
        self._drop_body(length, 0)

    def _drop_body(self, length: int, limit: int) -> None:
        if length - limit > DRAIN_CAP_BYTES:
            self.close_connection = True
            return
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(_READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
        except (TimeoutError, OSError):
            self.close_connection = True
        if remaining:
            self.close_connection = True

    def _check_json_depth(self, body: bytes) -> None:
        if _JSON_CONTAINER_START.match(body) is None:
            return  # not a JSON array or object: no parser will recurse into it
        limit = self.limits.max_json_depth
        if json_depth(body, stop_above=limit) > limit:
            raise HttpInputError(f"body: JSON nested deeper than {limit} levels", field="body")


_DEFAULT_LIMITS = HttpLimits()
