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
from cvat_ext.errors import AnnotationFormatError
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

    @classmethod
    def derived(
        cls, row: IntArray, start: IntArray, end: IntArray, owner: IntArray, count: int, area: IntArray, ltrb: IntArray
    ) -> RowRuns:
        """Runs whose ``area`` and ``ltrb`` the caller already knows (taken or shifted from other
        runs): skips their computation and the shape checks."""
        out = object.__new__(cls)
        for name, value in (
            ("row", row),
            ("start", start),
            ("end", end),
            ("owner", owner),
            ("count", count),
            ("area", area),
            ("ltrb", ltrb),
        ):
            object.__setattr__(out, name, value)
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
        # a segment's area and box are its own: taken, not recomputed
        return RowRuns.derived(
            np.concatenate([p.row for p in parts]),
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.end for p in parts]),
            np.concatenate([p.owner + off for p, off in zip(parts, offsets)]),
            int(sum(p.count for p in parts)),
            np.concatenate([p.area for p in parts]),
            np.concatenate([p.ltrb for p in parts]),
        )


def empty_runs(count: int) -> RowRuns:
    z = np.zeros(0, dtype=np.int64)
    return RowRuns(z, z, z, z, count)


#: scanline rows one rasterisation call may expand (guards memory against absurd coordinates)
MAX_SCANLINE_ROWS = 1 << 25


def expand_rows(
    r_lo: FloatArray, r_hi: FloatArray, clip_wh: tuple[int, int], scale: float
) -> tuple[IntArray, IntArray]:
    """Scanline helper: item ``i`` spans pixel rows ``[r_lo[i], r_hi[i])`` (whole numbers as floats)
    -> ``(item, row)`` (T,) int64 for every covered row, rows kept inside the frame when
    ``clip_wh`` (width, height) > 0 (in pixels before ``scale``)."""
    if min(clip_wh) > 0:
        r_lo = np.maximum(r_lo, 0)
        r_hi = np.minimum(r_hi, np.ceil(clip_wh[1] * scale))
    n_rows = np.maximum(r_hi - r_lo, 0)
    total = int(n_rows.sum())
    if total > MAX_SCANLINE_ROWS:
        raise AnnotationFormatError(
            f"rasterising shapes that span {total} pixel rows (> {MAX_SCANLINE_ROWS}); "
            "coordinates far outside the frame? pass the frame size (image_wh) to clip them"
        )
    n_rows = n_rows.astype(np.int64)
    item = np.repeat(np.arange(n_rows.size, dtype=np.int64), n_rows)
    row = r_lo[item].astype(np.int64) + (np.arange(total) - np.repeat(np.cumsum(n_rows) - n_rows, n_rows))
    return item, row


def clip_columns(start: IntArray, end: IntArray, clip_wh: tuple[int, int], scale: float) -> tuple[IntArray, IntArray]:
    """Scanline helper: runs ``[start, end)`` cut to the frame's columns when ``clip_wh`` > 0."""
    if min(clip_wh) > 0:
        return np.maximum(start, 0), np.minimum(end, int(np.ceil(clip_wh[0] * scale)))
    return start, end


def concat_ranges(first: npt.ArrayLike, lengths: npt.ArrayLike) -> IntArray:
    """Positions ``first[i] .. first[i] + lengths[i] - 1`` of every i, one range after the other:
    the gather index of ragged rows stored flat (``(sum(lengths),)`` int64)."""
    first_i = np.asarray(first, dtype=np.int64)
    length = np.asarray(lengths, dtype=np.int64)
    offset = np.cumsum(length) - length
    return np.repeat(first_i - offset, length) + np.arange(int(length.sum()), dtype=np.int64)


#: masks decoded per vectorised block by :func:`rle_to_runs`: one call over a whole chunk's masks
#: (millions of runs) is several times slower per run than blocks whose temporaries stay in cache
RLE_BLOCK = 256


def rle_to_runs(rles: Sequence[MaskRle]) -> RowRuns:
    """CVAT mask RLEs (inclusive ``ltrb`` crops) -> row runs of ``len(rles)`` segments, vectorised
    (in blocks of :data:`RLE_BLOCK` masks)."""
    return rle_columns_to_runs(*mask_rle_columns(rles))


def mask_rle_columns(rles: Sequence[MaskRle]) -> tuple[list[IntArray], IntArray]:
    """CVAT mask RLEs as columns: each one's ``counts`` and their inclusive ``ltrb (S, 4)`` int64."""
    return [r.counts for r in rles], np.array([r.ltrb for r in rles], dtype=np.int64).reshape(-1, 4)


def rle_columns_to_runs(counts: Sequence[npt.ArrayLike], ltrb: npt.ArrayLike) -> RowRuns:
    """:func:`rle_to_runs` on masks given as columns: CVAT RLE ``counts`` (S arrays) and inclusive
    ``ltrb (S, 4)`` crops (no :class:`MaskRle` objects needed)."""
    n = len(counts)
    if n == 0:
        return empty_runs(0)
    sizes = np.fromiter(map(len, counts), dtype=np.int64, count=n)  # type: ignore[arg-type]
    return rle_flat_to_runs(np.concatenate(counts), sizes, ltrb)


def rle_flat_to_runs(
    counts: npt.ArrayLike, sizes: npt.ArrayLike, ltrb: npt.ArrayLike, first: npt.ArrayLike | None = None
) -> RowRuns:
    """:func:`rle_to_runs` on S masks given as flat columns: the CVAT RLE counts of all of them
    ``counts (C,)`` (any integer or integral float type), ``sizes (S,)`` the number of counts of
    each, ``ltrb (S, 4)`` their inclusive crops. Mask ``i``'s counts are ``counts[first[i] :
    first[i] + sizes[i]]``, in increasing ``first``; by default they are back to back. Numbers
    between two masks' counts are ignored: CVAT's flat ``points`` of masks (each mask's box after
    its counts) decode without gathering their counts. Decoded in blocks of :data:`RLE_BLOCK`
    masks, no per-mask Python step."""
    length = np.asarray(sizes, dtype=np.int64)
    n = length.size
    if n == 0:
        return empty_runs(0)
    flat = np.asarray(counts)
    box = np.asarray(ltrb, dtype=np.int64).reshape(n, 4)
    start = np.cumsum(length) - length if first is None else np.asarray(first, dtype=np.int64)
    gapped = first is not None and bool(np.any(start[1:] != start[:-1] + length[:-1]))
    blocks = range(0, n, RLE_BLOCK)
    parts = []
    for lo in blocks:
        hi = min(lo + RLE_BLOCK, n)
        a, b = int(start[lo]), int(start[hi - 1] + length[hi - 1])
        local = start[lo:hi] - a
        if gapped:
            block = np.array(flat[a:b], dtype=np.int64)  # a copy: the gaps are zeroed below
            gap_first = local[:-1] + length[lo : hi - 1]
            # zeros in the gaps leave the running sum of the counts as it is
            block[concat_ranges(gap_first, local[1:] - gap_first)] = 0
        else:
            block = flat[a:b].astype(np.int64, copy=False)
        parts.append(_rle_block(block, length[lo:hi], local, box[lo:hi]))
    if len(parts) == 1:
        return RowRuns(*parts[0], n)
    return RowRuns(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([part[3] + lo for part, lo in zip(parts, blocks, strict=True)]),
        n,
    )


def _rle_block(
    flat: IntArray, sizes: IntArray, first: IntArray, ltrb: IntArray
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """(row, start, end, owner) of the runs of a few masks (``flat`` counts, mask ``i``'s
    ``sizes[i]`` of them from ``first[i]``; zeros between masks)."""
    n = sizes.size
    width = ltrb[:, 2] - ltrb[:, 0] + 1
    area = width * (ltrb[:, 3] - ltrb[:, 1] + 1)
    # foreground runs are a mask's odd positions: index them directly
    n_fg = sizes // 2
    fg_first = np.cumsum(n_fg) - n_fg
    owner = np.repeat(np.arange(n, dtype=np.int64), n_fg)
    fg = np.repeat(first + 1 - 2 * fg_first, n_fg) + 2 * np.arange(owner.size, dtype=np.int64)
    ends = np.cumsum(flat)
    length = flat[fg]
    nz = length > 0
    if not nz.all():
        fg, owner, length = fg[nz], owner[nz], length[nz]
    p1 = ends[fg] - (np.cumsum(area) - area)[owner]  # end pixel offset within the crop
    p0 = p1 - length
    w = width[owner]
    # crop rows by float division: exact here (offsets < 2**53, quotients below the crop height)
    # and several times faster than int64 floor division
    wf = w.astype(np.float64)
    row = (p0 / wf).astype(np.int64)
    pieces = ((p1 - 1) / wf).astype(np.int64) - row + 1
    if np.any(pieces > 1):
        # split runs that wrap across crop rows
        idx = np.repeat(np.arange(owner.size), pieces)
        row = row[idx] + (np.arange(idx.size) - np.repeat(np.cumsum(pieces) - pieces, pieces))
        owner, w, p0, p1 = owner[idx], w[idx], p0[idx], p1[idx]
    row_start = row * w
    start = np.maximum(p0, row_start) - row_start
    end = np.minimum(p1, row_start + w) - row_start
    left = ltrb[owner, 0]
    return row + ltrb[owner, 1], start + left, end + left, owner


def _join_runs(
    a: tuple[IntArray, IntArray, IntArray, IntArray], b: tuple[IntArray, IntArray, IntArray, IntArray]
) -> tuple[IntArray, IntArray, IntArray]:
    """Overlapping run pairs of ``a`` and ``b`` = (row, start, end, owner) arrays -> (owner_a,
    owner_b, overlap px) per overlapping run pair.

    B's runs are sorted by ``(row, start)``; an A run ``[s, e)`` on row ``y`` can only meet the B
    runs of row ``y`` with ``s - L_y < start_b < e`` (``L_y`` the longest B run on that row), a
    contiguous range found by two ``searchsorted`` calls on one ``row * span + column`` key.
    """
    row_a, start_a, end_a, own_a = a
    row_b, start_b, end_b, own_b = b
    none = np.zeros(0, dtype=np.int64)
    if row_a.size == 0 or row_b.size == 0:
        return none, none, none
    row0 = min(int(row_a.min()), int(row_b.min()))
    col0 = int(start_b.min())
    span = int(start_b.max()) - col0 + 2
    rows_b = row_b - row0
    key_b = rows_b * span + (start_b - col0)
    # each segment's runs come sorted: a stable sort (timsort) merges those ascending stretches
    # faster than a quicksort; the order of equal keys does not change any sum below
    order = np.argsort(key_b, kind="stable")
    key_b, start_b, end_b, own_b, rows_b = key_b[order], start_b[order], end_b[order], own_b[order], rows_b[order]
    longest = np.zeros(int(max(row_a.max(), row_b.max())) - row0 + 1, dtype=np.int64)
    row_first = np.flatnonzero(np.concatenate(([True], rows_b[1:] != rows_b[:-1])))
    longest[rows_b[row_first]] = np.maximum.reduceat(end_b - start_b, row_first)
    rows_a = row_a - row0
    base = rows_a * span
    lo = np.searchsorted(key_b, base + np.clip(start_a - longest[rows_a] + 1 - col0, 0, span), side="left")
    hi = np.searchsorted(key_b, base + np.clip(end_a - col0, 0, span), side="left")
    cnt = np.maximum(hi - lo, 0)
    total = int(cnt.sum())
    if total == 0:
        return none, none, none
    ia = np.repeat(np.arange(row_a.size), cnt)
    ib = np.repeat(lo - np.cumsum(cnt) + cnt, cnt) + np.arange(total)
    ov = np.minimum(end_a[ia], end_b[ib]) - np.maximum(start_a[ia], start_b[ib])
    pos = ov > 0
    return own_a[ia[pos]], own_b[ib[pos]], ov[pos]


_Runs = tuple[IntArray, IntArray, IntArray, IntArray]  # row, start, end, owner


def _dense_intersection(
    a: _Runs, box_a: IntArray, area_a: IntArray, b: _Runs, box_b: IntArray, area_b: IntArray
) -> FloatArray:
    """(N, M) intersections of segments given as run arrays (owners in [0, N) / [0, M)) with their
    boxes and areas. Only segments whose boxes overlap a box on the other side join."""
    n, m = box_a.shape[0], box_b.shape[0]
    if n == 0 or m == 0 or a[0].size == 0 or b[0].size == 0:
        return np.zeros((n, m))
    overlap = (
        (box_a[:, None, 0] <= box_b[None, :, 2])
        & (box_b[None, :, 0] <= box_a[:, None, 2])
        & (box_a[:, None, 1] <= box_b[None, :, 3])
        & (box_b[None, :, 1] <= box_a[:, None, 3])
    )
    overlap &= (area_a > 0)[:, None] & (area_b > 0)[None, :]
    if not overlap.any():
        return np.zeros((n, m))
    oa, ob, ov = _join_runs(_overlapping(a, np.any(overlap, axis=1)), _overlapping(b, np.any(overlap, axis=0)))
    inter: FloatArray = np.bincount(oa * m + ob, weights=ov, minlength=n * m).astype(np.float64)
    return inter.reshape(n, m)


def _overlapping(runs: _Runs, seg_overlaps: npt.NDArray[np.bool_]) -> _Runs:
    """The runs of the segments whose box overlaps one on the other side (all runs, uncopied,
    when every segment's does)."""
    if seg_overlaps.all():
        return runs
    sel = seg_overlaps[runs[3]]
    return runs[0][sel], runs[1][sel], runs[2][sel], runs[3][sel]


def runs_intersection(runs_a: RowRuns, runs_b: RowRuns) -> FloatArray:
    """(N, M) pixel counts of ``A_i ∩ B_j`` for all pairs (exact integers, as float64).

    Only segments whose boxes overlap a box on the other side take part in the run join.
    """
    return _dense_intersection(
        (runs_a.row, runs_a.start, runs_a.end, runs_a.owner),
        runs_a.ltrb,
        runs_a.area,
        (runs_b.row, runs_b.start, runs_b.end, runs_b.owner),
        runs_b.ltrb,
        runs_b.area,
    )


class _FrameIndex:
    """Segments and runs of one side grouped by frame, for slicing one frame at a time."""

    def __init__(self, runs: RowRuns, frame: IntArray) -> None:
        self.seg_order = np.argsort(frame, kind="stable")  # segment ids grouped by frame
        sorted_frames = frame[self.seg_order]
        self.frames, self.seg_start = np.unique(sorted_frames, return_index=True)
        self.seg_end = np.append(self.seg_start[1:], frame.size)
        local = np.empty(frame.size, dtype=np.int64)
        local[self.seg_order] = np.arange(frame.size) - np.repeat(
            self.seg_start, np.diff(np.append(self.seg_start, frame.size))
        )
        run_frame = frame[runs.owner]
        order = np.argsort(run_frame, kind="stable")
        self.runs: _Runs = (runs.row[order], runs.start[order], runs.end[order], local[runs.owner[order]])
        run_frames = run_frame[order]
        self.run_start = np.searchsorted(run_frames, self.frames, side="left")
        self.run_end = np.searchsorted(run_frames, self.frames, side="right")
        self.ltrb = runs.ltrb[self.seg_order]
        self.area = runs.area[self.seg_order]

    def frame(self, k: int) -> tuple[_Runs, IntArray, IntArray, IntArray]:
        """Runs (owners local to the frame), boxes, areas and global segment ids of frame slot k."""
        r0, r1 = int(self.run_start[k]), int(self.run_end[k])
        s0, s1 = int(self.seg_start[k]), int(self.seg_end[k])
        runs = (self.runs[0][r0:r1], self.runs[1][r0:r1], self.runs[2][r0:r1], self.runs[3][r0:r1])
        return runs, self.ltrb[s0:s1], self.area[s0:s1], self.seg_order[s0:s1]


def runs_iou_sparse(
    runs_a: RowRuns,
    runs_b: RowRuns,
    frame_a: npt.ArrayLike | None = None,
    frame_b: npt.ArrayLike | None = None,
) -> tuple[IntArray, IntArray, FloatArray]:
    """IoU of the overlapping segment pairs only, for many frames in one call.

    ``frame_a`` (N,) / ``frame_b`` (M,) give each segment's frame (None = all one frame); segments
    of different frames never meet. -> ``(ia, ib, iou)`` (P,) each: segment indices into A and B
    and their IoU > 0, sorted by ``(ia, ib)``. Pairs not listed have IoU 0. No (N, M) array is
    built, so N and M may span many frames; the join runs frame by frame (a loop over frames with
    the per-frame box prefilter, never over pairs). Rasterising a whole chunk in one call is not
    faster than per frame (large arrays leave the cache; ``bench/geometry_kernels.py``): use this
    when runs already exist for a chunk.
    """
    fa = np.zeros(runs_a.count, dtype=np.int64) if frame_a is None else np.asarray(frame_a, dtype=np.int64)
    fb = np.zeros(runs_b.count, dtype=np.int64) if frame_b is None else np.asarray(frame_b, dtype=np.int64)
    if fa.shape != (runs_a.count,) or fb.shape != (runs_b.count,):
        raise ValueError(f"runs_iou_sparse: expected frame ids ({runs_a.count},) and ({runs_b.count},)")
    none = np.zeros(0, dtype=np.int64)
    if fa.size == 0 or fb.size == 0:
        return none, none, np.zeros(0)
    side_a, side_b = _FrameIndex(runs_a, fa), _FrameIndex(runs_b, fb)
    _, slots_a, slots_b = np.intersect1d(side_a.frames, side_b.frames, assume_unique=True, return_indices=True)
    parts_a: list[IntArray] = []
    parts_b: list[IntArray] = []
    parts_iou: list[FloatArray] = []
    for ka, kb in zip(slots_a.tolist(), slots_b.tolist()):
        runs_fa, box_fa, area_fa, ids_a = side_a.frame(ka)
        runs_fb, box_fb, area_fb, ids_b = side_b.frame(kb)
        inter = _dense_intersection(runs_fa, box_fa, area_fa, runs_fb, box_fb, area_fb)
        i, j = np.nonzero(inter)
        if i.size:
            hit = inter[i, j]
            parts_a.append(ids_a[i])
            parts_b.append(ids_b[j])
            parts_iou.append(np.minimum(hit / (area_fa[i] + area_fb[j] - hit), 1.0))
    if not parts_a:
        return none, none, np.zeros(0)
    ia, ib, iou = np.concatenate(parts_a), np.concatenate(parts_b), np.concatenate(parts_iou)
    order = np.lexsort((ib, ia))
    return ia[order], ib[order], iou[order]


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


def runs_iou_paired(runs_a: RowRuns, runs_b: RowRuns) -> FloatArray:
    """IoU of segment ``i`` of A with segment ``i`` of B, for every i: (S,) float64 in [0, 1].

    Both sides hold the same number S of segments. The runs of one segment on one row are
    disjoint, so the B runs that a run of A overlaps are a contiguous range of B sorted by
    (segment, row, column): two binary searches find it. No pair other than (i, i) is ever looked
    at, so S may span a whole chunk of frames.
    """
    if runs_a.count != runs_b.count:
        raise ValueError(f"runs_iou_paired: expected equal segment counts, got {runs_a.count} and {runs_b.count}")
    n = runs_a.count
    inter = np.zeros(n)
    if runs_a.row.size and runs_b.row.size:
        row0 = min(int(runs_a.row.min()), int(runs_b.row.min()))
        n_rows = max(int(runs_a.row.max()), int(runs_b.row.max())) - row0 + 1
        x0 = min(int(runs_a.start.min()), int(runs_b.start.min()))
        width = max(int(runs_a.end.max()), int(runs_b.end.max())) - x0 + 1
        line_a = (runs_a.owner * n_rows + (runs_a.row - row0)) * width - x0
        line_b = (runs_b.owner * n_rows + (runs_b.row - row0)) * width - x0
        start_b, end_b = line_b + runs_b.start, line_b + runs_b.end
        if np.any(start_b[1:] < start_b[:-1]):
            order = np.argsort(start_b, kind="stable")
            start_b, end_b = start_b[order], end_b[order]
        start_a, end_a = line_a + runs_a.start, line_a + runs_a.end
        # B runs with end > start_a and start < end_a (the same line: lines are ``width`` apart)
        lo = np.searchsorted(end_b, start_a, side="right")
        hi = np.searchsorted(start_b, end_a, side="left")
        count = np.maximum(hi - lo, 0)
        ia = np.repeat(np.arange(start_a.size), count)
        ib = np.repeat(lo - (np.cumsum(count) - count), count) + np.arange(ia.size)
        overlap = np.minimum(end_a[ia], end_b[ib]) - np.maximum(start_a[ia], start_b[ib])
        weights = np.maximum(overlap, 0).astype(np.float64)
        inter = np.asarray(np.bincount(runs_a.owner[ia], weights=weights, minlength=n), dtype=np.float64)
    union = runs_a.area + runs_b.area - inter
    out = np.zeros(n)
    np.divide(inter, union, out=out, where=union > 0)
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)


def owner_offsets(runs: RowRuns) -> IntArray:
    """(S + 1,) where each segment's runs start in ``runs`` grouped by owner (:func:`take_runs`)."""
    per_owner = np.bincount(runs.owner, minlength=runs.count)
    return np.concatenate(([0], np.cumsum(per_owner)))


def take_runs(runs: RowRuns, index: npt.ArrayLike, offsets: IntArray | None = None) -> RowRuns:
    """Segments ``index (S',)`` of ``runs`` (repeats allowed) as a new :class:`RowRuns` of S'
    segments, each keeping its runs in their order. ``offsets``: :func:`owner_offsets` of ``runs``
    when its runs are grouped by owner already (saves a count and a sort per call)."""
    idx = np.asarray(index, dtype=np.int64)
    order = None
    if offsets is None:
        offsets = owner_offsets(runs)
        if np.any(runs.owner[1:] < runs.owner[:-1]):
            order = np.argsort(runs.owner, kind="stable")
    first = offsets[idx]
    count = offsets[idx + 1] - first
    sel = np.repeat(first - (np.cumsum(count) - count), count) + np.arange(int(count.sum()))
    if order is not None:
        sel = order[sel]
    owner = np.repeat(np.arange(idx.size, dtype=np.int64), count)
    return RowRuns.derived(
        runs.row[sel], runs.start[sel], runs.end[sel], owner, int(idx.size), runs.area[idx], runs.ltrb[idx]
    )
