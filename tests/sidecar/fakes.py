"""In-memory fakes for the sidecar's contracts: a CVAT with just the calls the cycle makes, and
scripted rule / consensus engines. The end-to-end tests use the real client against the
stand-in; these keep the crash/restart matrix fast."""

from __future__ import annotations

import collections
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Unpack

import numpy as np

from cvat_ext.annotations.columnar_json import ReplicaColumns
from cvat_ext.annotations.cvat_json import dump_job_annotations, parse_job_annotations
from cvat_ext.annotations.model import FrameInfo, JobAnnotations, JobMeta, Label, LabelSet, Shape, ShapeType
from cvat_ext.cvat.records import (
    UNSET,
    Comment,
    Guide,
    Issue,
    Job,
    JobQuery,
    Membership,
    ServerInfo,
    Task,
    Unset,
    User,
    ValidationLayout,
)
from cvat_ext.errors import CvatNotFoundError, CvatServerError
from cvat_ext.qa.findings import Action, Finding, Severity, Source
from cvat_ext.sidecar.interface import ConsensusOutcome, JobRef, ReplicaInput

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class FakeCvat:
    """A tiny CVAT: jobs, issues (+ first comment), guides, users. ``fail`` maps a method name to
    the number of times it raises a 503 first."""

    users: dict[int, str] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)
    jobs: dict[int, Job] = field(default_factory=dict)
    annotations: dict[int, JobAnnotations] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: dict[int, list[Comment]] = field(default_factory=dict)
    guides: dict[int, Guide] = field(default_factory=dict)
    task_guides: dict[int, int] = field(default_factory=dict)
    assets: list[bytes] = field(default_factory=list)
    layouts: dict[int, ValidationLayout] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))
    _tick: int = 0

    def now(self) -> datetime:
        self._tick += 1
        return T0 + timedelta(seconds=self._tick)

    def _call(self, name: str) -> None:
        self.calls[name] += 1
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            raise CvatServerError(f"{name} -> 503", status=503)

    # seeding
    def add_user(self, user_id: int, username: str, role: str = "worker") -> None:
        self.users[user_id] = username
        self.roles[user_id] = role

    def add_job(
        self,
        job_id: int,
        task_id: int,
        *,
        type: str = "annotation",
        parent: int | None = None,
        replicas: int = 0,
        state: str = "new",
        stage: str = "annotation",
        assignee: int | None = None,
    ) -> None:
        self.jobs[job_id] = Job(
            job_id,
            task_id,
            None,
            type,
            stage,
            state,
            "annotation",
            assignee,
            self.users.get(assignee or -1),
            parent,
            0,
            9,
            10,
            self.now(),
            replicas,
            1,
            None,
        )
        self.annotations.setdefault(job_id, JobAnnotations())

    def edit_job(self, job_id: int, **fields: Any) -> None:
        self.jobs[job_id] = replace(self.jobs[job_id], updated_date=self.now(), **fields)

    # the CvatApi subset
    def iter_jobs(self, **query: Unpack[JobQuery]) -> Iterator[Job]:
        task_id, type, parent_job_id = query.get("task_id"), query.get("type"), query.get("parent_job_id")
        updated_after = query.get("updated_after")
        self._call("GET /api/jobs")
        found = [
            j
            for j in self.jobs.values()
            if (task_id is None or j.task_id == task_id)
            and (type is None or j.type == type)
            and (parent_job_id is None or j.parent_job_id == parent_job_id)
            and (updated_after is None or j.updated_date > updated_after)
        ]
        yield from sorted(found, key=lambda j: (j.updated_date, j.id))

    def get_job(self, job_id: int) -> Job:
        self._call("GET /api/jobs/{id}")
        if job_id not in self.jobs:
            raise CvatNotFoundError(f"job {job_id}: 404", status=404)
        return self.jobs[job_id]

    def update_job(
        self,
        job_id: int,
        *,
        assignee_id: int | Unset | None = UNSET,
        stage: str | None = None,
        state: str | None = None,
    ) -> Job:
        self._call("PATCH /api/jobs/{id}")
        fields: dict[str, Any] = {}
        if not isinstance(assignee_id, Unset):
            fields["assignee_id"] = assignee_id
            fields["assignee_username"] = self.users.get(assignee_id or -1)
        if stage is not None:
            fields["stage"] = stage
            fields["state"] = state or "new"
        elif state is not None:
            fields["state"] = state
        self.edit_job(job_id, **fields)
        return self.jobs[job_id]

    def get_task(self, task_id: int) -> Task:
        self._call("GET /api/tasks/{id}")
        return Task(task_id, f"task {task_id}", None, self.task_guides.get(task_id), True, 1, 20, T0)

    def get_validation_layout(self, task_id: int) -> ValidationLayout:
        self._call("GET /api/tasks/{id}/validation_layout")
        return self.layouts.get(task_id, ValidationLayout(None))

    def get_annotations(self, job_id: int) -> JobAnnotations:
        self._call("GET /api/jobs/{id}/annotations")
        return self.annotations[job_id]

    def get_annotations_bytes(self, job_id: int) -> bytes:
        self._call("GET /api/jobs/{id}/annotations")
        return json.dumps(dump_job_annotations(self.annotations[job_id])).encode()

    def put_annotations(self, job_id: int, ann: JobAnnotations) -> JobAnnotations:
        self._call("PUT /api/jobs/{id}/annotations")
        self.annotations[job_id] = ann
        return ann

    def put_annotations_json(self, job_id: int, text: str) -> dict[str, int]:
        self._call("PUT /api/jobs/{id}/annotations")
        ann = self.annotations[job_id] = parse_job_annotations(json.loads(text), where=f"PUT job {job_id}")
        return {"shapes": len(ann.shapes), "tags": len(ann.tags), "tracks": len(ann.tracks)}

    def get_labels(self, *, job_id: int | None = None, task_id: int | None = None) -> LabelSet:
        self._call("GET /api/labels")
        return LabelSet((Label(1, "car", "rectangle"), Label(2, "person", "any")))

    def get_job_meta(self, job_id: int) -> JobMeta:
        self._call("GET /api/jobs/{id}/data/meta")
        return JobMeta(0, 9, tuple(FrameInfo(640, 480) for _ in range(10)))

    def about(self) -> ServerInfo:
        self._call("GET /api/server/about")
        return ServerInfo("2.73.0", (2, 73, 0), "CVAT")

    def whoami(self) -> User:
        self._call("GET /api/users/self")
        return User(1, "qabot")

    def list_users(self) -> list[User]:
        self._call("GET /api/users")
        return [User(uid, name) for uid, name in self.users.items()]

    def list_memberships(self, *, role: str | None = None) -> list[Membership]:
        self._call("GET /api/memberships")
        return [
            Membership(uid, uid, self.users[uid], r, True, "org")
            for uid, r in self.roles.items()
            if role is None or r == role
        ]

    def create_issue(
        self, job_id: int, frame: int, position: Sequence[float], message: str, assignee_id: int | None = None
    ) -> Issue:
        self._call("POST /api/issues")
        issue_id = next(self._ids)
        self.issues[issue_id] = Issue(issue_id, job_id, frame, tuple(position), False, assignee_id, 1, T0, T0)
        self.comments[issue_id] = [Comment(next(self._ids), issue_id, message, 1)]
        return self.issues[issue_id]

    def list_issues(self, *, job_id: int | None = None, task_id: int | None = None) -> list[Issue]:
        self._call("GET /api/issues")
        return [i for i in self.issues.values() if job_id is None or i.job_id == job_id]

    def update_issue(
        self, issue_id: int, *, resolved: bool | None = None, assignee_id: int | Unset | None = UNSET
    ) -> Issue:
        self._call("PATCH /api/issues/{id}")
        if resolved is not None:
            self.issues[issue_id] = replace(self.issues[issue_id], resolved=resolved)
        return self.issues[issue_id]

    def list_comments(self, issue_id: int) -> list[Comment]:
        self._call("GET /api/comments")
        return self.comments.get(issue_id, [])

    def request_merge(self, *, job_id: int | None = None, task_id: int | None = None) -> str:
        self._call("POST /api/consensus/merges")
        return f"merge-{job_id}"

    def wait_request(self, rq_id: str, *, timeout_s: float = 600.0, poll_s: float = 2.0) -> dict[str, Any]:
        self._call("GET /api/requests/{id}")
        return {"status": "finished", "result_id": 77}

    def request_quality_report(self, task_id: int) -> str:
        self._call("POST /api/quality/reports")
        return f"quality-{task_id}"

    def get_quality_report(self, report_id: int) -> dict[str, Any]:
        self._call("GET /api/quality/reports/{id}")
        return {"id": report_id, "summary": {"accuracy": 0.9, "conflict_count": 3, "error_count": 1}}

    def get_guide(self, guide_id: int) -> Guide:
        self._call("GET /api/guides/{id}")
        return self.guides[guide_id]

    def create_guide(self, *, task_id: int | None = None, project_id: int | None = None, markdown: str) -> Guide:
        self._call("POST /api/guides")
        gid = next(self._ids)
        self.guides[gid] = Guide(gid, markdown, task_id, None)
        if task_id is not None:
            self.task_guides[task_id] = gid
        return self.guides[gid]

    def update_guide(self, guide_id: int, markdown: str) -> Guide:
        self._call("PATCH /api/guides/{id}")
        self.guides[guide_id] = replace(self.guides[guide_id], markdown=markdown)
        return self.guides[guide_id]

    def upload_asset(self, guide_id: int, filename: str, data: bytes, content_type: str = "image/png") -> str:
        self._call("POST /api/assets")
        self.assets.append(data)
        return f"asset-{len(self.assets)}"


def box(frame: int, x: float, label_id: int = 1, *, w: float = 50.0) -> Shape:
    return Shape(ShapeType.RECTANGLE, frame, label_id, np.array([x, 10.0, x + w, 60.0]))


@dataclass
class ScriptedConsensus:
    """A consensus engine whose per-replica agreement is given; every replica below 0.5 gets one
    'missing' finding per frame listed in ``bad_frames``."""

    agreement: Callable[[int], float]
    bad_frames: tuple[int, ...] = (2, 5)
    #: (parent job id, replica names, ground_truth, priors) of every call
    calls: list[tuple[int, list[str], Any, Any]] = field(default_factory=list)

    def score(
        self,
        parent_job_id: int,
        replicas: Sequence[ReplicaInput],
        labels: LabelSet,
        meta: JobMeta,
        *,
        ground_truth: Any = None,
        priors: Any = None,
    ) -> ConsensusOutcome:
        self.calls.append((parent_job_id, [r.annotator for r in replicas], ground_truth, priors))
        per = {r.job_id: self.agreement(r.job_id) for r in replicas}
        findings = tuple(
            Finding(
                source=Source.CONSENSUS,
                code="missing",
                severity=Severity.ERROR,
                frame=frame,
                xyxy=(10.0 * frame, 10.0, 10.0 * frame + 40, 60.0),
                message=f"car missed on frame {frame}",
                job_id=r.job_id,
                label="car",
            )
            for r in replicas
            if per[r.job_id] < 0.5
            for frame in self.bad_frames
        )
        return ConsensusOutcome(sum(per.values()) / len(per), per, findings, JobAnnotations())


@dataclass
class BoxCountRules:
    """A rule engine: one 'tiny box' error per rectangle narrower than 10 px, with ``action``."""

    action: Action = Action.OPEN_ISSUE

    def check(
        self, job: JobRef, ann: JobAnnotations | ReplicaColumns, labels: LabelSet, meta: JobMeta
    ) -> list[Finding]:
        job_id = job.job_id
        shapes = list(ann.shapes.shapes()) if isinstance(ann, ReplicaColumns) else ann.shapes
        return [
            Finding(
                source=Source.RULE,
                code="min_size",
                severity=Severity.ERROR,
                frame=s.frame,
                xyxy=tuple(float(v) for v in s.points),  # type: ignore[arg-type]
                message=f"car rectangle width {s.points[2] - s.points[0]:.0f} px < 10 px",
                action=self.action,
                job_id=job_id,
                label="car",
            )
            for s in shapes
            if s.points[2] - s.points[0] < 10
        ]
