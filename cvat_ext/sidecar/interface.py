"""The sidecar's contracts: what it needs from CVAT, the rules engine and the consensus engine.

Only protocols and frozen specs live here. The cycle is written against these, so tests can drive
it with plain fakes while the production wiring (:mod:`cvat_ext.sidecar.engines`) adapts the real
:class:`cvat_ext.cvat.client.CvatClient`, :mod:`cvat_ext.rules` and :mod:`cvat_ext.consensus`.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, Unpack

from cvat_ext.annotations.columnar_json import ReplicaColumns
from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet
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
from cvat_ext.qa.findings import Finding
from cvat_ext.workforce.accuracy import AnnotatorAccuracy

if TYPE_CHECKING:
    from cvat_ext.consensus.replica_findings import ReplicaFindings


@dataclass(frozen=True)
class ConsensusOutcome:
    """Agreement of the replicas of one parent job.

    ``agreement`` in [0, 1] for the whole group; ``replica_agreement`` replica job id -> [0, 1]
    (how well that annotator agrees with the others: F1 vs consensus, not accuracy); ``findings``
    are on replica jobs (``job_id`` set, one per replica at fault), and so are the rows of
    ``replica_findings`` (the engine's findings on objects, columnar: most are never published, so
    they are built as objects only when asked for); ``merged`` the merged annotations (scores set)
    as objects, or ``merged_json`` the same as CVAT's ``LabeledData`` JSON text written from the
    merge's columns; ``annotators`` per replica, by annotator name: the estimate against the truth
    when the engine made one, and the vs-consensus F1; ``models`` annotator name -> fitted model
    dict (pooled across jobs as the next job's prior); ``ground_truth`` the report's GT section
    when GT was given.
    """

    agreement: float
    replica_agreement: Mapping[int, float]
    findings: tuple[Finding, ...] = ()
    merged: JobAnnotations | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    annotators: tuple[AnnotatorAccuracy, ...] = ()
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ground_truth: Mapping[str, Any] | None = None
    replica_findings: ReplicaFindings | None = None
    merged_json: Callable[[], str] | None = None

    def all_findings(self) -> list[Finding]:
        """Every finding as an object, by frame (``replica_findings`` first on a frame, as the
        engine orders object findings before tag findings)."""
        if self.replica_findings is None:
            return list(self.findings)
        return list(heapq.merge(self.replica_findings.iter_findings(), self.findings, key=lambda f: f.frame))

    def merged_annotations(self) -> JobAnnotations | None:
        """The merge as objects (read from ``merged_json`` when the engine wrote it as text)."""
        if self.merged is not None or self.merged_json is None:
            return self.merged
        from cvat_ext.annotations.cvat_json import parse_job_annotations

        return parse_job_annotations(json.loads(self.merged_json()), where="merged annotations")


@dataclass(frozen=True, slots=True)
class ReplicaInput:
    """One replica handed to the consensus engine: its annotations as objects, or as columns
    (:mod:`cvat_ext.annotations.columnar_json`; the engine then takes the columnar path), or both.
    ``name``: the annotator's name (:func:`cvat_ext.cvat.annotators.replica_names`; ``job<ID>`` when
    not given)."""

    job_id: int
    assignee_id: int | None
    annotations: JobAnnotations | None = None
    columns: ReplicaColumns | None = None
    name: str = ""

    @property
    def annotator(self) -> str:
        return self.name or f"job{self.job_id}"

    def __post_init__(self) -> None:
        if self.annotations is None and self.columns is None:
            raise ValueError(f"replica job {self.job_id}: give its annotations or its columns")


@dataclass(frozen=True, slots=True)
class JobRef:
    """The job a rule check is about (rules may be scoped to projects and tasks)."""

    job_id: int
    task_id: int
    project_id: int | None = None


class RuleRunner(Protocol):
    """Runs the configured rule packs on one job's annotations: objects, or the columns of a body
    without tracks (the same findings; see :func:`cvat_ext.rules.engine.iter_findings`)."""

    def check(
        self, job: JobRef, ann: JobAnnotations | ReplicaColumns, labels: LabelSet, meta: JobMeta
    ) -> list[Finding]: ...


class ConsensusRunner(Protocol):
    """Scores the replicas of one parent job (all completed) against each other.

    ``ground_truth``: the task's GT annotations and the task frames they fully cover;
    ``priors``: annotator name -> a model dict from an earlier job (pooling)."""

    def score(
        self,
        parent_job_id: int,
        replicas: Sequence[ReplicaInput],
        labels: LabelSet,
        meta: JobMeta,
        *,
        ground_truth: tuple[JobAnnotations, Sequence[int]] | None = None,
        priors: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ConsensusOutcome: ...


class CvatApi(Protocol):
    """The subset of :class:`cvat_ext.cvat.client.CvatClient` the sidecar uses."""

    calls: Any

    def iter_jobs(self, **query: Unpack[JobQuery]) -> Iterator[Job]: ...

    def get_job(self, job_id: int) -> Job: ...

    def update_job(
        self,
        job_id: int,
        *,
        assignee_id: int | Unset | None = UNSET,
        stage: str | None = None,
        state: str | None = None,
    ) -> Job: ...

    def get_task(self, task_id: int) -> Task: ...

    def get_validation_layout(self, task_id: int) -> ValidationLayout: ...

    def get_annotations(self, job_id: int) -> JobAnnotations: ...

    def get_annotations_bytes(self, job_id: int) -> bytes: ...

    def put_annotations(self, job_id: int, ann: JobAnnotations) -> JobAnnotations: ...

    def put_annotations_json(self, job_id: int, text: str) -> dict[str, int]: ...

    def get_labels(self, *, job_id: int | None = None, task_id: int | None = None) -> LabelSet: ...

    def get_job_meta(self, job_id: int) -> JobMeta: ...

    def whoami(self) -> User: ...

    def about(self) -> ServerInfo: ...

    def list_users(self) -> list[User]: ...

    def list_memberships(self, *, role: str | None = None) -> list[Membership]: ...

    def create_issue(
        self, job_id: int, frame: int, position: Sequence[float], message: str, assignee_id: int | None = None
    ) -> Issue: ...

    def list_issues(self, *, job_id: int | None = None, task_id: int | None = None) -> list[Issue]: ...

    def update_issue(
        self, issue_id: int, *, resolved: bool | None = None, assignee_id: int | Unset | None = UNSET
    ) -> Issue: ...

    def list_comments(self, issue_id: int) -> list[Comment]: ...

    def add_comment(self, issue_id: int, message: str) -> Comment: ...

    def get_frame(
        self, job_id: int, frame_idx: int, quality: Literal["original", "compressed"] = "original"
    ) -> bytes: ...

    def request_merge(self, *, job_id: int | None = None, task_id: int | None = None) -> str: ...

    def wait_request(self, rq_id: str, *, timeout_s: float = 600.0, poll_s: float = 2.0) -> dict[str, Any]: ...

    def request_quality_report(self, task_id: int) -> str: ...

    def get_quality_report(self, report_id: int) -> dict[str, Any]: ...

    def get_guide(self, guide_id: int) -> Guide: ...

    def create_guide(self, *, task_id: int | None = None, project_id: int | None = None, markdown: str) -> Guide: ...

    def update_guide(self, guide_id: int, markdown: str) -> Guide: ...

    def upload_asset(self, guide_id: int, filename: str, data: bytes, content_type: str = "image/png") -> str: ...
