"""Malformed CVAT JSON raises AnnotationFormatError naming where and what was expected."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cvat_ext.annotations.cvat_json import (
    load_json_file,
    parse_job_annotations,
    parse_job_meta,
    parse_labels,
    parse_shape,
    parse_tag,
    parse_track,
)
from cvat_ext.errors import AnnotationFormatError


def shape(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": 3, "type": "rectangle", "frame": 14, "label_id": 1, "points": [0, 0, 10, 10]}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def track(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 42,
        "frame": 12,
        "label_id": 1,
        "shapes": [{"id": 120, "type": "rectangle", "frame": 12, "points": [0, 0, 1, 1]}],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()

SHAPE_CASES = [
    (shape(type="polygon", points=[1, 2, 3, 4]), "job 812 frame 14: polygon 3 has 2 points, need >= 3"),
    (shape(type="polyline", points=[1, 2]), "polyline 3 has 1 points, need >= 2"),
    (shape(type="points", points=[]), "points 3 has 0 points, need >= 1"),
    (shape(type="polygon", points=[1, 2, 3, 4, 5]), "polygon 3 has an odd count of numbers in 'points' (5)"),
    (shape(points=[1, 2, 3]), "job 812 frame 14: rectangle 3 has 3 numbers in 'points', need 4"),
    (shape(type="ellipse", points=[1, 2, 3, 4, 5]), "ellipse 3 has 5 numbers in 'points', need 4"),
    (shape(type="cuboid", points=[0] * 14), "cuboid 3 has 14 numbers in 'points', need 16"),
    (shape(type="skeleton", points=[1, 2]), "skeleton 3 has 2 numbers in 'points', need 0"),
    (shape(type="mask", points=[1, 3, 0, 0, 2, 2]), "mask 3 RLE counts sum to 4, box (0, 0, 2, 2) has 9 pixels"),
    (shape(type="mask", points=[0, 0, 1, 1]), "mask 3 has 4 numbers in 'points', need >= 5"),
    (shape(type="mask", points=[1.5, 2.5, 0, 0, 1, 1]), "mask 3 RLE has a fractional run length"),
    (shape(type="mask", points=[4, 0, 0, -1, 1]), "mask 3 has an empty mask box"),
    (shape(type="mask", points=[5, -1, 0, 0, 1, 1]), "mask 3 RLE has a negative run length"),
    (shape(points=[0, 0, True, 10]), "rectangle 3 field 'points[2]': expected a number, got bool True"),
    (shape(points=[0, 0, "10", 10]), "rectangle 3 field 'points[2]': expected a number, got str '10'"),
    (shape(points=[0, 0, float("nan"), 10]), "field 'points[2]': expected a finite number, got float nan"),
    (shape(points=[0, 0, float("inf"), 10]), "field 'points[2]': expected a finite number, got float inf"),
    (shape(points=[0, 0, 10**400, 10]), "field 'points': a number is too large"),
    (shape(points="0,0,1,1"), "field 'points': expected a list of numbers, got str"),
    (shape(points=None), "field 'points': expected a list of numbers, got null"),
    (shape(type="circle"), "field 'type': expected one of rectangle, polygon"),
    (shape(type=DROP), "job 812: shape 3 is missing required field 'type'"),
    (shape(frame=DROP), "rectangle 3 is missing required field 'frame'"),
    (shape(label_id=DROP), "job 812 frame 14: rectangle 3 is missing required field 'label_id'"),
    (shape(frame="14"), "field 'frame': expected an integer, got str '14'"),
    (shape(frame=True), "field 'frame': expected an integer, got bool True"),
    (shape(frame=1.5), "field 'frame': expected an integer, got float 1.5"),
    (shape(id="3"), "field 'id': expected an integer, got str '3'"),
    (shape(rotation="0"), "rectangle 3 field 'rotation': expected a number, got str '0'"),
    (shape(rotation=True), "field 'rotation': expected a number, got bool True"),
    (shape(rotation=float("nan")), "field 'rotation': expected a finite number"),
    (shape(rotation=10**400), "field 'rotation': expected a finite number, got int with 401 digits"),
    (shape(score=None), "field 'score': expected a number, got null"),
    (shape(occluded=1), "field 'occluded': expected true or false, got int 1"),
    (shape(outside="false"), "field 'outside': expected true or false, got str 'false'"),
    (shape(z_order=0.5), "field 'z_order': expected an integer"),
    (shape(source=1), "field 'source': expected a string, got int 1"),
    (shape(attributes={}), "field 'attributes': expected a list, got dict"),
    (shape(attributes=[1]), "field 'attributes[0]': expected an object {spec_id, value}, got int 1"),
    (shape(attributes=[{"spec_id": 1, "value": 2}]), "field 'attributes[0].value': expected a string, got int 2"),
    (shape(attributes=[{"value": "x"}]), "field 'attributes[0].spec_id': expected an integer, got null"),
    (shape(elements=[shape()]), "rectangle 3 has 1 elements, only skeletons have elements"),
    (
        shape(type="skeleton", points=[], elements=[shape(id=9)]),
        "skeleton 3 has a rectangle element, skeleton elements must be points",
    ),
    (
        shape(type="skeleton", points=[], elements=[shape(id=9, type="points", points=[1, None])]),
        "job 812 frame 14: skeleton 3: points 9 field 'points[1]': expected a number, got null",
    ),
    (
        shape(type="skeleton", points=[], elements=[shape(id=9, type="points", points=[], frame=14)]),
        "job 812 frame 14: skeleton 3: points 9 has 0 points, need >= 1",
    ),
    ([1, 2], "job 812: shape must be a JSON object, got list"),
]


@pytest.mark.parametrize(("data", "message"), SHAPE_CASES, ids=[m[:50] for _, m in SHAPE_CASES])
def test_malformed_shape(data: Any, message: str) -> None:
    with pytest.raises(AnnotationFormatError, match=re.escape(message)):
        parse_shape(data, where="job 812")


TRACK_CASES = [
    (track(shapes=DROP), "job 812 frame 12: track 42 is missing required field 'shapes'"),
    (
        track(shapes=[{"id": 120, "type": "rectangle", "frame": 12, "points": [0, 0, 1]}]),
        "job 812: track 42 frame 12: rectangle keyframe 120 has 3 numbers in 'points', need 4",
    ),
    (
        track(shapes=[{"type": "rectangle", "frame": 12, "points": [0, 0, 1, 1]}] * 2),
        "track 42 has two keyframes on frame 12",
    ),
    (
        track(
            shapes=[
                {"type": "rectangle", "frame": 12, "points": [0, 0, 1, 1]},
                {"type": "ellipse", "frame": 13, "points": [0, 0, 1, 1]},
            ]
        ),
        "track 42 mixes keyframe types ['ellipse', 'rectangle']",
    ),
    (track(elements=[track()]), "track 42 has 1 element tracks, only skeleton tracks have elements"),
    (
        track(shapes=[{"type": "skeleton", "frame": 12}], elements=[track(id=43)]),
        "track 42 has a rectangle element track, keypoint tracks must be points",
    ),
    (track(shapes=[{"type": "rectangle", "points": [0, 0, 1, 1]}]), "keyframe is missing required field 'frame'"),
    (track(shapes=[{"type": "rectangle", "frame": 12, "outside": 0, "points": [0, 0, 1, 1]}]), "field 'outside'"),
]


@pytest.mark.parametrize(("data", "message"), TRACK_CASES, ids=[m[:50] for _, m in TRACK_CASES])
def test_malformed_track(data: Any, message: str) -> None:
    with pytest.raises(AnnotationFormatError, match=re.escape(message)):
        parse_track(data, where="job 812")


OTHER_CASES = [
    (parse_tag, {"frame": 1}, "job 812 frame 1: tag is missing required field 'label_id'"),
    (parse_tag, {"frame": 1, "label_id": "a", "id": 5}, "job 812 frame 1: tag 5 field 'label_id'"),
    (parse_job_annotations, [], "job 812: annotations must be a JSON object, got list"),
    (parse_job_annotations, {"shapes": {}}, "job 812: annotations field 'shapes': expected a list, got dict"),
    (parse_job_annotations, {"version": "1"}, "field 'version': expected an integer"),
    (parse_job_annotations, {"intervals": [1]}, "field 'intervals[0]': expected an object"),
    (parse_job_annotations, {"shapes": [shape(type="polygon")]}, "job 812 frame 14: polygon 3 has 2 points"),
    (parse_labels, {"count": 0}, "job 812: labels is missing required field 'results'"),
    (parse_labels, "car", "job 812: labels must be a list or a paginated object, got str"),
    (parse_labels, [{"name": "car"}], "job 812: label is missing required field 'id'"),
    (parse_labels, [{"id": 1}], "job 812: label 1 is missing required field 'name'"),
    (
        parse_labels,
        [{"id": 1, "name": "a", "attributes": [{"id": 2, "name": "k", "input_type": "slider"}]}],
        "label 1: attribute 2 field 'input_type': expected one of number, select",
    ),
    (
        parse_labels,
        [{"id": 1, "name": "a", "sublabels": [{"id": 2}]}],
        "sublabel 2 of label 1 is missing required field 'name'",
    ),
    (parse_job_meta, {"stop_frame": 3, "frames": []}, "job 812: data meta is missing required field 'start_frame'"),
    (parse_job_meta, {"start_frame": 5, "stop_frame": 3}, "data meta has stop_frame 3 < start_frame 5"),
    (
        parse_job_meta,
        {"start_frame": 0, "stop_frame": 3, "frames": [{"width": 0, "height": 4}]},
        "data meta frames[0] has size 0x4",
    ),
    (parse_job_meta, {"start_frame": 0, "stop_frame": 3, "included_frames": ["1"]}, "field 'included_frames[0]'"),
]


@pytest.mark.parametrize(
    ("parse", "data", "message"), OTHER_CASES, ids=[f"{p.__name__}-{m[:40]}" for p, _, m in OTHER_CASES]
)
def test_malformed_other(parse: Any, data: Any, message: str) -> None:
    with pytest.raises(AnnotationFormatError, match=re.escape(message)):
        parse(data, where="job 812")


def test_where_is_optional() -> None:
    with pytest.raises(AnnotationFormatError, match=re.escape("frame 14: polygon 3 has 2 points, need >= 3")):
        parse_shape(shape(type="polygon", points=[1, 2, 3, 4]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"shapes": [', "invalid JSON: Expecting value"),
        ('{"points": [NaN]}', "invalid JSON: NaN is not valid JSON"),
        ('{"points": [Infinity]}', "invalid JSON: Infinity is not valid JSON"),
    ],
)
def test_load_json_file_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "job.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AnnotationFormatError, match=re.escape(message)) as info:
        load_json_file(path)
    assert str(path) in str(info.value)


def test_load_json_file_missing_and_valid(tmp_path: Path) -> None:
    with pytest.raises(AnnotationFormatError, match="cannot read"):
        load_json_file(tmp_path / "nope.json")
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({"a": [1, 2.5]}), encoding="utf-8")
    assert load_json_file(path) == {"a": [1, 2.5]}
