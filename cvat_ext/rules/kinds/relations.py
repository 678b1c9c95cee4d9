"""Relation family: ``duplicates``, ``forbidden_overlap``, ``required_cooccurrence``.

Pairs are found with one (N, M) matrix per frame: extent intersections for the overlap rules, and
:func:`cvat_ext.geometry.similarity_matrix` (the consensus IoU of the shape type) for duplicates,
called only for label/type groups whose extents touch at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import FloatArray
from cvat_ext.errors import AnnotationFormatError
from cvat_ext.geometry import SimilarityParams, similarity_matrix
from cvat_ext.rules.findings import Finding
from cvat_ext.rules.frame_view import FrameView
from cvat_ext.rules.kinds.base import Checker, JobContext, fmt
from cvat_ext.rules.schema import DuplicatesRule, ForbiddenOverlapRule, RequiredCooccurrenceRule

logger = logging.getLogger(__name__)


def extent_intersection(xyxy_a: FloatArray, xyxy_b: FloatArray) -> FloatArray:
    """(N,4), (M,4) xyxy -> (N, M) intersection areas of the boxes (pixels^2, >= 0)."""
    top_left = np.maximum(xyxy_a[:, None, :2], xyxy_b[None, :, :2])
    bottom_right = np.minimum(xyxy_a[:, None, 2:], xyxy_b[None, :, 2:])
    wh = np.clip(bottom_right - top_left, 0, None)
    result: FloatArray = wh[..., 0] * wh[..., 1]
    return result


def _box_area(xyxy: FloatArray) -> FloatArray:
    result: FloatArray = np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)
    return result


class DuplicatesChecker(Checker[DuplicatesRule]):
    """Within one job every object is by the job's annotator, so "same annotator" is implied."""

    kind = "duplicates"
    _unsupported_logged: set[str]

    def __init__(self, rule: DuplicatesRule, ctx: JobContext) -> None:
        super().__init__(rule, ctx)
        self._unsupported_logged = set()

    def check_frame(self, view: FrameView) -> Iterator[Finding]:
        rows = np.flatnonzero(self.in_scope(view))
        if rows.size < 2:
            return
        # candidate pairs: same label, same type, touching extents (cheap prefilter before the real IoU)
        keys = view.label_id[rows].astype(str).astype(object) + ":" + view.type_name[rows].astype(object)
        same = keys[:, None] == keys[None, :]
        touching = extent_intersection(view.xyxy[rows], view.xyxy[rows]) > 0
        candidates = np.triu(same & touching, k=1)
        if not candidates.any():
            return
        for key in np.unique(keys[candidates.any(axis=1)]):
            group = rows[keys == key]
            yield from self._check_group(view, group)

    def _check_group(self, view: FrameView, group: npt.NDArray[np.intp]) -> Iterator[Finding]:
        shapes = [view.shapes[i] for i in group]
        try:
            sim = similarity_matrix(shapes, shapes, SimilarityParams(image_wh=view.frame_wh))
        except AnnotationFormatError as exc:
            type_name = shapes[0].type.value
            if type_name not in self._unsupported_logged:
                self._unsupported_logged.add(type_name)
                logger.warning("rule %s: duplicates on %s skipped: %s", self.rule.id, type_name, exc)
            return
        hits = np.argwhere(np.triu(sim >= self.rule.iou_thr, k=1))
        reported: set[int] = set()
        for first, second in hits:
            if int(second) in reported:
                continue
            reported.add(int(second))
            detail = (
                f"duplicates {view.describe(int(group[first]))} "
                f"(IoU {fmt(sim[first, second])} >= iou_thr {fmt(self.rule.iou_thr)})"
            )
            yield self.object_finding(view, int(group[second]), detail)


class _PairChecker(Checker[ForbiddenOverlapRule | RequiredCooccurrenceRule]):
    """Subject rows (``scope.labels``) against partner rows (``other_labels``) on each frame."""

    def __init__(self, rule: ForbiddenOverlapRule | RequiredCooccurrenceRule, ctx: JobContext) -> None:
        super().__init__(rule, ctx)
        self.other_ids = np.fromiter(ctx.label_ids(rule.other_labels), dtype=np.int64)

    def pairs(self, view: FrameView) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]:
        """Subject row indices, partner row indices, (S, P) intersection areas."""
        subjects = np.flatnonzero(self.in_scope(view))
        partners = np.flatnonzero(np.isin(view.label_id, self.other_ids))
        partners = partners[~np.isin(partners, subjects)] if subjects.size else partners
        inter = extent_intersection(view.xyxy[subjects], view.xyxy[partners])
        return subjects, partners, inter


class ForbiddenOverlapChecker(_PairChecker):
    kind = "forbidden_overlap"
    rule: ForbiddenOverlapRule

    def check_frame(self, view: FrameView) -> Iterator[Finding]:
        subjects, partners, inter = self.pairs(view)
        if subjects.size == 0 or partners.size == 0:
            return
        area_s = _box_area(view.xyxy[subjects])[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.rule.metric == "iou":
                union = area_s + _box_area(view.xyxy[partners])[None, :] - inter
                overlap = np.where(union > 0, inter / union, 0.0)
            else:
                overlap = np.where(area_s > 0, inter / area_s, 0.0)
        overlap = np.where(inter > 0, overlap, 0.0)
        worst = overlap.argmax(axis=1)
        worst_value = overlap[np.arange(subjects.size), worst]
        for s in np.flatnonzero(worst_value > self.rule.max_overlap):
            other = view.describe(int(partners[worst[s]]))
            detail = (
                f"overlaps {other} ({self.rule.metric} {fmt(worst_value[s])} > max_overlap "
                f"{fmt(self.rule.max_overlap)})"
            )
            yield self.object_finding(view, int(subjects[s]), detail)


class RequiredCooccurrenceChecker(_PairChecker):
    kind = "required_cooccurrence"
    rule: RequiredCooccurrenceRule

    def check_frame(self, view: FrameView) -> Iterator[Finding]:
        subjects, partners, inter = self.pairs(view)
        if subjects.size == 0:
            return
        wanted = " or ".join(self.rule.other_labels)
        if not self.rule.must_overlap:
            if partners.size == 0:
                for s in subjects:
                    yield self.object_finding(view, int(s), f"no {wanted} on the frame")
            return
        area_s = _box_area(view.xyxy[subjects])
        with np.errstate(divide="ignore", invalid="ignore"):
            ioa = np.where(area_s[:, None] > 0, inter / area_s[:, None], (inter > 0).astype(float))
        best = ioa.max(axis=1) if partners.size else np.zeros(subjects.size)
        for s in np.flatnonzero(best <= self.rule.min_ioa):
            detail = f"overlaps no {wanted} (best coverage {fmt(best[s])}, need > {fmt(self.rule.min_ioa)})"
            yield self.object_finding(view, int(subjects[s]), detail)
