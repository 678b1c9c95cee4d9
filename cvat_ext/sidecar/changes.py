"""Change detection whose cost follows the changes: the ``updated_date`` cursor.

Each cycle lists only jobs with ``updated_date`` after the cursor (one request per page, sorted
by ``updated_date``), minus a small overlap (``service.cursor_overlap_s``, 1 ms) so two jobs
saved in the same instant are never lost; a job counts as changed only when it differs from the
state store's copy. A larger overlap also covers saves committed out of timestamp order, at the
price of re-listing every job touched in that window (after a bulk of our own PATCHes, pages of
them); the reconciliation pass covers those anyway. The first cycle
and every reconciliation pass (``reconcile_interval_s``) list everything in scope and compare,
catching anything the cursor and webhooks missed. Job ids queued by webhooks or left over from a
failed unit (``pending``) are read individually unless the listing already returned them, and
kept only when the job read from CVAT is inside the configured organization and scope
(:meth:`ChangeFeed.outside`): a webhook can name any job id, and CVAT answers
``GET /api/jobs/{id}`` for a job of another organization the user belongs to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cvat_ext.cvat.records import Job
from cvat_ext.errors import CvatNotFoundError, CvatPermissionError
from cvat_ext.sidecar.config import ScopeSettings
from cvat_ext.sidecar.interface import CvatApi
from cvat_ext.sidecar.job_rows import iso_utc, job_row
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.state import JobRow, StateStore

log = logging.getLogger(__name__)

CURSOR = "jobs.updated_date"
RECONCILED_AT = "jobs.reconciled_at"
#: the organization's numeric id as CVAT reports it on jobs (webhook routing; see webhooks.py)
ORG_ID = "org.id"


@dataclass(frozen=True)
class ChangeSet:
    """Jobs to look at this cycle (``changed``: id -> job) and where the cursor may move."""

    changed: dict[int, Job]
    pending_ids: tuple[int, ...]
    new_cursor: str | None
    full_listing: bool


class ChangeFeed:
    """Finds changed jobs for one cycle."""

    def __init__(
        self,
        client: CvatApi,
        store: StateStore,
        scope: ScopeSettings,
        *,
        reconcile_interval_s: float,
        clock: Callable[[], float],
        overlap_s: float = 0.001,
        metrics: SidecarMetrics | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.scope = scope
        self.reconcile_interval_s = reconcile_interval_s
        self.clock = clock
        self.overlap = timedelta(seconds=overlap_s)
        self.metrics = metrics if metrics is not None else SidecarMetrics()

    def _listing(self, updated_after: datetime | None) -> Iterator[Job]:
        if not self.scope.project_ids and not self.scope.task_ids:
            yield from self.client.iter_jobs(updated_after=updated_after, sort="updated_date")
            return
        for project_id in self.scope.project_ids:
            yield from self.client.iter_jobs(project_id=project_id, updated_after=updated_after, sort="updated_date")
        for task_id in self.scope.task_ids:
            yield from self.client.iter_jobs(task_id=task_id, updated_after=updated_after, sort="updated_date")

    def collect(self) -> ChangeSet:
        """List changes (CVAT calls: one per page of changed jobs, plus one per pending job)."""
        cursor = self.store.get_cursor(CURSOR)
        last_full = self.store.get_cursor(RECONCILED_AT)
        now = self.clock()
        full = cursor is None or last_full is None or now - float(last_full) >= self.reconcile_interval_s
        updated_after = None if full else _parse(cursor) - self.overlap if cursor else None
        listed: dict[int, Job] = {}
        for job in self._listing(updated_after):
            listed[job.id] = job
        changed = {jid: job for jid, job in listed.items() if _differs(self.store.get_job(jid), job_row(job))}
        self._learn_org_id(listed.values())
        pending = tuple(self.store.pending())
        for job_id in pending:
            if job_id in changed:
                continue
            if job_id in listed:
                changed[job_id] = listed[job_id]
                continue
            try:
                job = self.client.get_job(job_id)
            except (CvatNotFoundError, CvatPermissionError):
                log.info("pending job %d no longer exists in CVAT (or is not visible); dropping it", job_id)
                self.store.dequeue([job_id])
                continue
            why = self.outside(job)
            if why is not None:
                log.warning("queued job %d is outside this sidecar's scope (%s); dropping it", job_id, why)
                self.store.dequeue([job_id])
                self.metrics.webhook_jobs_out_of_scope.inc()
                continue
            changed[job_id] = job
        new_cursor = max((iso_utc(j) for j in listed.values()), default=None)
        if cursor is not None and (new_cursor is None or new_cursor < cursor):
            new_cursor = cursor
        if full:
            log.info("full job listing: %d jobs in scope, %d changed", len(listed), len(changed))
        return ChangeSet(changed=changed, pending_ids=pending, new_cursor=new_cursor, full_listing=full)

    def outside(self, job: Job) -> str | None:
        """Why ``job`` (as read from CVAT) is outside this feed's organization and scope; None when
        inside. May cost one CVAT call: the first time, the organization's id is confirmed by
        listing the job's task in the organization's context (a listing shows only its jobs)."""
        scope = self.scope
        if scope.task_ids or scope.project_ids:
            in_task = job.task_id in scope.task_ids
            in_project = job.project_id is not None and job.project_id in scope.project_ids
            if not (in_task or in_project):
                return f"task {job.task_id} (project {job.project_id}) is not in scope.task_ids/project_ids"
        if not self.store.org:  # the personal workspace has no organization
            if job.organization_id is not None:
                return f"organization id {job.organization_id}, not the personal workspace"
            return None
        if job.organization_id is None:
            return f"personal workspace, not organization {self.store.org!r}"
        known = self.store.get_cursor(ORG_ID)
        if known is None:
            listed = next(iter(self.client.iter_jobs(task_id=job.task_id, page_size=1)), None)
            if listed is None or listed.organization_id is None:
                return f"task {job.task_id} is not listed in organization {self.store.org!r}"
            known = str(listed.organization_id)
            self.store.set_cursor(ORG_ID, known)
        if str(job.organization_id) != known:
            return f"organization id {job.organization_id}, not {self.store.org!r} (id {known})"
        return None

    def _learn_org_id(self, jobs: Iterable[Job]) -> None:
        org_ids = {j.organization_id for j in jobs if j.organization_id is not None}
        if len(org_ids) == 1:
            (org_id,) = org_ids
            if self.store.get_cursor(ORG_ID) != str(org_id):
                self.store.set_cursor(ORG_ID, str(org_id))

    def commit(self, changes: ChangeSet) -> None:
        """Move the cursor after the cycle handled (or queued) every changed job."""
        if changes.new_cursor is not None:
            self.store.advance_cursor(CURSOR, changes.new_cursor)
        if changes.full_listing:
            self.store.set_cursor(RECONCILED_AT, repr(self.clock()))


def _differs(known: JobRow | None, seen: JobRow) -> bool:
    return known is None or known != seen


def _parse(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
