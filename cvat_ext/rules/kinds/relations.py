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

from cvat_ext.annotations.model import FloatArray, ShapeType
from cvat_ext.errors import AnnotationFormatError
from cvat_ext.geometry import SimilarityParams, box_iou, similarity_matrix
from cvat_ext.qa.findings import Finding
from cvat_ext.rules.frame_batch import TYPE_ORDER, FrameBatch
from cvat_ext.rules.kinds.base import Checker, JobContext, fmt, frames_of
from cvat_ext.rules.schema import DuplicatesRule, ForbiddenOverlapRule, RequiredCooccurrenceRule

logger = logging.getLogger(__name__)

_RECT_CODE = TYPE_ORDER.index(ShapeType.RECTANGLE)
#: types whose FrameView.area is the true area (or less), so the IoU bound above holds; polylines,
#: points and skeletons are compared by other measures and cuboid areas are box areas
_AREA_EXACT = np.array(
    [t in (ShapeType.RECTANGLE, ShapeType.POLYGON, ShapeType.MASK, ShapeType.ELLIPSE) for t in TYPE_ORDER]
)


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

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        for _, rows in frames_of(batch, self.in_scope(batch)):
            if rows.size >= 2:
                yield from self._check_frame(batch, rows)

    def _check_frame(self, view: FrameBatch, rows: npt.NDArray[np.intp]) -> Iterator[Finding]:
        """``rows``: the in-scope rows of one frame."""
        # axis-aligned rectangles (the bulk): one box_iou matrix for the frame, masked to same label
        plain = (view.type_code[rows] == _RECT_CODE) & (np.mod(view.rotation[rows], 180.0) == 0)
        rects = rows[plain]
        if rects.size >= 2:
            iou = box_iou(view.xyxy[rects], view.xyxy[rects])
            same = view.label_idx[rects][:, None] == view.label_idx[rects][None, :]
            yield from self._report(view, rects, iou, np.triu(same & (iou >= self.rule.iou_thr), k=1))
        # everything else: similarity_matrix per label/type group whose extents touch at all
        rest = rows[~plain]
        if rest.size < 2:
            return
        keys = view.label_idx[rest] * len(TYPE_ORDER) + view.type_code[rest]
        same = keys[:, None] == keys[None, :]
        inter = extent_intersection(view.xyxy[rest], view.xyxy[rest])
        # upper bound on the IoU of area-like shapes: the shapes' intersection lies inside their extents'
        # and the union is at least the larger shape, so IoU <= extent intersection / max(area)
        area = view.area[rest]
        bounded = _AREA_EXACT[view.type_code[rest]]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = inter / np.maximum(area[:, None], area[None, :])
        possible = np.where(bounded[:, None] & bounded[None, :], bound >= self.rule.iou_thr, inter > 0)
        candidates = np.triu(same & possible, k=1)
        if not candidates.any():
            return
        for key in np.unique(keys[candidates.any(axis=1)]):
            yield from self._check_group(view, rest[keys == key])

    def _check_group(self, view: FrameBatch, group: npt.NDArray[np.intp]) -> Iterator[Finding]:
        shapes = [view.shapes[i] for i in group]
        try:
            sim = similarity_matrix(shapes, shapes, SimilarityParams(image_wh=view.row_frame_wh(int(group[0]))))
        except AnnotationFormatError as exc:
            type_name = shapes[0].type.value
            if type_name not in self._unsupported_logged:
                self._unsupported_logged.add(type_name)
                logger.warning("rule %s: duplicates on %s skipped: %s", self.rule.id, type_name, exc)
            return
        yield from self._report(view, group, sim, np.triu(sim >= self.rule.iou_thr, k=1))

    def _report(
        self, view: FrameBatch, group: npt.NDArray[np.intp], sim: FloatArray, hits: npt.NDArray[np.bool_]
    ) -> Iterator[Finding]:
        """One finding per later object of each duplicate pair (``hits`` upper-triangular over ``group``)."""
        reported: set[int] = set()
        for first, second in np.argwhere(hits):
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
        self.other_lut = ctx.label_lut(rule.other_labels)

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        subject_mask = self.in_scope(batch)
        partner_mask = self.other_lut[batch.label_idx] & ~subject_mask
        for k, subjects in frames_of(batch, subject_mask):
            rows = batch.frame_rows(k)
            partners = np.flatnonzero(partner_mask[rows]) + rows.start
            inter = extent_intersection(batch.xyxy[subjects], batch.xyxy[partners])
            yield from self.judge(batch, subjects, partners, inter)

    def judge(
        self, view: FrameBatch, subjects: npt.NDArray[np.intp], partners: npt.NDArray[np.intp], inter: FloatArray
    ) -> Iterator[Finding]:
        """Findings for one frame: its subject rows, partner rows and their (S, P) box intersections."""
        raise NotImplementedError


class ForbiddenOverlapChecker(_PairChecker):
    kind = "forbidden_overlap"
    rule: ForbiddenOverlapRule

    def judge(
        self, view: FrameBatch, subjects: npt.NDArray[np.intp], partners: npt.NDArray[np.intp], inter: FloatArray
    ) -> Iterator[Finding]:
        if partners.size == 0:
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

    def judge(
        self, view: FrameBatch, subjects: npt.NDArray[np.intp], partners: npt.NDArray[np.intp], inter: FloatArray
    ) -> Iterator[Finding]:
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
