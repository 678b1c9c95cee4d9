"""Tracks expanded straight into the object table: the rows of :func:`~cvat_ext.annotations.tracks.expand_track`
without a :class:`~cvat_ext.annotations.model.Shape` per expanded frame.

A track of ``K`` keyframes spanning ``F`` frames costs ``O(K)`` Python steps here and ``O(F)``
NumPy work: each keyframe, each run of interpolated frames between two keyframes and the run of
copies after the last keyframe is one *block* of rows whose frames, flat CVAT ``points`` and
rotations are computed as arrays, and whose occluded flag, z order and attributes are those of
the keyframe state it derives from (the rules are :mod:`cvat_ext.annotations.tracks`' module
docstring, CVAT's exporter's):

* rectangles, ellipses, cuboids, skeletons without keypoint tracks and single ``points``:
  ``p0 + (p1 - p0) * t`` and the short-way rotation, the arithmetic of ``tracks._linear``;
* polygons and polylines: CVAT's arc-length vertex matching is computed once per keyframe pair
  (``tracks._PolyMatch``). When it pairs vertex ``i`` with vertex ``i`` throughout (equal vertex
  counts, outlines that move without sliding), CVAT's reduction keeps every interpolated vertex,
  so the frames are ``p0 + (p1 - p0) * t`` for the whole run at once; other pairs go through
  ``tracks._polyshape_points`` frame by frame (its vertex reduction), still without a ``Shape``;
* masks and several ``points``: the earlier keyframe repeated.

Rows are in track order, each track's in frame order: what ``ShapeTable.from_shapes`` gives for
the concatenated ``expand_track`` lists (tests compare them row for row). Skeleton tracks with
keypoint tracks keep their keypoints as :class:`Shape` objects in ``ShapeTable.elements``, so
they, and any track ``expand_track`` would refuse (keyframes out of order, an interpolated number
that is not finite), are expanded by ``expand_track`` itself: the same rows, its error.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import Attribute, ShapeType, Track, TrackShape
from cvat_ext.annotations.table import TYPE_CODE, ShapeTable
from cvat_ext.annotations.tracks import _LINEAR_TYPES, _PolyMatch, _polyshape_points, expand_track

__all__ = ["track_table"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _Block:
    """``n`` rows of one track derived from one keyframe state: ``frames (n,)``, the flat
    ``points`` of each row (``coords (C,)``, ``lengths (n,)``), ``rotation (n,)`` degrees, and
    the state's occluded flag, z order and attributes (the track's immutable ones appended)."""

    frames: IntArray
    coords: FloatArray
    lengths: IntArray
    rotation: FloatArray
    occluded: bool
    z_order: int
    attributes: tuple[Attribute, ...]


def track_table(tracks: Sequence[Track], *, last_frame: int | None = None) -> ShapeTable:
    """The visible rows of ``tracks`` expanded up to ``last_frame`` (the job's stop frame,
    inclusive), in track order: ``ShapeTable.from_shapes`` of every ``expand_track`` list, without
    the shapes. Raises what ``expand_track`` raises on a track it refuses."""
    parts: list[ShapeTable] = []
    pending: list[tuple[Track, list[_Block]]] = []
    for track in tracks:
        blocks = _blocks(track, last_frame)
        if blocks is None:  # the per-object expansion: its rows, or its error
            if pending:
                parts.append(_table(pending))
                pending = []
            parts.append(ShapeTable.from_shapes(expand_track(track, last_frame=last_frame)))
        else:
            pending.append((track, blocks))
    if pending or not parts:
        parts.append(_table(pending))
    return ShapeTable.concat(parts)


# ----------------------------------------------------------------------------------------------
# one track -> blocks


def _blocks(track: Track, last_frame: int | None) -> list[_Block] | None:
    """The track's rows as blocks, or None when ``expand_track`` must do it (see the module
    docstring)."""
    keyframes = track.shapes
    if not keyframes:
        return []
    shape_type = keyframes[0].type
    if shape_type is ShapeType.SKELETON and track.elements:
        return None
    frames = [kf.frame for kf in keyframes]
    if any(b <= a for a, b in itertools.pairwise(frames)):
        return None  # expand_track names the keyframes out of order
    end_frame = (last_frame if last_frame is not None else frames[-1]) + 1
    blocks: list[_Block] = []
    state_attrs: tuple[Attribute, ...] = ()
    prev: TrackShape | None = None
    prev_attrs: tuple[Attribute, ...] = ()
    for kf in keyframes:
        state_attrs = kf.attributes
        if prev_attrs:  # mutable attributes the keyframe does not set carry over (CVAT's propagation)
            own = {a.spec_id for a in kf.attributes}
            state_attrs = state_attrs + tuple(a for a in prev_attrs if a.spec_id not in own)
        if prev is not None:
            if not prev.outside:
                stop = min(kf.frame, end_frame)
                blocks.append(_between(prev, kf, np.arange(prev.frame + 1, stop, dtype=np.int64), prev_attrs, track))
            if end_frame <= kf.frame:  # the segment crosses the end: nothing from kf on
                prev = None
                break
        if not kf.outside:  # (rows before the track's frame are dropped below)
            blocks.append(_repeated(kf, np.array([kf.frame], dtype=np.int64), state_attrs, track))
        prev, prev_attrs = kf, state_attrs
    if prev is not None and not prev.outside:
        blocks.append(_repeated(prev, np.arange(prev.frame + 1, end_frame, dtype=np.int64), prev_attrs, track))
    blocks = [b for b in (_from_track_frame(b, track.frame) for b in blocks) if b.frames.size]
    if not all(np.isfinite(b.coords).all() and np.isfinite(b.rotation).all() for b in blocks):
        return None  # expand_track's Shape refuses it, naming the track and frame
    return blocks


def _flat(kf: TrackShape) -> FloatArray:
    """A keyframe's CVAT ``points`` (masks: RLE counts then the inclusive box), as ``from_shapes`` flattens them."""
    if kf.mask is not None:
        return np.concatenate([kf.mask.counts.astype(np.float64), np.asarray(kf.mask.ltrb, dtype=np.float64)])
    return np.asarray(kf.points, dtype=np.float64).ravel()


def _block(frames: IntArray, rows: FloatArray, rotation: FloatArray, kf: TrackShape,
           attrs: tuple[Attribute, ...], track: Track) -> _Block:  # fmt: skip
    """A block of equal-length rows ``rows (n, P)`` derived from keyframe state ``kf``."""
    n, width = rows.shape
    return _Block(frames, rows.reshape(-1), np.full(n, width, dtype=np.int64), rotation, kf.occluded, kf.z_order,
                  attrs + track.attributes)  # fmt: skip


def _repeated(kf: TrackShape, frames: IntArray, attrs: tuple[Attribute, ...], track: Track) -> _Block:
    """``kf`` itself on each of ``frames`` (its keyframe, or copies of it)."""
    flat = _flat(kf)
    rows = np.broadcast_to(flat, (frames.size, flat.size))
    return _block(frames, rows, np.full(frames.size, kf.rotation), kf, attrs, track)


def _between(s0: TrackShape, s1: TrackShape, frames: IntArray, attrs: tuple[Attribute, ...], track: Track) -> _Block:
    """The frames strictly between keyframes ``s0`` and ``s1`` (``tracks._interpolate``)."""
    if not frames.size:
        return _repeated(s0, frames, attrs, track)
    t = (frames - s0.frame) / (s1.frame - s0.frame)
    shape_type = s1.type
    single_points = shape_type is ShapeType.POINTS and s0.points.shape == (1, 2) and s1.points.shape == (1, 2)
    if shape_type in _LINEAR_TYPES or single_points:
        d = ((s1.rotation - s0.rotation + 180.0) % 360.0) - 180.0
        if d == -180.0:
            d = 1.0  # CVAT's tie-break for an exact half turn
        rotation = (s0.rotation + d * t + 360.0) % 360.0
        return _block(frames, _lerp(s0.points, s1.points, t), rotation, s0, attrs, track)
    if shape_type in (ShapeType.POLYGON, ShapeType.POLYLINE):
        return _poly(s0, s1, frames, t, attrs, track)
    return _repeated(s0, frames, attrs, track)  # several points, masks: CVAT repeats s0


def _lerp(p0: FloatArray, p1: FloatArray, t: FloatArray) -> FloatArray:
    """``(n, P)`` the flat points of ``p0 + (p1 - p0) * t`` for each of ``t (n,)``."""
    step = p1 - p0
    return (p0 + step * t.reshape((t.size,) + (1,) * p0.ndim)).reshape(t.size, -1)


def _poly(s0: TrackShape, s1: TrackShape, frames: IntArray, t: FloatArray, attrs: tuple[Attribute, ...],
          track: Track) -> _Block:  # fmt: skip
    closed = s1.type is ShapeType.POLYGON
    match = _PolyMatch(s0.points, s1.points, closed=closed)
    rotation = np.full(frames.size, s0.rotation)
    if all(p == [i] for i, p in enumerate(match.pairs)):
        # vertex i follows vertex i: CVAT's reduction keeps every vertex (the closing one dropped)
        rows = _lerp(match.left, match.right, t)
        return _block(frames, rows[:, :-2] if closed else rows, rotation, s0, attrs, track)
    per_frame = [_polyshape_points(match, float(tf), s1.type).ravel() for tf in t.tolist()]
    lengths = np.fromiter(map(len, per_frame), dtype=np.int64, count=len(per_frame))
    return _Block(frames, np.concatenate(per_frame), lengths, rotation, s0.occluded, s0.z_order,
                  attrs + track.attributes)  # fmt: skip


def _from_track_frame(block: _Block, first: int) -> _Block:
    """``block`` without its rows before the track's ``frame`` (CVAT drops them)."""
    if not block.frames.size or block.frames[0] >= first:
        return block
    keep = block.frames >= first
    starts = np.concatenate(([0], np.cumsum(block.lengths)))
    lo = int(np.argmax(keep)) if keep.any() else block.frames.size  # frames ascend: a prefix goes
    return _Block(block.frames[lo:], block.coords[int(starts[lo]):], block.lengths[lo:], block.rotation[lo:],
                  block.occluded, block.z_order, block.attributes)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# blocks -> one table


def _table(tracks: list[tuple[Track, list[_Block]]]) -> ShapeTable:
    """The rows of every block, in order, with their tracks' fields."""
    blocks = [b for _, bs in tracks for b in bs]
    sizes = np.fromiter((b.frames.size for b in blocks), dtype=np.int64, count=len(blocks))
    n = int(sizes.sum())
    per_track = np.fromiter((sum(b.frames.size for b in bs) for _, bs in tracks), dtype=np.int64, count=len(tracks))
    sources = tuple(dict.fromkeys(t.source for t, bs in tracks if any(b.frames.size for b in bs)))
    source_of = {name: i for i, name in enumerate(sources)}

    def by_track(values: list[int]) -> IntArray:
        return np.repeat(np.asarray(values, dtype=np.int64), per_track)

    def by_block(values: list[int]) -> IntArray:
        return np.repeat(np.asarray(values, dtype=np.int64), sizes)

    lengths = np.concatenate([b.lengths for b in blocks]) if blocks else np.zeros(0, np.int64)
    type_codes = [TYPE_CODE[t.shapes[0].type] if t.shapes else 0 for t, _ in tracks]
    attributes: dict[int, tuple[Attribute, ...]] = {}
    row = 0
    for b in blocks:
        if b.attributes:
            attributes.update(dict.fromkeys(range(row, row + b.frames.size), b.attributes))
        row += b.frames.size
    return ShapeTable(
        frame=np.concatenate([b.frames for b in blocks]) if blocks else np.zeros(0, np.int64),
        label_id=by_track([t.label_id for t, _ in tracks]),
        type_code=by_track(type_codes),
        occluded=by_block([b.occluded for b in blocks]).astype(np.bool_),
        outside=np.zeros(n, dtype=np.bool_),
        z_order=by_block([b.z_order for b in blocks]),
        group=by_track([t.group for t, _ in tracks]),
        rotation=np.concatenate([b.rotation for b in blocks]).astype(np.float64) if blocks else np.zeros(0),
        score=np.ones(n),
        obj_id=np.zeros(n, dtype=np.int64),
        has_id=np.zeros(n, dtype=np.bool_),
        source_code=by_track([source_of.get(t.source, 0) for t, _ in tracks]),
        sources=sources,
        coords=np.concatenate([np.zeros(0), *(b.coords for b in blocks)]).astype(np.float64),
        coord_start=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
        attributes=attributes,
    )
