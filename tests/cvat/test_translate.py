"""Every cvat_sdk / urllib3 / requests exception lands in the cvat_ext.errors tree."""

from __future__ import annotations

import inspect
import random
import socket
from datetime import UTC, datetime

import pytest
import requests
import urllib3.exceptions
from cvat_sdk.api_client import exceptions as api_exc
from cvat_sdk.core import exceptions as core_exc

from cvat_ext.cvat.records import RetryPolicy
from cvat_ext.cvat.retry import Failure, backoff_delay_s, is_retryable, parse_retry_after
from cvat_ext.cvat.translate import Call, body_excerpt, classify, translate
from cvat_ext.errors import (
    ConfigError,
    CvatConnectionError,
    CvatError,
    CvatNotFoundError,
    CvatServerError,
    CvatVersionError,
)

CALL = Call("job 812", "GET", "/api/jobs/812")


def _sdk_exception_types() -> list[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for module in (api_exc, core_exc):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__.startswith("cvat_sdk"):
                found.add(obj)
    return sorted(found, key=lambda t: t.__qualname__)


def _instantiate(exc_type: type[BaseException]) -> BaseException:
    if issubclass(exc_type, api_exc.ApiException):
        return exc_type(status=0, reason="synthetic")
    return exc_type("synthetic problem")


def test_sdk_exception_list_is_complete():
    names = {t.__name__ for t in _sdk_exception_types()}
    assert {"ApiException", "NotFoundException", "ServiceException", "ApiTypeError", "CvatSdkException"} <= names


@pytest.mark.parametrize("exc_type", _sdk_exception_types(), ids=lambda t: t.__name__)
def test_every_sdk_exception_maps_into_tree(exc_type: type[BaseException]):
    err = translate(_instantiate(exc_type), CALL, base_url="http://cvat:8080")
    assert isinstance(err, CvatError)
    assert "job 812" in str(err) and "GET /api/jobs/812" in str(err)


def test_version_exception_maps_to_version_error():
    assert isinstance(translate(core_exc.IncompatibleVersionException("old"), CALL), CvatVersionError)


class _FakeResp:
    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.reason = "x"
        self.data = body
        self.headers = headers


@pytest.mark.parametrize(
    "status, expected",
    [(404, CvatNotFoundError), (503, CvatServerError)],
)
def test_status_exceptions(status: int, expected: type[CvatError]):
    exc = api_exc.ApiException(http_resp=_FakeResp(status, b'{"detail": "nope"}', {"Retry-After": "3"}))
    err = translate(exc, CALL)
    assert isinstance(err, expected)
    assert str(err).startswith(f"job 812: GET /api/jobs/812 -> {status} ")
    assert err.body == "nope" and err.retry_after_s == 3.0  # type: ignore[attr-defined]


def _pool() -> urllib3.HTTPConnectionPool:
    return urllib3.HTTPConnectionPool("cvat", 8080)


NETWORK_CASES: list[tuple[BaseException, Failure]] = [
    (
        urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused"),
        Failure.NOT_SENT,
    ),
    (urllib3.exceptions.ConnectTimeoutError(None, "connect timeout"), Failure.NOT_SENT),
    (urllib3.exceptions.NameResolutionError("cvat", None, socket.gaierror("no host")), Failure.NOT_SENT),
    (urllib3.exceptions.ReadTimeoutError(_pool(), "/api/jobs", "read timed out"), Failure.DROPPED),
    (urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")), Failure.DROPPED),
    (
        urllib3.exceptions.MaxRetryError(_pool(), "/api/jobs", urllib3.exceptions.ConnectTimeoutError()),
        Failure.NOT_SENT,
    ),
    (urllib3.exceptions.SSLError("bad cert"), Failure.FINAL),
    (requests.ConnectionError("refused"), Failure.DROPPED),
    (requests.ConnectTimeout("slow"), Failure.NOT_SENT),
    (requests.ReadTimeout("slow"), Failure.DROPPED),
    (ConnectionRefusedError(111, "refused"), Failure.NOT_SENT),
    (ConnectionResetError(104, "reset"), Failure.DROPPED),
    (TimeoutError("timed out"), Failure.DROPPED),
    (api_exc.ApiException(status=0, reason="SSLError: certificate verify failed"), Failure.FINAL),
]


@pytest.mark.parametrize("exc, failure", NETWORK_CASES, ids=lambda v: type(v).__name__)
def test_network_failures(exc: BaseException, failure: Failure):
    assert classify(exc) is failure
    err = translate(exc, CALL, base_url="http://cvat:8080", attempts_note="after 5 attempts over 12.3 s")
    assert isinstance(err, CvatConnectionError)
    assert str(err).startswith("CVAT at http://cvat:8080 unreachable after 5 attempts over 12.3 s: job 812: GET")


def test_requests_http_error_with_response():
    response = requests.Response()
    response.status_code = 404
    response._content = b'{"detail": "No Task matches the given query."}'
    err = translate(requests.HTTPError(response=response), Call("task 52", "GET", "/api/tasks/52"))
    assert isinstance(err, CvatNotFoundError)
    assert str(err) == "task 52: GET /api/tasks/52 -> 404 Not Found: No Task matches the given query."


def test_our_errors_pass_through():
    original = ConfigError("bad")
    assert translate(original, CALL) is original


@pytest.mark.parametrize(
    "method, failure, retry",
    [
        ("GET", Failure.SERVER_ERROR, True),
        ("PUT", Failure.DROPPED, True),
        ("DELETE", Failure.SERVER_ERROR, True),
        ("POST", Failure.SERVER_ERROR, False),
        ("PATCH", Failure.DROPPED, False),
        ("POST", Failure.NOT_SENT, True),
        ("PATCH", Failure.THROTTLED, True),
        ("GET", Failure.FINAL, False),
    ],
)
def test_retry_table(method: str, failure: Failure, retry: bool):
    assert is_retryable(method, failure) is retry


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=4.0, jitter=0.0)
    rng = random.Random(1)
    assert [backoff_delay_s(policy, n, rng) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    jittered = RetryPolicy(base_delay_s=1.0, max_delay_s=10.0, jitter=0.5)
    delays = [backoff_delay_s(jittered, 3, rng) for _ in range(200)]
    assert min(delays) >= 2.0 and max(delays) <= 4.0 and max(delays) - min(delays) > 1.0


@pytest.mark.parametrize(
    "value, expected",
    [
        ("5", 5.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Mon, 23 Nov 2026 00:00:30 GMT", 30.0),
        ("Mon, 23 Nov 2026 00:00:00 GMT", 0.0),
        ("Sun, 22 Nov 2026 23:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None):
    assert parse_retry_after(value, now=datetime(2026, 11, 23, tzinfo=UTC)) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"detail": "No Job matches the given query."}', "No Job matches the given query."),
        (
            '["Quality reports require a Ground Truth job", "second"]',
            "Quality reports require a Ground Truth job; second",
        ),
        ('{"position": ["too short"]}', '{"position":["too short"]}'),
        ("<html>\n  <b>oops</b>\n</html>", "<html> <b>oops</b> </html>"),
        ("x" * 1000, "x" * 297 + "..."),
    ],
)
def test_body_excerpt(text: str, expected: str):
    assert body_excerpt(text) == expected


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"jitter": 1.5}, {"budget_s": -1.0}],
)
def test_bad_retry_policy(kwargs: dict[str, float]):
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
