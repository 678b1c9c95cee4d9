"""A fault-injecting HTTP proxy for loopback tests: client -> proxy -> upstream (the CVAT stand-in).

Unlike the stand-in's own fault rules (which fail a request *instead of* handling it), the proxy
can fail a request *after* the upstream handled it, which is what makes writes ambiguous:

==============  =====================================================================================
kind            what the client sees / what reaches the upstream
==============  =====================================================================================
``502``         502 Bad Gateway; nothing forwarded
``503``         503 Service Unavailable; nothing forwarded
``429``         429 with ``Retry-After: <retry_after_s>``; nothing forwarded
``reset``       the connection closed without an answer; nothing forwarded
``stall``       no answer for ``stall_s`` (past the client's timeout), then closed; nothing forwarded
``post_502``    (writes only) forwarded and handled upstream, then 502 to the client
``post_reset``  (writes only) forwarded and handled upstream, then the connection closed
``late``        (writes only) held past the client's timeout, then forwarded: the write lands after
                the client gave up (``late_s`` seconds later, or when :meth:`FaultProxy.release_late`
                is called for a gated proxy)
==============  =====================================================================================

Faults come from scripted rules (:meth:`FaultProxy.script`, checked first, in order) and from a
seeded random draw at ``rate`` (the kind drawn uniformly among ``kinds`` that apply to the method);
``write_rate``, when given, replaces ``rate`` for writes (POST, PATCH, PUT, DELETE), which then get
only the write kinds: a stress mix for late and ambiguous writes. With one client thread the
sequence of faults is reproducible for a seed.

Bounded: loopback only, at most ``max_connections`` handled at once (more wait in the listen
backlog), request bodies up to ``MAX_BODY_BYTES``, every socket read with a timeout, stalls and late
forwards capped at ``MAX_HOLD_S``. Every request is logged in :attr:`FaultProxy.log`.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

MAX_BODY_BYTES = 64 << 20
MAX_HOLD_S = 30.0
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
PLAIN_KINDS = ("502", "503", "429", "reset", "stall")
WRITE_KINDS = ("post_502", "post_reset", "late")
ALL_KINDS = PLAIN_KINDS + WRITE_KINDS
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
)


@dataclass
class ScriptedFault:
    """Fail the next ``times`` requests whose method (None = any) and path (``re.search``) match."""

    method: str | None
    path_regex: re.Pattern[str]
    kind: str
    times: int
    fired: int = 0


@dataclass(frozen=True)
class ProxyEntry:
    method: str
    path: str
    fault: str | None  # None: forwarded untouched
    upstream_status: int | None  # None: not forwarded (yet, for a late write)


class FaultProxy:
    """Start with ``with FaultProxy(upstream_url, ...) as proxy:``; point the client at ``proxy.url``."""

    def __init__(
        self,
        upstream_url: str,
        *,
        rate: float = 0.0,
        seed: int = 0,
        kinds: tuple[str, ...] = ALL_KINDS,
        retry_after_s: float = 0.0,
        stall_s: float = 1.0,
        late_s: float = 1.0,
        gate_late: bool = False,
        write_rate: float | None = None,
        max_connections: int = 32,
    ) -> None:
        unknown = sorted(set(kinds) - set(ALL_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; expected some of {ALL_KINDS}")
        if not 0.0 <= rate <= 1.0 or not 0.0 <= (write_rate or 0.0) <= 1.0:
            raise ValueError(f"rate {rate} / write_rate {write_rate} outside [0, 1]")
        if not (0 <= stall_s <= MAX_HOLD_S and 0 <= late_s <= MAX_HOLD_S):
            raise ValueError(f"stall_s and late_s must lie in [0, {MAX_HOLD_S}]")
        up = urlsplit(upstream_url)
        if up.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"upstream {upstream_url!r} is not on loopback: the proxy is a test utility")
        self.upstream = (up.hostname, up.port or 80)
        self.rate = rate
        self.write_rate = write_rate
        self.kinds = kinds
        self.retry_after_s = retry_after_s
        self.stall_s = stall_s
        self.late_s = late_s
        self.gate_late = gate_late
        self.log: list[ProxyEntry] = []
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._scripted: list[ScriptedFault] = []
        self._slots = threading.BoundedSemaphore(max_connections)
        self._late_gate = threading.Event()
        self._late_threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self.release_late()
        self.drain()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control -------------------------------------------------------------------------------
    def script(self, method: str | None, path_regex: str, kind: str, *, times: int = 1) -> ScriptedFault:
        if kind not in ALL_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {ALL_KINDS}")
        rule = ScriptedFault(method.upper() if method else None, re.compile(path_regex), kind, times)
        with self._lock:
            self._scripted.append(rule)
        return rule

    def release_late(self) -> None:
        """Let gated late writes through now."""
        self._late_gate.set()

    def drain(self, timeout_s: float = MAX_HOLD_S + 5) -> int:
        """Wait until every held late write was forwarded; returns how many there were."""
        with self._lock:
            threads = list(self._late_threads)
        for t in threads:
            t.join(timeout=timeout_s)
        return len(threads)

    def entries(self, fault: str | None = None) -> list[ProxyEntry]:
        with self._lock:
            return [e for e in self.log if fault is None or e.fault == fault]

    # --- decisions -----------------------------------------------------------------------------
    def _choose(self, method: str, path: str) -> str | None:
        with self._lock:
            for rule in self._scripted:
                if rule.fired < rule.times and rule.method in (None, method) and rule.path_regex.search(path):
                    rule.fired += 1
                    return rule.kind
            # one draw per request whatever happens, so the sequence depends only on the seed
            roll, pick = self._rng.random(), self._rng.random()
            stress = self.write_rate is not None and method in WRITE_METHODS
            rate = self.write_rate if stress and self.write_rate is not None else self.rate
            if rate <= 0 or roll >= rate:
                return None
            if stress:
                usable = [k for k in self.kinds if k in WRITE_KINDS]
            else:
                usable = [k for k in self.kinds if k in PLAIN_KINDS or method in WRITE_METHODS]
            return usable[int(pick * len(usable))] if usable else None

    def _record(self, entry: ProxyEntry) -> None:
        with self._lock:
            self.log.append(entry)
            self.counts[entry.fault or "forwarded"] += 1

    # --- forwarding ----------------------------------------------------------------------------
    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, Any, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=MAX_HOLD_S)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.putheader("Connection", "close")
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _late(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> None:
        def run() -> None:
            if self.gate_late:
                self._late_gate.wait(MAX_HOLD_S)
            else:
                self._closing.wait(self.late_s)
            try:
                status, _, _ = self._forward(method, path, headers, body)
            except OSError:
                status = 0
            self._record(ProxyEntry(method, path, "late:landed", status))

        t = threading.Thread(target=run, name="fault-proxy-late", daemon=True)
        with self._lock:
            self._late_threads.append(t)
        t.start()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10.0  # socket reads: a silent client cannot hold a thread for ever

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    self.wfile.write(body)
                self.close_connection = True

            def _serve(self) -> None:
                if not proxy._slots.acquire(timeout=MAX_HOLD_S):
                    self._answer(503, [("Content-Type", "application/json")], b'{"detail": "proxy busy"}')
                    return
                try:
                    self._serve_slot()
                finally:
                    proxy._slots.release()

            def _serve_slot(self) -> None:
                method, path = self.command, self.path
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= MAX_BODY_BYTES:
                    self._answer(400, [("Content-Type", "application/json")], b'{"detail": "bad Content-Length"}')
                    return
                body = self.rfile.read(length) if length else b""
                headers = list(self.headers.items())
                kind = proxy._choose(method, path.split("?", 1)[0])
                json_type = [("Content-Type", "application/json")]
                if kind in ("502", "503"):
                    proxy._record(ProxyEntry(method, path, kind, None))
                    self._answer(int(kind), json_type, b'{"detail": "injected by the fault proxy"}')
                elif kind == "429":
                    proxy._record(ProxyEntry(method, path, kind, None))
                    retry = [*json_type, ("Retry-After", f"{proxy.retry_after_s:g}")]
                    self._answer(429, retry, b'{"detail": "Request was throttled."}')
                elif kind == "reset":
                    proxy._record(ProxyEntry(method, path, kind, None))
                    self._drop()
                elif kind == "stall":
                    proxy._record(ProxyEntry(method, path, kind, None))
                    proxy._closing.wait(proxy.stall_s)
                    self._drop()
                elif kind == "late":
                    proxy._record(ProxyEntry(method, path, kind, None))
                    proxy._late(method, path, headers, body)
                    proxy._closing.wait(proxy.stall_s)  # the client gives up meanwhile
                    self._drop()
                else:
                    status, up_headers, data = proxy._forward(method, path, headers, body)
                    proxy._record(ProxyEntry(method, path, kind, status))
                    if kind == "post_502":
                        self._answer(502, json_type, b'{"detail": "injected by the fault proxy after forwarding"}')
                    elif kind == "post_reset":
                        self._drop()
                    else:
                        self._answer(status, up_headers, data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _serve

        return Handler
