"""The function gateway (``cvat-ext functions serve``) under the shared HTTP bounds, set from the
environment as in production, on both its dashboard and its direct per-function port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cvat_ext.functions.dev.gateway import FunctionGateway
from tests.http_clients import closed_within, exchange, post

REPO = Path(__file__).resolve().parents[2]
INVOKE = {"x-nuclio-function-name": "opencv-people-face", "x-nuclio-path": "/"}


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[FunctionGateway]:
    monkeypatch.setenv("CVAT_EXT_HTTP_HEADER_TIMEOUT_S", "0.4")
    monkeypatch.setenv("CVAT_EXT_HTTP_BODY_TIMEOUT_S", "0.4")
    with FunctionGateway([REPO / "serverless" / "opencv"]) as gw:
        yield gw


def _ports(gateway: FunctionGateway) -> list[tuple[int, str, dict[str, str]]]:
    (fn,) = gateway.functions.values()
    return [(gateway.port, "/api/function_invocations", INVOKE), (fn.http_port, "/", {})]


@pytest.mark.parametrize(
    ("body", "length", "status", "field"),
    [
        (b"{}", "abc", 400, "Content-Length"),
        (b"{}", "-1", 400, "Content-Length"),
        (b"", "12345678901234567890", 400, "Content-Length"),
        (b"", "9" * 15, 413, "body"),
        (b"[" * 100_000, None, 400, "body"),
    ],
)
def test_bad_framing_gets_a_4xx_on_every_port(
    gateway: FunctionGateway, body: bytes, length: str | None, status: int, field: str
) -> None:
    for port, path, headers in _ports(gateway):
        got, answer, _ = exchange(port, post(path, body, headers=headers, length=length))
        assert (got, answer["field"]) == (status, field), (port, answer)


def test_slow_clients_hold_no_connection(gateway: FunctionGateway) -> None:
    for port, path, headers in _ports(gateway):
        slow_headers = closed_within(port, f"POST {path} HTTP/1.1\r\n".encode(), drip=b"X", every_s=0.1, wait_s=5)
        slow_body = closed_within(
            port, post(path, b"", headers=headers, length="5000"), drip=b"[", every_s=0.1, wait_s=5
        )
        assert slow_headers is not None and slow_headers < 2
        assert slow_body is not None and slow_body < 2


def test_listen_backlog_comes_from_the_shared_limits(gateway: FunctionGateway) -> None:
    assert {server.request_queue_size for server in gateway._servers} == {128}


def test_a_bad_limit_fails_before_any_function_loads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped ``CVAT_EXT_HTTP_*`` stops ``functions serve`` at once, not after every model has
    loaded (minutes for SAM on a CPU): the gateway reads its limits before the yamls."""
    import cvat_ext.functions.dev.gateway as gateway_module
    from cvat_ext import cli

    loaded: list[Path] = []
    real_load = gateway_module.load_function
    monkeypatch.setattr(
        gateway_module, "load_function", lambda path, **kw: loaded.append(path) or real_load(path, **kw)
    )
    monkeypatch.setenv("CVAT_EXT_HTTP_MAX_CONNECTIONS", "many")
    assert cli.main(["functions", "serve", "--root", str(REPO / "serverless" / "opencv"), "--port", "0"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "CVAT_EXT_HTTP_MAX_CONNECTIONS" in line, line
    assert loaded == []
