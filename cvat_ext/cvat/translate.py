"""The one place where cvat_sdk / urllib3 / requests exceptions become cvat-ext errors.

:func:`classify` says how an attempt failed (for the retry loop); :func:`translate` builds the
:class:`~cvat_ext.errors.CvatError` that leaves the client, with a message naming the object, the
call and the status, e.g. ``job 812: GET /api/jobs/812 -> 404 Not Found: No Job matches the
given query.``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import requests
import urllib3.exceptions
from cvat_sdk.api_client import exceptions as api_exc
from cvat_sdk.core import exceptions as core_exc

from cvat_ext.cvat.retry import Failure, classify_status, parse_retry_after
from cvat_ext.errors import CvatConnectionError, CvatError, CvatExtError, CvatVersionError, http_error_class

BODY_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class Call:
    """What was being done: ``what`` names the object ("job 812"), method and concrete path."""

    what: str
    method: str
    path: str

    def __str__(self) -> str:
        prefix = f"{self.what}: " if self.what else ""
        return f"{prefix}{self.method} {self.path}"


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, api_exc.ApiException):
        status = exc.status
        return int(status) if isinstance(status, int) and status > 0 else None
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return int(exc.response.status_code)
    return None


def _headers_of(exc: BaseException) -> Any:
    if isinstance(exc, api_exc.ApiException):
        return exc.headers
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.headers
    return None


def _body_text(exc: BaseException) -> str:
    body: Any = None
    if isinstance(exc, api_exc.ApiException):
        body = exc.body
    elif isinstance(exc, requests.HTTPError) and exc.response is not None:
        body = exc.response.text
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return body or ""


def body_excerpt(text: str) -> str:
    """A short, single-line excerpt of an error body (CVAT's ``detail`` when it sent one)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("detail"), str):
        text = parsed["detail"]
    elif isinstance(parsed, list) and parsed and all(isinstance(p, str) for p in parsed):
        text = "; ".join(parsed)
    elif parsed is not None:
        text = json.dumps(parsed, separators=(",", ":"))
    text = " ".join(text.split())
    if len(text) > BODY_EXCERPT_CHARS:
        text = text[: BODY_EXCERPT_CHARS - 3] + "..."
    return text


def _root_cause(exc: BaseException) -> BaseException:
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return exc.reason
    return exc


def classify(exc: BaseException) -> Failure:
    """How an attempt failed: decides whether the retry loop may repeat it."""
    status = _status_of(exc)
    if status is not None:
        return classify_status(status)
    exc = _root_cause(exc)
    # NewConnectionError subclasses ConnectTimeoutError: both mean the TCP connection never opened
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError | requests.ConnectTimeout | ConnectionRefusedError):
        return Failure.NOT_SENT
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return Failure.NOT_SENT
    if isinstance(
        exc,
        urllib3.exceptions.ReadTimeoutError
        | urllib3.exceptions.ProtocolError
        | urllib3.exceptions.TimeoutError
        | requests.ConnectionError
        | requests.Timeout
        | ConnectionError
        | TimeoutError,
    ):
        return Failure.DROPPED
    return Failure.FINAL


def is_connection_failure(exc: BaseException) -> bool:
    """True for failures without an HTTP status (network, TLS, timeouts)."""
    if _status_of(exc) is not None:
        return False
    exc = _root_cause(exc)
    if isinstance(exc, api_exc.ApiException):
        return True  # status 0: TLS failure reported by the generated REST layer
    return isinstance(
        exc, urllib3.exceptions.HTTPError | requests.RequestException | OSError | TimeoutError | ConnectionError
    )


def describe_connection_failure(exc: BaseException) -> str:
    """One line for a network failure, without urllib3's object reprs."""
    exc = _root_cause(exc)
    if isinstance(exc, api_exc.ApiException):
        return " ".join(str(exc.reason or "TLS error").split())
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return f"connection failed ({str(exc).rsplit(': ', 1)[-1]})"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "connect timed out"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "read timed out"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        inner = exc.args[1] if len(exc.args) > 1 else exc
        return f"connection dropped ({type(inner).__name__}: {inner})"
    return f"{type(exc).__name__}: {exc}"


def connection_failure_kind(exc: BaseException) -> str:
    """``connection refused`` / ``timed out`` / ``connection dropped`` / ``not connected``: what
    an operator needs to tell a CVAT that is down from one that is slow or restarting."""
    root = _root_cause(exc)
    if isinstance(root, api_exc.ApiException):
        return "TLS failure"
    if isinstance(root, urllib3.exceptions.NameResolutionError):
        return "name not resolved"
    if isinstance(root, urllib3.exceptions.NewConnectionError):
        return "connection refused" if "refused" in str(root).lower() else "not connected"
    if isinstance(root, ConnectionRefusedError):
        return "connection refused"
    if isinstance(
        root,
        urllib3.exceptions.ConnectTimeoutError
        | urllib3.exceptions.ReadTimeoutError
        | urllib3.exceptions.TimeoutError
        | requests.Timeout
        | TimeoutError,
    ):
        return "timed out"
    return "connection dropped"


def translate(
    exc: BaseException, call: Call, *, base_url: str = "", attempts_note: str = "", hint: str = ""
) -> CvatExtError:
    """The cvat-ext error for ``exc`` raised while doing ``call``.

    ``attempts_note`` (e.g. ``"after 5 attempts over 12.3 s"``) and ``hint`` go into the message.
    """
    if isinstance(exc, CvatExtError):
        return exc
    note = f" ({attempts_note})" if attempts_note else ""
    if hint:
        note += f"; {hint}"
    status = _status_of(exc)
    if status is not None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = str(getattr(exc, "reason", "") or "")
        excerpt = body_excerpt(_body_text(exc))
        headers = _headers_of(exc)
        retry_after = parse_retry_after(headers.get("Retry-After")) if headers is not None else None
        message = f"{call} -> {status} {reason}".rstrip()
        if excerpt:
            message += f": {excerpt}"
        return http_error_class(status)(
            message + note,
            status=status,
            method=call.method,
            path=call.path,
            body=excerpt,
            retry_after_s=retry_after,
        )
    if is_connection_failure(exc):
        where = f"CVAT at {base_url}" if base_url else "CVAT"
        head = f"{where} unreachable {attempts_note}" if attempts_note else f"{where} failed"
        tail = f"; {hint}" if hint else ""
        return CvatConnectionError(
            f"{head}: {call}: {describe_connection_failure(exc)}{tail}", failure=connection_failure_kind(exc)
        )
    if isinstance(exc, core_exc.IncompatibleVersionException):
        return CvatVersionError(f"{call}: {exc}")
    if isinstance(exc, api_exc.OpenApiException | core_exc.CvatSdkException):
        return CvatError(f"{call}: cvat-sdk rejected the call: {type(exc).__name__}: {' '.join(str(exc).split())}")
    return CvatError(f"{call}: unexpected error: {type(exc).__name__}: {exc}")
