"""Retry decisions and delays for CVAT calls (pure functions; the client does the I/O).

What is retried (see also README "CVAT client"):

* HTTP 5xx and connection drops / read timeouts: only for idempotent methods (GET, HEAD, PUT,
  DELETE, OPTIONS). A POST or PATCH that reached CVAT may have been applied, so repeating it could
  create a second issue or comment.
* Connection refused / DNS failure / connect timeout: every method. The TCP connection never
  opened, so nothing was sent and a repeat cannot duplicate anything.
* HTTP 429: every method. CVAT (Django REST framework) throttles before the view runs, so the
  request was not applied. ``Retry-After`` (seconds or an HTTP date) replaces the computed delay.

Delays grow exponentially with jitter (:class:`~cvat_ext.cvat.records.RetryPolicy`); the whole
sequence is capped by ``RetryPolicy.budget_s``.
"""

from __future__ import annotations

import enum
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from cvat_ext.cvat.records import RetryPolicy

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class Failure(enum.Enum):
    """How an attempt failed, as far as retrying is concerned."""

    NOT_SENT = "not_sent"  # connection refused / DNS / connect timeout: request never left
    DROPPED = "dropped"  # reset, remote disconnected, read timeout: the server may have acted
    THROTTLED = "throttled"  # HTTP 429
    SERVER_ERROR = "server_error"  # HTTP 5xx
    FINAL = "final"  # any other error status: retrying cannot help


def classify_status(status: int) -> Failure:
    if status == 429:
        return Failure.THROTTLED
    if status >= 500:
        return Failure.SERVER_ERROR
    return Failure.FINAL


def is_retryable(method: str, failure: Failure) -> bool:
    """Whether a ``method`` call that failed this way may be repeated."""
    if failure in (Failure.NOT_SENT, Failure.THROTTLED):
        return True
    if failure in (Failure.DROPPED, Failure.SERVER_ERROR):
        return method.upper() in IDEMPOTENT_METHODS
    return False


def backoff_delay_s(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    delay = min(policy.max_delay_s, policy.base_delay_s * (2.0 ** (attempt - 1)))
    return delay * (1.0 - policy.jitter * rng.random())


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` header -> seconds (>= 0), or None when absent or unparseable.

    Accepts delta-seconds (``"3"``, also ``"2.5"``) and HTTP dates
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``, relative to ``now``, default the wall clock).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())
