"""The shared HTTP base: every bound once, on a minimal echo endpoint over real sockets.

The gateway and the sidecar server each get their own check (tests/functions/test_gateway_bounds.py,
tests/sidecar/test_server_bounds.py). Timeouts are set to fractions of a second here.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from cvat_ext.errors import ConfigError, HttpInputError
from cvat_ext.http_endpoint import BoundedHTTPServer, HttpLimits, JsonRequestHandler
from tests.http_clients import closed_within, exchange, post, read_answer

LIMIT = 200_000
FAST = HttpLimits(header_timeout_s=0.4, body_timeout_s=0.4, max_json_depth=8)


class Echo(JsonRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        try:
            body = self.read_body(LIMIT)
        except HttpInputError as exc:
            self.send_refusal(exc)
            return
        self.send_json(200, {"bytes": len(body)})


@pytest.fixture
def server() -> Iterator[BoundedHTTPServer]:
    srv = BoundedHTTPServer(("127.0.0.1", 0), Echo, limits=FAST)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (post("/", b"{}"), 200, None),
        (post("/", b"{}", length="abc"), 400, "Content-Length"),
        (post("/", b"{}", length="-1"), 400, "Content-Length"),
        (post("/", b"{}", length="+2"), 400, "Content-Length"),
        (post("/", b"{}", length="12345678901234567890"), 400, "Content-Length"),
        (post("/", b"{}", headers={"Content-Length": "3"}), 400, "Content-Length"),  # two different lengths
        (post("/", b"", length="999999999999"), 413, "body"),  # refused before reading: never awaited
        (post("/", b"x" * (LIMIT + 1)), 413, "body"),
        (post("/", b"[" * 9 + b"]" * 9), 400, "body"),
        (post("/", b"  \n" + b"{" * 100_000), 400, "body"),
        (post("/", b"[" * 8 + b"]" * 8), 200, None),
        (post("/", b'"' + b"[" * 900 + b'"'), 200, None),  # brackets in a string are no nesting
        (post("/", b"{}", headers={"Transfer-Encoding": "chunked"}), 411, "Transfer-Encoding"),
        (post("/", b"{", length="10"), 408, "body"),  # 1 of 10 bytes, then silence
    ],
)
def test_requests_get_one_clear_answer(server: BoundedHTTPServer, raw: bytes, status: int, field: str | None) -> None:
    got, body, elapsed = exchange(server.server_address[1], raw)
    assert got == status, body
    assert body["field"] == field if status != 200 else body["bytes"] >= 2
    assert elapsed < 3


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\n", 408),  # headers never finished: answered, then closed
        (b"\r\n\r\n", 400),  # a blank request line (the stdlib closes without an answer)
        (b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 405),  # stdlib: 501
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400),  # stdlib: 505
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    ],
)
def test_framing_errors_stay_4xx(server: BoundedHTTPServer, raw: bytes, status: int) -> None:
    assert exchange(server.server_address[1], raw)[0] == status


def test_slowloris_headers_are_cut_off(server: BoundedHTTPServer) -> None:
    # one header byte every 0.1 s: each read is quick, the total is not
    elapsed = closed_within(server.server_address[1], b"POST / HTTP/1.1\r\n", drip=b"X", every_s=0.1, wait_s=5)
    assert elapsed is not None and elapsed < 2


def test_slow_body_is_cut_off_with_408(server: BoundedHTTPServer) -> None:
    elapsed = closed_within(server.server_address[1], post("/", b"", length="900"), drip=b"1", every_s=0.1, wait_s=5)
    assert elapsed is not None and elapsed < 2


def test_idle_keep_alive_connection_is_closed(server: BoundedHTTPServer) -> None:
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        sock.sendall(post("/", b"{}"))
        assert read_answer(sock, time.monotonic(), 5)[0] == 200
        sock.settimeout(3)
        assert sock.recv(65536) == b""  # closed by the server after header_timeout_s


def test_keep_alive_serves_several_requests(server: BoundedHTTPServer) -> None:
    with socket.create_connection(server.server_address[:2], timeout=5) as sock:
        for _ in range(3):
            sock.sendall(post("/", b"[1]"))
            assert read_answer(sock, time.monotonic(), 5)[:2] == (200, {"bytes": 3})


def test_listen_backlog_takes_a_burst_before_accepting() -> None:
    # nothing accepts yet: with the stdlib's backlog of 5 the kernel drops what overflows the accept
    # queue (connect() times out, or succeeds and the handshake's last ACK is what gets dropped)
    srv = BoundedHTTPServer(("127.0.0.1", 0), Echo, limits=HttpLimits(request_queue_size=128))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    socks: list[socket.socket] = []
    try:
        for _ in range(100):
            socks.append(socket.create_connection(srv.server_address[:2], timeout=0.5))
        thread.start()
        for sock in socks:
            sock.sendall(post("/", b"{}"))
        t0 = time.monotonic()  # one deadline for all: a dropped connection fails fast, not 100 x 5 s
        answered = [read_answer(sock, t0, 8)[0] for sock in socks]
        assert answered == [200] * len(socks)
    finally:
        for sock in socks:
            sock.close()
        if thread.is_alive():
            srv.shutdown()
        srv.server_close()


def _serve(limits: HttpLimits) -> tuple[BoundedHTTPServer, threading.Thread]:
    srv = BoundedHTTPServer(("127.0.0.1", 0), Echo, limits=limits)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    return srv, thread


def _closed(sock: socket.socket, wait_s: float) -> bool:
    """Whether the server closed ``sock`` (without a word) within ``wait_s``."""
    sock.settimeout(wait_s)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _stop(srv: BoundedHTTPServer) -> None:
    srv.shutdown()
    srv.server_close()


def test_connection_over_the_cap_gets_503_then_service_resumes() -> None:
    srv, _ = _serve(HttpLimits(header_timeout_s=3, max_connections=2))
    port = srv.server_address[1]
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.2)  # both accepted and holding their threads, silent
        status, payload, _ = exchange(port, post("/", b"{}"))
        assert status == 503
        assert "2 connections" in payload["error"] and payload["field"] is None
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 5
        while (answer := exchange(port, post("/", b"{}"))[0]) != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answer == 200
    finally:
        for sock in idle:
            sock.close()
        _stop(srv)


def test_a_flood_of_silent_connections_keeps_threads_bounded() -> None:
    # cap 8: 8 serving + 2 refusing threads at most, however many connect and say nothing
    srv, _ = _serve(HttpLimits(header_timeout_s=2, max_connections=8))
    before = threading.active_count()
    socks = [socket.create_connection(srv.server_address[:2], timeout=5) for _ in range(60)]
    try:
        time.sleep(0.5)
        assert threading.active_count() - before <= 8 + 8 // 8 + 1
        closed = sum(_closed(sock, 1.0) for sock in socks[-20:])
        assert closed == 20  # the ones past both caps were closed at once, not parked
    finally:
        for sock in socks:
            sock.close()
        _stop(srv)


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"CVAT_EXT_HTTP_HEADER_TIMEOUT_S": "soon"}, "expected a float"),
        ({"CVAT_EXT_HTTP_MAX_JSON_DEPTH": "0"}, "max_json_depth must be > 0"),
        ({"CVAT_EXT_HTTP_REQUEST_QUEUE_SIZE": "1.5"}, "expected a int"),
    ],
)
def test_limits_from_env_errors(env: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        HttpLimits.from_env(env)


def test_limits_from_env() -> None:
    limits = HttpLimits.from_env({"CVAT_EXT_HTTP_BODY_TIMEOUT_S": "5", "CVAT_EXT_HTTP_REQUEST_QUEUE_SIZE": "512"})
    assert (limits.body_timeout_s, limits.request_queue_size, limits.header_timeout_s) == (5.0, 512, 10.0)
