"""Tracks family: ``tracks`` (visible length, hidden gaps, implausible jumps between keyframes).

Works on the job's tracks directly (keyframes), not on expanded frames: between two keyframes CVAT
interpolates linearly, so the speed between consecutive visible keyframes is exactly the largest
per-frame displacement of the interpolated object.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from cvat_ext.annotations.model import FloatArray, JobAnnotations, ShapeType, Track, TrackShape
from cvat_ext.qa.findings import Finding
from cvat_ext.rules.kinds.base import Checker, FrameSize, fmt
from cvat_ext.rules.schema import TracksRule


def keyframe_xyxy(kf: TrackShape) -> FloatArray | None:
    """(4,) extent of a keyframe, or None when it has no geometry of its own (skeleton keyframes)."""
    if kf.type is ShapeType.RECTANGLE:
        return kf.points
    if kf.type is ShapeType.MASK and kf.mask is not None:
        left, top, right, bottom = kf.mask.ltrb
        return np.array([left, top, right + 1, bottom + 1], dtype=np.float64)
    if kf.type is ShapeType.ELLIPSE:
        cx, cy, x_right, y_top = kf.points
        rx, ry = abs(x_right - cx), abs(cy - y_top)
        return np.array([cx - rx, cy - ry, cx + rx, cy + ry])
    if kf.points.size == 0:
        return None
    return np.concatenate([kf.points.min(axis=0), kf.points.max(axis=0)])


def visible_intervals(track: Track, last_frame: int) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` frame ranges where the track is visible, merged, in order.

    A visible keyframe lasts until the next keyframe (exclusive) or, for the last one, ``last_frame``.
    """
    intervals: list[tuple[int, int]] = []
    shapes = track.shapes
    for i, kf in enumerate(shapes):
        if kf.outside:
            continue
        end = shapes[i + 1].frame - 1 if i + 1 < len(shapes) else max(last_frame, kf.frame)
        if intervals and intervals[-1][1] >= kf.frame - 1:
            intervals[-1] = (intervals[-1][0], max(intervals[-1][1], end))
        else:
            intervals.append((kf.frame, end))
    return intervals


class TracksChecker(Checker[TracksRule]):
    kind = "tracks"

    def check_tracks(self, ann: JobAnnotations, frame_size: FrameSize, last_frame: int) -> Iterator[Finding]:
        types = None if self.rule.scope.shape_types is None else set(self.rule.scope.shape_types)
        for track in ann.tracks:
            if not track.shapes or not self.label_in_scope(track.label_id):
                continue
            if types is not None and track.shapes[0].type.value not in types:
                continue
            yield from self._check(track, frame_size, last_frame)

    def _finding(self, track: Track, kf: TrackShape, frame_size: FrameSize, detail: str) -> Finding:
        label = self.ctx.label_names.get(track.label_id, f"#{track.label_id}")
        xyxy = keyframe_xyxy(kf)
        wh = frame_size(kf.frame)
        return self.make_finding(
            frame=kf.frame,
            message=f"{label} track {track.id}: {detail}",
            xyxy=xyxy if xyxy is not None else (0, 0, wh[0], wh[1]),
            frame_wh=wh,
            label=label,
            track_id=track.id,
        )

    def _check(self, track: Track, frame_size: FrameSize, last_frame: int) -> Iterator[Finding]:
        rule = self.rule
        intervals = visible_intervals(track, last_frame)
        first_kf = track.shapes[0]
        by_frame = {kf.frame: kf for kf in track.shapes}
        length = sum(end - start + 1 for start, end in intervals)
        if rule.min_length is not None and length < rule.min_length:
            detail = f"visible on {length} frame(s) < min_length {rule.min_length}"
            yield self._finding(track, first_kf, frame_size, detail)
        if rule.max_gap is not None:
            for (_, prev_end), (start, _) in itertools.pairwise(intervals):
                gap = start - prev_end - 1
                if gap > rule.max_gap:
                    detail = f"hidden for {gap} frames ({prev_end + 1}-{start - 1}) > max_gap {rule.max_gap}"
                    yield self._finding(track, by_frame[start], frame_size, detail)
        if rule.max_jump_px is not None or rule.max_jump_frac is not None:
            yield from self._jumps(track, frame_size)

    def _jumps(self, track: Track, frame_size: FrameSize) -> Iterator[Finding]:
        rule = self.rule
        pairs = [(a, b) for a, b in itertools.pairwise(track.shapes) if not a.outside and not b.outside]
        boxes = [(keyframe_xyxy(a), keyframe_xyxy(b)) for a, b in pairs]
        for (a, b), (box_a, box_b) in zip(pairs, boxes, strict=True):
            if box_a is None or box_b is None or b.frame <= a.frame:
                continue
            shift = np.hypot(*((box_b[:2] + box_b[2:]) / 2 - (box_a[:2] + box_a[2:]) / 2))
            speed = float(shift) / (b.frame - a.frame)
            width, height = frame_size(b.frame)
            diagonal = float(np.hypot(width, height))
            problems = []
            if rule.max_jump_px is not None and speed > rule.max_jump_px:
                problems.append(f"> max_jump_px {fmt(rule.max_jump_px)}")
            if rule.max_jump_frac is not None and diagonal > 0 and speed / diagonal > rule.max_jump_frac:
                problems.append(f"{fmt(speed / diagonal)} of the diagonal > max_jump_frac {fmt(rule.max_jump_frac)}")
            if problems:
                detail = (
                    f"centre moves {fmt(speed)} px/frame between frames {a.frame} and {b.frame} ({'; '.join(problems)})"
                )
                yield self._finding(track, b, frame_size, detail)
