"""Publishing decisions in CVAT: issues on frames, reassignment, stage/state moves, merges,
quality reports. Every write goes through :class:`~cvat_ext.sidecar.actions.ActionRunner` under an
idempotency key, so a restart finishes or repeats it safely (:meth:`Publisher.resume`).

The publishing concepts, one module each:

* :mod:`cvat_ext.sidecar.issues`: the issue writes (:class:`IssuePublisher`: open, resolve, reopen,
  the one ``still present`` comment, duplicates), with the write-visibility window of a create;
* :mod:`cvat_ext.sidecar.issue_selection`: which findings become issues (:func:`publishable`);
* :mod:`cvat_ext.sidecar.issue_fingerprint`: an issue's text and the fingerprint tag the sidecar
  finds its own issues by (:func:`issue_message`, :func:`fingerprinted`);
* :mod:`cvat_ext.sidecar.job_rows`: a CVAT job as the state store's row (:func:`job_row`);
* here, :class:`Publisher`: the cycle's one door to all of them, and the job moves, merges and
  quality reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cvat_ext.annotations.model import JobAnnotations
from cvat_ext.cvat.records import UNSET, Job
from cvat_ext.sidecar.actions import ActionRunner
from cvat_ext.sidecar.interface import CvatApi
from cvat_ext.sidecar.issue_fingerprint import FP_TAG, STILL_PRESENT, fingerprinted, issue_message
from cvat_ext.sidecar.issue_selection import publishable
from cvat_ext.sidecar.issues import ISSUE_KINDS, IssuePublisher, maybe_applied
from cvat_ext.sidecar.job_rows import iso_utc, job_row
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.state import JobRow, StateStore

__all__ = [
    "FP_TAG",
    "STILL_PRESENT",
    "IssuePublisher",
    "Publisher",
    "fingerprinted",
    "iso_utc",
    "issue_message",
    "job_row",
    "maybe_applied",
    "publishable",
]


class Publisher:
    """All CVAT writes of one cycle (one replica): the issue writes are ``issues``'s, the job moves,
    merges and quality reports are here."""

    def __init__(
        self, client: CvatApi, store: StateStore, runner: ActionRunner, metrics: SidecarMetrics, issues: IssuePublisher
    ) -> None:
        self.client = client
        self.store = store
        self.runner = runner
        self.metrics = metrics
        self.issues = issues

    # --- jobs ---------------------------------------------------------------------------------
    def move_job(
        self,
        key: str,
        job: JobRow,
        *,
        task_id: int,
        choose: Callable[[], dict[str, Any]],
        action: str,
        reason: str,
    ) -> JobRow:
        """PATCH a job's assignee and/or stage+state under ``key``; returns the job as CVAT has it.

        ``choose()`` decides the target (``{"assignee_id"?, "stage"?, "state"?}``); it is called
        only when no earlier attempt stored a decision, so a restart never picks another reviewer.
        """
        payload = self.runner.payload_of(key)
        if payload is None:
            payload = {
                "job_id": job.id,
                "task_id": task_id,
                "action": action,
                "reason": reason,
                "before": {"assignee_id": job.assignee_id, "stage": job.stage, "state": job.state},
                "fields": choose(),
            }
        return self._job_action(key, payload) or job

    def _job_action(self, key: str, payload: dict[str, Any]) -> JobRow | None:
        fields: dict[str, Any] = payload["fields"]
        updated: list[Job] = []

        def do(p: dict[str, Any]) -> dict[str, Any]:
            result = self.client.update_job(
                p["job_id"],
                assignee_id=fields.get("assignee_id", UNSET),
                stage=fields.get("stage"),
                state=fields.get("state"),
            )
            updated.append(result)
            return {"updated_date": iso_utc(result), **fields}

        def reconcile(p: dict[str, Any]) -> dict[str, Any] | None:
            current = self.client.get_job(p["job_id"])
            if all(getattr(current, k) == v for k, v in fields.items()):
                updated.append(current)
                return {"updated_date": iso_utc(current), **fields}
            return None

        def audit(p: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
            return {
                "action": p["action"],
                "job_id": p["job_id"],
                "task_id": p["task_id"],
                "user_id": fields.get("assignee_id"),
                "reason": p["reason"],
                "before": p["before"],
                "after": fields,
            }

        outcome = self.runner.run(
            key, "job", job_id=payload["job_id"], payload=payload, do=do, audit=audit, reconcile=reconcile
        )
        if not updated:
            return None
        row = job_row(updated[-1])
        self.store.upsert_jobs([row])
        if outcome.performed and "assignee_id" in fields:
            self.metrics.reassignments.inc()
        return row

    def resume(self, key: str, kind: str, payload: dict[str, Any]) -> bool:
        """Finish an action a crashed run left ``started``, from its stored payload alone.

        Returns False for kinds that need their unit re-run (merges, guides: the unit or task is
        still pending, so the next pass repeats them under the same key).
        """
        if kind in ISSUE_KINDS:
            self.issues.resume(key, kind, payload)
        elif kind == "job":
            self._job_action(key, payload)
        elif kind == "quality":
            self.quality_report(key, payload["task_id"], payload["gt_job_id"], timeout_s=payload["timeout_s"])
        else:
            return False
        return True

    def write_merge(
        self, key: str, parent: JobRow, merged: JobAnnotations | Callable[[], str], *, task_id: int, reason: str
    ) -> None:
        """Our merge replaces the parent job's annotations (PUT is idempotent: a restart repeats it).

        ``merged`` as objects, or as a callable giving CVAT's JSON text (written from columns)."""

        def do(p: dict[str, Any]) -> dict[str, Any]:
            if callable(merged):
                return self.client.put_annotations_json(p["job_id"], merged())
            saved = self.client.put_annotations(p["job_id"], merged)
            return {"shapes": len(saved.shapes), "tags": len(saved.tags), "tracks": len(saved.tracks)}

        def audit(p: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
            return {"action": "merge.write", "job_id": p["job_id"], "task_id": task_id, "reason": reason, "after": r}

        self.runner.run(key, "merge", job_id=parent.id, payload={"job_id": parent.id}, do=do, audit=audit)

    def request_cvat_merge(self, key: str, parent: JobRow, *, task_id: int, reason: str) -> None:
        """CVAT's own merge of the parent's replicas; waits for the request to finish."""

        def do(p: dict[str, Any]) -> dict[str, Any]:
            rq_id = self.client.request_merge(job_id=p["job_id"])
            status = self.client.wait_request(rq_id)
            return {"rq_id": rq_id, "status": str(status.get("status", ""))}

        def audit(p: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
            return {"action": "merge.cvat", "job_id": p["job_id"], "task_id": task_id, "reason": reason, "after": r}

        self.runner.run(key, "merge", job_id=parent.id, payload={"job_id": parent.id}, do=do, audit=audit)

    def quality_report(self, key: str, task_id: int, gt_job_id: int, *, timeout_s: float) -> dict[str, Any]:
        """Request CVAT's quality report for the task and read its summary."""

        def do(p: dict[str, Any]) -> dict[str, Any]:
            rq_id = self.client.request_quality_report(p["task_id"])
            status = self.client.wait_request(rq_id, timeout_s=timeout_s)
            report_id = status.get("result_id")
            summary: dict[str, Any] = {}
            if report_id is not None:
                report = self.client.get_quality_report(int(report_id))
                summary = dict(report.get("summary") or {})
            keep = ("accuracy", "precision", "recall", "conflict_count", "error_count", "warning_count")
            return {"report_id": report_id, **{k: summary.get(k) for k in keep}}

        def audit(p: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
            return {
                "action": "quality.report",
                "job_id": gt_job_id,
                "task_id": p["task_id"],
                "reason": "ground-truth job completed",
                "after": r,
            }

        payload = {"task_id": task_id, "gt_job_id": gt_job_id, "timeout_s": timeout_s}
        return self.runner.run(key, "quality", job_id=gt_job_id, payload=payload, do=do, audit=audit).result
