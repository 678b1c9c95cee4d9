"""Polygon IoU by scanline rasterisation into row runs.

Approach (CVAT itself rasterises polygons with pycocotools before comparing them): every polygon
is rasterised once, for all polygons at once, at pixel resolution. Pixel ``(x, y)`` belongs to a
polygon when its centre ``(x + 0.5, y + 0.5)`` is inside by the **even-odd** rule, so
self-intersecting polygons are well defined (overlapping lobes cancel) and never crash. A row's
edge crossings use the half-open rule ``y_lo <= y_c < y_hi`` so every row has an even count; the
crossings sorted by ``(polygon, row, x)`` pair up into runs. Cost O(sum of rows spanned by the
edges), no dense bitmap. Then :func:`~cvat_ext.geometry.masks.runs_iou` gives exact pixel IoU.

Accuracy: this is pixel IoU, not area IoU; the difference is boundary discretisation, about
``perimeter / area`` pixels relative (below 1% for objects wider than ~200 px, large for a
polygon a few pixels wide). ``scale`` > 1 rasterises on a finer grid (``scale``² sub-pixels per
pixel) where a closer area IoU matters more than CVAT parity. pycocotools' own rasteriser differs
from the pixel-centre rule by at most a pixel along edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cvat_ext.geometry.boxes import FloatArray
from cvat_ext.geometry.masks import RowRuns, clip_columns, empty_runs, expand_rows, runs_iou


def polygon_runs(polys: Sequence[npt.ArrayLike], *, scale: float = 1.0, clip_wh: tuple[int, int] = (0, 0)) -> RowRuns:
    """Polygons, each (K, 2) XY pixels (K >= 3 for any area), -> row runs of ``len(polys)`` segments.

    ``clip_wh`` (width, height) > 0 keeps only pixels inside the frame (in unscaled pixels).
    """
    if not polys:
        return empty_runs(0)
    pts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) * scale for p in polys]
    sizes = np.array([p.shape[0] for p in pts], dtype=np.int64)
    v0 = np.concatenate(pts)
    v1 = np.concatenate([np.roll(p, -1, axis=0) for p in pts])
    owner = np.repeat(np.arange(len(pts), dtype=np.int64), sizes)
    y_lo = np.minimum(v0[:, 1], v1[:, 1])
    y_hi = np.maximum(v0[:, 1], v1[:, 1])
    r_lo = np.ceil(y_lo - 0.5)
    r_hi = np.ceil(y_hi - 0.5)  # exclusive; horizontal edges span no row
    edge, row = expand_rows(r_lo, r_hi, clip_wh, scale)
    if row.size == 0:
        return empty_runs(len(polys))
    yc = row + 0.5
    x0, y0 = v0[edge, 0], v0[edge, 1]
    x1, y1 = v1[edge, 0], v1[edge, 1]
    x = x0 + (yc - y0) * (x1 - x0) / (y1 - y0)
    own = owner[edge]
    order = np.lexsort((x, row, own))
    x, row, own = x[order], row[order], own[order]
    # crossings pair up inside each (polygon, row): every such group has an even count
    start = np.ceil(x[0::2] - 0.5).astype(np.int64)
    end = np.ceil(x[1::2] - 0.5).astype(np.int64)
    row, own = row[0::2], own[0::2]
    start, end = clip_columns(start, end, clip_wh, scale)
    keep = end > start
    return RowRuns(row[keep], start[keep], end[keep], own[keep], len(polys))


def polygon_iou(
    polys_a: Sequence[npt.ArrayLike],
    polys_b: Sequence[npt.ArrayLike],
    *,
    scale: float = 1.0,
    clip_wh: tuple[int, int] = (0, 0),
) -> FloatArray:
    """All-pairs pixel IoU of polygons (each (K, 2)) -> (N, M) float64 in [0, 1] (see module doc)."""
    return runs_iou(
        polygon_runs(polys_a, scale=scale, clip_wh=clip_wh), polygon_runs(polys_b, scale=scale, clip_wh=clip_wh)
    )
