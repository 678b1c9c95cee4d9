"""FrameStore: a file read incrementally and spilled to SQLite gives the frames of the whole parse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvat_ext.annotations.cvat_json import dump_shape, dump_tag, parse_job_annotations
from cvat_ext.annotations.frame_store import FrameStore
from cvat_ext.annotations.model import FrameAnnotations
from cvat_ext.consensus.engine import _frames_of
from cvat_ext.errors import AnnotationFormatError
from tests.annotations import recordings

Body = dict[str, Any]

# ----------------------------------------------------------------------------------------------
# random CVAT bodies


def _xy(rng: np.random.Generator, k: int) -> list[float]:
    # full-precision floats: the incremental parser must read them bit-exactly as json does
    return [float(v) for v in rng.uniform(0, 500, 2 * k)]


def _mask_points(rng: np.random.Generator) -> list[float]:
    w, h = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    bits = rng.random(w * h) < 0.5
    change = np.flatnonzero(bits[1:] != bits[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [bits.size]))).tolist()
    left, top = int(rng.integers(0, 50)), int(rng.integers(0, 50))
    return [*([0] if bits[0] else []), *runs, left, top, left + w - 1, top + h - 1]


def _geometry(rng: np.random.Generator, kind: str) -> list[float]:
    if kind in ("rectangle", "ellipse"):
        x, y = _xy(rng, 1)
        return [x, y, x + 10.5, y + float(rng.uniform(1, 20))]
    if kind == "polygon":
        return _xy(rng, int(rng.integers(3, 7)))
    if kind == "polyline":
        return _xy(rng, int(rng.integers(2, 5)))
    if kind == "points":
        return _xy(rng, int(rng.integers(1, 3)))
    if kind == "cuboid":
        return _xy(rng, 8)
    if kind == "mask":
        return _mask_points(rng)
    return []  # skeleton


def _attributes(rng: np.random.Generator) -> list[dict[str, Any]]:
    return [{"spec_id": int(s), "value": f"v{rng.integers(9)}é"} for s in rng.choice(4, int(rng.integers(0, 3)), False)]


SHAPE_KINDS = ("rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton")


def _shape(rng: np.random.Generator, frame: int, obj_id: int) -> dict[str, Any]:
    kind = str(rng.choice(SHAPE_KINDS))
    elements = []
    if kind == "skeleton":
        elements = [
            {"type": "points", "frame": frame, "label_id": 11 + k, "points": _xy(rng, 1), "outside": rng.random() < 0.3}
            for k in range(3)
        ]
    return {
        "type": kind, "id": obj_id, "frame": frame, "label_id": int(rng.integers(1, 4)), "points": _geometry(rng, kind),
        "rotation": float(rng.choice([0.0, 30.0])), "z_order": int(rng.integers(0, 3)), "group": 0, "source": "manual",
        "occluded": bool(rng.random() < 0.2), "attributes": _attributes(rng), "elements": elements,
        "score": float(rng.uniform(0, 1)),
    }  # fmt: skip


def _keyframes(rng: np.random.Generator, kind: str, frames: list[int]) -> list[dict[str, Any]]:
    out = []
    for frame in frames:
        out.append({
            "type": kind, "frame": frame, "points": _geometry(rng, kind), "outside": bool(rng.random() < 0.3),
            "occluded": False, "z_order": 0, "rotation": float(rng.uniform(0, 360)), "attributes": _attributes(rng),
        })  # fmt: skip
    rng.shuffle(out)  # CVAT does not promise keyframe order
    return out


def _track(rng: np.random.Generator, stop_frame: int, obj_id: int) -> dict[str, Any]:
    kind = str(rng.choice(("rectangle", "polygon", "mask", "points", "skeleton", "ellipse")))
    # keyframes may lie beyond the stop frame, and the track may start before or after its first one
    frames = sorted(int(f) for f in rng.choice(stop_frame + 8, int(rng.integers(0, 5)), replace=False))
    first = frames[0] if frames else 0
    elements = []
    if kind == "skeleton":
        elements = [
            {"frame": first, "label_id": 11 + k, "shapes": _keyframes(rng, "points", frames[: int(rng.integers(0, 5))])}
            for k in range(3)
        ]
        for e in elements:
            for kf in e["shapes"]:
                kf["points"] = kf["points"][:2]
    return {
        "id": obj_id, "frame": first + int(rng.integers(-1, 2)), "label_id": int(rng.integers(1, 4)), "group": 0,
        "source": "manual", "shapes": _keyframes(rng, kind, frames), "attributes": _attributes(rng),
        "elements": elements,
    }  # fmt: skip


def random_body(seed: int) -> tuple[Body, int]:
    """A LabeledData body with shapes in shuffled order, tags and tracks, and its stop frame."""
    rng = np.random.default_rng(seed)
    stop_frame = int(rng.integers(0, 40))
    n_shapes = int(rng.integers(0, 40))
    shapes = [_shape(rng, int(rng.integers(0, stop_frame + 5)), i) for i in range(n_shapes)]
    tags = [
        {"id": i, "frame": int(rng.integers(0, stop_frame + 3)), "label_id": 4, "attributes": _attributes(rng)}
        for i in range(int(rng.integers(0, 6)))
    ]
    tracks = [_track(rng, stop_frame, i) for i in range(int(rng.integers(0, 5)) if rng.random() < 0.7 else 0)]
    return {"version": 3, "tags": tags, "shapes": shapes, "tracks": tracks}, stop_frame


# ----------------------------------------------------------------------------------------------
# comparison


def _plain(frames: list[FrameAnnotations]) -> list[Any]:
    """Shapes compare by identity; compare what they write instead."""
    return [(f.frame, [dump_shape(s) for s in f.shapes], [dump_tag(t) for t in f.tags], f.track_ids) for f in frames]


def _expected(body: Body, last_frame: int) -> list[Any]:
    return _plain(list(_frames_of(parse_job_annotations(body), last_frame)))


def _streamed(path: Path, last_frame: int, window: int) -> list[Any]:
    with FrameStore(path) as store:
        return _plain(list(store.iter_frames(last_frame, window=window)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), window=st.integers(1, 12))
def test_frames_equal_the_whole_parse(tmp_path: Path, seed: int, window: int) -> None:
    body, stop_frame = random_body(seed)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(body, ensure_ascii=bool(seed % 2)))
    assert _streamed(path, stop_frame, window) == _expected(body, stop_frame)


def test_random_bodies_cover_the_cases() -> None:
    """The generator above does produce what the equivalence test is about."""
    bodies = [random_body(seed) for seed in range(60)]
    tracks = [t for body, _ in bodies for t in body["tracks"]]
    keyframes = [kf for t in tracks for kf in t["shapes"]]
    assert {kf["type"] for kf in keyframes} >= {"rectangle", "polygon", "mask", "skeleton", "points"}
    assert any(kf["outside"] for kf in keyframes)
    assert any(kf["frame"] > stop for body, stop in bodies for t in body["tracks"] for kf in t["shapes"])
    assert any(s["frame"] > stop for body, stop in bodies for s in body["shapes"])
    assert any(b["tags"] for b, _ in bodies) and any(not b["tracks"] for b, _ in bodies)
    assert any(s["frame"] < p["frame"] for b, _ in bodies for p, s in zip(b["shapes"], b["shapes"][1:]))


def test_recorded_cvat_bodies(tmp_path: Path) -> None:
    seen = 0
    for name, side, index, body in recordings.annotation_bodies():
        path = tmp_path / f"{name}.{side}.{index}.json"
        path.write_text(json.dumps(body))
        for last_frame in (3, 19):
            assert _streamed(path, last_frame, 4) == _expected(body, last_frame), (name, side, index)
        seen += 1
    assert seen >= 10


def test_long_track_is_expanded_once_across_windows(tmp_path: Path) -> None:
    body = {"shapes": [], "tracks": [{"frame": 0, "label_id": 1, "shapes": [
        {"type": "rectangle", "frame": 0, "points": [0, 0, 10, 10]},
        {"type": "rectangle", "frame": 500, "points": [100, 0, 110, 10]},
    ]}]}  # fmt: skip
    path = tmp_path / "t.json"
    path.write_text(json.dumps(body))
    got = _streamed(path, 999, 7)
    assert [f[0] for f in got] == list(range(1000))
    assert got[250][1][0]["points"] == [50.0, 0.0, 60.0, 10.0]
    assert got[250][3] == (None,)


# ----------------------------------------------------------------------------------------------
# errors


def _spill_dir(tmp_path: Path) -> Path:
    spill = tmp_path / "spill"
    spill.mkdir(exist_ok=True)
    return spill


GOOD_SHAPE = {"type": "rectangle", "frame": 0, "label_id": 1, "points": [0, 0, 1, 1]}
SHORT_BOX = {**GOOD_SHAPE, "points": [0, 0]}
EMPTY_TRACK = {"frame": 0, "label_id": 1, "shapes": []}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"shapes": [', "a.json: invalid JSON"),
        ("", "a.json: invalid JSON"),
        ('{"shapes": []} []', "a.json: invalid JSON"),
        ('{"shapes": [NaN]}', "a.json: invalid JSON"),
        ("[]", "a.json: annotations must be a JSON object, got list"),
        ("7", "a.json: annotations must be a JSON object, got int 7"),
        ('{"shapes": 5}', "a.json: annotations field 'shapes': expected a list, got int 5"),
        ('{"tracks": {"item": []}}', "a.json: annotations field 'tracks': expected a list, got dict"),
        ('{"version": "x"}', "a.json: annotations field 'version': expected an integer"),
        ('{"intervals": [1]}', "a.json: annotations field 'intervals[0]': expected an object"),
        ('{"shapes": [], "shapes": []}', "key 'shapes' twice"),
        (json.dumps({"shapes": [GOOD_SHAPE, SHORT_BOX]}), "a.json: shapes[1] frame 0: rectangle"),
        (json.dumps({"shapes": [GOOD_SHAPE, 3]}), "a.json: shapes[1]: shape must be a JSON object"),
        (json.dumps({"tags": [{"frame": "x", "label_id": 1}]}), "a.json: tags[0]: tag field 'frame'"),
        (
            json.dumps({"tracks": [{"frame": 0, "label_id": 1, "shapes": [{**GOOD_SHAPE, "points": [1]}]}]}),
            "a.json: tracks[0]: track frame 0: rectangle keyframe",
        ),
        (json.dumps({"shapes": [{**GOOD_SHAPE, "frame": 2**70}]}), "a.json: invalid JSON: parse error: integer"),
    ],
)
def test_bad_files_name_the_file_and_leave_nothing(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(AnnotationFormatError) as info:
        FrameStore(path, temp_dir=_spill_dir(tmp_path))
    assert expected in str(info.value)
    assert list((tmp_path / "spill").iterdir()) == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AnnotationFormatError, match=r"nope\.json: cannot read"):
        FrameStore(tmp_path / "nope.json", temp_dir=_spill_dir(tmp_path))
    assert list((tmp_path / "spill").iterdir()) == []


def test_close_removes_the_database_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"version": 2, "shapes": [GOOD_SHAPE] * 3, "tracks": [EMPTY_TRACK]}))
    with FrameStore(path, temp_dir=_spill_dir(tmp_path)) as store:
        assert (store.version, store.counts, store.has_tracks) == (2, {"tags": 0, "shapes": 3, "tracks": 1}, True)
        assert len(list((tmp_path / "spill").iterdir())) == 1
        (frame,) = store.iter_frames(0)
        assert frame.track_ids == (None, None, None)  # a job with tracks: as tracks.iter_frames
        with pytest.raises(ValueError, match="window"):
            next(store.iter_frames(0, window=0))
    assert list((tmp_path / "spill").iterdir()) == []
    store.close()  # idempotent
