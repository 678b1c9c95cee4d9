"""Segment IoU on row runs: masks (CVAT RLE), and everything rasterised into the same form.

Data format. A :class:`RowRuns` holds the foreground of S segments as horizontal pixel runs:
``row`` (R,) absolute pixel row ``y``, ``start`` (R,) first pixel column ``x`` (inclusive), ``end``
(R,) one past the last column, ``owner`` (R,) segment index in ``[0, S)``. Runs of one segment are
disjoint. ``area`` (S,) is the pixel count and ``ltrb`` (S, 4) the tight inclusive pixel box
(zeros for an empty segment). Pixel ``(x, y)`` is the unit square ``[x, x+1) x [y, y+1)``.

A :class:`~cvat_ext.annotations.model.MaskRle` becomes runs by splitting its foreground runs at
crop row boundaries: O(runs + rows), no dense image and no dense crop.

IoU of all pairs (:func:`runs_iou`): areas come from the counts; intersections from a join of the
runs of A and B on the pixel row (runs of segments whose boxes do not overlap are dropped first),
overlap ``min(end) - max(start)`` summed per pair with one ``bincount``. Integer-exact, so the
result equals ``pycocotools.mask.iou`` on the dense masks (``iscrowd=0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import MaskRle
from cvat_ext.geometry.boxes import FloatArray, _iou_from_inter

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class RowRuns:
    """Foreground runs of S segments (see module docstring for the format).

    ``area`` (S,) and ``ltrb`` (S, 4) are derived on construction.
    """

    row: IntArray
    start: IntArray
    end: IntArray
    owner: IntArray
    count: int
    area: IntArray = field(init=False)
    ltrb: IntArray = field(init=False)

    def __post_init__(self) -> None:
        n = self.row.shape[0]
        for name in ("start", "end", "owner"):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise ValueError(f"row runs: expected {name} of shape ({n},), got {arr.shape}")
        length = self.end - self.start
        object.__setattr__(self, "area", np.bincount(self.owner, weights=length, minlength=self.count).astype(np.int64))
        object.__setattr__(self, "ltrb", self._boxes())

    def _boxes(self) -> IntArray:
        """(S, 4) inclusive pixel box of each segment's foreground; zeros for an empty segment."""
        out = np.zeros((self.count, 4), dtype=np.int64)
        if self.row.size == 0:
            return out
        owner, row, start, end = self.owner, self.row, self.start, self.end
        if np.any(owner[1:] < owner[:-1]):
            order = np.argsort(owner, kind="stable")
            owner, row, start, end = owner[order], row[order], start[order], end[order]
        first = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))
        present = owner[first]
        out[present, 0] = np.minimum.reduceat(start, first)
        out[present, 1] = np.minimum.reduceat(row, first)
        out[present, 2] = np.maximum.reduceat(end, first) - 1
        out[present, 3] = np.maximum.reduceat(row, first)
        return out

    def clipped(self, width: int, height: int) -> RowRuns:
        """The runs cut to the frame ``[0, width) x [0, height)`` (what CVAT compares)."""
        if self.row.size == 0 or (
            self.ltrb[:, :2].min() >= 0 and self.ltrb[:, 2].max() < width and self.ltrb[:, 3].max() < height
        ):
            return self
        start = np.maximum(self.start, 0)
        end = np.minimum(self.end, width)
        keep = (self.row >= 0) & (self.row < height) & (end > start)
        return RowRuns(self.row[keep], start[keep], end[keep], self.owner[keep], self.count)

    @staticmethod
    def concat(parts: Sequence[RowRuns]) -> RowRuns:
        """Segments of ``parts`` renumbered in order: part k's segments follow part k-1's."""
        if not parts:
            return empty_runs(0)
        offsets = np.cumsum([0] + [p.count for p in parts[:-1]])
        return RowRuns(
            np.concatenate([p.row for p in parts]),
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.end for p in parts]),
            np.concatenate([p.owner + off for p, off in zip(parts, offsets)]),
            int(sum(p.count for p in parts)),
        )


def empty_runs(count: int) -> RowRuns:
    z = np.zeros(0, dtype=np.int64)
    return RowRuns(z, z, z, z, count)


def expand_rows(
    r_lo: FloatArray, r_hi: FloatArray, clip_wh: tuple[int, int], scale: float
) -> tuple[IntArray, IntArray]:
    """Scanline helper: item ``i`` spans pixel rows ``[r_lo[i], r_hi[i])`` (whole numbers as floats)
    -> ``(item, row)`` (T,) int64 for every covered row, rows kept inside the frame when
    ``clip_wh`` (width, height) > 0 (in pixels before ``scale``)."""
    if min(clip_wh) > 0:
        r_lo = np.maximum(r_lo, 0)
        r_hi = np.minimum(r_hi, np.ceil(clip_wh[1] * scale))
    n_rows = np.maximum(r_hi - r_lo, 0).astype(np.int64)
    total = int(n_rows.sum())
    item = np.repeat(np.arange(n_rows.size, dtype=np.int64), n_rows)
    row = r_lo[item].astype(np.int64) + (np.arange(total) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows))
    return item, row


def clip_columns(start: IntArray, end: IntArray, clip_wh: tuple[int, int], scale: float) -> tuple[IntArray, IntArray]:
    """Scanline helper: runs ``[start, end)`` cut to the frame's columns when ``clip_wh`` > 0."""
    if min(clip_wh) > 0:
        return np.maximum(start, 0), np.minimum(end, int(np.ceil(clip_wh[0] * scale)))
    return start, end


def rle_to_runs(rles: Sequence[MaskRle]) -> RowRuns:
    """CVAT mask RLEs (inclusive ``ltrb`` crops) -> row runs of ``len(rles)`` segments, vectorised."""
    if not rles:
        return empty_runs(0)
    counts = [r.counts for r in rles]
    sizes = np.array([c.size for c in counts], dtype=np.int64)
    flat = np.concatenate(counts)
    seg = np.repeat(np.arange(len(rles), dtype=np.int64), sizes)
    first = np.cumsum(sizes) - sizes
    local = np.arange(flat.size, dtype=np.int64) - first[seg]  # run index within its mask
    ends = np.cumsum(flat)
    begins = ends - flat
    base = np.concatenate(([0], ends[np.cumsum(sizes)[:-1] - 1]))  # pixels before each mask
    fg = (local % 2 == 1) & (flat > 0)
    owner = seg[fg]
    p0 = begins[fg] - base[owner]
    p1 = ends[fg] - base[owner]
    ltrb = np.array([r.ltrb for r in rles], dtype=np.int64)
    width = ltrb[owner, 2] - ltrb[owner, 0] + 1
    # split runs that wrap across crop rows
    r0 = p0 // width
    r1 = (p1 - 1) // width
    pieces = r1 - r0 + 1
    idx = np.repeat(np.arange(owner.size), pieces)
    k = np.arange(idx.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    row_local = r0[idx] + k
    w = width[idx]
    start = np.maximum(p0[idx], row_local * w) - row_local * w
    end = np.minimum(p1[idx], (row_local + 1) * w) - row_local * w
    own = owner[idx]
    return RowRuns(row_local + ltrb[own, 1], start + ltrb[own, 0], end + ltrb[own, 0], own, len(rles))


def runs_intersection(runs_a: RowRuns, runs_b: RowRuns) -> FloatArray:
    """(N, M) pixel counts of ``A_i ∩ B_j`` for all pairs (exact integers, as float64).

    Join: B's runs sorted by ``(row, start)``; an A run ``[s, e)`` on row ``y`` can only meet the B
    runs of row ``y`` with ``s - L_y < start_b < e`` (``L_y`` the longest B run on that row), a
    contiguous range found by two ``searchsorted`` calls. Only segments whose boxes overlap a box
    on the other side take part.
    """
    n, m = runs_a.count, runs_b.count
    if n == 0 or m == 0 or runs_a.row.size == 0 or runs_b.row.size == 0:
        return np.zeros((n, m))
    box_a, box_b = runs_a.ltrb, runs_b.ltrb
    overlap = (
        (box_a[:, None, 0] <= box_b[None, :, 2])
        & (box_b[None, :, 0] <= box_a[:, None, 2])
        & (box_a[:, None, 1] <= box_b[None, :, 3])
        & (box_b[None, :, 1] <= box_a[:, None, 3])
    )
    overlap &= (runs_a.area > 0)[:, None] & (runs_b.area > 0)[None, :]
    if not overlap.any():
        return np.zeros((n, m))
    sel_a = np.any(overlap, axis=1)[runs_a.owner]
    sel_b = np.any(overlap, axis=0)[runs_b.owner]
    row_a, start_a, end_a, own_a = runs_a.row[sel_a], runs_a.start[sel_a], runs_a.end[sel_a], runs_a.owner[sel_a]
    row_b, start_b, end_b, own_b = runs_b.row[sel_b], runs_b.start[sel_b], runs_b.end[sel_b], runs_b.owner[sel_b]
    # key = row * span + column offset, so one sorted array serves every row
    row0 = min(int(row_a.min()), int(row_b.min()))
    col0 = int(start_b.min())
    span = int(start_b.max()) - col0 + 2
    key_b = (row_b - row0) * span + (start_b - col0)
    order = np.argsort(key_b, kind="stable")
    key_b, start_b, end_b, own_b = key_b[order], start_b[order], end_b[order], own_b[order]
    rows_b = row_b[order] - row0
    longest = np.zeros(int(max(row_a.max(), row_b.max())) - row0 + 1, dtype=np.int64)
    np.maximum.at(longest, rows_b, end_b - start_b)
    base = (row_a - row0) * span
    lo_off = np.clip(start_a - longest[row_a - row0] + 1 - col0, 0, span)
    hi_off = np.clip(end_a - col0, 0, span)
    lo = np.searchsorted(key_b, base + lo_off, side="left")
    hi = np.searchsorted(key_b, base + hi_off, side="left")
    cnt = np.maximum(hi - lo, 0)
    total = int(cnt.sum())
    if total == 0:
        return np.zeros((n, m))
    ia = np.repeat(np.arange(row_a.size), cnt)
    ib = np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(total)
    ov = np.minimum(end_a[ia], end_b[ib]) - np.maximum(start_a[ia], start_b[ib])
    pos = ov > 0
    pair = own_a[ia[pos]] * m + own_b[ib[pos]]
    inter: FloatArray = np.bincount(pair, weights=ov[pos], minlength=n * m).astype(np.float64)
    return inter.reshape(n, m)


def runs_iou(runs_a: RowRuns, runs_b: RowRuns) -> FloatArray:
    """All-pairs segment IoU: (N, M) float64 in [0, 1]; empty segments give 0."""
    inter = runs_intersection(runs_a, runs_b)
    return _iou_from_inter(inter, runs_a.area.astype(np.float64), runs_b.area.astype(np.float64))


def mask_iou(rles_a: Sequence[MaskRle], rles_b: Sequence[MaskRle], *, image_wh: tuple[int, int] = (0, 0)) -> FloatArray:
    """All-pairs IoU of CVAT masks without dense images: (N, M) float64 in [0, 1].

    ``image_wh`` (width, height) > 0 clips the masks to the frame first (as CVAT, which rasterises
    onto the image); ``(0, 0)`` compares them as given.
    """
    runs_a = rle_to_runs(rles_a)
    runs_b = rle_to_runs(rles_b)
    if min(image_wh) > 0:
        runs_a = runs_a.clipped(*image_wh)
        runs_b = runs_b.clipped(*image_wh)
    return runs_iou(runs_a, runs_b)
