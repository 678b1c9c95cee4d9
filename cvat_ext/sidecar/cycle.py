"""One sidecar cycle: changed jobs -> work units -> score -> decide -> act.

Outline of :meth:`Cycle.run`:

1. collect changed jobs (:mod:`changes`), queue their ids in ``pending``, cache them, move the
   cursor (the queue makes the hand-off durable: a crash later in the cycle loses nothing);
2. group them into units: a consensus parent with its replicas, a plain annotation job, or a
   task whose ground-truth job was accepted;
3. per unit, under a lease: skip when its inputs (signature) did not change, else fetch the
   annotations, run the rule packs, score the replicas, decide (:func:`cvat_ext.qa.decision.decide`:
   accept, review or reject), publish its issues, execute it (send back / reassign / merge and
   move), record the score and the signature, dequeue its jobs;
4. per touched task: CVAT quality report (when a completed GT job exists) and the guide summary;
5. optionally, SAM prefetch for jobs that just started (:mod:`prefetch`; failures only logged).

A unit failing on a CVAT error stays queued and is retried next cycle; the other units go on.
A unit waiting for an earlier ambiguous create to show in CVAT stays queued too (counted as
waiting); one CVAT keeps refusing with 403 for ``service.park_after_denials`` cycles is parked:
dropped from the queue, audited (``unit.parked``) and counted, never retried for ever. After the
units, the jobs watched after ambiguous creates are checked for duplicate issues
(:mod:`duplicates`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cvat_ext.annotations.columnar_json import ReplicaColumns, read_annotations_bytes
from cvat_ext.annotations.cvat_json import parse_job_annotations
from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet
from cvat_ext.cvat.annotators import replica_names
from cvat_ext.cvat.records import Job
from cvat_ext.errors import (
    AnnotationFormatError,
    CvatError,
    CvatExtError,
    CvatNotFoundError,
    CvatPermissionError,
    CvatWritePendingError,
    LeaseLostError,
)
from cvat_ext.qa.decision import Agreement, Decision, Policy, Verdict, decide, replica_is_sloppy
from cvat_ext.qa.findings import Finding, Severity, Source
from cvat_ext.sidecar.actions import ActionRunner, Hook, no_hook
from cvat_ext.sidecar.changes import ChangeFeed
from cvat_ext.sidecar.config import SidecarSettings
from cvat_ext.sidecar.duplicates import DuplicateSweeper
from cvat_ext.sidecar.expiring import ExpiringCache
from cvat_ext.sidecar.ground_truth import Honeypots, JobTruth, accepted_gt_job, read_ground_truth
from cvat_ext.sidecar.interface import ConsensusOutcome, ConsensusRunner, CvatApi, JobRef, ReplicaInput, RuleRunner
from cvat_ext.sidecar.issues import IssuePublisher
from cvat_ext.sidecar.job_rows import job_row
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.pooling import AnnotatorPool, people_of, pool_scope
from cvat_ext.sidecar.prefetch import Prefetcher
from cvat_ext.sidecar.publish import Publisher
from cvat_ext.sidecar.routing import NoReviewerError, ReviewerPool
from cvat_ext.sidecar.state import ActionRow, JobRow, ScoreRow, StateStore

if TYPE_CHECKING:
    from cvat_ext.sidecar.al_rounds import RoundScheduler
    from cvat_ext.workforce.collector import WorkCollector

log = logging.getLogger(__name__)

#: replica annotations kept in memory between cycles, counted in objects (shapes + tags + tracks
#: and their keyframes; least recently used jobs dropped first): ~100 MB at the upper end with
#: their objects built (plain jobs), far less as the body's bytes and columns (consensus replicas)
ANNOTATION_CACHE_OBJECTS = 100_000
#: tasks whose labels and honeypots, and jobs whose frame meta, stay cached (least recently used
#: dropped beyond): a scored parent's replicas and its task's neighbours fit many times over
CACHED_TASKS = 1024
CACHED_JOBS = 8192


@dataclass(frozen=True)
class Unit:
    """One piece of work: ``kind`` consensus (``job_id`` = parent), job, or quality (``job_id`` = GT job)."""

    kind: str
    job_id: int
    task_id: int
    trigger_ids: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.job_id}"


@dataclass
class CycleReport:
    """What one cycle did (also logged at INFO)."""

    changed_jobs: int = 0
    units: int = 0
    scored_units: int = 0
    jobs_scored: int = 0
    unchanged_units: int = 0
    waiting_units: int = 0
    leased_elsewhere: int = 0
    failed_units: int = 0
    parked_units: int = 0
    findings: int = 0
    issues_opened: int = 0
    issues_resolved: int = 0
    duplicates_resolved: int = 0
    decisions: dict[int, str] = field(default_factory=dict)
    cvat_calls: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    aborted: bool = False  # the change listing itself failed

    def add(self, other: CycleReport) -> None:
        """Add another organization's report of the same cycle to this one."""
        for name in (
            "changed_jobs",
            "units",
            "scored_units",
            "jobs_scored",
            "unchanged_units",
            "waiting_units",
            "leased_elsewhere",
            "failed_units",
            "parked_units",
            "findings",
            "issues_opened",
            "issues_resolved",
            "duplicates_resolved",
            "cvat_calls",
            "seconds",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.decisions.update(other.decisions)
        self.errors.extend(other.errors)
        self.aborted = self.aborted or other.aborted

    def unit_failed(self, key: str, exc: Exception) -> None:
        """Count a unit that failed this cycle (``key``: its :attr:`Unit.key`) and say why."""
        self.failed_units += 1
        self.errors.append(f"{key}: {exc}")

    @property
    def healthy(self) -> bool:
        """False when the cycle got nothing done because of errors (CVAT down, say)."""
        return not self.aborted and not (self.units and self.failed_units == self.units)


def signature(parts: Iterable[Any]) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:24]


class Cycle:
    """The per-cycle pipeline of one replica; keep one instance per process (it caches labels,
    frame meta and the reviewer pool between cycles)."""

    def __init__(
        self,
        settings: SidecarSettings,
        client: CvatApi,
        store: StateStore,
        *,
        owner: str,
        rules: RuleRunner | None = None,
        consensus: ConsensusRunner | None = None,
        metrics: SidecarMetrics | None = None,
        hook: Hook = no_hook,
        clock: Callable[[], float] = time.time,
        guide: Any | None = None,
        prefetcher: Prefetcher | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        self.owner = owner
        self.rules = rules
        self.consensus = consensus
        self.metrics = metrics if metrics is not None else SidecarMetrics()
        self.clock = clock
        self.guide = guide
        self.prefetcher = prefetcher
        self.al_scheduler: RoundScheduler | None = None  # scheduled active-learning rounds (service wiring)
        self.workforce: WorkCollector | None = None  # annotators' records and the qualification gate
        self.runner = ActionRunner(store, owner, hook=hook, lease_ttl_s=settings.state.lease_ttl_s)
        self.policy = Policy(
            max_errors=settings.rules.max_errors,
            min_agreement=settings.consensus.min_agreement,
            min_replica_agreement=settings.consensus.min_replica_agreement,
            review_target=settings.routing.target,
        )
        issues = IssuePublisher(
            client,
            store,
            self.runner,
            self.metrics,
            min_severity=settings.issues.min_severity,
            max_issues_per_job=settings.issues.max_per_job,
            resolve_fixed=settings.issues.resolve_fixed,
            write_visibility_s=settings.cvat.write_visibility_s,
            duplicate_watch_s=settings.cvat.duplicate_watch_s,
        )
        self.publisher = Publisher(client, store, self.runner, self.metrics, issues)
        self.sweeper = DuplicateSweeper(client, store, self.publisher.issues)
        self.feed = ChangeFeed(
            client,
            store,
            settings.scope,
            reconcile_interval_s=settings.service.reconcile_interval_s,
            clock=clock,
            overlap_s=settings.service.cursor_overlap_s,
            metrics=self.metrics,
        )
        self.pool = ReviewerPool(
            client, store, settings.reviewers, ttl_s=settings.service.reconcile_interval_s, clock=clock
        )
        reread_s = settings.service.reconcile_interval_s
        self._labels: ExpiringCache[int, LabelSet] = ExpiringCache(
            ttl_s=reread_s, clock=clock, max_entries=CACHED_TASKS
        )
        self.honeypots = Honeypots(client, ttl_s=reread_s, clock=clock, max_tasks=CACHED_TASKS)
        # a job's frame meta is read once (until evicted)
        self._meta: ExpiringCache[int, JobMeta] = ExpiringCache(ttl_s=None, clock=clock, max_entries=CACHED_JOBS)
        # replica annotations by (job id, updated_date): re-scoring a parent after one replica
        # changed fetches only that replica (saving annotations always moves updated_date)
        self._annotations: OrderedDict[int, tuple[str, _Replica, int]] = OrderedDict()
        self._cached_objects = 0

    # --- the cycle ------------------------------------------------------------------------------
    def run(self) -> CycleReport:
        report = CycleReport()
        started = self.clock()
        calls_before = dict(self.client.calls)
        t0 = time.perf_counter()
        try:
            self.recover()
            changes = self.feed.collect()
            report.changed_jobs = len(changes.changed)
            # durable hand-off before any work: queue, cache, cursor
            self.store.enqueue(changes.changed, "changed")
            self.store.upsert_jobs(job_row(j) for j in changes.changed.values())
            self.feed.commit(changes)
            units = self.plan(changes.changed.values())
            report.units = len(units)
            touched: set[int] = set()
            for unit in units:
                if self._run_unit(unit, report):
                    touched.add(unit.task_id)
            report.duplicates_resolved = self.sweeper.sweep()
            # also tasks whose summary an earlier (interrupted or debounced) cycle left unpublished
            for task_id in sorted(touched | set(self.store.tasks_needing_guide())):
                self._after_task(task_id, report)
            if self.prefetcher is not None:
                self.prefetcher.submit(changes.changed.values())
            if self.workforce is not None:
                self.workforce.step(changes.changed.values())
            if self.al_scheduler is not None:
                self.al_scheduler.step()
        except CvatError as exc:
            # listing failed (after the client's retries): nothing was lost, the next cycle retries
            self.metrics.cvat_errors.labels(kind=type(exc).__name__).inc()
            self.metrics.cycles.labels(outcome="error").inc()
            report.errors.append(str(exc))
            report.aborted = True
            log.warning("cycle aborted by a CVAT error (will retry): %s", exc)
            return self._close(report, calls_before, t0)
        self.metrics.cycles.labels(outcome="ok").inc()
        self.metrics.last_cycle.set(self.clock())
        log.info(
            "cycle: %d changed jobs, %d units (%d scored, %d unchanged, %d waiting, %d leased elsewhere, %d failed), "
            "%d issues opened, %d resolved, started at %.0f",
            report.changed_jobs,
            report.units,
            report.scored_units,
            report.unchanged_units,
            report.waiting_units,
            report.leased_elsewhere,
            report.failed_units,
            report.issues_opened,
            report.issues_resolved,
            started,
        )
        return self._close(report, calls_before, t0)

    def _close(self, report: CycleReport, calls_before: dict[str, int], t0: float) -> CycleReport:
        report.seconds = time.perf_counter() - t0
        report.cvat_calls = self.metrics.count_calls(calls_before, dict(self.client.calls))
        self.metrics.cycle_seconds.observe(report.seconds)
        return report

    def recover(self) -> int:
        """Finish actions an interrupted run (this or another replica) left ``started``.

        Only actions idle for a lease TTL are taken (a live replica finishes its own well within
        it), each under its own lease so two recovering replicas never repeat one.
        """
        ttl = self.settings.state.lease_ttl_s
        done = 0
        for row in self.store.actions(status="started", idle_for_s=ttl):
            lease = f"action:{row.key}"
            if not self.store.try_lease(lease, self.owner, ttl):
                continue
            try:
                with self.runner.under_lease(lease):
                    resumed = self.publisher.resume(row.key, row.kind, row.payload)
                    superseded = None if resumed else self._superseded(row)
                    if superseded is not None:
                        self.runner.close(row.key, "superseded", reason=superseded, audit=_closing(row, "superseded"))
                if resumed:
                    done += 1
                    log.info("recovered interrupted action %s", row.key)
            except CvatWritePendingError as exc:
                log.info("action %s: %s", row.key, exc)
            except (CvatPermissionError, CvatNotFoundError) as exc:
                # refused again after a lease TTL: retrying every cycle would never end
                reason = f"CVAT refused it again ({exc.status}): {exc}"
                self.runner.close(row.key, "parked", reason=reason, audit=_closing(row, "parked"))
                self.metrics.parked.labels(what="action").inc()
                log.error("action %s parked: %s", row.key, reason)
            except (CvatError, LeaseLostError) as exc:
                log.warning("action %s: recovery failed, retried next cycle: %s", row.key, exc)
            finally:
                self.store.release_lease(lease, self.owner)
        return done

    def _superseded(self, row: ActionRow) -> str | None:
        """Why a started merge or guide action will never be repeated under its key (its unit's
        inputs or its task's summary changed since), or None while it still may be."""
        if row.kind == "guide" and self.guide is not None:
            return self.guide.superseded(row.key, row.payload, row.updated_at)
        if row.kind == "merge":
            unit_key, _, sig = row.key.removeprefix("merge:").rpartition(":")
            current = self.store.unit_signature(unit_key)
            if current is not None and current != sig:
                return f"{unit_key} was scored again with other inputs; its merge decision replaced this one"
        return None

    def plan(self, jobs: Iterable[Job]) -> list[Unit]:
        """Group changed jobs into units (sorted by key, so replicas visit them in one order)."""
        triggers: dict[tuple[str, int], tuple[int, list[int]]] = {}

        def add(kind: str, job_id: int, task_id: int, trigger: int | None) -> None:
            ids = triggers.setdefault((kind, job_id), (task_id, []))[1]
            if trigger is not None:
                ids.append(trigger)

        consensus_on = self.settings.consensus.enabled and self.consensus is not None
        for job in jobs:
            if job.type == "consensus_replica" and job.parent_job_id is not None and consensus_on:
                add("consensus", job.parent_job_id, job.task_id, job.id)
            elif job.type == "annotation" and job.consensus_replicas > 0 and consensus_on:
                add("consensus", job.id, job.task_id, job.id)
            elif job.type in ("annotation", "consensus_replica"):
                add("job", job.id, job.task_id, job.id)
            elif job.type == "ground_truth":
                add("quality", job.id, job.task_id, job.id)
                if consensus_on and self.settings.consensus.use_ground_truth:
                    # GT anchors the annotator estimates: its parents are scored again (their
                    # signature includes the GT version). The quality unit alone holds the GT
                    # job's queue entry, so a crash or failure here never drops its report.
                    parents = {r.parent_job_id for r in self.store.jobs_of_task(job.task_id)
                               if r.type == "consensus_replica" and r.parent_job_id is not None}
                    for parent_id in sorted(parents):
                        add("consensus", parent_id, job.task_id, None)
        return [Unit(kind, jid, task_id, tuple(ids)) for (kind, jid), (task_id, ids) in sorted(triggers.items())]

    def _run_unit(self, unit: Unit, report: CycleReport) -> bool:
        """Process one unit under its lease; True when it was scored (the task needs a summary)."""
        ttl = self.settings.state.lease_ttl_s
        if not self.store.try_lease(unit.key, self.owner, ttl):
            report.leased_elsewhere += 1
            return False
        try:
            with self.runner.under_lease(unit.key):
                if unit.kind == "consensus":
                    outcome = self._consensus_unit(unit, report)
                elif unit.kind == "job":
                    outcome = self._job_unit(unit, report)
                else:
                    outcome = self._quality_unit(unit)
            if outcome in ("scored", "quality"):
                report.scored_units += 1
            elif outcome == "unchanged":
                report.unchanged_units += 1
            else:
                report.waiting_units += 1
            self.store.dequeue(unit.trigger_ids)
            self.store.clear_denials(unit.key)
            return outcome in ("scored", "quality")
        except CvatWritePendingError as exc:
            # not a failure: an earlier create may still land; the unit stays queued
            report.waiting_units += 1
            log.info("%s: stays queued while an earlier write may still land (%.0f s left)", unit.key, exc.wait_s)
            return False
        except CvatPermissionError as exc:
            denials = self.store.count_denial(unit.key)
            if denials < self.settings.service.park_after_denials:
                report.unit_failed(unit.key, exc)
                self.metrics.cvat_errors.labels(kind=type(exc).__name__).inc()
                log.warning("%s: CVAT refused (403, %d in a row); left queued: %s", unit.key, denials, exc)
                return False
            self._park(unit, exc, denials, report)
            return False
        except CvatNotFoundError as exc:
            # the job (or its task) was deleted in CVAT: nothing left to do for it
            log.info("%s: gone from CVAT, dropped: %s", unit.key, exc)
            self._drop(unit, "unit.gone", str(exc))
            return False
        except (CvatError, LeaseLostError) as exc:
            report.unit_failed(unit.key, exc)
            self.metrics.cvat_errors.labels(kind=type(exc).__name__).inc()
            log.warning("%s: left queued for the next cycle after a CVAT error: %s", unit.key, exc)
            return False
        except CvatExtError as exc:
            # bad data in CVAT (malformed annotations...): report, do not retry forever
            report.unit_failed(unit.key, exc)
            log.error("%s: skipped: %s", unit.key, exc)
            self._drop(unit, "unit.error", str(exc))
            return False
        finally:
            self.store.release_lease(unit.key, self.owner)

    def _park(self, unit: Unit, exc: CvatPermissionError, denials: int, report: CycleReport) -> None:
        """Drop a unit CVAT keeps refusing from the queue, saying so in the log, audit and metrics."""
        reason = f"CVAT refused it {denials} cycles in a row (403): {exc}"
        report.parked_units += 1
        report.errors.append(f"{unit.key}: parked: {reason}")
        self.metrics.parked.labels(what="unit").inc()
        log.error("%s: parked (not retried until the job changes again): %s", unit.key, reason)
        self._drop(unit, "unit.parked", reason)

    def _drop(self, unit: Unit, action: str, reason: str) -> None:
        """Take a unit's jobs off the queue without scoring them, with an audit row (``action``:
        ``unit.gone``, ``unit.error``, ``unit.parked``) saying why; its refusals in a row end too."""
        self.store.append_audit(
            replica=self.owner, action=action, job_id=unit.job_id, task_id=unit.task_id, reason=reason
        )
        self.store.dequeue(unit.trigger_ids)
        self.store.clear_denials(unit.key)

    # --- inputs (cached) --------------------------------------------------------------------------
    def labels(self, task_id: int) -> LabelSet:
        hit = self._labels.get(task_id)
        return hit if hit is not None else self._labels.put(task_id, self.client.get_labels(task_id=task_id))

    def meta(self, job_id: int) -> JobMeta:
        hit = self._meta.get(job_id)
        return hit if hit is not None else self._meta.put(job_id, self.client.get_job_meta(job_id))

    def replica(self, job: JobRow) -> _Replica:
        """A replica's annotations: fetched once per ``updated_date`` as CVAT's JSON, read into
        columns for the engine and the rules (objects only for a body with tracks) on first use."""
        hit = self._annotations.get(job.id)
        if hit is not None and hit[0] == job.updated_date:
            self._annotations.move_to_end(job.id)
            return hit[1]
        fetched = _Replica(self.client.get_annotations_bytes(job.id), f"job {job.id}")
        size = fetched.size()
        if hit is not None:
            self._cached_objects -= self._annotations.pop(job.id)[2]
        self._annotations[job.id] = (job.updated_date, fetched, size)
        self._cached_objects += size
        while self._cached_objects > ANNOTATION_CACHE_OBJECTS and self._annotations:
            self._cached_objects -= self._annotations.popitem(last=False)[1][2]
        return fetched

    def annotations(self, job: JobRow) -> JobAnnotations:
        """A job's annotations as objects (the rules, the workforce step), from the same cache."""
        return self.replica(job).annotations()

    def _job_row(self, job_id: int) -> JobRow:
        row = self.store.get_job(job_id)
        if row is None:
            row = job_row(self.client.get_job(job_id))
            self.store.upsert_jobs([row])
        return row

    def _replicas(self, parent_id: int) -> list[JobRow]:
        rows = self.store.replicas_of(parent_id)
        if not rows:
            rows = [job_row(j) for j in self.client.iter_jobs(parent_job_id=parent_id, type="consensus_replica")]
            self.store.upsert_jobs(rows)
        return rows

    def _ground_truth(self, gt_job: JobRow | None, meta: JobMeta) -> tuple[JobTruth | None, dict[str, Any]]:
        """The task's accepted GT on the parent job's frames (its own GT frames and its honeypots),
        or None; and the report's ``ground_truth`` section so far (empty: no GT to speak of)."""
        if gt_job is None:
            return None, {}
        gt = read_ground_truth([gt_job], self)
        if gt is None:
            return None, {}
        truth, unread = self.honeypots.truth_for(gt_job.task_id, gt, meta)
        if not truth.frames and unread is None:
            return None, {}  # the task's GT covers other jobs' frames only
        section: dict[str, Any] = {"job_id": gt.job_id, "frames": len(truth.frames), "honeypots": truth.honeypots}
        if unread is not None:
            section["honeypots_unread"] = unread
        return (truth if truth.frames else None), section

    def _rule_findings(
        self, job: JobRow, ann: JobAnnotations | ReplicaColumns, labels: LabelSet, meta: JobMeta
    ) -> list[Finding]:
        if self.rules is None:
            return []
        return list(self.rules.check(JobRef(job.id, job.task_id, job.project_id), ann, labels, meta))

    # --- units ------------------------------------------------------------------------------------
    def _consensus_unit(self, unit: Unit, report: CycleReport) -> str:
        assert self.consensus is not None
        cfg = self.settings.consensus
        parent = self._job_row(unit.job_id)
        replicas = self._replicas(unit.job_id)
        if not replicas or any(r.state != "completed" for r in replicas):
            return "waiting"
        gt_job = accepted_gt_job(self.store.jobs_of_task(parent.task_id)) if cfg.use_ground_truth else None
        versions = [f"{r.id}@{r.updated_date}" for r in replicas]
        # the task's GT job is an input too: accepting or editing it re-scores the replicas
        sig = signature(versions + ([f"gt{gt_job.id}@{gt_job.updated_date}"] if gt_job is not None else []))
        if self.store.unit_signature(unit.key) == sig:
            return "unchanged"
        labels = self.labels(parent.task_id)
        meta = self.meta(parent.id)
        fetched = [self.replica(r) for r in replicas]
        inputs = [
            ReplicaInput(r.id, r.assignee_id, columns=f.columns(meta.stop_frame), name=n)
            for r, f, n in zip(replicas, fetched, replica_names(replicas), strict=True)
        ]
        rule_findings: list[Finding] = []
        if self.rules is not None:
            for r, f, given in zip(replicas, fetched, inputs, strict=True):
                # the rules read the engine's columns; a body with tracks needs its objects
                cols = given.columns
                source = f.annotations() if cols is None or cols.from_tracks else cols
                rule_findings += self._rule_findings(r, source, labels, meta)
        truth, gt_section = self._ground_truth(gt_job, meta)
        ground_truth = (truth.annotations, truth.frames) if truth is not None else None
        outcome = self._fit(parent, replicas, inputs, labels, meta, ground_truth)
        agreement = Agreement(
            outcome.agreement, outcome.replica_agreement, measurable=outcome.detail.get("clusters") != 0
        )
        decided = decide([*rule_findings, *outcome.findings], self.policy, job_id=parent.id, agreement=agreement)
        # the engine's findings on objects stay columns: they never change the verdict, and only
        # the replicas that agree too little get issues (decide's rule for consensus findings)
        table = outcome.replica_findings
        rows = None
        if table is not None:
            rows = table.on_jobs([r.id for r in replicas if replica_is_sloppy(r.id, agreement, self.policy)])
            self._count_table(table.severity_counts(rows), report)
        findings = self.publisher.issues.publishable(decided.issues, table, rows)
        self._count_findings([*decided.issues, *decided.recorded], report)
        assignees = {r.id: r.assignee_id for r in replicas}
        self._publish(findings, [r.id for r in replicas], assignees, parent.task_id, report)

        errors = sum(1 for f in rule_findings if f.severity is Severity.ERROR)
        detail: dict[str, Any] = {
            "replicas": {str(k): round(float(v), 4) for k, v in outcome.replica_agreement.items()},
            "annotators": [a.as_dict() for a in outcome.annotators],
        }
        if gt_section:
            # said even when no frame of this job is covered (honeypots unread): never silently
            detail["ground_truth"] = {**gt_section, **(dict(outcome.ground_truth) if outcome.ground_truth else {})}

        def score(decision: str) -> ScoreRow:
            return ScoreRow(
                unit.key,
                parent.task_id,
                parent.id,
                "consensus",
                float(outcome.agreement),
                errors,
                len(findings),
                decision,
                detail,
                self.clock(),
            )

        # the score is kept before acting, so an interrupted unit still shows in the task summary
        self.store.put_score(score("pending"))
        jobs = {r.id: r for r in replicas} | {parent.id: parent}
        annotators = {r.assignee_id for r in replicas} | {parent.assignee_id}

        def merge(why: str) -> None:
            merged = outcome.merged_json or outcome.merged
            if self.settings.merge.policy == "ours" and merged is not None:
                self.publisher.write_merge(
                    f"merge:{unit.key}:{sig}", parent, merged, task_id=parent.task_id, reason=why
                )
            elif self.settings.merge.policy == "cvat":
                self.publisher.request_cvat_merge(f"merge:{unit.key}:{sig}", parent, task_id=parent.task_id, reason=why)

        decision = self._execute(decided, f"{unit.key}:{sig}", jobs, annotators, on_accept=merge)
        self.store.put_score(score(decision))
        report.decisions[parent.id] = decision
        report.jobs_scored += len(replicas)
        self.metrics.jobs_scored.inc(len(replicas))
        self.store.set_unit_signature(unit.key, sig, parent.task_id)
        return "scored"

    def _fit(
        self,
        parent: JobRow,
        replicas: list[JobRow],
        inputs: list[ReplicaInput],
        labels: LabelSet,
        meta: JobMeta,
        ground_truth: tuple[JobAnnotations, tuple[int, ...]] | None,
    ) -> ConsensusOutcome:
        """Score the replicas (named by username) from each person's pooled model; keep the new ones."""
        assert self.consensus is not None
        scope = pool_scope(self.settings.consensus.pool_scope, parent)
        pool = AnnotatorPool(self.store, scope, parent.id, people_of([i.annotator for i in inputs], replicas))
        outcome = self.consensus.score(
            parent.id, inputs, labels, meta, ground_truth=ground_truth, priors=pool.priors() or None
        )
        pool.fold(outcome.models)
        log.info(
            "job %d: %s", parent.id, "; ".join(f"{a.name} (job {a.job_id}): {a.text()}" for a in outcome.annotators)
        )
        return outcome

    def _execute(
        self,
        decided: Decision,
        key: str,
        jobs: dict[int, JobRow],
        annotators: set[int | None],
        *,
        on_accept: Callable[[str], None] | None = None,
    ) -> str:
        """Carry out a decision on the unit ``key`` (``<unit key>:<signature>``, so a restart repeats
        nothing); returns the line recorded as the unit's decision."""
        why = decided.reason
        if decided.verdict is Verdict.REJECT:
            done = [self._reject(f"reject:{key}:{jid}", jobs[jid], why) for jid in decided.job_ids if jid in jobs]
            return f"reject ({why}) -> " + ", ".join(done)
        target = jobs[decided.job_ids[0]]
        if decided.verdict is Verdict.REVIEW:
            return self._route(f"route:{key}", target, annotators, why)
        if on_accept is not None:
            on_accept(why)
        return self._pass(f"pass:{key}", target, why)

    def _reject(self, key: str, job: JobRow, why: str) -> str:
        """Send ``job`` back to its annotator: stage annotation, state rejected (CVAT needs both
        fields; the assignee stays)."""
        if not self.settings.routing.enabled:
            return f"job {job.id} not moved (routing disabled)"
        moved = self.publisher.move_job(
            key,
            job,
            task_id=job.task_id,
            choose=lambda: {"stage": "annotation", "state": "rejected"},
            action="job.reject",
            reason=why,
        )
        return f"job {moved.id} {moved.stage}/{moved.state}"

    def _route(self, key: str, target: JobRow, annotators: set[int | None], why: str) -> str:
        cfg = self.settings.routing
        if not cfg.enabled:
            return f"review needed ({why}); routing disabled"
        if (
            self.runner.payload_of(key) is None
            and self.pool.is_reviewer(target.assignee_id)
            and target.stage == cfg.review_stage
        ):
            return f"review ({why}); already with reviewer {target.assignee_id}"

        def choose() -> dict[str, Any]:
            reviewer = self.pool.least_loaded(exclude={a for a in annotators if a is not None})
            return {"assignee_id": reviewer.id, "stage": cfg.review_stage, "state": cfg.review_state}

        try:
            moved = self.publisher.move_job(
                key, target, task_id=target.task_id, choose=choose, action="job.reassign", reason=why
            )
        except NoReviewerError as exc:
            log.warning("job %d: %s", target.id, exc)
            return f"review needed ({why}); {exc}"
        return f"review ({why}) -> job {moved.id} assigned to user {moved.assignee_id}"

    def _pass(self, key: str, job: JobRow, why: str) -> str:
        cfg = self.settings.routing
        if not cfg.enabled or cfg.pass_stage is None or job.stage != "annotation":
            return f"pass ({why})"
        stage, state = cfg.pass_stage, cfg.pass_state
        moved = self.publisher.move_job(
            key,
            job,
            task_id=job.task_id,
            choose=lambda: {"stage": stage, "state": state},
            action="job.pass",
            reason=why,
        )
        return f"pass ({why}) -> job {moved.id} {moved.stage}/{moved.state}"

    def _job_unit(self, unit: Unit, report: CycleReport) -> str:
        job = self._job_row(unit.job_id)
        rules = self.settings.rules
        if job.stage not in rules.run_on_stages or job.state not in rules.run_on_states or self.rules is None:
            return "waiting"
        sig = signature([job.updated_date, job.state])
        if self.store.unit_signature(unit.key) == sig:
            return "unchanged"
        ann = self.annotations(job)  # cached: the workforce step reads the same job after
        found = self._rule_findings(job, ann, self.labels(job.task_id), self.meta(job.id))
        decided = decide(found, self.policy, job_id=job.id)
        findings = self.publisher.issues.publishable(decided.issues)
        self._count_findings(found, report)
        self._publish(findings, [job.id], {job.id: job.assignee_id}, job.task_id, report)
        errors = sum(1 for f in found if f.severity is Severity.ERROR)
        # errors per rule: the annotators' scorecards break rule violations down by rule
        detail = {"rule_errors": dict(Counter(f.code for f in found if f.severity is Severity.ERROR))}
        self.store.put_score(
            ScoreRow(
                unit.key, job.task_id, job.id, "rules", None, errors, len(findings), "pending", detail, self.clock()
            )
        )
        decision = self._execute(decided, f"{unit.key}:{sig}", {job.id: job}, {job.assignee_id})
        report.decisions[job.id] = decision
        report.jobs_scored += 1
        self.metrics.jobs_scored.inc()
        self.store.put_score(
            ScoreRow(
                unit.key, job.task_id, job.id, "rules", None, errors, len(findings), decision, detail, self.clock()
            )
        )
        # our own PATCH moved updated_date: remember the post-action value so it is not "changed"
        after = self.store.get_job(job.id) or job
        self.store.set_unit_signature(unit.key, signature([after.updated_date, after.state]), job.task_id)
        return "scored"

    def _quality_unit(self, unit: Unit) -> str:
        gt = self._job_row(unit.job_id)
        if not self.settings.quality.request_reports or (gt.stage, gt.state) != ("acceptance", "completed"):
            return "waiting"
        sig = signature([gt.updated_date])
        if self.store.unit_signature(unit.key) == sig:
            return "unchanged"
        result = self.publisher.quality_report(
            f"quality:{gt.task_id}:{sig}", gt.task_id, gt.id, timeout_s=self.settings.quality.wait_timeout_s
        )
        accuracy = result.get("accuracy")
        self.store.put_score(
            ScoreRow(
                unit.key,
                gt.task_id,
                gt.id,
                "quality",
                float(accuracy) if isinstance(accuracy, int | float) else None,
                int(result.get("error_count") or 0),
                int(result.get("conflict_count") or 0),
                f"CVAT quality report {result.get('report_id')}",
                result,
                self.clock(),
            )
        )
        self.store.set_unit_signature(unit.key, sig, gt.task_id)
        return "quality"

    # --- helpers ------------------------------------------------------------------------------------
    def _publish(
        self,
        findings: list[Finding],
        job_ids: list[int],
        assignees: dict[int, int | None],
        task_id: int,
        report: CycleReport,
    ) -> None:
        if not self.settings.issues.enabled:
            return
        opened, resolved = self.publisher.issues.sync_issues(job_ids, findings, assignees, task_id)
        report.issues_opened += opened
        report.issues_resolved += resolved

    def _count_findings(self, findings: Sequence[Finding], report: CycleReport) -> None:
        report.findings += len(findings)
        for f in findings:
            self.metrics.findings.labels(source=f.source, severity=f.severity).inc()

    def _count_table(self, by_severity: dict[Severity, int], report: CycleReport) -> None:
        """Count columnar consensus findings (``severity -> how many``)."""
        for severity, n in by_severity.items():
            report.findings += n
            self.metrics.findings.labels(source=Source.CONSENSUS, severity=severity).inc(n)

    def _after_task(self, task_id: int, report: CycleReport) -> None:
        if self.guide is None or not self.settings.guide.enabled:
            return
        lease = f"guide:{task_id}"
        if not self.store.try_lease(lease, self.owner, self.settings.state.lease_ttl_s):
            return  # another replica is writing this task's guide
        try:
            with self.runner.under_lease(lease):
                self.guide.publish(task_id)
        except (CvatError, LeaseLostError) as exc:
            report.errors.append(f"guide task {task_id}: {exc}")
            self.metrics.cvat_errors.labels(kind=type(exc).__name__).inc()
            log.warning("task %d: guide update failed (retried next time): %s", task_id, exc)
        finally:
            self.store.release_lease(lease, self.owner)


def _closing(row: ActionRow, status: str) -> dict[str, Any]:
    """The audit fields of an action closed without being done (parked or superseded)."""
    payload = row.payload
    return {
        "action": f"{row.kind}.{status}",
        "job_id": row.job_id,
        "task_id": payload.get("task_id"),
        "frame": payload.get("frame"),
        "before": {"status": "started"},
        "after": {"status": status},
    }


class _Replica:
    """One fetched replica body (the bytes CVAT sent), read into columns (for the engine and the
    rules) and objects (for the rules on tracks, plain jobs, the workforce step) on first use."""

    def __init__(self, raw: bytes, where: str) -> None:
        self.raw = raw
        self.where = where
        self._columns: dict[int, ReplicaColumns] = {}
        self._annotations: JobAnnotations | None = None

    def size(self) -> int:
        """Objects held, for the cache's bound: every shape, tag, track and keyframe has a
        ``"frame"`` key (a C-level count; a body without one counts as one)."""
        return 1 + self.raw.count(b'"frame"')

    def annotations(self) -> JobAnnotations:
        if self._annotations is None:
            try:
                data = json.loads(self.raw)
            except ValueError as exc:
                read_annotations_bytes(self.raw, where=self.where)  # raises the reader's error, as columns() would
                raise AnnotationFormatError(f"{self.where}: annotations are not valid JSON: {exc}") from exc
            self._annotations = parse_job_annotations(data, where=self.where)
        return self._annotations

    def columns(self, last_frame: int) -> ReplicaColumns:
        found = self._columns.get(last_frame)
        if found is None:
            found = self._columns[last_frame] = read_annotations_bytes(
                self.raw, where=self.where, last_frame=last_frame
            )
        return found
