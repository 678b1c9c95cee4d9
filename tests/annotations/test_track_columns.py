"""Tracks expanded straight into columns give expand_track's rows, row for row, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cvat_ext.annotations import track_columns
from cvat_ext.annotations.cvat_json import parse_track
from cvat_ext.annotations.model import Attribute, ShapeType, Track, TrackShape
from cvat_ext.annotations.table import ShapeTable
from cvat_ext.annotations.track_columns import track_table
from cvat_ext.annotations.tracks import expand_track
from cvat_ext.errors import AnnotationFormatError
from tests.annotations import recordings
from tests.annotations.test_frame_store import _geometry, random_body

_COLUMNS = ("frame", "label_id", "type_code", "occluded", "outside", "z_order", "group", "rotation", "score",
            "obj_id", "has_id", "coords", "coord_start")  # fmt: skip


def _by_objects(tracks: list[Track], last_frame: int | None) -> ShapeTable:
    return ShapeTable.from_shapes([s for t in tracks for s in expand_track(t, last_frame=last_frame)])


def assert_same_rows(got: ShapeTable, want: ShapeTable) -> None:
    for name in _COLUMNS:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert np.array_equal(a, b), name  # bit for bit: no NaN can reach a table
    assert [got.sources[i] for i in got.source_code] == [want.sources[i] for i in want.source_code]
    assert got.sources == want.sources
    assert dict(got.attributes) == dict(want.attributes)
    assert set(got.elements) == set(want.elements)
    for row, elements in want.elements.items():
        assert [(e.frame, e.outside, e.points.tolist()) for e in got.elements[row]] == [
            (e.frame, e.outside, e.points.tolist()) for e in elements
        ]


# ----------------------------------------------------------------------------------------------
# generated tracks: every type, outside keyframes, rotations, attributes, the track's frame


_KINDS = ("rectangle", "ellipse", "cuboid", "polygon", "polyline", "points", "mask", "skeleton")


def _jittered(rng: np.random.Generator, points: list[float], px: float) -> list[float]:
    return [float(v) for v in np.asarray(points) + rng.uniform(-px, px, len(points))]


def _track(rng: np.random.Generator, kind: str, stop_frame: int, obj_id: int) -> dict[str, Any]:
    n = int(rng.integers(1, 6))
    frames = sorted(int(f) for f in rng.choice(stop_frame + 10, n, replace=False))
    base = _geometry(rng, kind)
    shapes = []
    for frame in frames:
        # same vertex count, a small move (vertex-wise pairs) or a new outline (arc-length pairs)
        moved = kind in ("polygon", "polyline") and rng.random() < 0.6
        points = _jittered(rng, base, 2.0) if moved else _geometry(rng, kind)
        rotation = float(rng.choice([0.0, 10.0, 190.0, 350.0, rng.uniform(0, 360)]))
        shapes.append({
            "type": kind, "frame": frame, "points": points, "outside": bool(rng.random() < 0.25),
            "occluded": bool(rng.random() < 0.3), "z_order": int(rng.integers(0, 3)), "rotation": rotation,
            "attributes": [{"spec_id": int(s), "value": f"v{rng.integers(5)}"} for s in
                           rng.choice(4, int(rng.integers(0, 3)), replace=False)],
        })  # fmt: skip
    rng.shuffle(shapes)
    elements = []
    if kind == "skeleton" and rng.random() < 0.5:
        elements = [
            {"frame": frames[0], "label_id": 20 + k, "shapes": [
                {"type": "points", "frame": f, "points": _geometry(rng, "points")[:2],
                 "outside": bool(rng.random() < 0.3)} for f in frames[: int(rng.integers(1, n + 1))]]}
            for k in range(3)
        ]  # fmt: skip
    return {
        "id": obj_id, "frame": frames[0] + int(rng.integers(-2, 3)), "label_id": int(rng.integers(1, 4)),
        "group": int(rng.integers(0, 2)), "source": str(rng.choice(["manual", "auto", "semi-auto"])),
        "shapes": shapes, "elements": elements,
        "attributes": [{"spec_id": 9, "value": "fixed"}] if rng.random() < 0.3 else [],
    }  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_generated_tracks_row_for_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stop_frame = int(rng.integers(0, 60))
    tracks = [parse_track(_track(rng, str(rng.choice(_KINDS)), stop_frame, i)) for i in range(int(rng.integers(0, 8)))]
    for last_frame in (stop_frame, None, 0, stop_frame + 25):
        assert_same_rows(track_table(tracks, last_frame=last_frame), _by_objects(tracks, last_frame))


@pytest.mark.parametrize("kind", _KINDS)
def test_each_kind_alone(kind: str) -> None:
    rng = np.random.default_rng(len(kind))
    tracks = [parse_track(_track(rng, kind, 30, i)) for i in range(25)]
    got = track_table(tracks, last_frame=30)
    assert len(got) > 25  # frames between and after keyframes, not only the keyframes
    assert_same_rows(got, _by_objects(tracks, 30))


def test_random_bodies_and_recordings() -> None:
    cases = [(body["tracks"], stop) for body, stop in map(random_body, range(60))]
    cases += [(body["tracks"], 19) for _, _, _, body in recordings.annotation_bodies()]
    seen = 0
    for raw_tracks, last_frame in cases:
        tracks = [parse_track(t) for t in raw_tracks]
        seen += bool(tracks)
        for last in (last_frame, 3):
            assert_same_rows(track_table(tracks, last_frame=last), _by_objects(tracks, last))
    assert seen >= 20


def test_no_shape_per_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracks other than skeletons with keypoint tracks never go through expand_track."""
    rng = np.random.default_rng(7)
    tracks = [parse_track(_track(rng, kind, 40, i)) for i, kind in enumerate(_KINDS * 4)]
    want = _by_objects(tracks, 40)
    used: list[Track] = []

    def spy(track: Track, *, last_frame: int | None = None) -> list[Any]:
        used.append(track)
        return expand_track(track, last_frame=last_frame)

    monkeypatch.setattr(track_columns, "expand_track", spy)
    assert_same_rows(track_table(tracks, last_frame=40), want)
    assert used == [t for t in tracks if t.shapes and t.shapes[0].type is ShapeType.SKELETON and t.elements]


def _kf(frame: int, x: float, **kw: Any) -> TrackShape:
    return TrackShape(type=ShapeType.RECTANGLE, frame=frame, points=np.array([x, 0.0, x + 10.0, 10.0]), **kw)


@pytest.mark.parametrize(
    ("keyframes", "track_frame", "last_frame", "frames"),
    [
        ([_kf(0, 0.0), _kf(4, 8.0)], 0, 6, [0, 1, 2, 3, 4, 5, 6]),
        ([_kf(0, 0.0), _kf(4, 8.0, outside=True)], 0, 6, [0, 1, 2, 3]),
        ([_kf(0, 0.0, outside=True), _kf(4, 8.0)], 0, 5, [4, 5]),
        ([_kf(0, 0.0), _kf(9, 8.0)], 0, 3, [0, 1, 2, 3]),  # the segment crosses the end
        ([_kf(5, 0.0), _kf(9, 8.0)], 0, 3, [5]),  # the first keyframe stays, beyond the end
        ([_kf(0, 0.0), _kf(4, 8.0)], 2, 5, [2, 3, 4, 5]),  # before the track's frame: dropped
        ([_kf(0, 0.0), _kf(4, 8.0)], 0, None, [0, 1, 2, 3, 4]),
    ],
)
def test_segments_by_hand(keyframes: list[TrackShape], track_frame: int, last_frame: int | None,
                          frames: list[int]) -> None:  # fmt: skip
    track = Track(frame=track_frame, label_id=1, shapes=tuple(keyframes), attributes=(Attribute(1, "a"),))
    got = track_table([track], last_frame=last_frame)
    assert got.frame.tolist() == frames
    assert_same_rows(got, _by_objects([track], last_frame))


def test_keyframes_out_of_order_raise_expand_tracks_error() -> None:
    track = Track(frame=0, label_id=1, shapes=(_kf(0, 0.0), _kf(4, 8.0)))
    object.__setattr__(track, "shapes", track.shapes[::-1])  # past the constructor's sort
    with pytest.raises(AnnotationFormatError) as want:
        expand_track(track, last_frame=9)
    with pytest.raises(AnnotationFormatError) as got:
        track_table([track], last_frame=9)
    assert str(got.value) == str(want.value) and "keyframes on frames" in str(got.value)


def test_no_tracks() -> None:
    assert len(track_table([], last_frame=5)) == 0
    assert_same_rows(track_table([], last_frame=5), ShapeTable.from_shapes([]))


def test_rotations_bit_for_bit() -> None:
    """The short way round and its half-turn tie-break, vectorised, equal tracks._linear's floats."""
    rng = np.random.default_rng(5)
    tracks = []
    for _ in range(2_000):
        r0 = float(rng.choice([rng.uniform(-720, 720), 0.1 * rng.integers(0, 3600), 180.0, 0.0]))
        r1 = float(rng.choice([r0 + 180.0, r0 - 180.0, r0 + 180.0000001, rng.uniform(-720, 720)]))
        keyframes = (_kf(0, 0.0, rotation=r0), _kf(int(rng.integers(2, 9)), 3.0, rotation=r1))
        tracks.append(Track(frame=0, label_id=1, shapes=keyframes))
    assert_same_rows(track_table(tracks, last_frame=10), _by_objects(tracks, 10))
