"""Row runs of a polygon/mask batch, decoded once for the matching and the mask vote.

The rows of a batch (sorted by frame) are decoded block by block, :data:`SEGMENT_FRAMES` frames at
a time, each shape clipped to its own frame's size. A block's runs are small enough to stay in
cache while the matching joins them; the mask vote later takes its members' runs from the one or
two blocks its clusters' frames fall in, instead of decoding the masks a second time. Holding
every block of a job costs memory: the engine keeps them within a budget and drops them after
the vote (``ReplicaBatch.runs_cache``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvat_ext.annotations.model import ShapeType
from cvat_ext.annotations.table import TYPE_CODE, LazyShapes
from cvat_ext.consensus.batch import IntArray, ReplicaBatch
from cvat_ext.geometry import (
    RowRuns,
    SimilarityParams,
    concat_ranges,
    empty_runs,
    owner_offsets,
    segment_runs,
    segment_runs_flat,
    take_runs,
)

#: frames decoded (and joined by the matching) together: the matching's IoU matrix per block is
#: (20 F)^2 for 20 objects per frame
SEGMENT_FRAMES = 8

_MASK_CODE = TYPE_CODE[ShapeType.MASK]


@dataclass(frozen=True, eq=False)
class SegmentRuns:
    """Runs of a batch's rows in blocks of consecutive rows: block b holds rows
    ``bounds[b]:bounds[b + 1]`` as ``blocks[b]`` (owner = row - ``bounds[b]``, runs grouped by
    owner) with its :func:`~cvat_ext.geometry.owner_offsets` ``offsets[b]``."""

    bounds: IntArray
    blocks: tuple[RowRuns, ...]
    offsets: tuple[IntArray, ...]

    @property
    def n_runs(self) -> int:
        return sum(int(b.row.size) for b in self.blocks)

    def take(self, rows: IntArray) -> RowRuns:
        """Runs of batch ``rows`` (any order, repeats allowed) as segments ``0 .. len(rows)``."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return take_runs(self.blocks[0], rows, self.offsets[0]) if self.blocks else empty_runs(0)
        first = int(np.searchsorted(self.bounds, rows.min(), side="right")) - 1
        last = int(np.searchsorted(self.bounds, rows.max(), side="right")) - 1
        if first == last:
            return take_runs(self.blocks[first], rows - self.bounds[first], self.offsets[first])
        # a few consecutive blocks: one temporary block of their rows (owners stay grouped)
        parts = self.blocks[first : last + 1]
        shift = self.bounds[first : last + 1] - self.bounds[first]
        merged = RowRuns.derived(
            np.concatenate([p.row for p in parts]),
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.end for p in parts]),
            np.concatenate([p.owner + s for p, s in zip(parts, shift.tolist(), strict=True)]),
            int(self.bounds[last + 1] - self.bounds[first]),
            np.concatenate([p.area for p in parts]),
            np.concatenate([p.ltrb for p in parts]),
        )
        return take_runs(merged, rows - self.bounds[first], owner_offsets(merged))


def segment_rows_runs(batch: ReplicaBatch, params: SimilarityParams, frame_wh: IntArray | None = None) -> SegmentRuns:
    """:class:`SegmentRuns` of a polygon/mask batch, each shape clipped to its frame's size
    (``frame_wh (F, 2)``, else ``params.image_wh``). Decoded once and kept in
    ``batch.runs_cache`` for these frame sizes."""
    key = np.ascontiguousarray(frame_wh).tobytes() if frame_wh is not None else repr(params.image_wh).encode()
    cached = batch.runs_cache.get(key)
    if cached is not None:
        return cached
    bounds = np.searchsorted(batch.frame_pos, np.arange(0, batch.n_frames + SEGMENT_FRAMES, SEGMENT_FRAMES))
    bounds = np.unique(np.append(bounds, batch.label.shape[0]))
    blocks = [
        _decode_block(batch, lo, hi, params, frame_wh) for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist())
    ]
    out = SegmentRuns(bounds, tuple(blocks), tuple(owner_offsets(b) for b in blocks))
    batch.runs_cache[key] = out
    return out


def _decode_block(
    batch: ReplicaBatch, lo: int, hi: int, params: SimilarityParams, frame_wh: IntArray | None
) -> RowRuns:
    """Runs of rows ``lo:hi`` (owner = row - lo, grouped by owner), clipped per frame size."""
    geometry = _BlockGeometry(batch, lo, hi)
    if frame_wh is None:
        return _grouped(geometry.runs(None, params.image_wh))
    sizes = frame_wh[batch.frame_pos[lo:hi]]
    if (sizes == sizes[0]).all():
        return _grouped(geometry.runs(None, (int(sizes[0, 0]), int(sizes[0, 1]))))
    parts = []
    for wh in np.unique(sizes, axis=0):
        local = np.flatnonzero((sizes == wh).all(axis=1))
        runs = geometry.runs(local, (int(wh[0]), int(wh[1])))
        parts.append(RowRuns(runs.row, runs.start, runs.end, local[runs.owner], hi - lo))
    row, start, end, owner = (np.concatenate([getattr(p, f) for p in parts]) for f in ("row", "start", "end", "owner"))
    return _grouped(RowRuns(row, start, end, owner, hi - lo))


class _BlockGeometry:
    """The polygons and masks of batch rows ``lo:hi`` as CVAT's flat points, read from the table's
    columns when the batch was cut from one (no :class:`Shape` built), else from the shapes."""

    def __init__(self, batch: ReplicaBatch, lo: int, hi: int) -> None:
        shapes = batch.shapes
        self.is_mask = batch.type_code[lo:hi] == _MASK_CODE
        if isinstance(shapes, LazyShapes):
            self.coords, self.start = shapes.flat_points(np.arange(lo, hi))
            self.shapes = None
        else:
            self.shapes = [batch.shape(i) for i in range(lo, hi)]

    def runs(self, local: IntArray | None, clip_wh: tuple[int, int]) -> RowRuns:
        """Runs of the block's rows ``local`` (all when None), clipped to ``clip_wh``."""
        if self.shapes is not None:
            chosen = self.shapes if local is None else [self.shapes[i] for i in local.tolist()]
            return segment_runs(chosen, SimilarityParams(image_wh=clip_wh))
        if local is None:
            return segment_runs_flat(self.is_mask, self.coords, self.start, clip_wh)
        lengths = self.start[local + 1] - self.start[local]
        coords = self.coords[concat_ranges(self.start[local], lengths)]
        return segment_runs_flat(self.is_mask[local], coords, np.concatenate(([0], np.cumsum(lengths))), clip_wh)


def _grouped(runs: RowRuns) -> RowRuns:
    """``runs`` with their runs grouped by owner (a stable sort when they are not)."""
    if not np.any(runs.owner[1:] < runs.owner[:-1]):
        return runs
    order = np.argsort(runs.owner, kind="stable")
    return RowRuns.derived(
        runs.row[order], runs.start[order], runs.end[order], runs.owner[order], runs.count, runs.area, runs.ltrb
    )
