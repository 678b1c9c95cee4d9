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


# ------------------------------------------------------------------------------------------
# CVAT's own polyline similarity (quality control / merge): pointwise Gaussian, not an IoU


def _pad_lines(lines: Sequence[npt.ArrayLike]) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Lines -> vertices (N, K, 2) padded by repeating the last vertex, their normalised cumulative
    arc length (N, K) in [0, 1] (all 0 for a zero-length line), and (N, K) True at interior
    vertices (neither end nor padding)."""
    pts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in lines]
    k = max(len(p) for p in pts)
    out = np.stack([np.concatenate([p, np.repeat(p[-1:], k - len(p), axis=0)]) for p in pts])
    seg = np.hypot(*np.moveaxis(np.diff(out, axis=1), -1, 0))
    cum = np.concatenate([np.zeros((out.shape[0], 1)), np.cumsum(seg, axis=1)], axis=1)
    total = cum[:, -1:]
    slot = np.arange(k)[None, :]
    interior = (slot >= 1) & (slot < np.array([len(p) - 1 for p in pts])[:, None])
    return out, cum / np.where(total > 0, total, 1.0), interior


def _interpolate(verts: FloatArray, pos: FloatArray, where: FloatArray) -> FloatArray:
    """Points at relative arc positions ``where`` (N, M, P) on lines (N, K, 2) with positions
    ``pos`` (N, K) -> (N, M, P, 2). ``verts``/``pos`` broadcast over the M axis as (N, 1, K, ...)."""
    k = verts.shape[-2]
    seg = np.clip((pos[..., None, :] <= where[..., None]).sum(axis=-1) - 1, 0, max(k - 2, 0))
    nxt = np.minimum(seg + 1, k - 1)
    t0 = np.take_along_axis(np.broadcast_to(pos[..., None, :], (*where.shape, k)), seg[..., None], -1)[..., 0]
    t1 = np.take_along_axis(np.broadcast_to(pos[..., None, :], (*where.shape, k)), nxt[..., None], -1)[..., 0]
    span = t1 - t0
    local = np.where(span > 0, (where - t0) / np.where(span > 0, span, 1.0), 0.0)
    vx = np.broadcast_to(verts[..., None, :, :], (*where.shape, k, 2))
    p0 = np.take_along_axis(vx, seg[..., None, None], -2)[..., 0, :]
    p1 = np.take_along_axis(vx, nxt[..., None, None], -2)[..., 0, :]
    return p0 + local[..., None] * (p1 - p0)


_Line = tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]


def _pointwise(a: _Line, b: _Line, denom: float) -> FloatArray:
    """Mean Gaussian similarity of A_i and B_j sampled at both ends and at every interior vertex
    position of either line (CVAT's sample set). Exactly symmetric: the per-sample terms are
    sorted before summing, so the order of A and B does not matter."""
    (va, ta, ia), (vb, tb, ib) = a, b
    n, m = va.shape[0], vb.shape[0]
    ends = np.broadcast_to(np.array([0.0, 1.0]), (n, m, 2))
    where = np.concatenate(
        [
            ends,
            np.broadcast_to(ta[:, None, :], (n, m, ta.shape[1])),
            np.broadcast_to(tb[None, :, :], (n, m, tb.shape[1])),
        ],
        axis=2,
    )
    valid = np.concatenate(
        [
            np.ones((n, m, 2), dtype=bool),
            np.broadcast_to(ia[:, None, :], (n, m, ia.shape[1])),
            np.broadcast_to(ib[None, :, :], (n, m, ib.shape[1])),
        ],
        axis=2,
    )
    pa = _interpolate(va[:, None], ta[:, None], where)
    pb = _interpolate(vb[None, :], tb[None, :], where)
    d2 = ((pa - pb) ** 2).sum(axis=-1)
    terms = np.sort(np.where(valid, np.exp(-d2 / denom), 0.0), axis=2)
    return terms.sum(axis=2) / valid.sum(axis=2)


def line_point_similarity(
    lines_a: Sequence[npt.ArrayLike],
    lines_b: Sequence[npt.ArrayLike],
    *,
    scale: float,
    torso_r: float = 0.01,
    oriented: bool = False,
) -> FloatArray:
    """CVAT's polyline similarity, all pairs: (N lines) x (M lines) -> (N, M) in [0, 1].

    As CVAT 2.73 quality control and consensus merge do: both lines are sampled at the same
    relative arc-length positions, namely both ends and every interior vertex position of either
    line (each keeps its corners; ``K_a + K_b - 2`` samples), and the similarity is
    ``mean exp(-d^2 / (2 * scale * (2 * torso_r)^2))`` over the samples (``scale`` = image area,
    ``torso_r`` = ``line_thickness``). Unless ``oriented``, the better direction of B counts.
    Lines whose bounding circles are farther apart than CVAT's gate
    (``r_a^2 + r_b^2 + scale * (6 torso_r)^2``) score 0. CVAT's sequential sampler may differ
    where vertex positions of the two lines coincide within 1e-7.
    """
    n, m = len(lines_a), len(lines_b)
    if n == 0 or m == 0:
        return np.zeros((n, m))
    line_a, line_b = _pad_lines(lines_a), _pad_lines(lines_b)
    denom = 2 * scale * (2 * torso_r) ** 2
    if denom <= 0:
        return np.zeros((n, m))
    sim = _pointwise(line_a, line_b, denom)
    if not oriented:
        rev_a = _pad_lines([np.asarray(p, dtype=np.float64).reshape(-1, 2)[::-1] for p in lines_a])
        rev_b = _pad_lines([np.asarray(p, dtype=np.float64).reshape(-1, 2)[::-1] for p in lines_b])
        # both mirrored comparisons, averaged, keep the matrix exactly symmetric
        sim = np.maximum(sim, (_pointwise(line_a, rev_b, denom) + _pointwise(rev_a, line_b, denom)) / 2)
    va, vb = line_a[0], line_b[0]
    # CVAT's coarse gate on the bounding circles
    lo_a, hi_a = va.min(axis=1), va.max(axis=1)
    lo_b, hi_b = vb.min(axis=1), vb.max(axis=1)
    ca, cb = (lo_a + hi_a) / 2, (lo_b + hi_b) / 2
    r2a = ((hi_a - lo_a) ** 2).sum(axis=1) / 4
    r2b = ((hi_b - lo_b) ** 2).sum(axis=1) / 4
    gap2 = ((ca[:, None, :] - cb[None, :, :]) ** 2).sum(axis=-1)
    far = gap2 > r2a[:, None] + r2b[None, :] + scale * (6 * torso_r) ** 2
    sim[far] = 0.0
    return sim
