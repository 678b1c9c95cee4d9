"""Change detection whose cost follows the changes: the ``updated_date`` cursor.

Each cycle lists only jobs with ``updated_date`` after the cursor (one request per page, sorted
by ``updated_date``), minus a small overlap (``service.cursor_overlap_s``, 1 ms) so two jobs
saved in the same instant are never lost; a job counts as changed only when it differs from the
state store's copy. A larger overlap also covers saves committed out of timestamp order, at the
price of re-listing every job touched in that window (after a bulk of our own PATCHes, pages of
them); the reconciliation pass covers those anyway. The first cycle
and every reconciliation pass (``reconcile_interval_s``) list everything in scope and compare,
catching anything the cursor and webhooks missed. Job ids queued by webhooks or left over from a
failed unit (``pending``) are read individually unless the listing already returned them.
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
from cvat_ext.sidecar.publish import iso_utc, job_row
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
    ) -> None:
        self.client = client
        self.store = store
        self.scope = scope
        self.reconcile_interval_s = reconcile_interval_s
        self.clock = clock
        self.overlap = timedelta(seconds=overlap_s)

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
            if self._foreign(job):
                # CVAT answers GET /api/jobs/{id} whatever the org context: keep other orgs' jobs out
                log.info(
                    "pending job %d belongs to organization id %s, not %r; dropping it",
                    job_id,
                    job.organization_id,
                    self.store.org,
                )
                self.store.dequeue([job_id])
                continue
            changed[job_id] = job
        new_cursor = max((iso_utc(j) for j in listed.values()), default=None)
        if cursor is not None and (new_cursor is None or new_cursor < cursor):
            new_cursor = cursor
        if full:
            log.info("full job listing: %d jobs in scope, %d changed", len(listed), len(changed))
        return ChangeSet(changed=changed, pending_ids=pending, new_cursor=new_cursor, full_listing=full)

    def _foreign(self, job: Job) -> bool:
        """Whether ``job`` is in another organization than this feed's (as far as known)."""
        if not self.store.org:
            return job.organization_id is not None  # the personal workspace has no organization
        known = self.store.get_cursor(ORG_ID)
        return known is not None and job.organization_id is not None and str(job.organization_id) != known

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
