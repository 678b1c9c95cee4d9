"""The sidecar's HTTP server (``/webhooks/cvat``, ``/healthz``) under the shared HTTP bounds, set
from the environment as in production."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.server import SidecarHttpServer
from cvat_ext.sidecar.state import open_store
from cvat_ext.sidecar.webhooks import MAX_BODY_BYTES, WebhookReceiver
from tests.http_clients import closed_within, exchange, post


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SidecarHttpServer]:
    monkeypatch.setenv("CVAT_EXT_HTTP_HEADER_TIMEOUT_S", "0.4")
    monkeypatch.setenv("CVAT_EXT_HTTP_BODY_TIMEOUT_S", "0.4")
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        receiver = WebhookReceiver("secret", store)
        metrics = SidecarMetrics()
        with SidecarHttpServer("127.0.0.1", 0, metrics=metrics, health=lambda: (True, {}), webhooks=receiver) as srv:
            yield srv


@pytest.mark.parametrize(
    ("body", "length", "status", "field"),
    [
        (b"{}", "abc", 400, "Content-Length"),
        (b"{}", "-1", 400, "Content-Length"),
        (b"", "12345678901234567890", 400, "Content-Length"),
        (b"", str(MAX_BODY_BYTES + 1), 413, "body"),
        (b"[" * 100_000, None, 400, "body"),  # refused before the signature check and any parser
    ],
)
def test_bad_framing_gets_a_4xx(
    server: SidecarHttpServer, body: bytes, length: str | None, status: int, field: str
) -> None:
    got, answer, _ = exchange(server.port, post("/webhooks/cvat", body, length=length))
    assert (got, answer["field"]) == (status, field), answer


def test_unsigned_delivery_still_401(server: SidecarHttpServer) -> None:
    got, _, _ = exchange(server.port, post("/webhooks/cvat", b'{"event": "ping"}'))
    assert got == 401


def test_slow_clients_hold_no_thread_and_healthz_answers(server: SidecarHttpServer) -> None:
    results: list[float | None] = []

    def slow() -> None:
        results.append(
            closed_within(server.port, b"POST /webhooks/cvat HTTP/1.1\r\n", drip=b"X", every_s=0.1, wait_s=5)
        )

    before = set(threading.enumerate())
    threads = [threading.Thread(target=slow) for _ in range(20)]
    for thread in threads:
        thread.start()
    got, answer, _ = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    for thread in threads:
        thread.join(10)
    assert (got, answer["ok"]) == (200, True)
    assert len(results) == 20 and all(r is not None and r < 2 for r in results)
    # every slow connection's server thread ends (it closed the socket the client saw close)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _request_threads(before):
        time.sleep(0.05)
    assert _request_threads(before) == []


def _request_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and "process_request" in t.name and t.is_alive()]
