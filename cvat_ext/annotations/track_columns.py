"""Tracks expanded straight into the object table: the rows of :func:`~cvat_ext.annotations.tracks.expand_track`
without a :class:`~cvat_ext.annotations.model.Shape` per expanded frame.

A track of ``K`` keyframes spanning ``F`` frames is expanded with a fixed number of NumPy calls
(plus, for polygons, one per keyframe pair whose vertices do not pair one to one). Every visible
row belongs to the *run* of one keyframe ``i``: the keyframe itself, then the frames up to the
next keyframe (interpolated towards it) or, after the last one, up to the job's end (copies). The
rules are :mod:`cvat_ext.annotations.tracks`' (its module docstring; CVAT's exporter's), with the
same arithmetic, so the numbers are equal bit for bit:

* a run starts at its keyframe and ends before the next keyframe, or at ``last_frame`` (the next
  keyframe then lies beyond the end: the track stops there, interpolating towards it); an
  ``outside`` keyframe's run is empty; the first keyframe is kept even beyond ``last_frame``;
  rows before the track's ``frame`` are dropped;
* rectangles, ellipses, cuboids, skeletons without keypoint tracks, and ``points`` holding one
  point on both keyframes: ``p0 + (p1 - p0) * t`` and the rotation the short way round (an
  exact half turn goes +1, CVAT's tie-break);
* polygons and polylines: CVAT's arc-length vertex matching. Where it pairs vertex ``i`` with
  vertex ``i`` (equal vertex counts, outlines that move without sliding; checked for all keyframe
  pairs of a track at once), CVAT's reduction keeps every interpolated vertex, so the run is
  ``p0 + (p1 - p0) * t`` too; other pairs go through ``tracks._polyshape_points`` frame by frame
  (its vertex reduction), still without a ``Shape``;
* masks and several ``points``: the keyframe repeated;
* the occluded flag, z order and attributes of a run are its keyframe's (mutable attributes the
  keyframe does not set carried over from earlier keyframes), the track's immutable attributes
  appended.

Rows are in track order, each track's in frame order: what ``ShapeTable.from_shapes`` gives for
the concatenated ``expand_track`` lists (tests compare them column by column). Skeleton tracks with
keypoint tracks keep their keypoints as :class:`Shape` objects in ``ShapeTable.elements``, so
they, and any track ``expand_track`` would refuse (keyframes out of order or of mixed types, an
interpolated number that is not finite), are expanded by ``expand_track`` itself: its rows, or
its error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import Attribute, ShapeType, Track, TrackShape
from cvat_ext.annotations.table import TYPE_CODE, ShapeTable
from cvat_ext.annotations.tracks import (
    _LINEAR_TYPES,
    _PolyMatch,
    _polyshape_points,
    carried_attributes,
    expand_track,
)
from cvat_ext.geometry.masks import concat_ranges

__all__ = ["track_table"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_POLY_TYPES = frozenset({ShapeType.POLYGON, ShapeType.POLYLINE})


@dataclass(frozen=True, slots=True)
class _Rows:
    """One track's ``n`` rows: ``frames (n,)``, flat CVAT ``points`` (``coords (C,)``,
    ``lengths (n,)``), ``rotation (n,)`` degrees, ``occluded (n,)``, ``z_order (n,)``, and the
    attributes of the rows that have any (row within the track -> values)."""

    frames: IntArray
    coords: FloatArray
    lengths: IntArray
    rotation: FloatArray
    occluded: BoolArray
    z_order: IntArray
    attributes: dict[int, tuple[Attribute, ...]]


def track_table(tracks: Sequence[Track], *, last_frame: int | None = None) -> ShapeTable:
    """The visible rows of ``tracks`` expanded up to ``last_frame`` (the job's stop frame,
    inclusive), in track order: ``ShapeTable.from_shapes`` of every ``expand_track`` list, without
    the shapes. Raises what ``expand_track`` raises on a track it refuses."""
    parts: list[ShapeTable] = []
    pending: list[tuple[Track, _Rows]] = []
    for track in tracks:
        rows = _track_rows(track, last_frame)
        if rows is None:  # the per-object expansion: its rows, or its error
            if pending:
                parts.append(_table(pending))
                pending = []
            parts.append(ShapeTable.from_shapes(expand_track(track, last_frame=last_frame)))
        else:
            pending.append((track, rows))
    if pending or not parts:
        parts.append(_table(pending))
    return ShapeTable.concat(parts)


# ----------------------------------------------------------------------------------------------
# one track


def _track_rows(track: Track, last_frame: int | None) -> _Rows | None:
    """The track's rows, or None when ``expand_track`` must expand it (see the module docstring)."""
    keyframes = track.shapes
    if not keyframes:
        return _no_rows()
    shape_type = keyframes[0].type
    if (shape_type is ShapeType.SKELETON and track.elements) or any(kf.type is not shape_type for kf in keyframes):
        return None
    key_frame = np.fromiter((kf.frame for kf in keyframes), dtype=np.int64, count=len(keyframes))
    if np.any(np.diff(key_frame) <= 0):
        return None  # expand_track names the keyframes out of order
    end_frame = (last_frame if last_frame is not None else int(key_frame[-1])) + 1
    seg, step = _runs(keyframes, key_frame, end_frame)
    frames = key_frame[seg] + step
    coords, lengths, rotation = _geometry(keyframes, key_frame, seg, step)
    if not (np.isfinite(coords).all() and np.isfinite(rotation).all()):
        return None  # expand_track's Shape refuses it, naming the track and the frame
    keep = frames >= track.frame  # CVAT drops the frames before the track's
    if not keep.all():
        first = int(np.argmax(keep)) if keep.any() else keep.size  # frames ascend: a prefix goes
        cut = int(_row_starts(lengths)[first])
        frames, coords, lengths, rotation = frames[first:], coords[cut:], lengths[first:], rotation[first:]
        seg = seg[first:]
    occluded = np.fromiter((kf.occluded for kf in keyframes), dtype=np.bool_, count=len(keyframes))[seg]
    z_order = np.fromiter((kf.z_order for kf in keyframes), dtype=np.int64, count=len(keyframes))[seg]
    return _Rows(frames, coords, lengths, rotation, occluded, z_order, _row_attributes(track, seg))


def _runs(keyframes: Sequence[TrackShape], key_frame: IntArray, end_frame: int) -> tuple[IntArray, IntArray]:
    """``(seg (n,), step (n,))``: each row's keyframe and frames since it. Keyframe ``i``'s run
    is ``[key_frame[i], key_frame[i + 1])``; the track ends at the first later keyframe on or
    beyond ``end_frame`` (the run before it stops at the end, interpolating towards it); an
    ``outside`` keyframe's run is empty; a run holds its keyframe at least (the first one may lie
    beyond the end)."""
    beyond = np.flatnonzero(key_frame[1:] >= end_frame)
    used = int(beyond[0]) + 1 if beyond.size else key_frame.size
    stop = np.append(key_frame[1:used], end_frame)
    outside = np.fromiter((kf.outside for kf in keyframes[:used]), dtype=np.bool_, count=used)
    run = np.where(outside, 0, np.maximum(stop - key_frame[:used], 1))
    seg = np.repeat(np.arange(used), run)
    return seg, np.arange(seg.size) - np.repeat(np.cumsum(run) - run, run)


def _geometry(
    keyframes: Sequence[TrackShape], key_frame: IntArray, seg: IntArray, step: IntArray
) -> tuple[FloatArray, IntArray, FloatArray]:
    """``(coords (C,), lengths (n,), rotation (n,))`` of the rows: every row starts as its
    keyframe (copies); the rows between two keyframes are then interpolated where CVAT does."""
    shape_type, k_n = keyframes[0].type, len(keyframes)
    flats = [_flat(kf) for kf in keyframes]
    width = np.fromiter(map(len, flats), dtype=np.int64, count=k_n)
    key_start = _row_starts(width)
    flat = np.concatenate(flats)
    rotation_of = np.fromiter((kf.rotation for kf in keyframes), dtype=np.float64, count=k_n)
    lengths = width[seg]
    coords = flat[concat_ranges(key_start[seg], lengths)]
    rotation = rotation_of[seg]
    toward = np.flatnonzero((step > 0) & (seg + 1 < k_n))  # rows between seg and seg + 1
    if not toward.size:
        return coords, lengths, rotation
    s0 = seg[toward]
    t = step[toward] / (key_frame[s0 + 1] - key_frame[s0])
    lerp = _linear_pairs(shape_type, width, flat, key_start)[s0]
    if lerp.any():
        rows, pair, tt = toward[lerp], s0[lerp], t[lerp]
        coords[concat_ranges(_row_starts(lengths)[rows], lengths[rows])] = _lerp(flat, key_start, width, pair, tt)
        if shape_type not in _POLY_TYPES:  # polygons keep their keyframe's rotation
            d = np.remainder(rotation_of[pair + 1] - rotation_of[pair] + 180.0, 360.0) - 180.0
            d[d == -180.0] = 1.0  # CVAT's tie-break for an exact half turn
            rotation[rows] = (rotation_of[pair] + d * tt + 360.0) % 360.0
    if shape_type in _POLY_TYPES and not lerp.all():
        # vertices matched by arc length: CVAT's reduction, frame by frame, rows of their own length
        closed = shape_type is ShapeType.POLYGON
        matched = _matched_polys(keyframes, toward[~lerp], s0[~lerp], t[~lerp], closed=closed)
        coords, lengths = _with_rows(coords, lengths, matched)
    return coords, lengths, rotation


def _no_rows() -> _Rows:
    empty = np.zeros(0, dtype=np.int64)
    return _Rows(empty, np.zeros(0), empty, np.zeros(0), np.zeros(0, dtype=np.bool_), empty, {})


def _flat(kf: TrackShape) -> FloatArray:
    """A keyframe's CVAT ``points`` (masks: RLE counts, then the inclusive box), as
    ``ShapeTable.from_shapes`` flattens a shape's."""
    if kf.mask is not None:
        return np.concatenate([kf.mask.counts.astype(np.float64), np.asarray(kf.mask.ltrb, dtype=np.float64)])
    return np.asarray(kf.points, dtype=np.float64).ravel()


def _row_starts(lengths: IntArray) -> IntArray:
    return np.concatenate(([0], np.cumsum(lengths)))


def _linear_pairs(shape_type: ShapeType, width: IntArray, flat: FloatArray, key_start: IntArray) -> BoolArray:
    """``(K,)`` whether the frames after keyframe ``i`` (up to ``i + 1``) are ``p0 + (p1 - p0) * t``
    of the two keyframes' flat points (the last entry is unused)."""
    k_n = width.size
    if shape_type in _LINEAR_TYPES:
        return np.ones(k_n, dtype=np.bool_)
    pairs = np.zeros(k_n, dtype=np.bool_)
    if shape_type is ShapeType.POINTS:  # one point on both keyframes
        pairs[:-1] = (width[:-1] == 2) & (width[1:] == 2)
    elif shape_type in _POLY_TYPES:
        pairs[:-1] = _vertexwise(width, flat, key_start, closed=shape_type is ShapeType.POLYGON)
    return pairs


def _vertexwise(width: IntArray, flat: FloatArray, key_start: IntArray, *, closed: bool) -> BoolArray:
    """``(K-1,)`` whether ``tracks._PolyMatch`` pairs every vertex ``i`` of keyframe ``j`` with
    vertex ``i`` of keyframe ``j + 1`` (then CVAT's reduction keeps every interpolated vertex):
    the nearest arc-length position of each vertex of one is the same vertex of the other, computed
    for all pairs of equal vertex count at once with ``_PolyMatch``'s arithmetic."""
    out = np.zeros(width.size - 1, dtype=np.bool_)
    same = np.flatnonzero(width[:-1] == width[1:])
    for w in np.unique(width[same]).tolist():
        pairs = same[width[same] == w]
        ends = np.unique(np.concatenate([pairs, pairs + 1]))
        points = flat[key_start[ends][:, None] + np.arange(w)].reshape(ends.size, w // 2, 2)
        if closed:
            points = np.concatenate([points, points[:, :1]], axis=1)
        position = _arc_positions(points)
        left, right = position[np.searchsorted(ends, pairs)], position[np.searchsorted(ends, pairs + 1)]
        nearest = np.abs(left[:, :, None] - right[:, None, :]).argmin(axis=2)
        out[pairs] = (nearest == np.arange(nearest.shape[1])).all(axis=1)
    return out


def _arc_positions(points: FloatArray) -> FloatArray:
    """``(S, V)`` each vertex's relative arc-length position along each of ``points (S, V, 2)``,
    as ``tracks._arc_positions`` computes it for one curve (a curve of no length: zeros)."""
    d = np.diff(points, axis=1)
    steps = np.sqrt(d[:, :, 0] ** 2 + d[:, :, 1] ** 2)
    cumulative = np.concatenate([np.zeros((points.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)
    total = cumulative[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, cumulative / np.where(total > 0, total, 1.0), 0.0)


def _lerp(flat: FloatArray, key_start: IntArray, width: IntArray, pair: IntArray, t: FloatArray) -> FloatArray:
    """The flat points of ``p0 + (p1 - p0) * t`` for rows between keyframes ``pair`` and
    ``pair + 1`` (equal widths), one row after the other."""
    w = width[pair]
    p0 = flat[concat_ranges(key_start[pair], w)]
    p1 = flat[concat_ranges(key_start[pair + 1], w)]
    return p0 + (p1 - p0) * np.repeat(t, w)


def _matched_polys(keyframes: Sequence[TrackShape], rows: IntArray, pair: IntArray, t: FloatArray, *,
                   closed: bool) -> dict[int, FloatArray]:  # fmt: skip
    """The flat points of ``rows`` between polygon keyframes whose vertices CVAT matches by arc
    length (``tracks._polyshape_points``, one keyframe pair's match computed once)."""
    shape_type = ShapeType.POLYGON if closed else ShapeType.POLYLINE
    out: dict[int, FloatArray] = {}
    matches: dict[int, _PolyMatch] = {}
    for row, i, tf in zip(rows.tolist(), pair.tolist(), t.tolist(), strict=True):
        match = matches.get(i)
        if match is None:
            match = matches[i] = _PolyMatch(keyframes[i].points, keyframes[i + 1].points, closed=closed)
        out[row] = _polyshape_points(match, tf, shape_type).ravel()
    return out


def _with_rows(coords: FloatArray, lengths: IntArray, replaced: dict[int, FloatArray]) -> tuple[FloatArray, IntArray]:
    """``coords``/``lengths`` with the rows of ``replaced`` (row -> flat points) swapped in."""
    rows = np.fromiter(replaced, dtype=np.int64, count=len(replaced))
    new_lengths = lengths.copy()
    new_lengths[rows] = np.fromiter(map(len, replaced.values()), dtype=np.int64, count=len(replaced))
    kept = np.ones(lengths.size, dtype=np.bool_)
    kept[rows] = False
    old_starts, new_starts = _row_starts(lengths), _row_starts(new_lengths)
    out = np.empty(int(new_starts[-1]))
    keep_rows = np.flatnonzero(kept)
    kept_lengths = lengths[keep_rows]
    out[concat_ranges(new_starts[keep_rows], kept_lengths)] = coords[concat_ranges(old_starts[keep_rows], kept_lengths)]
    out[concat_ranges(new_starts[rows], new_lengths[rows])] = np.concatenate(list(replaced.values()))
    return out, new_lengths


def _row_attributes(track: Track, seg: IntArray) -> dict[int, tuple[Attribute, ...]]:
    """Row -> attribute values, for the rows that have any: their keyframe's (with values carried
    over from earlier keyframes), then the track's immutable ones."""
    state: list[tuple[Attribute, ...]] = []
    carried: tuple[Attribute, ...] = ()
    for kf in track.shapes:
        carried = carried_attributes(kf.attributes, carried)
        state.append(carried)
    full = [s + track.attributes for s in state]
    has = np.fromiter(map(bool, full), dtype=np.bool_, count=len(full))
    if not has.any():
        return {}
    rows = np.flatnonzero(has[seg])
    return dict(zip(rows.tolist(), map(full.__getitem__, seg[rows].tolist()), strict=True))


# ----------------------------------------------------------------------------------------------
# tracks -> one table


def _table(tracks: list[tuple[Track, _Rows]]) -> ShapeTable:
    """Every track's rows, in order, with the track's own fields."""
    per_track = np.fromiter((r.frames.size for _, r in tracks), dtype=np.int64, count=len(tracks))
    n = int(per_track.sum())
    sources = tuple(dict.fromkeys(t.source for t, r in tracks if r.frames.size))
    source_of = {name: i for i, name in enumerate(sources)}

    def by_track(values: list[int]) -> IntArray:
        return np.repeat(np.asarray(values, dtype=np.int64), per_track)

    def joined(name: str, empty: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
        return np.concatenate([empty, *(getattr(r, name) for _, r in tracks)])

    attributes: dict[int, tuple[Attribute, ...]] = {}
    for (_, r), base in zip(tracks, (np.cumsum(per_track) - per_track).tolist(), strict=True):
        attributes.update((base + row, values) for row, values in r.attributes.items())
    lengths = joined("lengths", np.zeros(0, np.int64))
    return ShapeTable(
        frame=joined("frames", np.zeros(0, np.int64)).astype(np.int64, copy=False),
        label_id=by_track([t.label_id for t, _ in tracks]),
        type_code=by_track([TYPE_CODE[t.shapes[0].type] if t.shapes else 0 for t, _ in tracks]),
        occluded=joined("occluded", np.zeros(0, np.bool_)).astype(np.bool_, copy=False),
        outside=np.zeros(n, dtype=np.bool_),
        z_order=joined("z_order", np.zeros(0, np.int64)).astype(np.int64, copy=False),
        group=by_track([t.group for t, _ in tracks]),
        rotation=joined("rotation", np.zeros(0)).astype(np.float64, copy=False),
        score=np.ones(n),
        obj_id=np.zeros(n, dtype=np.int64),
        has_id=np.zeros(n, dtype=np.bool_),
        source_code=by_track([source_of.get(t.source, 0) for t, _ in tracks]),
        sources=sources,
        coords=joined("coords", np.zeros(0)).astype(np.float64, copy=False),
        coord_start=_row_starts(lengths.astype(np.int64, copy=False)).astype(np.int64, copy=False),
        attributes=attributes,
    )
