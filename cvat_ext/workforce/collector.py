"""What the sidecar records about people, each cycle, from the jobs that changed.

For every annotation or consensus-replica job in stage ``annotation`` with an assignee:

* assigned and not completed → the work starts (the job's ``updated_date`` at first sight; a new
  assignee starts it again);
* completed → the work completes (once per completion: a job reopened and completed again is
  measured again): objects drawn and frames, and — when the task has a ground-truth job in
  ``acceptance`` or ``completed`` and the task is in the exam scope — a gold check
  (:mod:`cvat_ext.workforce.gold`) on the job's view of that GT,
  :meth:`~cvat_ext.sidecar.ground_truth.GroundTruth.for_job`: its own GT frames and its honeypot
  frames (``gt_pool`` tasks, where annotators never see a GT job), the same view the consensus
  engine gets. The task's validation layout comes through the cycle's
  :class:`~cvat_ext.sidecar.ground_truth.Honeypots`, so one that CVAT will not give is said once
  per task in the log (whichever path read it first) and in each such job's record
  (``gold_honeypots_unread``).

With ``workforce.qualification.enabled`` the annotator's standing is recomputed from all their
gold checks (:mod:`cvat_ext.workforce.qualification`) and kept in the state store; a change is an
audit entry. A job completed by an annotator who is **not qualified** is not passed on: one issue
on it says why (with the numbers), and an ``annotation`` job goes to a reviewer (stage
``validation``); reviewers are never chosen among the not qualified (``routing.ReviewerPool``).
Both writes are keyed actions, so a restart never repeats them.

Review work (stages ``validation`` and ``acceptance``) is not annotation work and is not recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet
from cvat_ext.cvat.records import Job
from cvat_ext.errors import AnnotationFormatError, CvatError, CvatNotFoundError
from cvat_ext.sidecar.actions import ActionRunner
from cvat_ext.sidecar.config import WorkforceSettings
from cvat_ext.sidecar.ground_truth import GroundTruth, Honeypots, read_ground_truth
from cvat_ext.sidecar.publish import Publisher
from cvat_ext.sidecar.routing import NoReviewerError, ReviewerPool
from cvat_ext.sidecar.state import JobRow, QualificationRow, StateStore, WorkRow
from cvat_ext.workforce.gold import GoldCheck, gold_check
from cvat_ext.workforce.qualification import QualificationPolicy, Standing, standing

log = logging.getLogger(__name__)

WORK_TYPES = ("annotation", "consensus_replica")
GATE_MARK = "cvat-ext qualification:"
ISSUE_KIND = "qualification.issue"


def _iso(ts: datetime) -> str:
    return ts.isoformat()


def checks_of(rows: Iterable[WorkRow]) -> list[GoldCheck]:
    """The gold checks recorded in completed work rows, oldest completion first."""
    done = sorted((r for r in rows if r.completed_at is not None and "gold" in r.facts),
                  key=lambda r: (r.completed_at or 0.0, r.job_id))
    return [GoldCheck(r.job_id, **r.facts["gold"]) for r in done]


class JobReader(Protocol):
    """The cycle's cached reads (one CVAT call per job version, shared with the QA steps)."""

    def annotations(self, job: JobRow) -> JobAnnotations: ...

    def labels(self, task_id: int) -> LabelSet: ...

    def meta(self, job_id: int) -> JobMeta: ...


class WorkCollector:
    """Records annotators' work and applies the qualification gate; :meth:`step` runs once per cycle."""

    def __init__(self, settings: WorkforceSettings, client: Any, reader: JobReader, store: StateStore,
                 runner: ActionRunner, pool: ReviewerPool, publisher: Publisher, *, honeypots: Honeypots,
                 iou_thr: float) -> None:
        self.settings = settings
        self.client = client
        self.reader = reader
        self.honeypots = honeypots  # the cycle's: one layout read and one warning per task for both paths
        self.publisher = publisher
        self.store = store
        self.runner = runner
        self.pool = pool
        self.iou_thr = iou_thr
        q = settings.qualification
        self.policy = QualificationPolicy(bar=q.bar, min_gold_frames=q.min_gold_frames,
                                          requalify_checks=q.requalify_checks)
        self._gold: dict[int, GroundTruth | None] = {}  # task -> its accepted GT, read once per cycle
        self._queued_before: set[int] = set()

    # --- per cycle ------------------------------------------------------------------------------
    def step(self, changed: Iterable[Job]) -> int:
        """Record the changed jobs; returns how many completions were measured."""
        self._gold.clear()  # a GT job may have been edited since the last cycle
        try:
            self.recover()
        except CvatError as exc:
            log.warning("workforce: interrupted gates not finished this cycle: %s", exc)
        measured = 0
        # jobs the QA steps left queued stay queued: this step only takes its own entries out
        self._queued_before = set(self.store.pending())
        for job in changed:
            if job.type not in WORK_TYPES or job.assignee_id is None:
                continue
            try:
                measured += self._record(job)
            except CvatNotFoundError:  # deleted since it was listed: nothing to record
                self._release(job.id)
                log.info("workforce: job %d is gone from CVAT; not recorded", job.id)
            except CvatError as exc:  # the job stays pending: the next cycle tries again
                log.warning("workforce: job %d not recorded this cycle: %s", job.id, exc)
            except AnnotationFormatError as exc:  # bad data in CVAT: the QA step reports it; no retry
                self._release(job.id)
                log.warning("workforce: job %d not recorded: %s", job.id, exc)
        return measured

    def _record(self, job: Job) -> int:
        assert job.assignee_id is not None
        username = job.assignee_username or f"user {job.assignee_id}"
        rows = self.store.work(job_id=job.id)
        if job.stage != "annotation":
            # review work is not recorded; but a job that left the annotation stage while its work was
            # open (the QA step moved it first, or a crash hid its completion) was completed
            if not rows or rows[0].completed_at is not None or rows[0].user_id != job.assignee_id:
                return 0
        else:
            self.store.start_work(WorkRow(job.id, job.assignee_id, username, job.project_id, job.task_id, job.type,
                                          job.updated_date.timestamp()))
            if job.state != "completed":
                return 0
            rows = self.store.work(job_id=job.id)
            if rows[0].completed_date == _iso(job.updated_date):
                return 0  # this completion is recorded already
        # pending until recorded: a crash before the end shows the job to the next cycle again
        self.store.enqueue([job.id], "workforce")
        facts = self._facts(job)
        if self.settings.qualification.enabled:
            extra = (job.id, facts["gold"]) if "gold" in facts else None
            now = self._update_standing(job.assignee_id, username, extra=extra)
            if now.status == "not_qualified" and self.settings.qualification.gate:
                facts["gate"] = {"status": "pending", "why": now.why, "start_frame": job.start_frame}
        self.store.complete_work(job.id, completed_at=job.updated_date.timestamp(),
                                 completed_date=_iso(job.updated_date), facts=facts)
        self._release(job.id)
        if "gate" in facts:
            (row,) = self.store.work(job_id=job.id)
            self._gate(row)
        return 1

    def _release(self, job_id: int) -> None:
        if job_id not in self._queued_before:
            self.store.dequeue([job_id])

    def recover(self) -> int:
        """Finish the gates an interrupted run left pending (the work row holds what they need)."""
        pending = [r for r in self.store.work(completed=True) if r.facts.get("gate", {}).get("status") == "pending"]
        for row in pending:
            self._gate(row)
        return len(pending)

    # --- facts ----------------------------------------------------------------------------------
    def _in_exam(self, job: Job) -> bool:
        q = self.settings.qualification
        if not q.exam_task_ids and not q.exam_project_ids:
            return True
        return job.task_id in q.exam_task_ids or (job.project_id is not None and job.project_id in q.exam_project_ids)

    def _gold_of(self, task_id: int) -> GroundTruth | None:
        if task_id not in self._gold:
            # the job cache: no CVAT call for the listing, the reader's cache for the GT job itself
            try:
                self._gold[task_id] = read_ground_truth(self.store.jobs_of_task(task_id), self.reader)
            except AnnotationFormatError as exc:
                # a bad GT body measures nobody, but the jobs' own work is still recorded (said once
                # per task and cycle; the consensus units of the task report it as well)
                log.error("workforce: task %d: its GT job cannot be read, no gold checks: %s", task_id, exc)
                self._gold[task_id] = None
        return self._gold[task_id]

    def _facts(self, job: Job) -> dict[str, Any]:
        row = self.store.get_job(job.id)
        ann = self.reader.annotations(row) if row is not None else self.client.get_annotations(job.id)
        facts: dict[str, Any] = {"objects": len(ann.shapes) + len(ann.tracks) + len(ann.tags),
                                 "frames": job.frame_count}
        gt = self._gold_of(job.task_id) if self._in_exam(job) else None
        if gt is not None:
            facts |= self._gold_facts(job, ann, gt)
        return facts

    def _gold_facts(self, job: Job, ann: JobAnnotations, gt: GroundTruth) -> dict[str, Any]:
        """The job's gold check on its GT frames and honeypots (``gold``, with the GT job id), and
        why honeypots were not used when the task's validation layout could not be read."""
        meta = self.reader.meta(job.id)
        truth, unread = self.honeypots.truth_for(job.task_id, gt, meta)
        facts: dict[str, Any] = {}
        if unread is not None:
            # said even when no frame of the job is covered: a gt_pool job then has no gold check at all
            facts |= {"gold_job_id": gt.job_id, "gold_honeypots_unread": unread}
        check = gold_check(job.id, ann, truth.annotations, truth.frames, self.reader.labels(job.task_id), meta,
                           iou_thr=self.iou_thr, honeypots=truth.honeypots)
        if check is not None:
            facts["gold"] = {"frames": check.frames, "gold_objects": check.gold_objects, "objects": check.objects,
                             "matched": check.matched, "worst_frames": [list(t) for t in check.worst_frames],
                             "honeypots": check.honeypots}
            facts["gold_job_id"] = gt.job_id
        return facts

    # --- qualification --------------------------------------------------------------------------
    def _update_standing(self, user_id: int, username: str,
                         extra: tuple[int, dict[str, Any]] | None = None) -> Standing:
        """Recompute from every recorded gold check, plus ``extra`` (the job being recorded)."""
        checks = checks_of(self.store.work(user_id=user_id, completed=True))
        if extra is not None:
            checks = [c for c in checks if c.job_id != extra[0]] + [GoldCheck(extra[0], **extra[1])]
        now = standing(checks, self.policy)
        before = self.store.get_qualification(user_id)
        self.store.put_qualification(QualificationRow(
            user_id, username, now.status,
            [{"job_id": c.job_id, "frames": c.frames, "f1": round(c.f1, 4)} for c in checks],
            self.store.clock()))
        if before is None or before.status != now.status:
            self.store.append_audit(replica=self.runner.owner, action="qualification.change", user_id=user_id,
                                    reason=f"{username}: {now.status} ({now.why})",
                                    before={"status": before.status if before else None},
                                    after={"status": now.status, "accuracy": now.accuracy,
                                           "gold_frames": now.gold_frames})
            log.info("qualification: %s is now %s (%s)", username, now.status, now.why)
        return now

    def _open_issue(self, key: str, payload: dict[str, Any]) -> None:
        def issue(p: dict[str, Any]) -> dict[str, Any]:
            created = self.client.create_issue(p["job_id"], p["frame"], [0.0, 0.0], p["message"])
            return {"issue_id": created.id}

        def issue_found(p: dict[str, Any]) -> dict[str, Any] | None:
            for found in self.client.list_issues(job_id=p["job_id"]):
                if found.frame == p["frame"]:
                    comments = self.client.list_comments(found.id)
                    if comments and comments[0].message == p["message"]:
                        return {"issue_id": found.id}
            return None

        self.runner.run(key, ISSUE_KIND, job_id=payload["job_id"], payload=payload, do=issue, reconcile=issue_found,
                        audit=lambda p, r: {"action": ISSUE_KIND, "job_id": p["job_id"], "task_id": p["task_id"],
                                            "user_id": p["user_id"], "reason": p["message"], "after": r})

    def _gate(self, row: WorkRow) -> None:
        """One issue that says why, and an annotation job to a reviewer (both keyed: never twice)."""
        gate = row.facts["gate"]
        key = f"qualification-gate:{row.job_id}:{row.completed_date}"
        message = (f"{GATE_MARK} {row.username} is not qualified: {gate['why']}. This job goes to review instead "
                   "of being passed on.")
        self._open_issue(f"{key}:issue", {"job_id": row.job_id, "task_id": row.task_id, "frame": gate["start_frame"],
                                          "message": message, "user_id": row.user_id})
        job = self.store.get_job(row.job_id)
        if row.job_type == "annotation" and job is not None and not self.pool.is_reviewer(row.user_id):
            # a replica's parent is routed by the consensus step; a reviewer's own job stays with them
            def choose() -> dict[str, Any]:
                return {"assignee_id": self.pool.least_loaded(exclude={row.user_id}).id, "stage": "validation",
                        "state": "new"}

            try:
                self.publisher.move_job(f"{key}:route", job, task_id=row.task_id, choose=choose,
                                        action="qualification.route",
                                        reason=f"{row.username} is not qualified ({gate['why']}): job to a reviewer")
            except NoReviewerError as exc:
                log.warning("qualification: job %d of %s stays unrouted: %s", row.job_id, row.username, exc)
        facts = {**row.facts, "gate": {**gate, "status": "done"}}
        self.store.complete_work(row.job_id, completed_at=row.completed_at or 0.0,
                                 completed_date=row.completed_date or "", facts=facts)
