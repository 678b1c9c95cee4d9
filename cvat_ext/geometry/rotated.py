"""Exact IoU of rotated boxes (and of any convex polygons), vectorised over pairs.

Rotated boxes follow CVAT: ``xyxy`` is the unrotated box, ``rotation`` is in degrees, clockwise on
screen (y points down), about the box centre. A corner ``p`` maps to
``c + R(θ) (p - c)`` with ``R(θ) = [[cos θ, -sin θ], [sin θ, cos θ]]``.

The intersection of two convex polygons is computed with Sutherland–Hodgman clipping run on padded
arrays for all candidate pairs at once: ``P`` pairs, ``V`` vertex slots, one loop iteration per edge
of the clip polygon (4 for boxes), never a loop over pairs. Convex polygons shorter than their
array are padded by repeating their first vertex (a zero-length edge clips nothing).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cvat_ext.geometry.boxes import FloatArray, _as_xyxy, _iou_from_inter, box_iou, boxes_overlap

IntArray = npt.NDArray[np.int64]


def box_corners(xyxy: npt.ArrayLike, rotation_deg: npt.ArrayLike) -> FloatArray:
    """(N, 4) xyxy + (N,) degrees -> (N, 4, 2) corners (tl, tr, br, bl before rotation)."""
    b = _as_xyxy(xyxy).reshape(-1, 4)
    rot = np.broadcast_to(np.asarray(rotation_deg, dtype=np.float64), (b.shape[0],))
    x0, y0, x1, y1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    corners = np.stack(
        [np.stack([x0, y0], -1), np.stack([x1, y0], -1), np.stack([x1, y1], -1), np.stack([x0, y1], -1)], axis=1
    )
    centre = np.stack([(x0 + x1) / 2, (y0 + y1) / 2], -1)[:, None, :]
    theta = np.deg2rad(rot)
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    d = corners - centre
    x = centre[..., 0] + cos * d[..., 0] - sin * d[..., 1]
    y = centre[..., 1] + sin * d[..., 0] + cos * d[..., 1]
    return np.stack([x, y], -1)


def polygon_area(poly: FloatArray, count: IntArray | None = None) -> FloatArray:
    """Shoelace |area| of (P, V, 2) polygons; ``count`` (P,) valid vertices (rest ignored), None = all."""
    if poly.shape[1] == 0:
        return np.zeros(poly.shape[0])
    if count is None:
        nxt = np.roll(poly, -1, axis=1)
        cross = poly[..., 0] * nxt[..., 1] - nxt[..., 0] * poly[..., 1]
        return np.abs(cross.sum(axis=1)) / 2
    j = np.arange(poly.shape[1])[None, :]
    nxt_idx = np.where(j + 1 < count[:, None], j + 1, 0)
    nxt = np.take_along_axis(poly, nxt_idx[..., None], axis=1)
    cross = poly[..., 0] * nxt[..., 1] - nxt[..., 0] * poly[..., 1]
    cross = np.where(j < count[:, None], cross, 0.0)
    return np.abs(cross.sum(axis=1)) / 2


def signed_area(poly: FloatArray) -> FloatArray:
    """(P, V, 2) -> (P,) signed shoelace area (positive = counter-clockwise in x-right/y-up axes)."""
    nxt = np.roll(poly, -1, axis=1)
    return (poly[..., 0] * nxt[..., 1] - nxt[..., 0] * poly[..., 1]).sum(axis=1) / 2


def convex_intersection_area(subject: FloatArray, clip: FloatArray) -> FloatArray:
    """Area of ``subject ∩ clip`` for P pairs of convex polygons.

    ``subject`` (P, Vs, 2) and ``clip`` (P, Vc, 2), any orientation, padded by repeating the first
    vertex -> (P,) float64 px². Degenerate (zero-area) clip polygons give 0.
    """
    pairs, vs = subject.shape[0], subject.shape[1]
    vc = clip.shape[1]
    if pairs == 0:
        return np.zeros(0)
    width = vs + vc
    poly = np.concatenate([subject, np.repeat(subject[:, :1], vc, axis=1)], axis=1)
    count = np.full(pairs, vs, dtype=np.int64)
    orient = np.sign(signed_area(clip))
    slots = np.arange(width)[None, :]
    for k in range(vc):
        e0 = clip[:, k, :][:, None, :]
        edge = clip[:, (k + 1) % vc, :][:, None, :] - e0
        # side > 0: on the inner side of this clip edge
        rel = poly - e0
        side = orient[:, None] * (edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0])
        live = slots < count[:, None]
        nxt_idx = np.where(slots + 1 < count[:, None], slots + 1, 0)
        nxt = np.take_along_axis(poly, nxt_idx[..., None], axis=1)
        side_nxt = np.take_along_axis(side, nxt_idx, axis=1)
        inside = side >= 0
        crosses = live & (inside != (side_nxt >= 0))
        denom = np.where(crosses, side - side_nxt, 1.0)
        t = np.where(crosses, side / denom, 0.0)
        hit = poly + t[..., None] * (nxt - poly)
        cand = np.stack([poly, hit], axis=2).reshape(pairs, 2 * width, 2)
        keep = np.stack([inside & live, crosses], axis=2).reshape(pairs, 2 * width)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
        poly = np.take_along_axis(cand, order[..., None], axis=1)
        count = np.minimum(keep.sum(axis=1), width)
    area = polygon_area(poly, count)
    area[(count < 3) | (orient == 0)] = 0.0
    return area


def _canonical_swap(first: FloatArray, second: FloatArray) -> npt.NDArray[np.bool_]:
    """(P, ...) pairs -> (P,) True where ``second`` sorts before ``first`` (lexicographic on values).

    Clipping A by B and B by A differ in the last bits; ordering each pair canonically makes every
    pairwise kernel exactly symmetric.
    """
    diff = (first - second).reshape(first.shape[0], -1)
    nonzero = diff != 0
    idx = np.argmax(nonzero, axis=1)
    return np.take_along_axis(diff, idx[:, None], axis=1)[:, 0] > 0


def convex_pairs_area(polys_a: FloatArray, polys_b: FloatArray, ia: IntArray, ib: IntArray) -> FloatArray:
    """Intersection areas of pairs ``(polys_a[ia[p]], polys_b[ib[p]])``; (N, V, 2) and (M, V, 2) padded."""
    first = polys_a[ia]
    second = polys_b[ib]
    swap = _canonical_swap(first, second)
    subject = np.where(swap[:, None, None], second, first)
    clip = np.where(swap[:, None, None], first, second)
    return convex_intersection_area(subject, clip)


def convex_iou(polys_a: FloatArray, polys_b: FloatArray, candidates: npt.NDArray[np.bool_]) -> FloatArray:
    """All-pairs IoU of convex polygons (N, V, 2) vs (M, V, 2) (padded, same V), computed only where
    ``candidates`` (N, M) is True (0 elsewhere) -> (N, M)."""
    n, m = polys_a.shape[0], polys_b.shape[0]
    inter = np.zeros((n, m))
    ia, ib = np.nonzero(candidates)
    if ia.size:
        inter[ia, ib] = convex_pairs_area(polys_a, polys_b, ia, ib)
    area_a, area_b = polygon_area(polys_a), polygon_area(polys_b)
    return _iou_from_inter(_bounded(inter, area_a, area_b), area_a, area_b)


def _bounded(inter: FloatArray, area_a: FloatArray, area_b: FloatArray) -> FloatArray:
    """Clipping noise can leave a sliver where a shape has no area: cap by the smaller area."""
    return np.minimum(inter, np.minimum(area_a[:, None], area_b[None, :]))


def _aabb(polys: FloatArray) -> FloatArray:
    return np.concatenate([polys.min(axis=1), polys.max(axis=1)], axis=1)


def rotated_box_iou(
    xyxy_a: npt.ArrayLike, rot_a: npt.ArrayLike, xyxy_b: npt.ArrayLike, rot_b: npt.ArrayLike
) -> FloatArray:
    """All-pairs IoU of rotated boxes (exact up to float rounding).

    ``xyxy_a`` (N, 4) + ``rot_a`` (N,) degrees, ``xyxy_b`` (M, 4) + ``rot_b`` (M,) -> (N, M) in [0, 1].
    Pairs where both rotations are multiples of 180° use the axis-aligned formula; the rest are
    clipped exactly, after an axis-aligned bounding-box prefilter.
    """
    a = _as_xyxy(xyxy_a).reshape(-1, 4)
    b = _as_xyxy(xyxy_b).reshape(-1, 4)
    ra = np.broadcast_to(np.asarray(rot_a, dtype=np.float64), (a.shape[0],))
    rb = np.broadcast_to(np.asarray(rot_b, dtype=np.float64), (b.shape[0],))
    out = box_iou(a, b)
    if out.size == 0:
        return out
    upright_a = np.mod(ra, 180.0) == 0
    upright_b = np.mod(rb, 180.0) == 0
    rotated_pair = ~(upright_a[:, None] & upright_b[None, :])
    if not rotated_pair.any():
        return out
    ca = box_corners(a, ra)
    cb = box_corners(b, rb)
    candidates = rotated_pair & boxes_overlap(_aabb(ca), _aabb(cb))
    inter = np.zeros_like(out)
    ia, ib = np.nonzero(candidates)
    if ia.size:
        inter[ia, ib] = convex_pairs_area(ca, cb, ia, ib)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    rotated_iou = _iou_from_inter(_bounded(inter, area_a, area_b), area_a, area_b)
    # the same box twice is exactly 1, however thin (clipping noise is relative to the coordinates)
    same = (a[:, None, :] == b[None, :, :]).all(axis=2) & (ra[:, None] == rb[None, :])
    rotated_iou[same & (area_a[:, None] > 0)] = 1.0
    return np.where(rotated_pair, rotated_iou, out)
