"""Naive scalar references for the geometry kernels (loops over pairs; tests only)."""

from __future__ import annotations

import itertools
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


def runs_to_dense(runs: object, index: int, ltrb: tuple[int, int, int, int]) -> np.ndarray:
    """Dense bool image over inclusive ``ltrb`` of segment ``index`` of a RowRuns."""
    left, top, right, bottom = ltrb
    out = np.zeros((bottom - top + 1, right - left + 1), dtype=bool)
    sel = runs.owner == index  # type: ignore[attr-defined]
    for y, x0, x1 in zip(runs.row[sel], runs.start[sel], runs.end[sel]):  # type: ignore[attr-defined]
        assert top <= y <= bottom and left <= x0 and x1 - 1 <= right, "run outside the reference window"
        out[y - top, x0 - left : x1 - left] = True
    return out


def pixel_centres(ltrb: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    left, top, right, bottom = ltrb
    ys, xs = np.mgrid[top : bottom + 1, left : right + 1]
    return xs + 0.5, ys + 0.5


def polygon_dense_ref(poly: np.ndarray, ltrb: tuple[int, int, int, int]) -> np.ndarray:
    """Crossing-number (even-odd) test of every pixel centre; a loop over edges."""
    px, py = pixel_centres(ltrb)
    inside = np.zeros(px.shape, dtype=bool)
    k = len(poly)
    for i in range(k):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % k]
        straddle = (y0 > py) != (y1 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
        inside ^= straddle & (px < xc)
    return inside


def ellipse_dense_ref(
    cx: float, cy: float, rx: float, ry: float, rot_deg: float, ltrb: tuple[int, int, int, int]
) -> np.ndarray:
    px, py = pixel_centres(ltrb)
    t = math.radians(rot_deg)
    dx, dy = px - cx, py - cy
    u = dx * math.cos(t) + dy * math.sin(t)
    v = -dx * math.sin(t) + dy * math.cos(t)
    if rx <= 0 or ry <= 0:
        return np.zeros(px.shape, dtype=bool)
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1


def polyline_dense_ref(line: np.ndarray, radius: float, ltrb: tuple[int, int, int, int]) -> np.ndarray:
    px, py = pixel_centres(ltrb)
    best = np.full(px.shape, np.inf)
    segs = list(itertools.pairwise(line)) if len(line) > 1 else [(line[0], line[0])]
    for (x0, y0), (x1, y1) in segs:
        vx, vy = x1 - x0, y1 - y0
        length2 = vx * vx + vy * vy
        t = np.zeros(px.shape) if length2 == 0 else np.clip(((px - x0) * vx + (py - y0) * vy) / length2, 0, 1)
        best = np.minimum(best, np.hypot(px - (x0 + t * vx), py - (y0 + t * vy)))
    return best <= radius


def oks_ref(a: np.ndarray, va: np.ndarray, b: np.ndarray, vb: np.ndarray, sigmas: np.ndarray, scale: float) -> float:
    num, den = 0.0, 0
    for k in range(len(a)):
        if va[k] or vb[k]:
            den += 1
        if va[k] and vb[k]:
            d2 = float(((a[k] - b[k]) ** 2).sum())
            num += math.exp(-d2 / (2 * scale * (2 * sigmas[k]) ** 2))
    return num / den if den else 0.0


def line_point_similarity_ref(a: np.ndarray, b: np.ndarray, scale: float, torso_r: float) -> float:
    """Scalar: sample both lines at both ends and every interior relative vertex position of
    either, Gaussian mean, best of both directions of b, 0 beyond the bounding-circle gate."""

    def rel(p: np.ndarray) -> np.ndarray:
        cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(p, axis=0).T))]) if len(p) > 1 else np.zeros(1)
        return cum / cum[-1] if cum[-1] > 0 else cum

    def at(p: np.ndarray, t: np.ndarray, u: float) -> np.ndarray:
        if len(p) == 1:
            return p[0]
        for s in range(len(p) - 1):
            last = s == len(p) - 2
            if t[s] <= u <= t[s + 1] or last:
                span = t[s + 1] - t[s]
                f = (u - t[s]) / span if span > 0 else 0.0
                return p[s] + f * (p[s + 1] - p[s])
        raise AssertionError

    def score(p: np.ndarray, q: np.ndarray) -> float:
        tp, tq = rel(p), rel(q)
        where = [0.0, 1.0, *tp[1:-1], *tq[1:-1]]
        total = 0.0
        for u in where:
            d2 = float(((at(p, tp, u) - at(q, tq, u)) ** 2).sum())
            total += math.exp(-d2 / (2 * scale * (2 * torso_r) ** 2))
        return total / len(where)

    def circle(p: np.ndarray) -> tuple[np.ndarray, float]:
        lo, hi = p.min(0), p.max(0)
        return (lo + hi) / 2, float(((hi - lo) ** 2).sum() / 4)

    (ca, ra2), (cb, rb2) = circle(a), circle(b)
    if float(((ca - cb) ** 2).sum()) > ra2 + rb2 + scale * (6 * torso_r) ** 2:
        return 0.0
    return max(score(a, b), score(a, b[::-1]))


def polygon_runs_loop_ref(polys: list[np.ndarray], scale: float = 1.0, clip_wh: tuple[int, int] = (0, 0)) -> object:
    """Row runs of polygons by a scalar scanline loop: polygon by polygon, row by row, edge by
    edge, the even-odd rule at pixel centres with the half-open row rule ``ceil(y_lo - 0.5) <= row
    < ceil(y_hi - 0.5)``; crossing columns ``ceil(x - 0.5)`` sorted and paired. Runs come in
    (polygon, row, column) order, clipped to ``clip_wh`` when > 0 (in unscaled pixels)."""
    from cvat_ext.geometry import RowRuns

    clip = min(clip_wh) > 0
    width, height = math.ceil(clip_wh[0] * scale), math.ceil(clip_wh[1] * scale)
    out: list[tuple[int, int, int, int]] = []
    for i, poly in enumerate(polys):
        pts = [(float(x) * scale, float(y) * scale) for x, y in np.asarray(poly, dtype=np.float64).reshape(-1, 2)]
        edges = [(pts[j], pts[(j + 1) % len(pts)]) for j in range(len(pts))]
        spans = [(math.ceil(min(a[1], b[1]) - 0.5), math.ceil(max(a[1], b[1]) - 0.5)) for a, b in edges]
        bounds = [(max(lo, 0), min(hi, height)) if clip else (lo, hi) for lo, hi in spans]
        rows = sorted({r for lo, hi in bounds for r in range(lo, hi)})
        for row in rows:
            yc = row + 0.5
            cols = sorted(
                math.ceil(x0 + (yc - y0) * (x1 - x0) / (y1 - y0) - 0.5)
                for ((x0, y0), (x1, y1)), (lo, hi) in zip(edges, spans)
                if lo <= row < hi
            )
            for start, end in zip(cols[0::2], cols[1::2]):
                if clip:
                    start, end = max(start, 0), min(end, width)
                if end > start:
                    out.append((row, start, end, i))
    cols = np.array(out, dtype=np.int64).reshape(-1, 4).T
    return RowRuns(cols[0], cols[1], cols[2], cols[3], len(polys))
