"""Polyline IoU: IoU of the lines buffered by a radius, rasterised into row runs.

CVAT compares polylines by the overlap of the lines thickened by ``line_thickness`` (relative to
``sqrt(image area)``). Here the buffer of a polyline is the union of its segments' capsules
(points within ``radius`` of the segment). A capsule is convex, so a pixel-row centre line cuts it
in one interval: the hull of its cuts through the two end discs and through the band
``0 <= (p - p0)·d <= L, |(p - p0)·n| <= radius``, all closed-form. The intervals of all segments
of a line in a row are merged (union), then :func:`~cvat_ext.geometry.masks.runs_iou` gives the
pixel IoU. Exact pixel-centre rasterisation of the buffer; error against the area IoU is boundary
discretisation (``~ perimeter / area``, about ``1 / radius`` relative: ~10% at radius 5 px, use
``scale`` to refine when that matters). Line direction is ignored (buffers are symmetric).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cvat_ext.geometry.boxes import FloatArray
from cvat_ext.geometry.masks import RowRuns, clip_columns, empty_runs, expand_rows, runs_iou


def _linear_interval(
    coef: FloatArray, offset: FloatArray, lo: float | FloatArray, hi: float | FloatArray
) -> tuple[FloatArray, FloatArray]:
    """x-interval where ``lo <= coef * x + offset <= hi`` (empty as lo > hi)."""
    safe = np.where(coef == 0, 1.0, coef)
    a = (lo - offset) / safe
    b = (hi - offset) / safe
    x_lo = np.where(coef > 0, a, b)
    x_hi = np.where(coef > 0, b, a)
    always = (offset >= lo) & (offset <= hi)
    x_lo = np.where(coef == 0, np.where(always, -np.inf, np.inf), x_lo)
    x_hi = np.where(coef == 0, np.where(always, np.inf, -np.inf), x_hi)
    return x_lo, x_hi


def polyline_runs(
    lines: Sequence[npt.ArrayLike], radius: float, *, scale: float = 1.0, clip_wh: tuple[int, int] = (0, 0)
) -> RowRuns:
    """Polylines, each (K, 2) XY (K >= 1), buffered by ``radius`` px -> row runs of ``len(lines)``."""
    if not lines:
        return empty_runs(0)
    r = float(radius) * scale
    pts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) * scale for p in lines]
    # a single point is a zero-length segment (a disc)
    seg0 = np.concatenate([p[:-1] if len(p) > 1 else p for p in pts])
    seg1 = np.concatenate([p[1:] if len(p) > 1 else p for p in pts])
    seg_owner = np.repeat(np.arange(len(pts), dtype=np.int64), [max(len(p) - 1, 1) for p in pts])
    if r <= 0 or seg0.size == 0:
        return empty_runs(len(lines))
    r_lo = np.ceil(np.minimum(seg0[:, 1], seg1[:, 1]) - r - 0.5)
    r_hi = np.floor(np.maximum(seg0[:, 1], seg1[:, 1]) + r - 0.5) + 1
    seg, row = expand_rows(r_lo, r_hi, clip_wh, scale)
    total = row.size
    if total == 0:
        return empty_runs(len(lines))
    yc = row + 0.5
    p0, p1 = seg0[seg], seg1[seg]
    # end discs
    x_lo = np.full(total, np.inf)
    x_hi = np.full(total, -np.inf)
    for p in (p0, p1):
        h2 = r * r - (yc - p[:, 1]) ** 2
        half = np.sqrt(np.maximum(h2, 0.0))
        x_lo = np.where(h2 >= 0, np.minimum(x_lo, p[:, 0] - half), x_lo)
        x_hi = np.where(h2 >= 0, np.maximum(x_hi, p[:, 0] + half), x_hi)
    # the band along the segment
    vec = p1 - p0
    length = np.hypot(vec[:, 0], vec[:, 1])
    has_band = length > 0
    d = vec / np.where(has_band, length, 1.0)[:, None]
    rel_y = yc - p0[:, 1]
    # along: (x - x0) dx + rel_y dy in [0, L]; across: -(x - x0) dy + rel_y dx in [-r, r]
    a_lo, a_hi = _linear_interval(d[:, 0], -p0[:, 0] * d[:, 0] + rel_y * d[:, 1], 0.0, length)
    c_lo, c_hi = _linear_interval(-d[:, 1], p0[:, 0] * d[:, 1] + rel_y * d[:, 0], -r, r)
    b_lo, b_hi = np.maximum(a_lo, c_lo), np.minimum(a_hi, c_hi)
    band = has_band & (b_lo <= b_hi)
    x_lo = np.where(band, np.minimum(x_lo, b_lo), x_lo)
    x_hi = np.where(band, np.maximum(x_hi, b_hi), x_hi)
    finite = np.isfinite(x_lo)
    start = np.ceil(np.where(finite, x_lo, 0) - 0.5).astype(np.int64)
    end = np.floor(np.where(finite, x_hi, 0) - 0.5).astype(np.int64) + 1
    start, end = clip_columns(start, end, clip_wh, scale)
    keep = finite & (end > start)
    return _union_runs(row[keep], start[keep], end[keep], seg_owner[seg[keep]], len(lines))


def _union_runs(
    row: npt.NDArray[np.int64],
    start: npt.NDArray[np.int64],
    end: npt.NDArray[np.int64],
    owner: npt.NDArray[np.int64],
    count: int,
) -> RowRuns:
    """Merge overlapping or touching runs of the same (owner, row) into disjoint runs."""
    if row.size == 0:
        return empty_runs(count)
    row0, col0 = int(row.min()), int(start.min())
    rows, cols = int(row.max()) - row0 + 1, int(start.max()) - col0 + 1
    if count * rows * cols < 2**62:  # one int64 key sorts faster than a lexsort
        order = np.argsort(((owner * rows) + (row - row0)) * cols + (start - col0))
    else:
        order = np.lexsort((start, row, owner))
    row, start, end, owner = row[order], start[order], end[order], owner[order]
    new_group = np.ones(row.size, dtype=bool)
    new_group[1:] = (row[1:] != row[:-1]) | (owner[1:] != owner[:-1])
    group = np.cumsum(new_group) - 1
    # running max of end within each group: offset groups so one global accumulate suffices
    base = start.min()
    span = int(end.max() - base) + 1
    shifted = (end - base) + group * span
    run_max = np.maximum.accumulate(shifted)
    prev_max = np.concatenate(([-1], run_max[:-1])) - group * span
    new_run = new_group | ((start - base) > prev_max)
    first = np.flatnonzero(new_run)
    last = np.concatenate((first[1:], [row.size])) - 1
    merged_end = run_max[last] - group[last] * span + base
    return RowRuns(row[first], start[first], merged_end, owner[first], count)


def line_iou(
    lines_a: Sequence[npt.ArrayLike],
    lines_b: Sequence[npt.ArrayLike],
    radius: float,
    *,
    scale: float = 1.0,
    clip_wh: tuple[int, int] = (0, 0),
) -> FloatArray:
    """All-pairs IoU of polylines (each (K, 2)) buffered by ``radius`` px -> (N, M) in [0, 1]."""
    return runs_iou(
        polyline_runs(lines_a, radius, scale=scale, clip_wh=clip_wh),
        polyline_runs(lines_b, radius, scale=scale, clip_wh=clip_wh),
    )
