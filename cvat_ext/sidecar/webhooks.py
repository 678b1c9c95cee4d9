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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from cvat_ext.cvat.signature import verify_signature
from cvat_ext.sidecar.changes import ORG_ID
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.state import StateStore

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
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


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _JobRef(_Loose):
    id: int
    organization: int | None = None


class _IssueRef(_Loose):
    id: int
    job: int | None = None


class _Operation(_Loose):
    job_id: int | None = None
    task_id: int | None = None


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
            payload = WebhookPayload.model_validate(json.loads(body))
        except (ValueError, ValidationError):
            self.metrics.webhooks.labels(result="rejected").inc()
            return 400, {"error": "not a CVAT webhook payload"}
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


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None
