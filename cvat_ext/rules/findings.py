"""What a rule reports: one frozen :class:`Finding` per problem, ready to become a CVAT issue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvat_ext.rules.schema import Action, Severity


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule violation.

    ``frame`` is the task frame index; ``object_id`` the CVAT shape id (``None`` for shapes
    interpolated from a track: see ``track_id``; and for frame-level findings). ``position`` is
    ``xyxy`` in absolute pixels, clipped to the image when its size is known: where the sidecar pins
    the CVAT issue (the whole image for frame-level findings). ``message`` carries the numbers,
    e.g. ``car rectangle 4104: width 2.0 px < min_width 4 px``. ``action`` is the rule's action or
    the pack's action for the severity.
    """

    rule_id: str
    kind: str
    severity: Severity
    action: Action
    job_id: int | None
    frame: int
    object_id: int | None
    annotator: str | None
    message: str
    position: tuple[float, float, float, float]
    label: str | None = None
    track_id: int | None = None

    def __str__(self) -> str:
        job = f"job {self.job_id} " if self.job_id is not None else ""
        by = f" by '{self.annotator}'" if self.annotator else ""
        return f"{job}frame {self.frame}: [{self.severity.value} {self.rule_id}] {self.message}{by}"

    def issue_message(self) -> str:
        """The text of the CVAT issue opened for this finding."""
        return f"[{self.rule_id}] {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (enums as their values)."""
        return {
            "rule_id": self.rule_id,
            "kind": self.kind,
            "severity": self.severity.value,
            "action": self.action.value,
            "job_id": self.job_id,
            "frame": self.frame,
            "object_id": self.object_id,
            "track_id": self.track_id,
            "label": self.label,
            "annotator": self.annotator,
            "message": self.message,
            "position": list(self.position),
        }


def has_errors(findings: list[Finding]) -> bool:
    """True when any finding has error severity (the CI exit condition)."""
    return any(f.severity is Severity.ERROR for f in findings)
