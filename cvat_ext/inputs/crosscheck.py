"""Annotation ids against the job's frame meta and the labels: the one cross-check of the CLI.

Each check is one vectorised pass over the columns of :class:`~cvat_ext.inputs.columns.AnnotationIds`
(``np.isin`` against the allowed ids or ``(label, id)`` pairs packed into one int64), then a slow
path that looks only at the first bad row to name it. The first problem raises
:class:`~cvat_ext.errors.InputMismatchError`:

* ``a.json: shapes[812] is on frame 347, outside the job's frames 0..99 of meta.json (100 frames);
  3120 of 5000 objects are outside, the annotations span frames 0..499: is the meta from another job?``
* ``a.json: shapes[3] (frame 7) has label id 99, which labels.json does not have (ids 1, 2, 5)``
* ``a.json: shapes[3].elements[1] (frame 7) has label id 4, not a keypoint of skeleton 'hand' (id 3)``
* ``a.json: shapes[3].attributes[0] (frame 7) has attribute id 42, which labels.json does not have``
* ``a.json: tags[0].attributes[1] (frame 2) has attribute id 12 of label 'car', not of its label 'person'``
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.columnar_json import ReplicaColumns
from cvat_ext.annotations.model import JobMeta, LabelSet
from cvat_ext.errors import InputMismatchError
from cvat_ext.inputs.columns import AnnotationIds, ids_from_file

__all__ = ["check_annotation_file", "check_frames", "check_labels", "check_overlap", "columns_consistent",
           "frames_inside", "pair_keys"]

IntArray = npt.NDArray[np.int64]

#: "another job?" is suggested when at least this share of the objects lies outside the meta
_ANOTHER_JOB_SHARE = 0.1


def pair_keys(a: npt.ArrayLike, b: npt.ArrayLike) -> IntArray:
    """``(N,)`` int64 keys of the pairs ``(a[i], b[i])`` (ids below 2**31), for ``np.isin`` on pairs."""
    a64 = np.asarray(a, dtype=np.int64)
    b64 = np.asarray(b, dtype=np.int64)
    return (a64 << 32) | (b64 & 0xFFFFFFFF)


def _pairs(pairs: Iterable[tuple[int, int]]) -> IntArray:
    arr = np.array(list(pairs), dtype=np.int64).reshape(-1, 2)
    return pair_keys(arr[:, 0], arr[:, 1])


def frames_inside(frame_idx: IntArray, meta: JobMeta) -> npt.NDArray[np.bool_]:
    """``(N,)`` True where ``frame_idx`` is a frame of the job: in ``start..stop`` on its step, or
    one of a ground-truth job's ``included_frames``. Deleted frames count as the job's (CVAT keeps
    their annotations)."""
    f = np.asarray(frame_idx, dtype=np.int64)
    if meta.included_frames is not None:
        return np.isin(f, np.asarray(meta.included_frames, dtype=np.int64))
    return (f >= meta.start_frame) & (f <= meta.stop_frame) & ((f - meta.start_frame) % meta.step == 0)


def _job_frames(meta: JobMeta) -> str:
    if meta.included_frames is not None:
        return f"{len(meta.included_frames)} ground-truth frames"
    count = (meta.stop_frame - meta.start_frame) // meta.step + 1
    step = f" every {meta.step}" if meta.step > 1 else ""
    return f"frames {meta.start_frame}..{meta.stop_frame}{step} ({count} frames)"


def check_frames(ids: AnnotationIds, meta: JobMeta, meta_path: str) -> None:
    """Every object lies on a frame of the job ``meta`` describes."""
    outside = np.flatnonzero(~frames_inside(ids.frame_idx, meta))
    if not outside.size:
        return
    row = int(outside[0])
    message = (
        f"{ids.path}: {ids.locate(row, keyframe=True)} is on frame {int(ids.frame_idx[row])}, "
        f"outside the job's {_job_frames(meta)} of {meta_path}"
    )
    if outside.size > 1 or len(ids) > 1:
        lo, hi = int(ids.frame_idx.min()), int(ids.frame_idx.max())
        message += f"; {outside.size} of {len(ids)} objects are outside, the annotations span frames {lo}..{hi}"
    if outside.size >= _ANOTHER_JOB_SHARE * len(ids):
        message += ": is the meta from another job?"
    raise InputMismatchError(message)


def check_overlap(path: str, what: str, frame_idx: IntArray, inside: npt.NDArray[np.bool_], frames: str) -> int:
    """For inputs that may cover more than the jobs asked about (task-wide predictions): raise when
    ``path`` has rows (``what``: "detections") and none is ``inside`` the ``frames`` described; else
    the count of rows outside (the caller may warn)."""
    outside = int(inside.shape[0] - np.count_nonzero(inside))
    if inside.shape[0] and outside == inside.shape[0]:
        lo, hi = int(frame_idx.min()), int(frame_idx.max())
        raise InputMismatchError(
            f"{path}: none of its {outside} {what} (frames {lo}..{hi}) lies on a frame of {frames}: "
            "are the files from another job or task?"
        )
    return outside


def _at(ids: AnnotationIds, row: int) -> str:
    return f"{ids.path}: {ids.locate(row)} (frame {int(ids.frame_idx[row])})"


def _shown_ids(values: Iterable[int], limit: int = 12) -> str:
    ordered = sorted(values)
    shown = ", ".join(map(str, ordered[:limit]))
    return shown + (f", ... ({len(ordered)} ids)" if len(ordered) > limit else "")


def check_labels(ids: AnnotationIds, labels: LabelSet, labels_path: str) -> None:
    """Every label id is in ``labels``; skeleton keypoints use their skeleton's sublabels; every
    attribute id is an attribute of its object's label."""
    # 1. label ids
    known = np.fromiter(labels.by_id, dtype=np.int64, count=len(labels.by_id))
    bad = np.flatnonzero(~np.isin(ids.label_id, known))
    if bad.size:
        row = int(bad[0])
        raise InputMismatchError(
            f"{_at(ids, row)} has label id {int(ids.label_id[row])}, which {labels_path} does not have "
            f"(ids {_shown_ids(labels.by_id) or 'none'}); {bad.size} object(s) have unknown label ids: "
            "are the labels from another task?"
        )
    # 2. keypoints of skeletons: (skeleton label, keypoint label) must be a declared pair
    has_parent = ids.parent_label_id >= 0
    if has_parent.any():
        allowed = _pairs((label.id, sub.id) for label in labels for sub in label.sublabels)
        keys = pair_keys(ids.parent_label_id, ids.label_id)
        bad = np.flatnonzero(has_parent & ~np.isin(keys, allowed))
        if bad.size:
            row = int(bad[0])
            parent = int(ids.parent_label_id[row])
            raise InputMismatchError(
                f"{_at(ids, row)} has label id {int(ids.label_id[row])}, not a keypoint of skeleton "
                f"'{labels.name_of(parent)}' (id {parent}) in {labels_path}"
            )
    # 3. attribute ids: known at all, then known for the object's label
    if not ids.attr_row.size:
        return
    spec_label = {spec.id: label for label in labels.by_id.values() for spec in label.attributes}
    spec_ids = np.fromiter(spec_label, dtype=np.int64, count=len(spec_label))
    bad = np.flatnonzero(~np.isin(ids.attr_spec_id, spec_ids))
    if bad.size:
        a = int(bad[0])
        raise InputMismatchError(
            f"{_attr_at(ids, a)} has attribute id {int(ids.attr_spec_id[a])}, which {labels_path} does not have"
        )
    allowed = _pairs((label.id, spec_id) for spec_id, label in spec_label.items())
    owner_label = ids.label_id[ids.attr_row]
    bad = np.flatnonzero(~np.isin(pair_keys(owner_label, ids.attr_spec_id), allowed))
    if bad.size:
        a = int(bad[0])
        spec_id, owner = int(ids.attr_spec_id[a]), int(owner_label[a])
        raise InputMismatchError(
            f"{_attr_at(ids, a)} has attribute id {spec_id} of label '{spec_label[spec_id].name}', "
            f"not of its label '{labels.name_of(owner)}' (id {owner}) in {labels_path}"
        )


def _attr_at(ids: AnnotationIds, a: int) -> str:
    return f"{ids.path}: {ids.locate_attribute(a)} (frame {int(ids.frame_idx[int(ids.attr_row[a])])})"


def check_annotation_file(
    path: str | PathLike[str],
    *,
    meta: JobMeta | None = None,
    meta_path: str = "the meta",
    labels: LabelSet | None = None,
    labels_path: str = "the labels",
) -> AnnotationIds:
    """Read the ids of the annotations file at ``path`` (already accepted by its reader) and check
    them against ``meta`` and ``labels`` (each when given); the ids, for more checks."""
    ids = ids_from_file(path)
    if meta is not None:
        check_frames(ids, meta, meta_path)
    if labels is not None:
        check_labels(ids, labels, labels_path)
    return ids


def columns_consistent(replica: ReplicaColumns, *, meta: JobMeta, labels: LabelSet) -> bool:
    """True when the already-read columns of an annotations file can hold no problem
    :func:`check_annotation_file` would report (frames inside ``meta``, top-level labels, their own
    attribute ids), so the file need not be read again; False means "look closer" (and always for
    tracks and skeleton elements, whose file positions the columns do not keep)."""
    table = replica.shapes
    if replica.from_tracks or table.elements:
        return False
    if not frames_inside(table.frame.astype(np.int64), meta).all():
        return False
    tags = [t for frame_tags in replica.tags.values() for t in frame_tags]
    if tags and not frames_inside(np.array([t.frame for t in tags], np.int64), meta).all():
        return False
    own = {lb.id: {a.id for a in lb.attributes} for lb in labels.labels}
    if not np.isin(table.label_id, np.fromiter(own, np.int64, len(own))).all():
        return False
    if any(t.label_id not in own for t in tags):
        return False
    label_of = table.label_id
    for row, attributes in table.attributes.items():
        allowed = own[int(label_of[row])]
        if any(a.spec_id not in allowed for a in attributes):
            return False
    return all(a.spec_id in own[t.label_id] for t in tags for a in t.attributes)
