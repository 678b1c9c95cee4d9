"""Cuboid similarity: CVAT 2D projected cuboids, and oriented 3D boxes.

2D (CVAT ``cuboid`` shapes, 8 projected corners): CVAT does not compare cuboids in quality
control and its merge rejects them, so there is no reference behaviour. We use the IoU of the
convex hulls of the 8 points: the image region the drawn cuboid covers. It is exact (convex
clipping), rotation-invariant and ignores which face is the front.

3D (:func:`cuboid3d_iou`): boxes with centre ``(x, y, z)``, size ``(sx, sy, sz)`` along their own
axes and yaw (radians, counter-clockwise about +z in a right-handed frame, z up, as CVAT 3D
``rotation[2]``). Intersection volume = exact bird's-eye-view rotated-rectangle intersection
(convex clipping) x overlap of the z extents; roll and pitch are ignored.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cvat_ext.geometry.boxes import FloatArray, _iou_from_inter, boxes_overlap
from cvat_ext.geometry.rotated import convex_iou, convex_pairs_area, polygon_area


def _hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Andrew's monotone chain, counter-clockwise, collinear points dropped."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def convex_hulls(points: npt.ArrayLike) -> FloatArray:
    """(N, P, 2) point sets -> (N, P, 2) convex hulls padded by repeating their first vertex.

    One small Python hull per object (O(N), not per pair); degenerate sets give zero-area hulls.
    """
    pts = np.asarray(points, dtype=np.float64)
    n, p = pts.shape[0], pts.shape[1]
    out = np.zeros((n, p, 2))
    for i in range(n):
        hull = _hull([(float(x), float(y)) for x, y in pts[i]])
        if not hull:
            continue
        out[i, : len(hull)] = hull
        out[i, len(hull) :] = hull[0]
    return out


def cuboid2d_iou(points_a: npt.ArrayLike, points_b: npt.ArrayLike) -> FloatArray:
    """All-pairs IoU of projected cuboids: (N, 8, 2) vs (M, 8, 2) -> (N, M), via convex hulls."""
    a = np.asarray(points_a, dtype=np.float64).reshape(-1, 8, 2)
    b = np.asarray(points_b, dtype=np.float64).reshape(-1, 8, 2)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    ha, hb = convex_hulls(a), convex_hulls(b)
    box_a = np.concatenate([a.min(axis=1), a.max(axis=1)], axis=1)
    box_b = np.concatenate([b.min(axis=1), b.max(axis=1)], axis=1)
    return convex_iou(ha, hb, boxes_overlap(box_a, box_b))


def _bev_corners(centers: FloatArray, sizes: FloatArray, yaw: FloatArray) -> FloatArray:
    half = np.abs(sizes[:, :2]) / 2
    local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)[None] * half[:, None, :]
    cos, sin = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = centers[:, None, 0] + cos * local[..., 0] - sin * local[..., 1]
    y = centers[:, None, 1] + sin * local[..., 0] + cos * local[..., 1]
    return np.stack([x, y], -1)


def cuboid3d_iou(
    centers_a: npt.ArrayLike,
    sizes_a: npt.ArrayLike,
    yaw_a: npt.ArrayLike,
    centers_b: npt.ArrayLike,
    sizes_b: npt.ArrayLike,
    yaw_b: npt.ArrayLike,
) -> FloatArray:
    """All-pairs 3D IoU of yaw-oriented boxes.

    ``centers_a`` (N, 3), ``sizes_a`` (N, 3), ``yaw_a`` (N,) radians; same with M for b
    -> (N, M) float64 in [0, 1]. Zero-volume boxes give 0.
    """
    ca = np.asarray(centers_a, dtype=np.float64).reshape(-1, 3)
    sa = np.asarray(sizes_a, dtype=np.float64).reshape(-1, 3)
    cb = np.asarray(centers_b, dtype=np.float64).reshape(-1, 3)
    sb = np.asarray(sizes_b, dtype=np.float64).reshape(-1, 3)
    n, m = ca.shape[0], cb.shape[0]
    if n == 0 or m == 0:
        return np.zeros((n, m))
    ya = np.broadcast_to(np.asarray(yaw_a, dtype=np.float64), (n,))
    yb = np.broadcast_to(np.asarray(yaw_b, dtype=np.float64), (m,))
    pa, pb = _bev_corners(ca, sa, ya), _bev_corners(cb, sb, yb)
    za = np.stack([ca[:, 2] - np.abs(sa[:, 2]) / 2, ca[:, 2] + np.abs(sa[:, 2]) / 2], 1)
    zb = np.stack([cb[:, 2] - np.abs(sb[:, 2]) / 2, cb[:, 2] + np.abs(sb[:, 2]) / 2], 1)
    dz = np.clip(np.minimum(za[:, None, 1], zb[None, :, 1]) - np.maximum(za[:, None, 0], zb[None, :, 0]), 0, None)
    bev_box_a = np.concatenate([pa.min(axis=1), pa.max(axis=1)], axis=1)
    bev_box_b = np.concatenate([pb.min(axis=1), pb.max(axis=1)], axis=1)
    candidates = boxes_overlap(bev_box_a, bev_box_b) & (dz > 0)
    inter = np.zeros((n, m))
    ia, ib = np.nonzero(candidates)
    if ia.size:
        inter[ia, ib] = convex_pairs_area(pa, pb, ia, ib) * dz[ia, ib]
    vol_a = polygon_area(pa) * (za[:, 1] - za[:, 0])
    vol_b = polygon_area(pb) * (zb[:, 1] - zb[:, 0])
    return _iou_from_inter(np.minimum(inter, np.minimum(vol_a[:, None], vol_b[None, :])), vol_a, vol_b)
