"""Candidates, gold labels and write-back for a CVAT task.

* **Candidates** are the task's shapes in its annotation jobs (rectangles, polygons, masks;
  imported detector proposals or annotator drafts): box and own area from the geometry, frame
  size from the job's frame meta, ``det_label`` the shape's current label name (what a detector or
  an annotator called it), ``det_score`` its ``score``. Pixels are not read: colour features are
  NaN (YAML conditions on them abstain).
* **Gold** comes from the task's ground-truth job: a candidate on a GT frame takes the label of the
  GT shape it overlaps most (box IoU >= ``iou_thr``), when that label is in the LF label space.
* **Write-back** relabels shapes whose predicted label (confidence >= threshold, a label of the
  task) differs from their current one, one PATCH ``update`` per job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import JobAnnotations, Shape, ShapeType
from cvat_ext.errors import ConfigError
from cvat_ext.labeling_functions.candidates import Candidates

if TYPE_CHECKING:
    from cvat_ext.cvat.client import CvatClient

__all__ = ["TaskCandidates", "gold_labels", "task_candidates", "write_labels"]

_TYPES = (ShapeType.RECTANGLE, ShapeType.POLYGON, ShapeType.MASK)


@dataclass(frozen=True)
class TaskCandidates:
    """``candidates`` plus, per candidate, its ``job_id``, ``shape_id`` and the ``shapes`` themselves."""

    candidates: Candidates
    job_id: npt.NDArray[np.int64]
    shape_id: npt.NDArray[np.int64]
    shapes: tuple[Shape, ...]
    label_names: dict[int, str]  # task label id -> name


def _box_and_area(shape: Shape) -> tuple[list[float], float]:
    if shape.type is ShapeType.MASK:
        assert shape.mask is not None
        left, top, right, bottom = shape.mask.ltrb
        counts = np.asarray(shape.mask.counts)
        return [left, top, right + 1, bottom + 1], float(counts[1::2].sum())
    pts = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    if shape.type is ShapeType.RECTANGLE:
        return [x0, y0, x1, y1], float((x1 - x0) * (y1 - y0))
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return [x0, y0, x1, y1], area


def task_candidates(client: CvatClient, task_id: int) -> TaskCandidates:
    """Every rectangle, polygon and mask of the task's annotation jobs as candidates."""
    labels = client.get_labels(task_id=task_id)
    names = {label.id: label.name for label in labels}
    det_names = tuple(sorted(set(names.values())))
    jobs = [j for j in client.list_jobs(task_id=task_id) if j.type == "annotation"]
    if not jobs:
        raise ConfigError(f"task {task_id}: no annotation jobs")
    rows: list[list[float]] = []
    areas, frames, sizes, det, scores, job_ids, shape_ids = [], [], [], [], [], [], []
    shapes: list[Shape] = []
    for job in sorted(jobs, key=lambda j: j.start_frame):
        meta = client.get_job_meta(job.id)
        for shape in client.get_annotations(job.id).shapes:
            if shape.type not in _TYPES:
                continue
            info = (
                meta.frames[shape.frame - meta.start_frame]
                if 0 <= shape.frame - meta.start_frame < len(meta.frames)
                else None
            )
            if info is None:
                raise ConfigError(
                    f"task {task_id} job {job.id}: shape {shape.id} on frame {shape.frame} outside the job"
                )
            box, area = _box_and_area(shape)
            rows.append(box)
            areas.append(area)
            frames.append(shape.frame)
            sizes.append((info.width, info.height))
            name = names.get(shape.label_id)
            det.append(det_names.index(name) if name is not None else -1)
            scores.append(shape.score)
            job_ids.append(job.id)
            shape_ids.append(-1 if shape.id is None else shape.id)
            shapes.append(shape)
    candidates = Candidates(
        np.asarray(frames, dtype=np.int64),
        np.asarray(rows, dtype=np.float64).reshape(-1, 4),
        np.asarray(sizes, dtype=np.float64).reshape(-1, 2),
        shape_area=np.asarray(areas, dtype=np.float64),
        det_label=np.asarray(det, dtype=np.int64),
        det_names=det_names,
        det_score=np.asarray(scores, dtype=np.float64),
    )
    return TaskCandidates(
        candidates, np.asarray(job_ids, dtype=np.int64), np.asarray(shape_ids, dtype=np.int64), tuple(shapes), names
    )


def _iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def gold_labels(
    client: CvatClient, task_id: int, task: TaskCandidates, label_space: Sequence[str], *, iou_thr: float = 0.5
) -> npt.NDArray[np.int64] | None:
    """(N,) gold label index per candidate from the task's GT job (-1 = none); None without a GT job."""
    gt_jobs = [j for j in client.list_jobs(task_id=task_id) if j.type == "ground_truth"]
    if not gt_jobs:
        return None
    gt_shapes = [s for s in client.get_annotations(gt_jobs[0].id).shapes if s.type in _TYPES]
    gold = np.full(len(task.candidates), -1, dtype=np.int64)
    frames = task.candidates.frame
    for frame in np.unique([s.frame for s in gt_shapes]):
        here = np.flatnonzero(frames == frame)
        on_frame = [s for s in gt_shapes if s.frame == frame]
        if here.size == 0:
            continue
        gt_xyxy = np.asarray([_box_and_area(s)[0] for s in on_frame], dtype=np.float64)
        iou = _iou(task.candidates.xyxy[here], gt_xyxy)
        best = iou.argmax(axis=1)
        for k, i in enumerate(here):
            if iou[k, best[k]] >= iou_thr:
                name = task.label_names.get(on_frame[best[k]].label_id)
                if name is not None and name in label_space:
                    gold[i] = list(label_space).index(name)
    return gold


def write_labels(
    client: CvatClient,
    task: TaskCandidates,
    predicted: npt.NDArray[np.int64],
    confidence: npt.NDArray[np.float64],
    label_space: Sequence[str],
    *,
    min_confidence: float,
) -> int:
    """Relabel shapes (PATCH update per job); returns how many changed."""
    id_of = {name: label_id for label_id, name in task.label_names.items()}
    changed = 0
    for job_id in np.unique(task.job_id).tolist():
        updates = []
        for i in np.flatnonzero(task.job_id == job_id):
            if predicted[i] < 0 or confidence[i] < min_confidence:
                continue
            label_id = id_of.get(label_space[int(predicted[i])])
            shape = task.shapes[i]
            if label_id is None or label_id == shape.label_id or shape.id is None:
                continue
            updates.append(dataclasses.replace(shape, label_id=label_id))
        if updates:
            client.patch_annotations(job_id, "update", JobAnnotations(shapes=tuple(updates)))
            changed += len(updates)
    return changed
