"""Keypoints family: ``keypoints`` (skeleton visibility, keypoints inside the object's box, bone outliers).

Bone-length outliers are relative twice over so they do not depend on the object's size or the
camera distance: each bone is divided by the median bone of its own skeleton, and that ratio is
compared with the median ratio of the same bone over all skeletons of the label in the job
(collected while the frames stream by, judged in :meth:`KeypointsChecker.finish`).
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cvat_ext.annotations.model import FloatArray, Label, Shape, ShapeType
from cvat_ext.qa.findings import Finding
from cvat_ext.rules.frame_batch import FrameBatch
from cvat_ext.rules.kinds.base import Checker, JobContext, fmt
from cvat_ext.rules.kinds.relations import extent_intersection
from cvat_ext.rules.schema import KeypointsRule

_EDGE = re.compile(r"<line\b[^>]*?data-node-from=\"(\d+)\"[^>]*?data-node-to=\"(\d+)\"")
_NODE = re.compile(r"<circle\b[^>]*?data-node-id=\"(\d+)\"[^>]*?data-label-id=\"(\d+)\"")


def skeleton_bones(label: Label, bone_names: tuple[tuple[str, str], ...] | None = None) -> list[tuple[int, int]]:
    """Bones of a skeleton label as (keypoint label id, keypoint label id) pairs.

    From ``bone_names`` (keypoint label names) when given, else from the edges of CVAT's skeleton
    ``svg`` (``data-node-from``/``data-node-to`` refer to circles' ``data-node-id``, which carry the
    keypoint's ``data-label-id``). Unknown names/nodes are dropped.
    """
    if bone_names is not None:
        ids = {sub.name: sub.id for sub in label.sublabels}
        return [(ids[a], ids[b]) for a, b in bone_names if a in ids and b in ids]
    node_label = {int(node): int(label_id) for node, label_id in _NODE.findall(label.svg)}
    return [
        (node_label[int(a)], node_label[int(b)])
        for a, b in _EDGE.findall(label.svg)
        if int(a) in node_label and int(b) in node_label
    ]


@dataclass(frozen=True)
class _Pending:
    """A skeleton's bone ratios, kept until the per-label medians are known."""

    label_id: int
    ratios: FloatArray  # (B,) bone / own median bone, NaN where a bone is not visible
    frame: int
    frame_wh: tuple[int, int]
    xyxy: FloatArray
    describe: str
    object_id: int | None
    track_id: int | None


def _visible_points(shape: Shape) -> dict[int, FloatArray]:
    return {e.label_id: e.points.reshape(2) for e in shape.elements if not e.outside}


class KeypointsChecker(Checker[KeypointsRule]):
    kind = "keypoints"

    def __init__(self, rule: KeypointsRule, ctx: JobContext) -> None:
        super().__init__(rule, ctx)
        self.box_lut = ctx.label_lut(rule.box_labels)
        self.bones: dict[int, list[tuple[int, int]]] = {}
        if rule.max_bone_ratio is not None:
            for label in ctx.labels:
                if label.type == ShapeType.SKELETON.value and self.label_in_scope(label.id):
                    self.bones[label.id] = skeleton_bones(label, rule.bones)
        self.pending: list[_Pending] = []

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        rows = np.flatnonzero(self.in_scope(batch) & (batch.type_name == ShapeType.SKELETON.value))
        if rows.size == 0:
            return
        all_boxes = np.flatnonzero(self.box_lut[batch.label_idx] & (batch.type_name == ShapeType.RECTANGLE.value))
        for row in rows:
            shape = batch.shapes[row]
            box_rows = all_boxes[batch.frame_pos[all_boxes] == batch.frame_pos[row]]
            visible = _visible_points(shape)
            problems = []
            if len(visible) < self.rule.min_visible:
                problems.append(
                    f"{len(visible)} of {len(shape.elements)} keypoints visible < min_visible {self.rule.min_visible}"
                )
            if box_rows.size and visible:
                problems.extend(self._outside_box(batch, int(row), box_rows, visible))
            if problems:
                yield self.object_finding(batch, int(row), "; ".join(problems))
            if self.rule.max_bone_ratio is not None:
                self._collect(batch, int(row), visible)

    def _outside_box(
        self, batch: FrameBatch, row: int, box_rows: np.ndarray, visible: dict[int, FloatArray]
    ) -> list[str]:
        group = batch.shapes[row].group
        same_group = [b for b in box_rows if group and batch.shapes[b].group == group]
        if same_group:
            box = int(same_group[0])
        else:
            inter = extent_intersection(batch.xyxy[row : row + 1], batch.xyxy[box_rows])[0]
            if not inter.any():
                return []
            box = int(box_rows[inter.argmax()])
        x1, y1, x2, y2 = batch.xyxy[box]
        tol = self.rule.box_tolerance_px
        names = self.ctx.label_names
        outside = [
            names.get(kp_id, f"#{kp_id}")
            for kp_id, (x, y) in visible.items()
            if not (x1 - tol <= x <= x2 + tol and y1 - tol <= y <= y2 + tol)
        ]
        if not outside:
            return []
        return [f"keypoint(s) {', '.join(sorted(outside))} outside {batch.describe(box)} (tolerance {fmt(tol)} px)"]

    def _collect(self, batch: FrameBatch, row: int, visible: dict[int, FloatArray]) -> None:
        shape = batch.shapes[row]
        bones = self.bones.get(shape.label_id)
        if not bones:
            return
        lengths = np.array(
            [np.hypot(*(visible[a] - visible[b])) if a in visible and b in visible else np.nan for a, b in bones]
        )
        own_median = np.nanmedian(lengths) if np.count_nonzero(~np.isnan(lengths)) >= 2 else np.nan
        if not own_median > 0:
            return
        self.pending.append(
            _Pending(
                label_id=shape.label_id,
                ratios=lengths / own_median,
                frame=int(batch.frame[row]),
                frame_wh=batch.row_frame_wh(row),
                xyxy=batch.xyxy[row].copy(),
                describe=batch.describe(row),
                object_id=shape.id,
                track_id=batch.track_ids[row],
            )
        )

    def finish(self) -> Iterator[Finding]:
        max_ratio = self.rule.max_bone_ratio
        if max_ratio is None:
            return
        by_label: dict[int, list[_Pending]] = defaultdict(list)
        for item in self.pending:
            by_label[item.label_id].append(item)
        names = self.ctx.label_names
        for label_id, items in by_label.items():
            if len(items) < self.rule.min_skeletons:
                continue
            ratios = np.stack([item.ratios for item in items])  # (S, B)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a bone never visible: all-NaN column
                medians = np.nanmedian(ratios, axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                factor = ratios / medians[None, :]
            off = (factor > max_ratio) | (factor < 1 / max_ratio)
            bones = self.bones[label_id]
            for s in np.flatnonzero(off.any(axis=1)):
                item = items[s]
                details = [
                    f"bone {names.get(bones[b][0], '?')}-{names.get(bones[b][1], '?')} is "
                    f"{fmt(factor[s, b])}x the label median"
                    for b in np.flatnonzero(off[s])
                ]
                yield self.make_finding(
                    frame=item.frame,
                    message=f"{item.describe}: {'; '.join(details)} (max_bone_ratio {fmt(max_ratio)})",
                    xyxy=item.xyxy,
                    frame_wh=item.frame_wh,
                    object_id=item.object_id,
                    label=names.get(label_id),
                    track_id=item.track_id,
                )
