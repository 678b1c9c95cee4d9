"""Track expansion: CVAT tracks -> per-frame shapes, and the per-frame view of a job.

CVAT stores a track as keyframes; every other frame is derived. This module derives them the way
CVAT's server does when it exports a job (``TrackManager`` in ``cvat/apps/dataset_manager``):

* Between two keyframes ``k0 < k1`` where ``k0`` is not ``outside``, frame ``f`` gets
  ``t = (f - k0) / (k1 - k0)`` and
  - rectangle, ellipse, cuboid, skeleton, and ``points`` with exactly one point on both keyframes:
    ``points = p0 + (p1 - p0) * t``;
  - rotation (all of the above): ``(r0 + d * t + 360) % 360`` with ``d = ((r1 - r0 + 180) % 360) - 180``,
    the shorter way round (350 -> 10 goes through 0). CVAT turns an exact half turn (``d == -180``)
    into ``d = 1``; we reproduce that so our frames match CVAT's exports;
  - ``points`` with several points: ``k0`` is copied (CVAT does not interpolate point sets);
  - polygon / polyline: CVAT's arc-length matching (see :func:`_polyshape_points`), which copes with
    different vertex counts;
  - mask: ``k0`` is copied (CVAT cannot interpolate masks; its UI also repeats the mask).
* An ``outside`` keyframe ends a segment: no shape on it nor after it until the next keyframe that
  is not outside. (CVAT's exporter emits the outside keyframe itself with ``outside=True`` and the
  formats drop it; we drop it here.) The frames before an outside keyframe still interpolate
  towards its position.
* The last keyframe, if not outside, repeats up to ``last_frame`` (the job's ``stop_frame``) inclusive.
  Without ``last_frame`` a track ends at its last keyframe.
* Frames before the track's ``frame`` are dropped, as CVAT does.
* Mutable attributes: a keyframe's own values, plus values of earlier keyframes for attributes it
  does not set (CVAT's propagation). Immutable attributes (the track's) are appended.
* Skeleton tracks: the skeleton is placed on the frames its own keyframes give; every keypoint
  sub-track is expanded on those frames with outside keypoints kept (``outside=True``); a skeleton
  whose keypoints are all outside is dropped, as CVAT does.

Expanded shapes have ``id=None``, ``label_id``/``group``/``source`` of their track, ``score`` 1.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from cvat_ext.annotations.model import (
    MIN_VERTICES,
    Attribute,
    FloatArray,
    FrameAnnotations,
    JobAnnotations,
    MaskRle,
    Shape,
    ShapeType,
    Tag,
    Track,
    TrackShape,
)
from cvat_ext.errors import AnnotationFormatError

__all__ = ["expand_track", "iter_frames"]

_LINEAR_TYPES = frozenset({ShapeType.RECTANGLE, ShapeType.ELLIPSE, ShapeType.CUBOID, ShapeType.SKELETON})


@dataclass(frozen=True, slots=True)
class _State:
    """One derived frame of a track (a keyframe or an interpolated/propagated copy of one)."""

    frame: int
    keyframe: bool
    outside: bool
    occluded: bool
    z_order: int
    points: FloatArray
    mask: MaskRle | None
    rotation: float
    attributes: tuple[Attribute, ...]


def expand_track(track: Track, *, last_frame: int | None = None) -> list[Shape]:
    """The visible per-frame shapes of ``track``, sorted by frame (see the module docstring).

    ``last_frame`` is the job's ``stop_frame`` (inclusive): the last keyframe repeats up to it.
    """
    return list(_iter_track_shapes(track, last_frame))


def iter_frames(
    ann: JobAnnotations, *, frames: Iterable[int] | None = None, last_frame: int | None = None
) -> Iterator[FrameAnnotations]:
    """Per-frame annotations of a job, sorted by frame, tracks expanded, computed lazily.

    ``frames=None`` yields every frame that carries a shape, tag or expanded track shape;
    otherwise exactly the given frames (sorted, duplicates removed), empty ones included.
    Within a frame: the job's shapes in their order, then track shapes in track order
    (``track_ids`` gives each shape's track id, ``None`` for plain shapes); tags in their order.
    """
    tags_by_frame: dict[int, list[Tag]] = {}
    for tag in ann.tags:
        tags_by_frame.setdefault(tag.frame, []).append(tag)

    def build(frame: int, shapes: tuple[Shape, ...] = (), track_ids: tuple[int | None, ...] = ()) -> FrameAnnotations:
        return FrameAnnotations(frame, shapes, tuple(tags_by_frame.get(frame, ())), track_ids)

    groups = _shape_groups(ann, last_frame)
    if frames is None:
        extra_frames = sorted(tags_by_frame)  # frames with tags only
    else:
        extra_frames = sorted(set(frames))  # every wanted frame, empty or not
        wanted = set(extra_frames)
        last_wanted = extra_frames[-1] if extra_frames else -1
        # stop expanding tracks past the last wanted frame (a track may run to a far stop frame)
        groups = (g for g in itertools.takewhile(lambda g: g[0] <= last_wanted, groups) if g[0] in wanted)

    # walk the shape frames and the extra frames together, in frame order
    extra = iter(extra_frames)
    next_extra = next(extra, None)
    for frame, shapes, track_ids in groups:
        while next_extra is not None and next_extra < frame:
            yield build(next_extra)
            next_extra = next(extra, None)
        if next_extra == frame:
            next_extra = next(extra, None)
        yield build(frame, shapes, track_ids)
    while next_extra is not None:
        yield build(next_extra)
        next_extra = next(extra, None)


def _shape_groups(
    ann: JobAnnotations, last_frame: int | None
) -> Iterator[tuple[int, tuple[Shape, ...], tuple[int | None, ...]]]:
    """``(frame, shapes, track_ids)`` per frame with shapes, in frame order: the job's shapes in
    their order, then the expanded track shapes in track order."""
    shape_stream = ((s.frame, 0, i, s, None) for i, s in enumerate(sorted(ann.shapes, key=_frame_of)))
    track_streams = [_track_stream(track, 1 + t_idx, last_frame) for t_idx, track in enumerate(ann.tracks)]
    # (frame, rank, index) is unique, so the merge never compares shapes
    items = heapq.merge(shape_stream, *track_streams, key=lambda item: (item[0], item[1], item[2]))
    for frame, group in itertools.groupby(items, key=lambda item: item[0]):
        rows = list(group)
        yield frame, tuple(r[3] for r in rows), tuple(r[4] for r in rows)


def _track_stream(track: Track, rank: int, last_frame: int | None) -> Iterator[tuple[int, int, int, Shape, int | None]]:
    for i, shape in enumerate(_iter_track_shapes(track, last_frame)):
        yield shape.frame, rank, i, shape, track.id


def _frame_of(shape: Shape) -> int:
    return shape.frame


# ----------------------------------------------------------------------------------------------
# one track


def _iter_track_shapes(track: Track, last_frame: int | None) -> Iterator[Shape]:
    if not track.shapes:
        return
    end_frame = (last_frame if last_frame is not None else track.shapes[-1].frame) + 1
    shape_type = track.shapes[0].type
    visible = (st for st in _iter_states(track, end_frame, include_outside=False) if not st.outside)
    if shape_type is not ShapeType.SKELETON or not track.elements:
        for st in visible:
            yield _to_shape(track, shape_type, st)
        return
    # skeleton: keypoint sub-tracks are expanded on the skeleton's frames only
    states = list(visible)
    frames = {st.frame for st in states}
    elements_by_frame: dict[int, list[Shape]] = {f: [] for f in frames}
    for element in track.elements:
        if not element.shapes:
            continue
        element_type = element.shapes[0].type
        for st in _iter_states(element, end_frame, include_outside=True):
            if st.frame in frames:
                elements_by_frame[st.frame].append(_to_shape(element, element_type, st))
    for st in states:
        elements = elements_by_frame[st.frame]
        if elements and all(e.outside for e in elements):
            continue
        yield _to_shape(track, shape_type, st, tuple(elements))


def _to_shape(track: Track, shape_type: ShapeType, st: _State, elements: tuple[Shape, ...] = ()) -> Shape:
    try:
        return Shape(
            type=shape_type,
            frame=st.frame,
            label_id=track.label_id,
            points=st.points,
            mask=st.mask,
            rotation=st.rotation,
            id=None,
            occluded=st.occluded,
            outside=st.outside,
            z_order=st.z_order,
            group=track.group,
            source=track.source,
            attributes=st.attributes + track.attributes,
            elements=elements,
        )
    except AnnotationFormatError as exc:
        raise AnnotationFormatError(f"track {track.id} frame {st.frame}: {exc}") from None


def _iter_states(track: Track, end_frame: int, *, include_outside: bool) -> Iterator[_State]:
    """Keyframes and derived frames of ``track`` in ``[track.frame, end_frame)``, frame order.

    Outside states are kept only when they are keyframes or ``include_outside`` is set.
    """
    prev: _State | None = None
    for kf in track.shapes:
        if prev is not None and kf.frame <= prev.frame:
            raise AnnotationFormatError(f"track {track.id}: keyframes on frames {prev.frame} and {kf.frame}")
        current = _keyframe_state(kf, prev)
        if prev is not None:
            if end_frame <= kf.frame:
                # the segment crosses the end: interpolate towards kf, keep what lies before the end
                if not prev.outside or include_outside:
                    yield from _keep(_interpolate(prev, current, kf.type, end_frame), track, include_outside)
                return
            if not prev.outside or include_outside:
                yield from _keep(_interpolate(prev, current, kf.type, end_frame), track, include_outside)
        yield from _keep((current,), track, include_outside)
        prev = current
    if prev is not None and (not prev.outside or include_outside):
        yield from _keep((_copy_state(prev, f) for f in range(prev.frame + 1, end_frame)), track, include_outside)


def _keep(states: Iterable[_State], track: Track, include_outside: bool) -> Iterator[_State]:
    for st in states:
        if st.frame < track.frame:
            continue
        if st.keyframe or include_outside or not st.outside:
            yield st


def carried_attributes(own: tuple[Attribute, ...], previous: tuple[Attribute, ...]) -> tuple[Attribute, ...]:
    """A keyframe's attribute values: its ``own``, then the ``previous`` keyframe's values of the
    attributes it does not set (CVAT propagates mutable attributes along a track)."""
    if not previous:
        return own
    spec_ids = {a.spec_id for a in own}
    return own + tuple(a for a in previous if a.spec_id not in spec_ids)


def _keyframe_state(kf: TrackShape, prev: _State | None) -> _State:
    attributes = kf.attributes if prev is None else carried_attributes(kf.attributes, prev.attributes)
    return _State(
        frame=kf.frame,
        keyframe=True,
        outside=kf.outside,
        occluded=kf.occluded,
        z_order=kf.z_order,
        points=kf.points,
        mask=kf.mask,
        rotation=kf.rotation,
        attributes=attributes,
    )


def _copy_state(src: _State, frame: int, points: FloatArray | None = None, rotation: float | None = None) -> _State:
    """A derived (non-key) frame: ``src`` moved to ``frame``, with new geometry where given."""
    return replace(
        src,
        frame=frame,
        keyframe=False,
        points=src.points if points is None else points,
        rotation=src.rotation if rotation is None else rotation,
    )


# ----------------------------------------------------------------------------------------------
# interpolation between two keyframes


def _interpolate(s0: _State, s1: _State, shape_type: ShapeType, end_frame: int) -> Iterator[_State]:
    """States strictly between ``s0`` and ``s1`` (and before ``end_frame``)."""
    stop = min(s1.frame, end_frame)
    if stop <= s0.frame + 1:
        return iter(())
    frames = np.arange(s0.frame + 1, stop)
    t = (frames - s0.frame) / (s1.frame - s0.frame)
    single_points = shape_type is ShapeType.POINTS and s0.points.shape == (1, 2) and s1.points.shape == (1, 2)
    if shape_type in _LINEAR_TYPES or single_points:
        return _linear(s0, s1, frames, t)
    if shape_type in (ShapeType.POLYGON, ShapeType.POLYLINE):
        closed = shape_type is ShapeType.POLYGON
        match = _PolyMatch(s0.points, s1.points, closed=closed)
        return (_copy_state(s0, int(f), _polyshape_points(match, float(tf), shape_type)) for f, tf in zip(frames, t))
    # several points, or masks: CVAT repeats the earlier keyframe
    return (_copy_state(s0, int(f)) for f in frames)


def _linear(s0: _State, s1: _State, frames: np.ndarray, t: np.ndarray) -> Iterator[_State]:
    shape = (t.size,) + (1,) * s0.points.ndim
    points = s0.points + (s1.points - s0.points) * t.reshape(shape)
    d = ((s1.rotation - s0.rotation + 180.0) % 360.0) - 180.0
    if d == -180.0:
        d = 1.0  # CVAT's tie-break for an exact half turn (see the module docstring)
    rotations = (s0.rotation + d * t + 360.0) % 360.0
    return (_copy_state(s0, int(f), points[i], float(rotations[i])) for i, f in enumerate(frames))


class _PolyMatch:
    """CVAT's vertex correspondence between two polylines (polygons are closed by repeating the
    first vertex), computed once per keyframe pair.

    Each vertex gets its relative arc-length position in [0, 1]. Every left vertex is paired with
    the right vertex nearest in position; right vertices left unpaired are paired with their nearest
    left vertex. Each pair becomes one interpolated vertex (so a left vertex may spawn several).
    """

    def __init__(self, left: FloatArray, right: FloatArray, *, closed: bool) -> None:
        if closed:
            left = np.vstack([left, left[:1]])
            right = np.vstack([right, right[:1]])
        self.left = left
        self.right = right
        pos_left, pos_right = _arc_positions(left), _arc_positions(right)
        # nearest right vertex per left vertex (first one on ties)
        nearest_right = np.abs(pos_left[:, None] - pos_right[None, :]).argmin(axis=1)
        pairs: list[list[int]] = [[int(j)] for j in nearest_right]
        unmatched = np.setdiff1d(np.arange(right.shape[0]), nearest_right)
        if unmatched.size:
            nearest_left = np.abs(pos_right[unmatched][:, None] - pos_left[None, :]).argmin(axis=1)
            for j, i in zip(unmatched, nearest_left):
                pairs[int(i)].append(int(j))
        self.pairs = [sorted(p) for p in pairs]
        self.left_idx = np.repeat(np.arange(left.shape[0]), [len(p) for p in self.pairs])
        self.right_idx = np.fromiter(itertools.chain.from_iterable(self.pairs), dtype=np.int64)
        # first interpolated index of each left vertex
        self.first = np.concatenate(([0], np.cumsum([len(p) for p in self.pairs])[:-1]))


def _arc_positions(points: FloatArray) -> FloatArray:
    cumulative = np.concatenate(([0.0], np.cumsum(_steps(points))))
    total = cumulative[-1]
    # a degenerate curve (all vertices equal) has no arc length: CVAT divides by zero there
    return cumulative / total if total > 0 else np.zeros_like(cumulative)


def _steps(points: FloatArray) -> FloatArray:
    """(K-1,) lengths of the edges of a (K, 2) curve.

    Distances here are ``sqrt(dx**2 + dy**2)`` and sums run left to right, the arithmetic CVAT
    uses, so that exact ties in its comparisons (common with integer pixels) break the same way.
    """
    d = np.diff(points, axis=0)
    return np.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2)


def _dist(a: FloatArray, b: FloatArray) -> float:
    return math.sqrt((float(a[0]) - float(b[0])) ** 2 + (float(a[1]) - float(b[1])) ** 2)


def _curve_length(points: FloatArray) -> float:
    steps = _steps(points)
    return float(np.cumsum(steps)[-1]) if steps.size else 0.0


def _polyshape_points(match: _PolyMatch, t: float, shape_type: ShapeType) -> FloatArray:
    """Interpolated vertices at ``t`` for one frame, with CVAT's vertex reduction.

    Runs of left vertices that all map to the same single right vertex collapse (a "left
    segment"), and the vertices spawned by one left vertex paired with several right vertices
    (a "right segment") are thinned: a vertex is kept when it is at least ``length / (2 N)`` away
    from the last kept one (length and N of the matching stretch of the source curve), the
    segment ends are kept, and a two-vertex segment shorter than the threshold becomes its
    midpoint.
    """
    left, right = match.left, match.right
    interpolated = left[match.left_idx] + (right[match.right_idx] - left[match.left_idx]) * t
    pairs, first = match.pairs, match.first
    out: list[FloatArray] = []

    def minimize(base_length: float, n: int, start: int, stop: int) -> None:
        threshold = base_length / (2 * n)
        kept = [interpolated[start]]
        last = start
        for k in range(start + 1, stop):
            if _dist(interpolated[last], interpolated[k]) >= threshold:
                kept.append(interpolated[k])
                last = k
        kept.append(interpolated[stop])
        if len(kept) == 2 and _dist(interpolated[start], interpolated[stop]) < threshold:
            kept = [(interpolated[start] + interpolated[stop]) / 2]
        out.extend(kept)

    def left_segment(start: int, stop: int) -> None:
        a, b = int(first[start]), int(first[stop])
        if a == b:
            out.append(interpolated[a])
            return
        minimize(_curve_length(left[start : stop + 1]), stop - start + 1, a, b)

    def right_segment(i: int) -> None:
        j0, j1 = pairs[i][0], pairs[i][-1]
        a = int(first[i])
        minimize(_curve_length(right[j0 : j1 + 1]), j1 - j0 + 1, a, a + len(pairs[i]) - 1)

    opened: int | None = None
    for i, p in enumerate(pairs):
        if len(p) == 1:
            if opened is None:
                opened = i
            elif p[0] != pairs[opened][0]:
                left_segment(opened, i - 1)
                opened = i
        else:
            if opened is not None:
                left_segment(opened, i - 1)
                opened = None
            right_segment(i)
    if opened is not None:
        left_segment(opened, len(pairs) - 1)

    points = np.array(out, dtype=np.float64).reshape(-1, 2)
    if shape_type is ShapeType.POLYGON:
        points = points[:-1]  # drop the closing vertex
        if points.shape[0] < MIN_VERTICES[ShapeType.POLYGON]:
            # CVAT would emit an invalid polygon here; keep every interpolated vertex instead
            points = interpolated[:-1]
    elif points.shape[0] < MIN_VERTICES[ShapeType.POLYLINE]:
        points = interpolated
    return points
