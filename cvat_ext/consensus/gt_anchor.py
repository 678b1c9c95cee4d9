"""Ground-truth anchors: each annotator measured directly on the frames a ground-truth job covers.

On a GT frame every replica's objects of a match family are matched one-to-one to the GT objects
of that family (optimal assignment on the similarity, pairs below ``iou_thr`` unmatched), as a
ground-truth evaluation does. Per annotator the counts are kept: GT objects, objects drawn, true
positives, their summed similarity and how many carry the GT label. The annotator model
(:mod:`cvat_ext.consensus.annotator_model`) turns them into the measured precision, recall, F1,
mean IoU and label accuracy, and uses them to correct its own estimates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cvat_ext.annotations.model import JobAnnotations, Shape
from cvat_ext.consensus.assignment import linear_sum_assignment
from cvat_ext.consensus.batch import FloatArray, ReplicaBatch
from cvat_ext.errors import ConfigError
from cvat_ext.geometry import SHAPE_FAMILY, SimilarityParams, box_iou, similarity_matrix

#: columns of :attr:`GtTally.counts`
GT_COLUMNS = ("gt_objects", "objects", "tp", "iou_sum", "label_correct")


class GtTally:
    """Per-annotator counts on the GT frames (``counts (R, 5)``, columns :data:`GT_COLUMNS`)."""

    def __init__(self, ground_truth: tuple[JobAnnotations, Sequence[int]], n_annotators: int, iou_thr: float) -> None:
        gt, frames = ground_truth
        self.frames = frozenset(int(f) for f in frames)
        if not self.frames:
            raise ConfigError("ground truth: no frames listed (give the frames the GT job covers)")
        self.iou_thr = iou_thr
        self.by_frame: dict[tuple[int, str], list[Shape]] = {}
        for shape in gt.shapes:
            if shape.frame in self.frames:
                self.by_frame.setdefault((shape.frame, SHAPE_FAMILY[shape.type]), []).append(shape)
        self.counts = np.zeros((n_annotators, len(GT_COLUMNS)))

    @property
    def n_objects(self) -> int:
        return sum(len(v) for v in self.by_frame.values())

    def frame_mask(self, frames: np.ndarray) -> np.ndarray:
        """(K,) true where ``frames`` are GT frames."""
        return np.isin(frames, np.fromiter(self.frames, dtype=np.int64, count=len(self.frames)))

    def add_batch(self, batch: ReplicaBatch, params: SimilarityParams) -> None:
        """Match every annotator's objects of ``batch`` on the batch's GT frames against the GT."""
        family = batch.family
        for pos, frame in enumerate(batch.frames.tolist()):
            if frame not in self.frames:
                continue
            gt = self.by_frame.get((frame, family), [])
            for r in range(batch.n_annotators):
                rows = batch.index[pos, r]
                rows = rows[rows >= 0]
                if rows.size == 0:
                    continue
                sim = self._similarity(batch, rows, gt, params)
                self._count(r, sim, batch.label[rows], np.array([g.label_id for g in gt], dtype=np.int64))

    def finish(self) -> None:
        """Count the GT objects of every (frame, family) (also where no annotator drew anything)."""
        self.counts[:, 0] += self.n_objects

    @staticmethod
    def _similarity(batch: ReplicaBatch, rows: np.ndarray, gt: list[Shape], params: SimilarityParams) -> FloatArray:
        if not gt:
            return np.zeros((rows.size, 0))
        if batch.shapes is None:  # columnar rectangles
            gt_xyxy = np.array([np.asarray(g.points, dtype=np.float64).reshape(-1)[:4] for g in gt])
            return np.asarray(box_iou(batch.xyxy[rows], gt_xyxy), dtype=np.float64)
        return similarity_matrix([batch.shapes[i] for i in rows.tolist()], gt, params)

    def _count(self, r: int, sim: FloatArray, labels: np.ndarray, gt_labels: np.ndarray) -> None:
        self.counts[r, 1] += sim.shape[0]
        if sim.size == 0:
            return
        a, b = linear_sum_assignment(np.where(sim >= self.iou_thr, sim, 0.0), maximize=True)
        hit = sim[a, b] >= self.iou_thr
        a, b = a[hit], b[hit]
        self.counts[r, 2] += a.size
        self.counts[r, 3] += float(sim[a, b].sum())
        self.counts[r, 4] += int((labels[a] == gt_labels[b]).sum())


def measured(counts: FloatArray) -> Mapping[str, FloatArray]:
    """Per annotator (``counts (R, 5)``) the GT-measured precision, recall, F1, mean IoU and label
    accuracy (NaN where undefined)."""
    gt, obj, tp, iou, correct = counts.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "precision": np.where(obj > 0, tp / obj, np.nan),
            "recall": np.where(gt > 0, tp / gt, np.nan),
            "f1": np.where(obj + gt > 0, 2 * tp / (obj + gt), np.nan),
            "mean_iou": np.where(tp > 0, iou / tp, np.nan),
            "label_accuracy": np.where(tp > 0, correct / tp, np.nan),
        }
