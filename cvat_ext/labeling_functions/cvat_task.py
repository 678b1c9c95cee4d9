"""Candidates, gold labels and write-back for a CVAT task.

* **Object candidates** are the task's shapes in its annotation jobs (rectangles, polygons, masks;
  imported detector proposals or annotator drafts): box and own area from the geometry, frame
  size from the job's frame meta, ``det_label`` the shape's current label name (what a detector or
  an annotator called it), ``det_score`` its ``score``.
* **Image candidates** (for tag LFs) are the frames of the annotation jobs, one whole-image
  candidate each; ``det_label`` is the frame's first tag (what an annotator tagged it), if any.
* **Pixels** (``pixels=True``): every frame with a candidate is fetched once (original quality,
  as CVAT serves it) and :func:`~cvat_ext.labeling_functions.pixels.pixel_stats` computes the
  colour features of all its candidates in one pass; polygons and masks count their own pixels.
  With ``pixels=False`` nothing is downloaded and colour features are NaN (YAML conditions on
  them abstain).
* **Gold** comes from the task's ground-truth job: a candidate object on a GT frame takes the label
  of the GT shape it overlaps most (box IoU >= ``iou_thr``), an image the label of the frame's GT
  tag, when that label is in the LF label space.
* **Write-back** relabels shapes whose predicted label (confidence >= threshold, a label of the
  task) differs from their current one (PATCH ``update``), and adds the predicted tag to frames
  that do not carry it yet (PATCH ``create``); one request per job and kind. Tags are only added,
  never removed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import JobAnnotations, Shape, ShapeType, Tag
from cvat_ext.errors import ConfigError, FunctionInputError
from cvat_ext.labeling_functions.candidates import Candidates
from cvat_ext.labeling_functions.pixels import PIXEL_COLUMNS, pixel_box, pixel_stats

if TYPE_CHECKING:
    from cvat_ext.cvat.client import CvatClient

__all__ = [
    "TaskCandidates",
    "TaskImages",
    "gold_labels",
    "gold_tags",
    "read_task",
    "task_candidates",
    "write_labels",
    "write_tags",
]

_TYPES = (ShapeType.RECTANGLE, ShapeType.POLYGON, ShapeType.MASK)
#: frames larger than this are refused when their pixels are read (8K UHD)
MAX_FRAME_PIXELS = 7680 * 4320


@dataclass(frozen=True)
class TaskCandidates:
    """``candidates`` plus, per candidate, its ``job_id``, ``shape_id`` and the ``shapes`` themselves."""

    candidates: Candidates
    job_id: npt.NDArray[np.int64]
    shape_id: npt.NDArray[np.int64]
    shapes: tuple[Shape, ...]
    label_names: dict[int, str]  # task label id -> name


@dataclass(frozen=True)
class TaskImages:
    """One whole-image candidate per frame of the annotation jobs: ``candidates`` plus, per frame,
    its ``job_id`` and the label ids of the tags it already carries (``tag_label_ids``)."""

    candidates: Candidates
    job_id: npt.NDArray[np.int64]
    tag_label_ids: tuple[frozenset[int], ...]
    label_names: dict[int, str]


@dataclass(frozen=True)
class TaskRead:
    """What :func:`read_task` read: object and/or image candidates (None where not asked for)."""

    objects: TaskCandidates | None
    images: TaskImages | None


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


def _own_pixels(shape: Shape, box: list[float], width: int, height: int) -> npt.NDArray[np.bool_] | None:
    """The shape's own pixels over its rounded box (:func:`pixel_box`); None for a rectangle."""
    if shape.type is ShapeType.RECTANGLE:
        return None
    import cv2

    left, top, right, bottom = pixel_box(box, width, height)
    if right <= left or bottom <= top:
        return None
    if shape.type is ShapeType.MASK:
        assert shape.mask is not None
        # the mask's inclusive box is the candidate's box, clipped to the frame
        bits = shape.mask.to_bitmap()
        ml, mt = shape.mask.ltrb[0], shape.mask.ltrb[1]
        return np.ascontiguousarray(bits[top - mt : bottom - mt, left - ml : right - ml])
    canvas = np.zeros((bottom - top, right - left), dtype=np.uint8)
    pts = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2) - [left, top]
    cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 1)
    return canvas.astype(bool)


def _frame_rgb(client: CvatClient, job_id: int, frame: int, where: str) -> npt.NDArray[np.uint8]:
    from cvat_ext.models.frame_input import decode_rgb, read_header

    data = client.get_frame(job_id, frame, quality="original")
    try:
        return decode_rgb(data, read_header(data, max_pixels=MAX_FRAME_PIXELS, field=where), field=where)
    except FunctionInputError as exc:
        raise ConfigError(str(exc)) from exc


def _job_frames(meta_start: int, n_frames: int, step: int, deleted: Sequence[int]) -> list[int]:
    gone = set(deleted)
    return [f for f in (meta_start + i * step for i in range(n_frames)) if f not in gone]


def read_task(
    client: CvatClient, task_id: int, *, objects: bool = True, images: bool = False, pixels: bool = False
) -> TaskRead:
    """Object candidates (``objects``) and/or whole-image candidates (``images``) of the task's
    annotation jobs, with colour features when ``pixels`` (each needed frame fetched once)."""
    labels = client.get_labels(task_id=task_id)
    names = {label.id: label.name for label in labels}
    det_names = tuple(sorted(set(names.values())))
    jobs = [j for j in client.list_jobs(task_id=task_id) if j.type == "annotation"]
    if not jobs:
        raise ConfigError(f"task {task_id}: no annotation jobs")
    ncols = len(PIXEL_COLUMNS)
    obj: dict[str, list[object]] = {
        k: [] for k in ("box", "area", "frame", "size", "det", "score", "job", "id", "shape", "px")
    }
    img: dict[str, list[object]] = {k: [] for k in ("frame", "size", "det", "job", "tags", "px")}
    for job in sorted(jobs, key=lambda j: j.start_frame):
        meta = client.get_job_meta(job.id)
        ann = client.get_annotations(job.id)
        frames = _job_frames(meta.start_frame, len(meta.frames), meta.step, meta.deleted_frames)
        size_of = {f: meta.frames[(f - meta.start_frame) // meta.step] for f in frames}
        shapes_on: dict[int, list[Shape]] = {}
        for shape in ann.shapes if objects else ():
            if shape.type not in _TYPES:
                continue
            if shape.frame not in size_of:
                raise ConfigError(
                    f"task {task_id} job {job.id}: shape {shape.id} on frame {shape.frame} outside the job"
                )
            shapes_on.setdefault(shape.frame, []).append(shape)
        tags_on: dict[int, list[Tag]] = {}
        for tag in ann.tags:
            tags_on.setdefault(tag.frame, []).append(tag)
        for frame in frames:
            info = size_of[frame]
            here = shapes_on.get(frame, [])
            if not here and not images:
                continue
            boxes = [_box_and_area(s) for s in here]
            xyxy = [b for b, _ in boxes]
            if images:
                xyxy.append([0.0, 0.0, float(info.width), float(info.height)])
            stats = np.full((len(xyxy), ncols), np.nan)
            if pixels and xyxy:
                where = f"task {task_id} job {job.id} frame {frame}"
                rgb = _frame_rgb(client, job.id, frame, where)
                height, width = rgb.shape[:2]
                masks = [_own_pixels(s, b, width, height) for s, (b, _) in zip(here, boxes, strict=True)]
                stats = pixel_stats(rgb, xyxy, [*masks, None] if images else masks)
            for k, (shape, (box, area)) in enumerate(zip(here, boxes, strict=True)):
                name = names.get(shape.label_id)
                obj["box"].append(box)
                obj["area"].append(area)
                obj["frame"].append(frame)
                obj["size"].append((info.width, info.height))
                obj["det"].append(det_names.index(name) if name is not None else -1)
                obj["score"].append(shape.score)
                obj["job"].append(job.id)
                obj["id"].append(-1 if shape.id is None else shape.id)
                obj["shape"].append(shape)
                obj["px"].append(stats[k])
            if images:
                tags = tags_on.get(frame, [])
                first = names.get(tags[0].label_id) if tags else None
                img["frame"].append(frame)
                img["size"].append((info.width, info.height))
                img["det"].append(det_names.index(first) if first is not None else -1)
                img["job"].append(job.id)
                img["tags"].append(frozenset(t.label_id for t in tags))
                img["px"].append(stats[-1])
    objects_read = None
    if objects:
        candidates = Candidates(
            np.asarray(obj["frame"], dtype=np.int64),
            np.asarray(obj["box"], dtype=np.float64).reshape(-1, 4),
            np.asarray(obj["size"], dtype=np.float64).reshape(-1, 2),
            shape_area=np.asarray(obj["area"], dtype=np.float64),
            det_label=np.asarray(obj["det"], dtype=np.int64),
            det_names=det_names,
            det_score=np.asarray(obj["score"], dtype=np.float64),
            pixels=np.asarray(obj["px"], dtype=np.float64).reshape(-1, ncols),
        )
        objects_read = TaskCandidates(
            candidates,
            np.asarray(obj["job"], dtype=np.int64),
            np.asarray(obj["id"], dtype=np.int64),
            tuple(obj["shape"]),  # type: ignore[arg-type]
            names,
        )
    images_read = None
    if images:
        whole = Candidates.whole_images(
            img["frame"],  # type: ignore[arg-type]
            np.asarray(img["size"], dtype=np.float64).reshape(-1, 2),
            det_label=np.asarray(img["det"], dtype=np.int64),
            det_names=det_names,
            pixels=np.asarray(img["px"], dtype=np.float64).reshape(-1, ncols),
        )
        images_read = TaskImages(whole, np.asarray(img["job"], dtype=np.int64), tuple(img["tags"]), names)  # type: ignore[arg-type]
    return TaskRead(objects_read, images_read)


def task_candidates(client: CvatClient, task_id: int, *, pixels: bool = False) -> TaskCandidates:
    """Every rectangle, polygon and mask of the task's annotation jobs as candidates."""
    read = read_task(client, task_id, objects=True, images=False, pixels=pixels)
    assert read.objects is not None
    return read.objects


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


def _confident_by_job(
    job_id: npt.NDArray[np.int64],
    predicted: npt.NDArray[np.int64],
    confidence: npt.NDArray[np.float64],
    label_space: Sequence[str],
    label_names: dict[int, str],
    min_confidence: float,
) -> Iterator[tuple[int, list[tuple[int, int]]]]:
    """Per job: the rows whose predicted label reaches ``min_confidence`` and is a task label, with
    that label's task id."""
    id_of = {name: label_id for label_id, name in label_names.items()}
    for job in np.unique(job_id).tolist():
        rows = []
        for i in np.flatnonzero(job_id == job).tolist():
            if predicted[i] < 0 or confidence[i] < min_confidence:
                continue
            label_id = id_of.get(label_space[int(predicted[i])])
            if label_id is not None:
                rows.append((i, label_id))
        yield int(job), rows


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
    changed = 0
    for job_id, rows in _confident_by_job(
        task.job_id, predicted, confidence, label_space, task.label_names, min_confidence
    ):
        updates = tuple(
            dataclasses.replace(task.shapes[i], label_id=label_id)
            for i, label_id in rows
            if label_id != task.shapes[i].label_id and task.shapes[i].id is not None
        )
        changed += _patch_job(client, job_id, "update", JobAnnotations(shapes=updates))
    return changed


def gold_tags(
    client: CvatClient, task_id: int, images: TaskImages, label_space: Sequence[str]
) -> npt.NDArray[np.int64] | None:
    """(N,) gold tag index per image candidate from the GT job's tags (-1 = none); None without a
    GT job. A frame with several GT tags in the label space takes the first."""
    gt_jobs = [j for j in client.list_jobs(task_id=task_id) if j.type == "ground_truth"]
    if not gt_jobs:
        return None
    row_of = {int(f): i for i, f in enumerate(images.candidates.frame)}
    gold = np.full(len(images.candidates), -1, dtype=np.int64)
    space = list(label_space)
    for tag in client.get_annotations(gt_jobs[0].id).tags:
        name = images.label_names.get(tag.label_id)
        row = row_of.get(tag.frame)
        if row is not None and gold[row] < 0 and name in space:
            gold[row] = space.index(name)
    return gold


def write_tags(
    client: CvatClient,
    images: TaskImages,
    predicted: npt.NDArray[np.int64],
    confidence: npt.NDArray[np.float64],
    label_space: Sequence[str],
    *,
    min_confidence: float,
) -> int:
    """Add the predicted tag to each frame that lacks it (PATCH create per job); returns how many."""
    added = 0
    for job_id, rows in _confident_by_job(
        images.job_id, predicted, confidence, label_space, images.label_names, min_confidence
    ):
        new = tuple(
            Tag(frame=int(images.candidates.frame[i]), label_id=label_id, source="auto")
            for i, label_id in rows
            if label_id not in images.tag_label_ids[i]
        )
        added += _patch_job(client, job_id, "create", JobAnnotations(tags=new))
    return added


def _patch_job(client: CvatClient, job_id: int, action: Literal["create", "update"], objects: JobAnnotations) -> int:
    """PATCH ``objects`` into job ``job_id`` (nothing is sent when there are none); returns how many."""
    count = len(objects.shapes) + len(objects.tags)
    if count:
        client.patch_annotations(job_id, action, objects)
    return count
