"""Ellipse IoU: analytic scanline rasterisation into row runs, rotation honoured.

An ellipse is ``(cx, cy, rx, ry)`` plus ``rotation`` degrees (clockwise on screen about the
centre, like rectangles). Each pixel row's centre line cuts a convex ellipse in one interval, found
from the ellipse's quadratic in ``x``; the pixels whose centres fall in it form the row's run. This
is the exact pixel-centre rasterisation (no polygon approximation), so the only error against the
true area IoU is boundary discretisation, as for polygons (about ``perimeter / area``); ``scale``
> 1 refines the grid. CVAT compares ellipses as polygons rasterised by pycocotools, which agrees
to within boundary pixels.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cvat_ext.geometry.boxes import FloatArray
from cvat_ext.geometry.masks import RowRuns, clip_columns, empty_runs, expand_rows, runs_iou


def ellipse_runs(
    cxcy_rxry: npt.ArrayLike,
    rotation_deg: npt.ArrayLike,
    *,
    scale: float = 1.0,
    clip_wh: tuple[int, int] = (0, 0),
) -> RowRuns:
    """(N, 4) ``[cx, cy, rx, ry]`` + (N,) degrees -> row runs of N segments (zero radius: empty)."""
    e = np.asarray(cxcy_rxry, dtype=np.float64).reshape(-1, 4) * scale
    n = e.shape[0]
    if n == 0:
        return empty_runs(0)
    theta = np.deg2rad(np.broadcast_to(np.asarray(rotation_deg, dtype=np.float64), (n,)))
    cx, cy = e[:, 0], e[:, 1]
    rx, ry = np.abs(e[:, 2]), np.abs(e[:, 3])
    cos, sin = np.cos(theta), np.sin(theta)
    ext_y = np.sqrt((rx * sin) ** 2 + (ry * cos) ** 2)
    r_lo = np.ceil(cy - ext_y - 0.5)
    r_hi = np.floor(cy + ext_y - 0.5) + 1  # exclusive
    valid = (rx > 0) & (ry > 0)
    own, row = expand_rows(r_lo, np.where(valid, r_hi, r_lo), clip_wh, scale)
    if row.size == 0:
        return empty_runs(n)
    dy = row + 0.5 - cy[own]
    c, s, a2, b2 = cos[own], sin[own], rx[own] ** 2, ry[own] ** 2
    # (dx c + dy s)^2 / a2 + (-dx s + dy c)^2 / b2 <= 1  ->  A dx^2 + B dx + C <= 0
    qa = c * c / a2 + s * s / b2
    qb = 2 * dy * c * s * (1 / a2 - 1 / b2)
    qc = dy * dy * (s * s / a2 + c * c / b2) - 1
    disc = qb * qb - 4 * qa * qc
    root = np.sqrt(np.maximum(disc, 0.0))
    x_lo = cx[own] + (-qb - root) / (2 * qa)
    x_hi = cx[own] + (-qb + root) / (2 * qa)
    start = np.ceil(x_lo - 0.5).astype(np.int64)
    end = np.floor(x_hi - 0.5).astype(np.int64) + 1
    start, end = clip_columns(start, end, clip_wh, scale)
    keep = (disc >= 0) & (end > start)
    return RowRuns(row[keep], start[keep], end[keep], own[keep], n)


def ellipse_iou(
    cxcy_rxry_a: npt.ArrayLike,
    rot_a: npt.ArrayLike,
    cxcy_rxry_b: npt.ArrayLike,
    rot_b: npt.ArrayLike,
    *,
    scale: float = 1.0,
    clip_wh: tuple[int, int] = (0, 0),
) -> FloatArray:
    """All-pairs pixel IoU of rotated ellipses: (N, 4) + (N,) vs (M, 4) + (M,) -> (N, M) in [0, 1]."""
    return runs_iou(
        ellipse_runs(cxcy_rxry_a, rot_a, scale=scale, clip_wh=clip_wh),
        ellipse_runs(cxcy_rxry_b, rot_b, scale=scale, clip_wh=clip_wh),
    )
