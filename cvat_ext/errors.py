"""The one exception tree of cvat-ext.

Every error that leaves a public function is a :class:`CvatExtError`. Third-party exceptions are
translated at the boundary (``raise CvatHttpError(...) from exc``). Messages name the object and
the expectation, e.g. ``job 812 frame 14: polygon 3 by 'ann_b' has 2 points, need >= 3``.

Tree::

    CvatExtError
    ├── ConfigError                 bad settings / CLI arguments / config file
    │   └── RuleFileError           a qa_rules YAML file that does not parse or validate
    ├── AnnotationFormatError       malformed annotations, labels or frame meta (CVAT JSON or ours)
    │   └── InputMismatchError      input files that parse but do not belong together (a frame
    │                               outside the meta, an unknown label id) or are the wrong kind
    ├── CvatError                   anything that went wrong talking to CVAT
    │   ├── CvatConnectionError     CVAT unreachable / connection dropped / timed out (after retries)
    │   ├── CvatHttpError           CVAT answered with an error status (.status)
    │   │   ├── CvatBadRequestError       400
    │   │   ├── CvatAuthError             401
    │   │   ├── CvatPermissionError       403
    │   │   ├── CvatNotFoundError         404
    │   │   ├── CvatConflictError         409
    │   │   ├── CvatRateLimitedError      429
    │   │   └── CvatServerError           5xx
    │   ├── CvatRequestFailedError  an async CVAT request (/api/requests/{id}) ended as "failed"
    │   ├── CvatWritePendingError   an earlier create may still land: not repeated yet (retry later)
    │   └── CvatVersionError        the server is older than anything we can talk to
    ├── FunctionInputError          a serverless function got a bad request (.field, .status = 4xx)
    ├── FunctionUnavailableError    a served function cannot take the call now (not loaded, busy, draining)
    ├── HttpInputError              an HTTP endpoint refused a request before reading it (.status 4xx)
    ├── StateStoreError             the sidecar's durable state (SQLite/PostgreSQL) failed
    └── LeaseLostError              another sidecar replica holds the job
"""

from __future__ import annotations


class CvatExtError(Exception):
    """Base of every error raised by cvat-ext."""


class ConfigError(CvatExtError):
    """Bad configuration: settings file, environment, CLI arguments."""


class RuleFileError(ConfigError):
    """A rule file failed to parse or validate. ``path``/``line``/``rule_id`` locate the problem."""

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, rule_id: str | None = None
    ) -> None:
        where = ""
        if path is not None:
            where = path if line is None else f"{path}:{line}"
        if rule_id is not None:
            where = f"{where} rule '{rule_id}'" if where else f"rule '{rule_id}'"
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.line = line
        self.rule_id = rule_id


class AnnotationFormatError(CvatExtError):
    """Malformed annotation data (CVAT JSON, labels, frame meta or our own types)."""


class InputMismatchError(AnnotationFormatError):
    """Input files that each parse but contradict each other (annotations on frames the meta does not
    have, label or attribute ids the labels file lacks) or a file of the wrong kind (labels given
    where annotations are expected). The message names both files and the first offending object."""


class CvatError(CvatExtError):
    """Something went wrong while talking to CVAT."""


class CvatConnectionError(CvatError):
    """CVAT could not be reached, dropped the connection or timed out (after the retry budget).

    ``failure`` says which, in words: ``connection refused`` (or another reason the connection
    never opened), ``timed out`` or ``connection dropped``; empty when unknown.
    """

    def __init__(self, message: str, *, failure: str = "") -> None:
        super().__init__(message)
        self.failure = failure


class CvatHttpError(CvatError):
    """CVAT answered with an HTTP error status.

    ``status`` is the HTTP status, ``method``/``path`` the call, ``body`` the (possibly truncated)
    response text. The message names the object the call was about ("job 812", "task 52 frame 3").
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str = "",
        path: str = "",
        body: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.body = body
        self.retry_after_s = retry_after_s


class CvatBadRequestError(CvatHttpError):
    """400: CVAT rejected the request body or a precondition."""


class CvatAuthError(CvatHttpError):
    """401: missing, invalid or expired credentials."""


class CvatPermissionError(CvatHttpError):
    """403: the user lacks the role for this object (use an org maintainer)."""


class CvatNotFoundError(CvatHttpError):
    """404: the object does not exist or is not visible in this organization."""


class CvatConflictError(CvatHttpError):
    """409: e.g. a merge or auto-annotation request already running."""


class CvatRateLimitedError(CvatHttpError):
    """429: throttled; ``retry_after_s`` holds CVAT's Retry-After when it sent one."""


class CvatServerError(CvatHttpError):
    """5xx: CVAT failed internally."""


class CvatRequestFailedError(CvatError):
    """An asynchronous CVAT request (``/api/requests/{rq_id}``) finished with status ``failed``."""


class CvatWritePendingError(CvatError):
    """An earlier attempt of a create (issue, comment) failed ambiguously and its result is not
    visible in CVAT yet: it is not repeated before the write-visibility window has passed.

    ``key`` is the action's idempotency key, ``wait_s`` the seconds left in the window.
    """

    def __init__(self, message: str, *, key: str, wait_s: float) -> None:
        super().__init__(message)
        self.key = key
        self.wait_s = wait_s


class CvatVersionError(CvatError):
    """The CVAT server's version is outside what cvat-ext supports."""


class FunctionInputError(CvatExtError):
    """A serverless function received a bad request. ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class HttpInputError(CvatExtError):
    """An HTTP endpoint (gateway, sidecar) refused a request's framing or body: bad or too large
    ``Content-Length``, too deep JSON, too slow. ``status`` the 4xx to answer, ``field`` what was wrong."""

    def __init__(self, message: str, *, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class FunctionUnavailableError(CvatExtError):
    """A served function cannot answer now: it failed to load, no worker freed up in time, or the
    server is draining. Answered as 503 with a JSON error (``status``)."""

    status = 503


class StateStoreError(CvatExtError):
    """The sidecar's durable state store failed."""


class LeaseLostError(StateStoreError):
    """Another sidecar replica holds the lease on this job."""


_STATUS_CLASSES: dict[int, type[CvatHttpError]] = {
    400: CvatBadRequestError,
    401: CvatAuthError,
    403: CvatPermissionError,
    404: CvatNotFoundError,
    409: CvatConflictError,
    429: CvatRateLimitedError,
}


def http_error_class(status: int) -> type[CvatHttpError]:
    """The :class:`CvatHttpError` subclass for an HTTP status."""
    if status >= 500:
        return CvatServerError
    return _STATUS_CLASSES.get(status, CvatHttpError)
