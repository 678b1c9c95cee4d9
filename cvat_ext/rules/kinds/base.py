"""The checker contract: one :class:`Checker` per rule, fed batches of frames by the engine.

A checker sees each :class:`~cvat_ext.rules.frame_batch.FrameBatch` (``check_batch``: consecutive
frames as columns; frame-wise checks walk ``frames_of``), may look at the job's tracks once
(``check_tracks``), and may report job-level statistics at the end (``finish``). It only builds
:class:`Finding` objects through :meth:`Checker.object_finding` / :meth:`Checker.frame_finding`,
so every finding carries the rule id, severity, action, job, annotator and a pin-able position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

import numpy as np

from cvat_ext.annotations.model import IntArray, JobAnnotations, LabelSet
from cvat_ext.qa.findings import Finding, Source
from cvat_ext.rules.frame_batch import BoolArray, FrameBatch, LabelIndex, type_lut
from cvat_ext.rules.schema import Action, ActionsBySeverity, RuleBase

R = TypeVar("R", bound=RuleBase)
FrameSize = Callable[[int], tuple[int, int]]


@dataclass(frozen=True)
class JobContext:
    """What every checker of one job run shares: labels (by name/id), job id, annotator, actions."""

    labels: LabelSet
    job_id: int | None
    annotator: str | None
    actions: ActionsBySeverity
    index: LabelIndex = field(init=False)
    label_names: Mapping[int, str] = field(init=False)
    attribute_names: Mapping[int, str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", LabelIndex.from_labels(self.labels))
        object.__setattr__(self, "label_names", self.index.names)
        names = {spec.id: spec.name for lab in self.labels.by_id.values() for spec in lab.attributes}
        object.__setattr__(self, "attribute_names", names)

    def label_ids(self, names: Iterable[str]) -> frozenset[int]:
        """Ids of the top-level labels with these names (unknown names match nothing)."""
        by_name = self.labels.by_name
        return frozenset(by_name[n].id for n in names if n in by_name)

    def label_lut(self, names: Iterable[str]) -> BoolArray:
        """Table over ``FrameBatch.label_idx`` selecting the labels with these names."""
        return self.index.lut(self.label_ids(names))


def clip_xyxy(xyxy: Iterable[float], frame_wh: tuple[int, int]) -> tuple[float, float, float, float]:
    """Clip a box into the image (when its size is known) so CVAT can pin an issue on it."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    width, height = frame_wh
    if width > 0 and height > 0:
        x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    return round(x1, 2), round(y1, 2), round(max(x1, x2), 2), round(max(y1, y2), 2)


def fmt(value: float) -> str:
    """A number for a message: integers without decimals, others with at most 3 significant decimals."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


class Checker(Generic[R]):
    """Base of all checkers; subclasses set ``kind`` and override the hooks they need."""

    kind: ClassVar[str]

    def __init__(self, rule: R, ctx: JobContext) -> None:
        self.rule = rule
        self.ctx = ctx
        labels = rule.scope.labels
        self.scope_label_ids: frozenset[int] | None = ctx.label_ids(labels) if labels is not None else None
        self.scope_label_lut = ctx.index.lut(self.scope_label_ids) if self.scope_label_ids is not None else None
        types = rule.scope.shape_types
        self.scope_type_lut = type_lut(types) if types is not None else None
        self.action: Action = rule.action or ctx.actions.for_severity(rule.severity)

    # --- hooks ----------------------------------------------------------------------------------
    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        """Findings on a batch of consecutive frames."""
        return iter(())

    def check_tracks(self, ann: JobAnnotations, frame_size: FrameSize, last_frame: int) -> Iterator[Finding]:
        """Findings about whole tracks (called once per job, before the frames); ``last_frame`` is the
        job's stop frame (a track's last visible keyframe lasts until it)."""
        return iter(())

    def finish(self) -> Iterator[Finding]:
        """Findings that need the whole job (called once, after the last frame)."""
        return iter(())

    # --- helpers --------------------------------------------------------------------------------
    def in_scope(self, batch: FrameBatch) -> BoolArray:
        """(N,) rows this rule applies to (label and shape-type scope)."""
        if self.scope_label_lut is not None:
            mask = self.scope_label_lut[batch.label_idx]
        else:
            mask = np.ones(len(batch), dtype=bool)
        if self.scope_type_lut is not None:
            mask &= self.scope_type_lut[batch.type_code]
        return mask

    def label_in_scope(self, label_id: int) -> bool:
        return self.scope_label_ids is None or label_id in self.scope_label_ids

    def make_finding(
        self,
        *,
        frame: int,
        message: str,
        xyxy: Iterable[float],
        frame_wh: tuple[int, int],
        object_id: int | None = None,
        label: str | None = None,
        track_id: int | None = None,
    ) -> Finding:
        return Finding(
            source=Source.RULE,
            code=self.rule.id,
            severity=self.rule.severity,
            frame=frame,
            xyxy=clip_xyxy(xyxy, frame_wh),
            message=message,
            action=self.action,
            job_id=self.ctx.job_id,
            label=label,
            object_id=object_id,
            track_id=track_id,
            annotator=self.ctx.annotator,
            rule_kind=self.kind,
        )

    def object_finding(self, batch: FrameBatch, row: int, detail: str) -> Finding:
        """A finding on ``row``: message ``<label> <type> <id>: <detail>``, pinned on its box."""
        shape = batch.shapes[row]
        return self.make_finding(
            frame=int(batch.frame[row]),
            message=f"{batch.describe(row)}: {detail}",
            xyxy=batch.xyxy[row],
            frame_wh=batch.row_frame_wh(row),
            object_id=shape.id,
            label=self.ctx.label_names.get(shape.label_id),
            track_id=batch.track_ids[row],
        )

    def frame_finding(self, batch: FrameBatch, k: int, message: str) -> Finding:
        """A finding about the batch's k-th frame, pinned on the whole image."""
        width, height = (int(v) for v in batch.frame_wh[k])
        return self.make_finding(
            frame=int(batch.frames[k]), message=message, xyxy=(0, 0, width, height), frame_wh=(width, height)
        )


def frames_of(batch: FrameBatch, mask: BoolArray) -> Iterator[tuple[int, IntArray]]:
    """``(k, rows)`` for each frame k of the batch with rows selected by ``mask`` (global row indices)."""
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return
    pos = batch.frame_pos[rows]
    cuts = np.flatnonzero(pos[1:] != pos[:-1]) + 1
    for chunk in np.split(rows, cuts):
        yield int(batch.frame_pos[chunk[0]]), chunk
