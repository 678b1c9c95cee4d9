"""What QA found: one frozen :class:`Finding` per problem, from a rule or from consensus.

A finding is the one currency between the producers (:mod:`cvat_ext.rules`,
:mod:`cvat_ext.consensus`), the decision step (:mod:`cvat_ext.qa.decision`) and the sidecar that
turns it into a CVAT issue. Coordinates follow the house convention: ``xyxy`` absolute pixels of
the task frame ``frame``, where the CVAT issue is pinned (the whole image for frame-level
findings; ``(0, 0, 0, 0)`` for a consensus tag finding, which has no extent).

``source`` says who found it and ``code`` what: the rule id for a rule, the disagreement kind
(:class:`cvat_ext.consensus.report.FindingKind` value) for consensus. ``action`` is what the rule
pack asks for (a consensus finding is ``open_issue``: what happens to its job is decided by the
agreement scores, see :mod:`cvat_ext.qa.decision`).

This module imports nothing from the rest of the package: rules, consensus and the sidecar all
depend on it, and it on none of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


#: severity order (higher is worse), for floors and "worst first" sorting
SEVERITY_RANK: dict[str, int] = {Severity.WARNING: 1, Severity.ERROR: 2}


class Action(StrEnum):
    """What the sidecar does with a finding (the CLI only reports it); see :mod:`cvat_ext.qa.decision`."""

    OPEN_ISSUE = "open_issue"  # pin a CVAT issue at the finding's box
    REJECT_JOB = "reject_job"  # open the issue and send the job back to annotation (state rejected)
    SEND_TO_REVIEW = "send_to_review"  # open the issue and route the job to an expert (validation stage)
    NONE = "none"  # record only: no issue, no effect on the job


class Source(StrEnum):
    RULE = "rule"
    CONSENSUS = "consensus"


@dataclass(frozen=True, slots=True)
class Votes:
    """Who drew what in the consensus cluster a finding is about.

    ``present``/``missing`` annotators with / without a member; ``labels_by_annotator`` pairs
    ``(annotator, label)`` of the members; ``min_similarity`` the lowest pairwise similarity (IoU,
    or OKS for points; NaN for tags); ``score`` the merged object's score in [0, 1]; ``kept``
    whether the object is in the merge; ``shape_type`` CVAT's shape type of the first member
    (``tag`` for frame tags).
    """

    shape_type: str
    present: tuple[str, ...]
    missing: tuple[str, ...]
    labels_by_annotator: tuple[tuple[str, str], ...]
    min_similarity: float
    score: float
    kept: bool


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem on task frame ``frame``, to show as a CVAT issue pinned at ``xyxy`` (pixels).

    ``job_id`` is the job it is about (``None`` offline, when no job is known); ``object_id`` the
    CVAT shape id (``None`` for frame-level findings and for shapes interpolated from a track: see
    ``track_id``); ``annotator`` who drew it, when known. ``message`` carries the numbers, e.g.
    ``car rectangle 4104: width 2.0 px < min_width 4 px``. ``rule_kind`` is the checker family of
    a rule finding (``size``, ``duplicates``...); ``votes`` the cluster of a consensus finding.
    """

    source: Source
    code: str
    severity: Severity
    frame: int
    xyxy: tuple[float, float, float, float]
    message: str
    action: Action = Action.OPEN_ISSUE
    job_id: int | None = None
    label: str | None = None
    object_id: int | None = None
    track_id: int | None = None
    annotator: str | None = None
    rule_kind: str | None = None
    votes: Votes | None = None

    def __str__(self) -> str:
        job = f"job {self.job_id} " if self.job_id is not None else ""
        by = f" by '{self.annotator}'" if self.annotator else ""
        return f"{job}frame {self.frame}: [{self.severity.value} {self.code}] {self.message}{by}"

    def issue_message(self) -> str:
        """The text of the CVAT issue opened for this finding (offline tools)."""
        return f"[{self.code}] {self.message}"

    @property
    def fingerprint(self) -> str:
        """Stable identity of the finding across cycles and restarts (16 hex chars).

        The box is snapped to an 8 px grid so a re-scored, unchanged object keeps its identity.
        """
        box = ",".join(str(round(v / 8.0)) for v in self.xyxy)
        ident = f"{self.job_id}|{self.source}|{self.code}|{self.frame}|{self.label or ''}|{box}"
        return hashlib.sha256(ident.encode("utf-8")).hexdigest()[:16]

    def rule_record(self) -> dict[str, Any]:
        """The JSON record of a rule finding (``rules check --format json``; its published keys,
        ``position`` included, are kept for the readers of that format)."""
        return {
            "rule_id": self.code,
            "kind": self.rule_kind,
            "severity": self.severity.value,
            "action": self.action.value,
            "job_id": self.job_id,
            "frame": self.frame,
            "object_id": self.object_id,
            "track_id": self.track_id,
            "label": self.label,
            "annotator": self.annotator,
            "message": self.message,
            "position": list(self.xyxy),
        }


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any finding has error severity (the CI exit condition of ``rules check``)."""
    return any(f.severity is Severity.ERROR for f in findings)
