"""Track expansion against hand-computed frames (plain arithmetic, no code shared with tracks.py)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from cvat_ext.annotations.cvat_json import parse_job_annotations, parse_track
from cvat_ext.annotations.model import Attribute, JobAnnotations, MaskRle, Shape, ShapeType, Tag, Track, TrackShape
from cvat_ext.annotations.tracks import expand_track, iter_frames
from tests.annotations.recordings import annotation_body


def kf(
    frame: int,
    points: Any,
    *,
    type_: str = "rectangle",
    rotation: float = 0.0,
    outside: bool = False,
    attributes: tuple[Attribute, ...] = (),
    mask: MaskRle | None = None,
) -> TrackShape:
    return TrackShape(
        type=ShapeType(type_),
        frame=frame,
        points=np.asarray(points, dtype=float),
        rotation=rotation,
        outside=outside,
        attributes=attributes,
        mask=mask,
    )


def frames_of(shapes: list[Shape]) -> list[int]:
    return [s.frame for s in shapes]


# ----------------------------------------------------------------------------------------------
# the recorded track


def test_recorded_track_42() -> None:
    ann = parse_job_annotations(annotation_body("40_job_annotations_get_replica.json"), where="job 136")
    (track,) = ann.tracks
    assert track.id == 42
    box12 = [39.89, 403.34, 129.97, 448.94]
    box15 = [289.19, 380.45, 381.37, 430.56]
    box18 = [436.39, 373.28, 533.6, 420.54]  # the outside keyframe: frames 16, 17 still move towards it

    shapes = expand_track(track, last_frame=19)  # the job's stop frame; 18 is outside, so 18, 19 stay empty
    assert frames_of(shapes) == [12, 13, 14, 15, 16, 17]
    by_frame = {s.frame: s for s in shapes}
    for frame, (a, b, k0, k1) in {
        13: (box12, box15, 12, 15),
        14: (box12, box15, 12, 15),
        16: (box15, box18, 15, 18),
        17: (box15, box18, 15, 18),
    }.items():
        t = (frame - k0) / (k1 - k0)
        expected = [a[i] + (b[i] - a[i]) * t for i in range(4)]
        np.testing.assert_allclose(by_frame[frame].points, expected, rtol=0, atol=1e-9)
    assert by_frame[12].points.tolist() == box12 and by_frame[15].points.tolist() == box15
    for s in shapes:
        assert (s.id, s.label_id, s.source, s.outside, s.type) == (None, 165, "manual", False, ShapeType.RECTANGLE)
    assert frames_of(expand_track(track)) == [12, 13, 14, 15, 16, 17]


def test_recorded_job_frames_merge_shapes_tracks_and_tags() -> None:
    body = annotation_body("40_job_annotations_get_replica.json")
    ann = parse_job_annotations(body, where="job 136")
    frames = list(iter_frames(ann, last_frame=19))
    assert [f.frame for f in frames] == sorted({s["frame"] for s in body["shapes"]} | {13, 18} | set(range(12, 18)))
    assert sum(len(f.shapes) for f in frames) == len(body["shapes"]) + 6
    for f in frames:
        assert len(f.track_ids) == len(f.shapes)
        assert f.track_ids.count(42) == (1 if 12 <= f.frame <= 17 else 0)
        plain = [s for s, t in zip(f.shapes, f.track_ids) if t is None]
        assert [s.id for s in plain] == [s["id"] for s in body["shapes"] if s["frame"] == f.frame]
        assert [t.id for t in f.tags] == [t["id"] for t in body["tags"] if t["frame"] == f.frame]


# ----------------------------------------------------------------------------------------------
# synthetic tracks


@pytest.mark.parametrize(
    ("r0", "r1", "expected"),
    [
        (350.0, 10.0, [355.0, 0.0, 5.0]),  # across 0, the short way
        (10.0, 350.0, [5.0, 0.0, 355.0]),
        (0.0, 90.0, [22.5, 45.0, 67.5]),
        (90.0, 0.0, [67.5, 45.0, 22.5]),
        (0.0, 270.0, [337.5, 315.0, 292.5]),  # 270 is -90 the short way
        (0.0, 180.0, [0.25, 0.5, 0.75]),  # CVAT's half-turn tie-break: +1 degree over the segment
    ],
)
def test_rotation_interpolates_the_short_way(r0: float, r1: float, expected: list[float]) -> None:
    track = Track(frame=0, label_id=1, shapes=(kf(0, [0, 0, 4, 4], rotation=r0), kf(4, [4, 0, 8, 4], rotation=r1)))
    shapes = expand_track(track)
    assert frames_of(shapes) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([s.rotation for s in shapes[1:4]], expected, atol=1e-9)
    assert shapes[2].points.tolist() == [2.0, 0.0, 6.0, 4.0]
    assert (shapes[0].rotation, shapes[4].rotation) == (r0, r1)


def test_outside_keyframes_split_segments() -> None:
    track = Track(
        frame=0,
        label_id=1,
        id=5,
        shapes=(
            kf(0, [0, 0, 3, 3]),
            kf(3, [30, 0, 33, 3], outside=True),
            kf(6, [60, 0, 63, 3]),
            kf(8, [80, 0, 83, 3]),
        ),
    )
    shapes = expand_track(track, last_frame=10)
    assert frames_of(shapes) == [0, 1, 2, 6, 7, 8, 9, 10]
    got = {s.frame: s.points[0] for s in shapes}
    assert got == {0: 0, 1: 10, 2: 20, 6: 60, 7: 70, 8: 80, 9: 80, 10: 80}
    assert not any(s.outside for s in shapes)


def test_track_ending_outside_and_end_before_keyframes() -> None:
    track = Track(
        frame=0, label_id=1, shapes=(kf(0, [0, 0, 1, 1]), kf(10, [10, 0, 11, 1]), kf(12, [0, 0, 1, 1], outside=True))
    )
    assert frames_of(expand_track(track, last_frame=20)) == list(range(12))
    # the job stops inside the first segment: interpolated up to its stop frame only
    cut = expand_track(track, last_frame=4)
    assert frames_of(cut) == [0, 1, 2, 3, 4]
    assert cut[-1].points[0] == 4.0


def test_frames_before_the_track_frame_are_dropped() -> None:
    track = Track(frame=2, label_id=1, shapes=(kf(0, [0, 0, 1, 1]), kf(4, [4, 0, 5, 1])))
    assert frames_of(expand_track(track)) == [2, 3, 4]


def test_attributes_mutable_from_latest_keyframe_and_immutable_from_track() -> None:
    color, pose, kind = 1, 2, 3
    track = Track(
        frame=0,
        label_id=1,
        attributes=(Attribute(kind, "car"),),
        shapes=(
            kf(0, [0, 0, 1, 1], attributes=(Attribute(color, "red"), Attribute(pose, "up"))),
            kf(2, [0, 0, 1, 1], attributes=(Attribute(color, "blue"),)),
            kf(4, [0, 0, 1, 1]),
        ),
    )
    got = {s.frame: s.attribute_map() for s in expand_track(track, last_frame=5)}
    assert got[0] == got[1] == {color: "red", pose: "up", kind: "car"}
    assert got[2] == got[3] == got[4] == got[5] == {color: "blue", pose: "up", kind: "car"}


def test_points_interpolate_only_single_points() -> None:
    single = Track(frame=0, label_id=1, shapes=(kf(0, [[0, 0]], type_="points"), kf(2, [[4, 8]], type_="points")))
    assert expand_track(single)[1].points.tolist() == [[2.0, 4.0]]
    several = Track(
        frame=0, label_id=1, shapes=(kf(0, [[0, 0], [1, 1]], type_="points"), kf(2, [[4, 8], [5, 9]], type_="points"))
    )
    assert expand_track(several)[1].points.tolist() == [[0.0, 0.0], [1.0, 1.0]]


def test_masks_repeat_the_earlier_keyframe() -> None:
    m0 = MaskRle(np.array([0, 4]), (0, 0, 1, 1))
    m1 = MaskRle(np.array([0, 9]), (5, 5, 7, 7))
    track = Track(frame=0, label_id=1, shapes=(kf(0, [], type_="mask", mask=m0), kf(3, [], type_="mask", mask=m1)))
    masks = [s.mask for s in expand_track(track, last_frame=4)]
    assert masks == [m0, m0, m0, m1, m1]


def test_cuboid_and_ellipse_interpolate_linearly() -> None:
    c0 = np.arange(16, dtype=float).reshape(8, 2)
    cuboid = Track(frame=0, label_id=1, shapes=(kf(0, c0, type_="cuboid"), kf(2, c0 + 10, type_="cuboid")))
    assert expand_track(cuboid)[1].points.tolist() == (c0 + 5).tolist()
    ellipse = Track(
        frame=0, label_id=1, shapes=(kf(0, [10, 10, 20, 5], type_="ellipse"), kf(4, [30, 10, 40, 5], type_="ellipse"))
    )
    assert expand_track(ellipse)[1].points.tolist() == [15.0, 10.0, 25.0, 5.0]


def test_polygon_with_equal_vertex_counts_interpolates_vertexwise() -> None:
    p0 = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    p1 = p0 * 2 + 4
    track = Track(frame=0, label_id=1, shapes=(kf(0, p0, type_="polygon"), kf(4, p1, type_="polygon")))
    for s in expand_track(track)[1:4]:
        t = s.frame / 4
        np.testing.assert_allclose(s.points, p0 + (p1 - p0) * t)


def _on_square_boundary(points: np.ndarray, x0: float, y0: float, side: float) -> bool:
    x, y = points[:, 0] - x0, points[:, 1] - y0
    inside = (x >= -1e-9) & (x <= side + 1e-9) & (y >= -1e-9) & (y <= side + 1e-9)
    on_edge = np.isclose(x, 0) | np.isclose(x, side) | np.isclose(y, 0) | np.isclose(y, side)
    return bool(np.all(inside & on_edge))


@pytest.mark.parametrize("type_", ["polygon", "polyline"])
def test_poly_with_different_vertex_counts_stays_on_the_moving_outline(type_: str) -> None:
    # the same square outline, 4 vertices on the left keyframe and 8 (edge midpoints added) on the right,
    # moved by (40, 20): every interpolated vertex lies on the outline moved by t * (40, 20)
    left = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    mids = (left + np.roll(left, -1, axis=0)) / 2
    right = np.stack([left, mids], axis=1).reshape(-1, 2) + np.array([40.0, 20.0])
    if type_ == "polyline":
        left, right = np.vstack([left, left[:1]]), np.vstack([right, right[:1]])
    track = Track(frame=0, label_id=1, shapes=(kf(0, left, type_=type_), kf(5, right, type_=type_)))
    shapes = expand_track(track)
    assert frames_of(shapes) == [0, 1, 2, 3, 4, 5]
    for s in shapes[1:5]:
        t = s.frame / 5
        assert s.points.shape[0] >= 4
        assert _on_square_boundary(s.points, 40 * t, 20 * t, 10.0)
    # near the right keyframe (t = 0.8) each left corner spawns two vertices, one per right vertex
    # matched to it by arc position: corner + (right vertex - corner) * 0.8
    expected = [[32, 16], [36, 16], [42, 16], [42, 20], [42, 26], [38, 26], [32, 26], [32, 22]]
    if type_ == "polyline":
        expected.append([32, 16])
    np.testing.assert_allclose(shapes[4].points, expected)
    # near the left keyframe (t = 0.2) the two vertices of a corner are closer than
    # (edge length 5) / (2 * 2 vertices) and merge into their midpoint
    np.testing.assert_allclose(shapes[1].points[:2], [[8.5, 4], [18, 4.5]])


def test_polygon_collapsing_vertices_reduce() -> None:
    # right keyframe: three vertices on nearly one spot of the outline collapse into fewer vertices
    left = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    right = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 9.99], [0, 9.98]], dtype=float)
    track = Track(frame=0, label_id=1, shapes=(kf(0, right, type_="polygon"), kf(4, left, type_="polygon")))
    shapes = expand_track(track)
    # the three vertices at the top-left all match the one corner (0, 10); they are 0.01 * (1 - t) apart
    # and CVAT keeps a vertex only >= 0.02 / (2 * 3) from the last kept one, so they merge once t > 2/3
    assert [s.points.shape[0] for s in shapes] == [6, 6, 6, 5, 4]
    np.testing.assert_allclose(shapes[3].points[3:], [[0, 10], [0, 9.995]])
    assert all(_on_square_boundary(s.points, 0, 0, 10.0) for s in shapes)


def _skeleton_track(element_170_outside: bool = True) -> Track:
    def keyframe(frame: int, x: float, *, outside: bool = False, type_: str = "points") -> dict[str, Any]:
        return {"type": type_, "frame": frame, "outside": outside, "points": [] if type_ == "skeleton" else [x, 2 * x]}

    def sub(label_id: int, *shapes: dict[str, Any]) -> dict[str, Any]:
        return {"label_id": label_id, "frame": 0, "shapes": list(shapes), "attributes": [{"spec_id": 9, "value": "v"}]}

    return parse_track(
        {
            "id": 7,
            "label_id": 168,
            "frame": 0,
            "source": "auto",
            "shapes": [keyframe(0, 0, type_="skeleton"), keyframe(4, 0, type_="skeleton")],
            "elements": [
                sub(169, keyframe(0, 10), keyframe(4, 50)),
                sub(170, keyframe(0, 20, outside=element_170_outside), keyframe(2, 30, outside=True)),
            ],
        }
    )


def test_skeleton_track_expands_each_keypoint() -> None:
    shapes = expand_track(_skeleton_track(element_170_outside=False), last_frame=6)
    assert frames_of(shapes) == [0, 1, 2, 3, 4, 5, 6]
    for s in shapes:
        assert s.type is ShapeType.SKELETON and s.label_id == 168 and s.source == "auto"
        head, hand = s.elements
        assert (head.label_id, hand.label_id) == (169, 170)
        x = 10 + 10 * min(s.frame, 4)
        assert head.points.tolist() == [[x, 2 * x]] and not head.outside
        assert hand.outside == (s.frame >= 2)  # outside keypoints stay, marked outside
        assert head.attribute_map() == {9: "v"}
    assert shapes[1].elements[1].points.tolist() == [[25.0, 50.0]]


def test_skeleton_with_every_keypoint_outside_is_dropped() -> None:
    track = _skeleton_track()
    hidden = Track(frame=0, label_id=169, shapes=(kf(0, [[0, 0]], type_="points", outside=True),))
    only_hidden = Track(frame=track.frame, label_id=track.label_id, shapes=track.shapes, elements=(hidden,))
    assert expand_track(only_hidden, last_frame=3) == []
    assert frames_of(expand_track(track, last_frame=3)) == [0, 1, 2, 3]


# ----------------------------------------------------------------------------------------------
# iter_frames


def _job() -> JobAnnotations:
    shapes = (
        Shape(type=ShapeType.RECTANGLE, frame=5, label_id=1, points=[0, 0, 1, 1], id=11),
        Shape(type=ShapeType.RECTANGLE, frame=1, label_id=1, points=[0, 0, 1, 1], id=10),
        Shape(type=ShapeType.RECTANGLE, frame=5, label_id=2, points=[0, 0, 1, 1], id=12),
    )
    tracks = (
        Track(frame=2, label_id=3, id=100, shapes=(kf(2, [0, 0, 1, 1]), kf(4, [0, 0, 1, 1], outside=True))),
        Track(frame=1, label_id=4, id=101, shapes=(kf(1, [0, 0, 1, 1]),)),
    )
    tags = (Tag(frame=7, label_id=5, id=1), Tag(frame=1, label_id=5, id=2))
    return JobAnnotations(shapes=shapes, tracks=tracks, tags=tags)


def test_iter_frames_orders_shapes_tracks_and_tags() -> None:
    frames = list(iter_frames(_job(), last_frame=7))
    assert [f.frame for f in frames] == [1, 2, 3, 4, 5, 6, 7]
    summary = {f.frame: ([s.id for s in f.shapes], list(f.track_ids), [t.id for t in f.tags]) for f in frames}
    assert summary[1] == ([10, None], [None, 101], [2])
    assert summary[2] == ([None, None], [100, 101], [])
    assert summary[4] == ([None], [101], [])
    assert summary[5] == ([11, 12, None], [None, None, 101], [])
    assert summary[7] == ([None], [101], [1])


def test_iter_frames_without_last_frame_ends_tracks_at_their_last_keyframe() -> None:
    frames = list(iter_frames(_job()))
    assert [f.frame for f in frames] == [1, 2, 3, 5, 7]
    assert frames[-1].shapes == () and frames[-1].track_ids == ()


def test_iter_frames_with_frames_yields_exactly_those() -> None:
    frames = list(iter_frames(_job(), frames=[6, 0, 3, 3, 9], last_frame=7))
    assert [f.frame for f in frames] == [0, 3, 6, 9]
    assert [len(f.shapes) for f in frames] == [0, 2, 1, 0]


def test_iter_frames_is_lazy() -> None:
    # a track running to a huge stop frame: the first frames come without expanding the rest
    job = JobAnnotations(tracks=(Track(frame=0, label_id=1, id=1, shapes=(kf(0, [0, 0, 1, 1]),)),))
    first = list(itertools.islice(iter_frames(job, last_frame=10**12), 3))
    assert [f.frame for f in first] == [0, 1, 2]
    # with wanted frames, expansion stops after the last one
    assert [len(f.shapes) for f in iter_frames(job, frames=[5, 1], last_frame=10**12)] == [1, 1]
