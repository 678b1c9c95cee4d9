"""parse -> dump of every recorded CVAT annotation body gives the body back."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from cvat_ext.annotations.cvat_json import (
    dump_job_annotations,
    dump_shape,
    dump_tag,
    dump_track,
    parse_job_annotations,
    parse_shape,
    parse_tag,
    parse_track,
)
from cvat_ext.annotations.model import Attribute, JobAnnotations, Shape, ShapeType
from tests.annotations.recordings import annotation_bodies

BODIES = list(annotation_bodies())

_SHAPE_DEFAULTS: dict[str, Any] = {
    "occluded": False,
    "outside": False,
    "z_order": 0,
    "rotation": 0.0,
    "group": 0,
    "source": "manual",
    "score": 1.0,
    "attributes": [],
}
_TAG_DEFAULTS: dict[str, Any] = {"group": 0, "source": "manual", "attributes": []}

#: bodies CVAT itself wrote without a key its serializer otherwise always writes
_CVAT_SHORT_FORMS = {
    ("45_job_annotations_patch_delete.json", "response", 1),  # delete echo: shapes without "elements"
    ("L02_lambda_detector_call.json", "response", 0),  # lambda results: "id": null, no "elements"
}


def with_cvat_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """The body with CVAT's serializer defaults filled in and ``"id": null`` dropped: the canonical
    form our dump writes. Request bodies (and two short CVAT answers) leave defaults out."""
    out = copy.deepcopy(body)
    out.setdefault("version", 0)
    out.setdefault("intervals", [])
    for tag in out.get("tags", []):
        for key, value in _TAG_DEFAULTS.items():
            tag.setdefault(key, value)
        if tag.get("id", 0) is None:
            del tag["id"]
    for shape in out.get("shapes", []):
        shape.setdefault("elements", [])
        for obj in [shape, *shape["elements"]]:
            for key, value in _SHAPE_DEFAULTS.items():
                obj.setdefault(key, value)
            if obj.get("id", 0) is None:
                del obj["id"]
    return out


@pytest.mark.parametrize(("name", "side", "index", "body"), BODIES, ids=[f"{b[0]}-{b[1]}-{b[2]}" for b in BODIES])
def test_round_trip_of_recorded_body(name: str, side: str, index: int, body: dict[str, Any]) -> None:
    dumped = dump_job_annotations(parse_job_annotations(body, where=name))
    assert dumped == with_cvat_defaults(body)
    if side == "response" and (name, side, index) not in _CVAT_SHORT_FORMS:
        # CVAT's own answers are already canonical: the dump reproduces them exactly, key for key
        assert dumped == body


def test_recordings_cover_every_2d_type_and_a_track() -> None:
    if not BODIES:
        pytest.skip("CVAT recordings not available")
    types = {s["type"] for _, _, _, body in BODIES for s in body["shapes"]}
    assert types >= {"rectangle", "polygon", "polyline", "points", "ellipse", "mask", "skeleton"}
    assert any(body["tracks"] for _, _, _, body in BODIES)


def _objects(kind: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, side, index, body in BODIES:
        if side != "response" or (name, side, index) in _CVAT_SHORT_FORMS:
            continue
        for obj in body[kind]:
            found.append((f"{name}-{obj.get('type', 'tag')}-{obj.get('id')}", obj))
    return found


SHAPES = _objects("shapes")
TAGS = _objects("tags")
TRACKS = _objects("tracks")


@pytest.mark.parametrize("obj", [o for _, o in SHAPES], ids=[i for i, _ in SHAPES])
def test_shape_round_trip(obj: dict[str, Any]) -> None:
    shape = parse_shape(obj, where="job 1")
    assert dump_shape(shape) == obj
    assert shape.type.value == obj["type"]
    if obj["type"] == "mask":
        assert shape.mask is not None
        assert list(shape.mask.ltrb) == obj["points"][-4:]
        assert shape.mask.counts.tolist() == obj["points"][:-4]
    elif obj["type"] == "skeleton":
        assert len(shape.elements) == len(obj["elements"])
        assert all(e.points.shape == (1, 2) for e in shape.elements)
    else:
        assert shape.points.ravel().tolist() == obj["points"]


@pytest.mark.parametrize("obj", [o for _, o in TAGS], ids=[i for i, _ in TAGS])
def test_tag_round_trip(obj: dict[str, Any]) -> None:
    assert dump_tag(parse_tag(obj)) == obj


@pytest.mark.parametrize("obj", [o for _, o in TRACKS], ids=[i for i, _ in TRACKS])
def test_track_round_trip(obj: dict[str, Any]) -> None:
    track = parse_track(obj)
    assert dump_track(track) == obj
    assert [s.frame for s in track.shapes] == [s["frame"] for s in obj["shapes"]]


def _cuboid() -> dict[str, Any]:
    return {
        "type": "cuboid",
        "occluded": False,
        "outside": False,
        "z_order": 1,
        "rotation": 0.0,
        "points": [float(v) for v in range(16)],
        "id": 9,
        "label_id": 165,
        "group": 2,
        "source": "semi-auto",
        "frame": 3,
        "score": 0.5,
        "attributes": [{"spec_id": 32, "value": "stop"}],
        "elements": [],
    }


def test_cuboid_round_trip_as_8_corners() -> None:
    obj = _cuboid()
    shape = parse_shape(obj)
    assert shape.points.shape == (8, 2)
    assert shape.points[1].tolist() == [2.0, 3.0]
    assert dump_shape(shape) == obj


def _skeleton_track() -> dict[str, Any]:
    def keyframe(frame: int, x: float, *, outside: bool = False, type_: str = "points") -> dict[str, Any]:
        points = [] if type_ == "skeleton" else [x, 2 * x]
        return {
            "id": frame,
            "type": type_,
            "frame": frame,
            "occluded": False,
            "outside": outside,
            "z_order": 0,
            "rotation": 0.0,
            "points": points,
            "attributes": [],
        }

    def sub(label_id: int, *shapes: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": label_id,
            "label_id": label_id,
            "frame": 0,
            "group": 0,
            "source": "manual",
            "shapes": list(shapes),
            "attributes": [],
        }

    return {
        "id": 7,
        "label_id": 168,
        "frame": 0,
        "group": 0,
        "source": "manual",
        "shapes": [keyframe(0, 0, type_="skeleton"), keyframe(4, 0, type_="skeleton")],
        "attributes": [],
        "elements": [sub(169, keyframe(0, 10), keyframe(4, 50)), sub(170, keyframe(0, 20, outside=True))],
    }


def test_skeleton_track_round_trip() -> None:
    obj = _skeleton_track()
    track = parse_track(obj)
    assert len(track.elements) == 2
    assert dump_track(track) == obj
    assert "elements" not in dump_track(track)["elements"][0]


def test_dump_leaves_out_missing_ids() -> None:
    shape = parse_shape({"type": "rectangle", "frame": 0, "label_id": 1, "points": [0, 0, 1, 1]})
    assert "id" not in dump_shape(shape)
    assert "id" not in dump_tag(parse_tag({"frame": 0, "label_id": 1}))


def test_dump_writes_plain_numbers_for_numpy_scalars() -> None:
    shape = Shape(
        type=ShapeType.RECTANGLE,
        frame=np.int64(3),  # type: ignore[arg-type]
        label_id=np.int64(1),  # type: ignore[arg-type]
        points=np.array([0.0, 0.0, 1.0, 1.0]),
        rotation=np.float32(10.0),  # type: ignore[arg-type]
        z_order=np.int64(2),  # type: ignore[arg-type]
        score=np.float64(0.5),
        attributes=(Attribute(np.int64(4), "x"),),  # type: ignore[arg-type]
    )
    text = json.dumps(dump_job_annotations(JobAnnotations(shapes=(shape,))))
    assert json.loads(text)["shapes"][0]["frame"] == 3
