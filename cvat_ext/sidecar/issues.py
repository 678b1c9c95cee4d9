"""Issues on frames: the sidecar opens one per finding, resolves it when the finding goes, reopens it
when the finding returns. Every write goes through :class:`~cvat_ext.sidecar.actions.ActionRunner`
under an idempotency key.

Issue deduplication has two anchors: the finding fingerprint stored in the state store, and the
same fingerprint embedded at the end of the issue message (``[cvat-ext fp=0123abcd...]``, see
:mod:`cvat_ext.sidecar.issue_fingerprint`). When a crash falls between CVAT's answer to
``POST /api/issues`` and the state write, the restart lists the job's issues on that frame and
finds the fingerprint in their first comment instead of opening a second issue.

A person may resolve an issue in CVAT while its finding is still there (a false alarm, or "won't
fix"). The next time that job is scored, the job's issues are read back (one
``GET /api/issues?job_id=`` per job that has open issues with current findings); such an issue
gets one comment ``still present: …`` and is then left alone (state ``dismissed``): it is neither
reopened nor commented again while the finding lasts. Once the finding disappears the row becomes
``resolved``, so a later return of the problem reopens the issue as usual.

A create that failed ambiguously (timeout, reset, 5xx: CVAT may commit it after the client gave
up) is neither forgotten nor blindly repeated: its action stays ``started`` and is looked up by
fingerprint each cycle, and repeated only after ``write_visibility_s`` (see
:class:`~cvat_ext.sidecar.actions.ActionRunner`); its job is also *watched* for
``duplicate_watch_s``, and :mod:`cvat_ext.sidecar.duplicates` resolves any second issue with the
same fingerprint that still shows up (:meth:`IssuePublisher.resolve_duplicate`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from cvat_ext.errors import CvatConnectionError, CvatError, CvatServerError, CvatWritePendingError
from cvat_ext.qa.findings import SEVERITY_RANK, Finding
from cvat_ext.sidecar.actions import ActionOutcome, ActionRunner
from cvat_ext.sidecar.interface import CvatApi
from cvat_ext.sidecar.issue_fingerprint import STILL_PRESENT, fingerprinted, issue_message
from cvat_ext.sidecar.issue_selection import publishable
from cvat_ext.sidecar.metrics import SidecarMetrics
from cvat_ext.sidecar.state import IssueRow, StateStore

if TYPE_CHECKING:
    from cvat_ext.consensus.replica_findings import ReplicaFindings
    from cvat_ext.consensus.report import IntArray

#: the action kinds :meth:`IssuePublisher.resume` finishes
ISSUE_KINDS = ("issue", "resolve", "reopen", "comment", "dedupe")


def maybe_applied(exc: CvatError) -> bool:
    """Whether a failed create may still have been (or still be) committed by CVAT."""
    if isinstance(exc, CvatServerError):
        return True
    return isinstance(exc, CvatConnectionError) and exc.failure not in ("connection refused", "name not resolved")


class IssuePublisher:
    """The issue writes of one cycle (one replica)."""

    def __init__(
        self,
        client: CvatApi,
        store: StateStore,
        runner: ActionRunner,
        metrics: SidecarMetrics,
        *,
        min_severity: str = "warning",
        max_issues_per_job: int = 50,
        resolve_fixed: bool = True,
        write_visibility_s: float = 120.0,
        duplicate_watch_s: float = 3600.0,
    ) -> None:
        self.client = client
        self.store = store
        self.runner = runner
        self.metrics = metrics
        self.min_rank = SEVERITY_RANK[min_severity]
        self.max_issues_per_job = max_issues_per_job
        self.resolve_fixed = resolve_fixed
        self.write_visibility_s = write_visibility_s
        self.duplicate_watch_s = duplicate_watch_s

    def publishable(
        self, findings: Iterable[Finding], table: ReplicaFindings | None = None, rows: IntArray | None = None
    ) -> list[Finding]:
        """Findings at or above the severity floor, deduplicated, at most N per job (worst first):
        ``findings``, and the ``rows`` of ``table`` (columnar consensus findings, built as objects
        only where they could be picked)."""
        return publishable(
            findings, min_rank=self.min_rank, max_per_job=self.max_issues_per_job, table=table, rows=rows
        )

    def sync_issues(
        self, job_ids: Sequence[int], findings: Sequence[Finding], assignees: dict[int, int | None], task_id: int
    ) -> tuple[int, int]:
        """Open an issue per new finding, resolve published issues whose finding disappeared.

        ``job_ids`` are all jobs of the unit (a job without findings gets its issues resolved).
        Returns (opened or reopened, resolved). A create still inside its write-visibility window
        does not stop the others; the first such CvatWritePendingError is raised at the end, so
        the unit stays queued and is looked at again next cycle.
        """
        opened = resolved = 0
        pending: list[CvatWritePendingError] = []
        current = {f.fingerprint: f for f in findings}
        known = {f.fingerprint: self.store.get_issue(f.fingerprint) for f in findings}
        by_hand = self._resolved_in_cvat(
            [row for row in known.values() if row is not None and row.status == "open" and row.issue_id is not None]
        )
        for f in findings:
            row = known[f.fingerprint]
            if row is None or row.issue_id is None:
                try:
                    opened += self._open_issue(f, assignees.get(f.job_id) if f.job_id is not None else None, task_id)
                except CvatWritePendingError as exc:
                    pending.append(exc)
            elif row.status == "resolved":
                # the problem came back after a fix: reopen the same issue rather than add one
                opened += self._reopen_issue(row, task_id)
            elif row.status == "open" and row.issue_id in by_hand:
                self._still_present(row, f, task_id)
        for job_id in job_ids:
            for row in self.store.issues_of_job(job_id):
                if row.fingerprint in current or row.issue_id is None:
                    continue
                if row.status == "dismissed":
                    # resolved by hand and now really gone: a return of the problem reopens it
                    self.store.put_issue(dataclasses.replace(row, status="resolved", generation=row.generation + 1))
                elif row.status == "open" and self.resolve_fixed and self._resolve_issue(row, task_id):
                    resolved += 1
        if pending:
            self.metrics.writes_pending.inc(len(pending))
            raise pending[0]
        return opened, resolved

    def _resolved_in_cvat(self, rows: Sequence[IssueRow]) -> set[int]:
        """Ids of the issues behind ``rows`` (ours, open in our state) that CVAT shows resolved."""
        wanted = {row.issue_id for row in rows}
        found: set[int] = set()
        for job_id in sorted({row.job_id for row in rows}):
            found |= {i.id for i in self.client.list_issues(job_id=job_id) if i.resolved and i.id in wanted}
        return found

    def _still_present(self, row: IssueRow, f: Finding, task_id: int) -> bool:
        """One comment on an issue a person resolved while its finding persists; then ``dismissed``."""
        key = f"still:{row.fingerprint}:{row.generation}"
        payload = {**self._flip(row, task_id), "comment": f"{STILL_PRESENT}{issue_message(f)}"}
        return self._still_action(key, payload)

    def _still_action(self, key: str, payload: dict[str, Any]) -> bool:
        def audit(p: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
            return {
                "action": "issue.still_present",
                "job_id": p["job_id"],
                "task_id": p["task_id"],
                "frame": p["frame"],
                "reason": "issue resolved in CVAT while the finding is still present",
                "before": {"issue_id": p["issue_id"], "resolved": True},
                "after": {"issue_id": p["issue_id"], "comment_id": r["comment_id"]},
            }

        outcome = self._comment_action(key, "comment", payload, audit)
        p = self.runner.payload_of(key) or payload
        fp, job_id, issue_id, frame = p["fingerprint"], p["job_id"], p["issue_id"], p["frame"]
        self.store.put_issue(IssueRow(fp, job_id, issue_id, frame, "dismissed", p["message"], p["generation"]))
        if outcome.performed:
            self.metrics.issues_still_present.inc()
        return outcome.performed

    def _open_issue(self, f: Finding, assignee_id: int | None, task_id: int) -> bool:
        payload = {
            "job_id": f.job_id,
            "task_id": task_id,
            "frame": f.frame,
            "position": [round(v, 2) for v in f.xyxy],
            "message": issue_message(f),
            "assignee_id": assignee_id,
            "fingerprint": f.fingerprint,
            "reason": f"{f.source} {f.code} ({f.severity})",
        }
        return self._issue_action(f"issue:{f.fingerprint}", payload)

    def _issue_action(self, key: str, payload: dict[str, Any]) -> bool:
        def do(p: dict[str, Any]) -> dict[str, Any]:
            try:
                issue = self.client.create_issue(
                    p["job_id"], p["frame"], p["position"], p["message"], assignee_id=p["assignee_id"]
                )
            except CvatError as exc:
                if maybe_applied(exc):
                    # CVAT may commit it late: watch the job for a second copy (duplicates.py)
                    watched = {k: p[k] for k in ("job_id", "task_id", "frame", "fingerprint")}
                    self.store.watch(key, p["job_id"], watched, self.store.clock() + self.duplicate_watch_s)
                raise
            return {"issue_id": issue.id}

        def reconcile(p: dict[str, Any]) -> dict[str, Any] | None:
            issue_id = self.find_issue_by_fingerprint(p["job_id"], p["frame"], p["fingerprint"])
            return {"issue_id": issue_id} if issue_id is not None else None

        def audit(p: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
            return {
                "action": "issue.open",
                "job_id": p["job_id"],
                "task_id": p["task_id"],
                "frame": p["frame"],
                "user_id": p["assignee_id"],
                "reason": p["reason"],
                "before": {},
                "after": {"issue_id": r["issue_id"], "position": p["position"], "message": p["message"]},
            }

        outcome = self._create(key, "issue", payload, do, audit, reconcile)
        p = self.runner.payload_of(key) or payload
        self.store.put_issue(
            IssueRow(p["fingerprint"], p["job_id"], int(outcome.result["issue_id"]), p["frame"], "open", p["message"])
        )
        if outcome.performed:
            self.metrics.issues_opened.inc()
        return outcome.performed

    def find_issue_by_fingerprint(self, job_id: int, frame: int, fingerprint: str) -> int | None:
        """The id of the job's (oldest) issue on ``frame`` whose first comment carries ``fingerprint``."""
        found = fingerprinted(self.client, self.client.list_issues(job_id=job_id), frame, fingerprint)
        return found[0].id if found else None

    def resolve_duplicate(self, key: str, payload: dict[str, Any]) -> bool:
        """Resolve issue ``payload["issue_id"]``, a second copy of issue ``payload["kept"]`` (same
        fingerprint), and say so in a comment; True when done now."""

        def audit(p: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
            return {
                "action": "issue.duplicate",
                "job_id": p["job_id"],
                "task_id": p["task_id"],
                "frame": p["frame"],
                "reason": f"second issue for finding {p['fingerprint']} (issue {p['kept']} kept): "
                "a create CVAT committed after the sidecar had given up on it",
                "before": {"issue_id": p["issue_id"], "resolved": False},
                "after": {
                    "issue_id": p["issue_id"],
                    "resolved": True,
                    "kept": p["kept"],
                    "comment_id": r["comment_id"],
                },
            }

        outcome = self._comment_action(key, "dedupe", payload, audit, resolve=True)
        if outcome.performed:
            self.metrics.duplicates_resolved.inc()
        return outcome.performed

    def _comment_action(
        self,
        key: str,
        kind: str,
        payload: dict[str, Any],
        audit: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
        *,
        resolve: bool = False,
    ) -> ActionOutcome:
        """Add ``payload["comment"]`` to issue ``payload["issue_id"]`` once (after resolving the issue
        when ``resolve``: a PATCH, idempotent, so it goes first). A comment is a create: after an
        ambiguous attempt it is looked up by its text, and repeated only after the window."""

        def do(p: dict[str, Any]) -> dict[str, Any]:
            if resolve:
                self.client.update_issue(p["issue_id"], resolved=True)
            comment = self.client.add_comment(p["issue_id"], p["comment"])
            return {"comment_id": comment.id}

        def reconcile(p: dict[str, Any]) -> dict[str, Any] | None:
            for comment in self.client.list_comments(p["issue_id"]):
                if comment.message == p["comment"]:
                    return {"comment_id": comment.id}
            return None

        return self._create(key, kind, payload, do, audit, reconcile)

    def _create(
        self,
        key: str,
        kind: str,
        payload: dict[str, Any],
        do: Callable[[dict[str, Any]], dict[str, Any]],
        audit: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
        reconcile: Callable[[dict[str, Any]], dict[str, Any] | None],
    ) -> ActionOutcome:
        """Run a create (POST) on ``payload["job_id"]``: never repeated within the write-visibility
        window of an earlier, ambiguous attempt that ``reconcile`` cannot find yet."""
        return self.runner.run(
            key,
            kind,
            job_id=payload["job_id"],
            payload=payload,
            do=do,
            audit=audit,
            reconcile=reconcile,
            settle_s=self.write_visibility_s,
        )

    def _resolve_issue(self, row: IssueRow, task_id: int) -> bool:
        return self._flip_action(f"resolve:{row.fingerprint}:{row.generation}", "resolve", self._flip(row, task_id))

    def _reopen_issue(self, row: IssueRow, task_id: int) -> bool:
        return self._flip_action(f"reopen:{row.fingerprint}:{row.generation}", "reopen", self._flip(row, task_id))

    @staticmethod
    def _flip(row: IssueRow, task_id: int) -> dict[str, Any]:
        return {
            "issue_id": row.issue_id,
            "job_id": row.job_id,
            "task_id": task_id,
            "frame": row.frame,
            "fingerprint": row.fingerprint,
            "message": row.message,
            "generation": row.generation,
        }

    def _flip_action(self, key: str, kind: str, payload: dict[str, Any]) -> bool:
        """Resolve (``kind`` resolve) or reopen an issue: a PATCH of ``resolved``, idempotent, so a
        restart simply repeats it. Resolving bumps the generation, so the keys of a later reopen
        and resolve differ from this one's."""
        resolve = kind == "resolve"

        def do(p: dict[str, Any]) -> dict[str, Any]:
            self.client.update_issue(p["issue_id"], resolved=resolve)
            return {"resolved": resolve}

        def audit(p: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
            return {
                "action": f"issue.{kind}",
                "job_id": p["job_id"],
                "task_id": p["task_id"],
                "frame": p["frame"],
                "reason": "finding no longer present" if resolve else "finding present again",
                "before": {"issue_id": p["issue_id"], "resolved": not resolve},
                "after": {"issue_id": p["issue_id"], "resolved": resolve},
            }

        outcome = self.runner.run(key, kind, job_id=payload["job_id"], payload=payload, do=do, audit=audit)
        p = self.runner.payload_of(key) or payload
        status, generation = ("resolved", p["generation"] + 1) if resolve else ("open", p["generation"])
        self.store.put_issue(
            IssueRow(p["fingerprint"], p["job_id"], p["issue_id"], p["frame"], status, p["message"], generation)
        )
        if outcome.performed:
            (self.metrics.issues_resolved if resolve else self.metrics.issues_opened).inc()
        return outcome.performed

    def resume(self, key: str, kind: str, payload: dict[str, Any]) -> None:
        """Finish an issue action (``kind`` in :data:`ISSUE_KINDS`) a crashed run left ``started``,
        from its stored payload alone."""
        if kind == "issue":
            self._issue_action(key, payload)
        elif kind in ("resolve", "reopen"):
            self._flip_action(key, kind, payload)
        elif kind == "comment":
            self._still_action(key, payload)
        elif kind == "dedupe":
            self.resolve_duplicate(key, payload)
        else:
            raise ValueError(f"action {key}: {kind!r} is not an issue action")
