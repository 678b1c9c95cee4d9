"""Self-healing against late writes: a second CVAT issue for the same finding is resolved.

A ``POST /api/issues`` that timed out may be committed by CVAT after the sidecar gave up on it.
The write-visibility window (:class:`~cvat_ext.sidecar.actions.ActionRunner`, ``settle_s``) keeps
the sidecar from repeating it too early, but no window can be known to be long enough. So each
ambiguous create leaves a *watch* in the state store (job, frame, fingerprint; for
``cvat.duplicate_watch_s``), and every cycle :meth:`DuplicateSweeper.sweep` lists the watched
jobs' issues: when two or more carry the same fingerprint, the one the state store knows (else the
oldest) is kept and each other open copy is resolved with a comment saying which issue it
duplicates, under an idempotency key (``dedupe:<issue id>``) and with an ``issue.duplicate`` audit
entry.

CVAT calls per cycle: one issue listing per watched job, plus one comment listing per issue on a
watched frame; nothing when no create was ambiguous within the watch period.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from cvat_ext.cvat.records import Issue
from cvat_ext.errors import CvatError, CvatWritePendingError, LeaseLostError
from cvat_ext.sidecar.interface import CvatApi
from cvat_ext.sidecar.issue_fingerprint import fingerprinted
from cvat_ext.sidecar.issues import IssuePublisher
from cvat_ext.sidecar.state import StateStore

log = logging.getLogger(__name__)


def duplicate_comment(kept_issue_id: int) -> str:
    """The comment on a resolved duplicate (a person reading the issue sees why it closed)."""
    return (
        f"duplicate of issue #{kept_issue_id} (same cvat-ext finding): CVAT committed a create after the "
        "sidecar had given up on it; resolved automatically, see the other issue"
    )


class DuplicateSweeper:
    """Finds and resolves duplicate issues on the jobs watched after ambiguous creates."""

    def __init__(self, client: CvatApi, store: StateStore, issues: IssuePublisher) -> None:
        self.client = client
        self.store = store
        self.issues = issues

    def sweep(self) -> int:
        """One pass over the live watches; returns the duplicates resolved now. A CVAT error on one
        job is logged and that job is swept again next cycle (the watch stays)."""
        by_job: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for _, job_id, payload in self.store.watches():
            by_job[job_id].append(payload)
        resolved = 0
        for job_id, watched in sorted(by_job.items()):
            try:
                resolved += self._sweep_job(job_id, watched)
            except CvatWritePendingError as exc:
                log.info("job %d: duplicate check waits for an earlier write: %s", job_id, exc)
            except (CvatError, LeaseLostError) as exc:
                log.warning("job %d: duplicate check failed, retried next cycle: %s", job_id, exc)
        return resolved

    def _sweep_job(self, job_id: int, watched: list[dict[str, Any]]) -> int:
        issues = self.client.list_issues(job_id=job_id)
        resolved = 0
        for payload in watched:
            row = self.store.get_issue(payload["fingerprint"])
            if row is None or row.issue_id is None:
                continue  # the create itself is still pending: its own lookup finds the late copy
            copies = fingerprinted(self.client, issues, payload["frame"], payload["fingerprint"])
            if len(copies) < 2:
                continue
            ids = [i.id for i in copies]
            kept = row.issue_id if row.issue_id in ids else ids[0]
            for dup in copies:
                if dup.id != kept and not dup.resolved:
                    resolved += self._resolve(dup, kept, payload)
        return resolved

    def _resolve(self, dup: Issue, kept: int, watched: dict[str, Any]) -> int:
        log.warning(
            "job %d frame %d: issue %d duplicates issue %d (finding %s); resolving it",
            dup.job_id,
            dup.frame,
            dup.id,
            kept,
            watched["fingerprint"],
        )
        payload = {
            "issue_id": dup.id,
            "kept": kept,
            "job_id": dup.job_id,
            "task_id": watched["task_id"],
            "frame": dup.frame,
            "fingerprint": watched["fingerprint"],
            "comment": duplicate_comment(kept),
        }
        return int(self.issues.resolve_duplicate(f"dedupe:{dup.id}", payload))
