"""Naive scalar references for the geometry kernels (loops over pairs; tests only)."""

from __future__ import annotations

import math

import numpy as np

Point = tuple[float, float]


def box_iou_ref(a: list[float], b: list[float]) -> float:
    ax0, ax1 = sorted((a[0], a[2]))
    ay0, ay1 = sorted((a[1], a[3]))
    bx0, bx1 = sorted((b[0], b[2]))
    by0, by1 = sorted((b[1], b[3]))
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def rotated_corners_ref(xyxy: list[float], rotation_deg: float) -> list[Point]:
    x0, y0, x1, y1 = xyxy
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    t = math.radians(rotation_deg)
    out = []
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
        dx, dy = x - cx, y - cy
        out.append((cx + dx * math.cos(t) - dy * math.sin(t), cy + dx * math.sin(t) + dy * math.cos(t)))
    return out


def _area(poly: list[Point]) -> float:
    s = 0.0
    for i in range(len(poly)):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % len(poly)]
        s += x0 * y1 - x1 * y0
    return abs(s) / 2


def _inside_convex(p: Point, poly: list[Point], eps: float = 1e-9) -> bool:
    sign = 0.0
    for i in range(len(poly)):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % len(poly)]
        c = (x1 - x0) * (p[1] - y0) - (y1 - y0) * (p[0] - x0)
        if abs(c) <= eps:
            continue
        if sign == 0:
            sign = c
        elif (c > 0) != (sign > 0):
            return False
    return True


def _seg_intersection(p: Point, q: Point, r: Point, s: Point) -> Point | None:
    d1 = (q[0] - p[0], q[1] - p[1])
    d2 = (s[0] - r[0], s[1] - r[1])
    den = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(den) < 1e-15:
        return None
    t = ((r[0] - p[0]) * d2[1] - (r[1] - p[1]) * d2[0]) / den
    u = ((r[0] - p[0]) * d1[1] - (r[1] - p[1]) * d1[0]) / den
    if -1e-12 <= t <= 1 + 1e-12 and -1e-12 <= u <= 1 + 1e-12:
        return (p[0] + t * d1[0], p[1] + t * d1[1])
    return None


def convex_intersection_area_ref(a: list[Point], b: list[Point]) -> float:
    """Independent of clipping: collect inner vertices and edge crossings, sort by angle, shoelace."""
    if _area(a) == 0 or _area(b) == 0:
        return 0.0
    pts = [p for p in a if _inside_convex(p, b)] + [p for p in b if _inside_convex(p, a)]
    for i in range(len(a)):
        for j in range(len(b)):
            hit = _seg_intersection(a[i], a[(i + 1) % len(a)], b[j], b[(j + 1) % len(b)])
            if hit is not None:
                pts.append(hit)
    if len(pts) < 3:
        return 0.0
    cx = sum(p[0] for p in pts) / len(pts)
    cy = sum(p[1] for p in pts) / len(pts)
    pts.sort(key=lambda p: math.atan2(p[1] - cy, p[0] - cx))
    return _area(pts)


def rotated_iou_ref(a: list[float], ra: float, b: list[float], rb: float) -> float:
    pa, pb = rotated_corners_ref(a, ra), rotated_corners_ref(b, rb)
    inter = convex_intersection_area_ref(pa, pb)
    union = _area(pa) + _area(pb) - inter
    return inter / union if union > 0 else 0.0


def mask_iou_dense_ref(bits_a: np.ndarray, bits_b: np.ndarray) -> float:
    inter = int(np.logical_and(bits_a, bits_b).sum())
    union = int(np.logical_or(bits_a, bits_b).sum())
    return inter / union if union else 0.0
