"""Axis-aligned box IoU, all pairs, per frame or per chunk of frames.

Format: ``xyxy`` float64 ``[x_min, y_min, x_max, y_max]`` in absolute pixels (continuous extent,
as CVAT stores rectangles). Corners given in the wrong order are normalised (min/max), so an
inverted box is the same box. A box of zero width or height has zero area; any pair whose union
is zero gets IoU 0 (never NaN).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _as_xyxy(xyxy: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(xyxy, dtype=np.float64)
    if arr.size == 0 and (arr.ndim < 2 or arr.shape[-1] != 4):
        return arr.reshape(0, 4)
    if arr.shape[-1] != 4:
        raise ValueError(f"xyxy: expected shape (..., 4), got {arr.shape}")
    if (arr[..., 2:] >= arr[..., :2]).all():
        return arr  # already normalised (the common case): no copy
    lo = np.minimum(arr[..., :2], arr[..., 2:])
    hi = np.maximum(arr[..., :2], arr[..., 2:])
    return np.concatenate([lo, hi], axis=-1)


def box_area(xyxy: npt.ArrayLike) -> FloatArray:
    """(..., 4) xyxy -> (...) area in px² (zero for degenerate boxes)."""
    b = _as_xyxy(xyxy)
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def _iou_from_inter(inter: FloatArray, area_a: FloatArray, area_b: FloatArray) -> FloatArray:
    """inter (..., N, M) with areas (..., N) and (..., M) -> IoU, 0 where the union is 0."""
    union = area_a[..., :, None] + area_b[..., None, :]
    union -= inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    # float noise can push an IoU of identical shapes a hair above 1
    np.minimum(out, 1.0, out=out)
    return out


def box_intersection(xyxy_a: FloatArray, xyxy_b: FloatArray) -> FloatArray:
    """Normalised (..., N, 4) and (..., M, 4) -> (..., N, M) intersection areas."""
    a, b = xyxy_a[..., :, None, :], xyxy_b[..., None, :, :]
    iw = np.minimum(a[..., 2], b[..., 2])
    iw -= np.maximum(a[..., 0], b[..., 0])
    np.maximum(iw, 0.0, out=iw)
    ih = np.minimum(a[..., 3], b[..., 3])
    ih -= np.maximum(a[..., 1], b[..., 1])
    np.maximum(ih, 0.0, out=ih)
    iw *= ih
    return iw


def box_iou(xyxy_a: npt.ArrayLike, xyxy_b: npt.ArrayLike) -> FloatArray:
    """All-pairs IoU of axis-aligned boxes.

    ``xyxy_a`` (N, 4), ``xyxy_b`` (M, 4) -> (N, M) float64 in [0, 1]; (0, M) / (N, 0) for empty input.
    Exactly symmetric: ``box_iou(a, b) == box_iou(b, a).T`` bit for bit.
    """
    a = _as_xyxy(xyxy_a).reshape(-1, 4)
    b = _as_xyxy(xyxy_b).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    inter = box_intersection(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return _iou_from_inter(inter, area_a, area_b)


def box_iou_pairs(xyxy_a: npt.ArrayLike, xyxy_b: npt.ArrayLike) -> FloatArray:
    """Element-wise IoU of box pairs: ``xyxy_a`` (P, 4), ``xyxy_b`` (P, 4) -> (P,) in [0, 1].

    For candidate pairs already found (e.g. by a sweep over a chunk of frames)."""
    a = _as_xyxy(xyxy_a).reshape(-1, 4)
    b = _as_xyxy(xyxy_b).reshape(-1, 4)
    if a.shape != b.shape:
        raise ValueError(f"box_iou_pairs: expected two (P, 4) arrays, got {a.shape} and {b.shape}")
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return np.minimum(out, 1.0, out=out)


def box_iou_batched(
    xyxy_a: npt.ArrayLike,
    valid_a: npt.ArrayLike | None,
    xyxy_b: npt.ArrayLike,
    valid_b: npt.ArrayLike | None,
) -> FloatArray:
    """IoU of many frames at once: one numpy call for a chunk of frames.

    ``xyxy_a`` (F, N, 4) with ``valid_a`` (F, N) bool (padding rows False; None = all valid),
    ``xyxy_b`` (F, M, 4) with ``valid_b`` (F, M) -> (F, N, M) float64; pairs touching padding are 0.
    """
    a = _as_xyxy(xyxy_a)
    b = _as_xyxy(xyxy_b)
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"box_iou_batched: expected (F, N, 4) and (F, M, 4), got {a.shape} and {b.shape}")
    frames, n, m = a.shape[0], a.shape[1], b.shape[1]
    if frames == 0 or n == 0 or m == 0:
        return np.zeros((frames, n, m))
    inter = box_intersection(a, b)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    out = _iou_from_inter(inter, area_a, area_b)
    if valid_a is not None:
        out *= np.asarray(valid_a, dtype=bool)[:, :, None]
    if valid_b is not None:
        out *= np.asarray(valid_b, dtype=bool)[:, None, :]
    return out


def boxes_overlap(xyxy_a: FloatArray, xyxy_b: FloatArray) -> BoolArray:
    """(N, 4), (M, 4) normalised -> (N, M) True where the closed boxes share interior area."""
    return (
        (xyxy_a[:, None, 0] < xyxy_b[None, :, 2])
        & (xyxy_b[None, :, 0] < xyxy_a[:, None, 2])
        & (xyxy_a[:, None, 1] < xyxy_b[None, :, 3])
        & (xyxy_b[None, :, 1] < xyxy_a[:, None, 3])
    )
