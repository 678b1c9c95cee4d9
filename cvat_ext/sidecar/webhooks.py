"""CVAT webhook receiver: verify ``X-Signature-256``, then queue the job ids the event names.

The signature is checked on the raw body, in constant time, before anything is parsed; a bad or
missing signature answers 401 and changes nothing. Accepted events only *queue* work (durably, in
the state store) and wake the run loop: the cycle does the rest, so a replayed or duplicated
delivery is harmless. Payload parsing keeps only the fields used and ignores the rest: CVAT sends
the whole resource (``GET /api/jobs/{id}`` shape) and adds fields between versions.

With several organizations, a delivery is routed to one organization's queue: by the job's
``organization`` id in the payload (each organization's id is learned by its change feed, see
:data:`cvat_ext.sidecar.changes.ORG_ID`), else to the organization whose job cache knows the job
(issue events carry only the job id); a delivery neither identifies queues nothing but still wakes
the loop (the next listing finds the job if it changed: CVAT would show any organization's job to
a member of several, so guessing could act on a job under the wrong organization).

A signed body is still untrusted input: ids must be CVAT ids (integers in 1..2^31-1, see
:data:`CVAT_ID`), nesting deeper than :data:`MAX_JSON_DEPTH` is refused, and anything else that
does not parse answers 400, never a 500 or a dropped connection. Queuing a job id does not mean
acting on it: the cycle reads the job from CVAT and keeps it only inside the configured
organization and scope (:meth:`cvat_ext.sidecar.changes.ChangeFeed.collect`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvat_ext.cvat.signature import verify_signature
from cvat_ext.sidecar.changes import ORG_ID
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.state import StateStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
#: CVAT ids are PostgreSQL ``integer`` primary keys: 1 .. 2^31-1
MAX_CVAT_ID = 2**31 - 1
#: CVAT's webhook bodies nest about 6 levels deep; far more is an attack on the parser
MAX_JSON_DEPTH = 32
SIGNATURE_HEADER = "X-Signature-256"

#: what the sidecar subscribes to: job changes (annotation saves move ``updated_date``), issue
#: changes, and finished merges / quality reports
EVENTS = (
    "create:job",
    "update:job",
    "create:issue",
    "update:issue",
    "completed:request[calculate:quality]",
    "completed:request[merge:job]",
    "completed:request[merge:task]",
)


#: an id as CVAT writes it: a JSON integer (no strings, floats or booleans) in 1..2^31-1
CVAT_ID = Annotated[int, Field(strict=True, ge=1, le=MAX_CVAT_ID)]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _JobRef(_Loose):
    id: CVAT_ID
    organization: CVAT_ID | None = None


class _IssueRef(_Loose):
    id: CVAT_ID
    job: CVAT_ID | None = None


class _Operation(_Loose):
    job_id: CVAT_ID | None = None
    task_id: CVAT_ID | None = None


class _RequestRef(_Loose):
    operation: _Operation | None = None


class WebhookPayload(_Loose):
    """The parts of a CVAT webhook body the sidecar uses."""

    event: str
    job: _JobRef | None = None
    issue: _IssueRef | None = None
    request: _RequestRef | None = None

    def job_ids(self) -> list[int]:
        """Job ids the event is about (``update:job``, issue events, merge requests)."""
        ids: list[int] = []
        if self.job is not None:
            ids.append(self.job.id)
        if self.issue is not None and self.issue.job is not None:
            ids.append(self.issue.job)
        if self.request is not None and self.request.operation is not None and self.request.operation.job_id:
            ids.append(self.request.operation.job_id)
        return sorted(set(ids))

    def organization_id(self) -> int | None:
        return self.job.organization if self.job is not None else None


class WebhookReceiver:
    """Handles one delivery: ``handle(headers, body) -> (status, json body)``."""

    def __init__(
        self,
        secret: str,
        store: StateStore | Mapping[str, StateStore],
        *,
        wake: Callable[[], None] = lambda: None,
        metrics: SidecarMetrics | None = None,
    ) -> None:
        self._secret = secret
        #: organization slug -> its scoped store
        self.stores: dict[str, StateStore] = dict(store) if isinstance(store, Mapping) else {store.org: store}
        self.wake = wake
        self.metrics = metrics if metrics is not None else SidecarMetrics()

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        if len(body) > MAX_BODY_BYTES:
            self.metrics.webhooks.labels(result="rejected").inc()
            return 413, {"error": "body too large"}
        header = _header(headers, SIGNATURE_HEADER)
        if not verify_signature(self._secret, body, header):
            self.metrics.webhooks.labels(result="rejected").inc()
            log.warning("webhook rejected: %s signature", "missing" if header is None else "invalid")
            return 401, {"error": "invalid or missing X-Signature-256"}
        try:
            payload = WebhookPayload.model_validate(parse_bounded_json(body))
        except (ValueError, RecursionError, ValidationError) as exc:
            self.metrics.webhooks.labels(result="rejected").inc()
            log.warning("webhook rejected: %s", _why(exc))
            return 400, {"error": f"not a CVAT webhook payload: {_why(exc)}"}
        ids = payload.job_ids()
        if ids:
            for store in self._route(payload, ids):
                store.enqueue(ids, f"webhook {payload.event}")
            self.wake()
        self.metrics.webhooks.labels(result="accepted").inc()
        log.info("webhook %s: queued jobs %s", payload.event, ids)
        return 200, {"event": payload.event, "queued": ids}

    def _route(self, payload: WebhookPayload, job_ids: list[int]) -> list[StateStore]:
        stores = list(self.stores.values())
        if len(stores) == 1:
            return stores
        org_id = payload.organization_id()
        if org_id is not None:
            by_id = [st for st in stores if st.get_cursor(ORG_ID) == str(org_id)]
            if by_id:
                return by_id[:1]
        known = [st for st in stores if any(st.get_job(jid) is not None for jid in job_ids)]
        if not known:
            log.info("webhook: no organization known for jobs %s; the next listing finds them", job_ids)
        return known[:1]


def parse_bounded_json(body: bytes) -> Any:
    """``body`` as JSON, refusing nesting deeper than :data:`MAX_JSON_DEPTH` (ValueError).

    ``json.loads`` itself stops at the interpreter's recursion limit with a RecursionError (the
    caller catches it too); the walk after it enforces the much lower limit iteratively.
    """
    data = json.loads(body)
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_JSON_DEPTH:
                    raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
                stack.append((child, depth + 1))
    return data


def _why(exc: BaseException) -> str:
    """One short line for a rejected body (pydantic's first error names the field)."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        return f"{where}: {err['msg']}"
    if isinstance(exc, RecursionError):
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None
