from __future__ import annotations

import json

import numpy as np
import pytest
from cvat_sdk.masks import encode_mask  # cross-check of our RLE against the SDK's encoder

from cvat_ext.errors import AnnotationFormatError
from cvat_ext.functions.interface import LabelSpec
from cvat_ext.functions.response import (
    RawJson,
    RawMask,
    detections_to_items,
    encode_json,
    interactor_mask_shape,
    interactor_response,
    mask_item,
    rectangle_item,
    skeleton_item,
)
from cvat_ext.models.detections import Detections, MaskCrop


def _naive_raw_mask(full: np.ndarray) -> list[int]:
    """Reference: scan the full image for the foreground box, then list the crop row by row."""
    ys = [y for y in range(full.shape[0]) if full[y].any()]
    xs = [x for x in range(full.shape[1]) if full[:, x].any()]
    top, bottom, left, right = min(ys), max(ys), min(xs), max(xs)
    out = [255 if full[y, x] else 0 for y in range(top, bottom + 1) for x in range(left, right + 1)]
    return [*out, left, top, right, bottom]


def test_mask_item_is_raw_crop_with_inclusive_box() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        full = np.zeros((30, 40), dtype=bool)
        y0, x0 = rng.integers(0, 20, size=2)
        full[y0 : y0 + rng.integers(1, 10), x0 : x0 + rng.integers(1, 15)] = rng.random() > 0.0
        full &= rng.random(full.shape) > 0.3
        if not full.any():
            continue
        crop = MaskCrop.from_full(full)
        assert crop is not None
        item = mask_item("person", crop, confidence=0.5)
        assert item is not None
        assert item["mask"] == _naive_raw_mask(full)
        assert item["type"] == "mask" and item["confidence"] == "0.5000"
        assert "points" not in item


def test_mask_item_single_pixel_and_empty() -> None:
    full = np.zeros((5, 5), dtype=bool)
    full[2, 3] = True
    item = mask_item("x", MaskCrop(full, 10, 20))
    assert item is not None and item["mask"] == [255, 13, 22, 13, 22]
    assert mask_item("x", MaskCrop(np.zeros((3, 3), dtype=bool), 0, 0)) is None


def test_mask_item_with_polygon_points() -> None:
    item = mask_item("x", MaskCrop(np.ones((2, 2), dtype=bool), 0, 0), polygon_xy=[[0, 0], [1, 0], [1, 1]])
    assert item is not None and item["points"] == [0, 0, 1, 0, 1, 1]


def test_rectangle_and_skeleton_items() -> None:
    assert rectangle_item("car", [1, 2, 3, 4], attributes={"color": "red"}) == {
        "label": "car",
        "type": "rectangle",
        "points": [1, 2, 3, 4],
        "attributes": [{"name": "color", "value": "red"}],
    }
    sk = skeleton_item("pose", ["a", "b"], [[1, 2], [3, 4]], [False, True], confidence=0.9)
    assert sk["elements"] == [
        {"label": "a", "type": "points", "points": [1, 2], "outside": False},
        {"label": "b", "type": "points", "points": [3, 4], "outside": True},
    ]
    with pytest.raises(AnnotationFormatError, match="2 sublabels but 1 keypoints"):
        skeleton_item("pose", ["a", "b"], [[1, 2]], [False])
    with pytest.raises(AnnotationFormatError, match="non-finite"):
        rectangle_item("car", [1, 2, np.nan, 4])


def test_interactor_shape_rle_matches_cvat_sdk() -> None:
    rng = np.random.default_rng(1)
    full = np.zeros((40, 50), dtype=bool)
    full[5:30, 8:44] = rng.random((25, 36)) > 0.4
    shape = interactor_mask_shape(full, confidence=0.87)
    assert shape is not None
    assert shape["points"] == [int(v) for v in encode_mask(full)]
    assert shape["attributes"] == [{"spec_id": 0, "value": "0.8700"}]
    assert interactor_response([shape, interactor_mask_shape(np.zeros((4, 4), bool))]) == {"shapes": [shape]}


def test_interactor_shape_offset() -> None:
    full = np.zeros((4, 4), dtype=bool)
    full[1:3, 1:3] = True
    shape = interactor_mask_shape(full, left=100, top=200)
    assert shape is not None and shape["points"] == [0, 4, 101, 201, 102, 202]


def test_detections_to_items_by_label_type() -> None:
    labels = {
        1: LabelSpec("person", "mask", 1),
        2: LabelSpec("car", "rectangle", 2),
        3: LabelSpec("pose", "skeleton", 3, sublabels=(LabelSpec("nose", "points", 0), LabelSpec("eye", "points", 1))),
    }
    mask = MaskCrop(np.ones((2, 3), dtype=bool), 4, 5)
    kp = np.array([[[1, 1, 0.9], [2, 2, 0.1]]] * 4, dtype=float)
    dets = Detections(
        xyxy=np.array([[4, 5, 6, 6], [0, 0, 9, 9], [1, 1, 3, 3], [0, 0, 1, 1]], dtype=float),
        score=np.array([0.9, 0.8, 0.7, 0.6]),
        class_id=np.array([1, 2, 3, 99]),
        masks=(mask, None, None, None),
        keypoints=kp,
    )
    items = detections_to_items(dets, labels, keypoint_thr=0.5)
    assert [i["type"] for i in items] == ["mask", "rectangle", "skeleton"]
    assert items[0]["mask"] == [255] * 6 + [4, 5, 6, 6]
    assert [e["outside"] for e in items[2]["elements"]] == [False, True]
    decoded = json.loads(encode_json(items))
    assert decoded[0]["mask"] == [255] * 6 + [4, 5, 6, 6]
    assert decoded[1:] == items[1:]


def test_raw_mask_json_matches_json_dumps_of_the_list() -> None:
    rng = np.random.default_rng(5)
    for shape in [(1, 1), (3, 7), (40, 33)]:
        bits = rng.random(shape) > 0.5
        raw = RawMask(bits, (5, 6, 5 + shape[1] - 1, 6 + shape[0] - 1))
        as_list = raw.to_list()
        assert raw.to_json() == json.dumps(as_list, separators=(",", ":"))
        assert raw == as_list and len(raw) == len(as_list) and list(raw) == as_list and raw[-4:] == as_list[-4:]
    items = [{"mask": RawMask(np.array([[True, False]]), (0, 0, 1, 0)), "label": "a"}, {"x": "@@cvat-ext"}]
    assert json.loads(encode_json(items)) == [{"mask": [255, 0, 0, 0, 1, 0], "label": "a"}, {"x": "@@cvat-ext"}]
    with pytest.raises(TypeError):
        encode_json({"a": object()})


def test_encode_json() -> None:
    assert encode_json({"a": [1, 2]}) == '{"a":[1,2]}'
    assert encode_json(RawJson(b"[]")) == b"[]"
    with pytest.raises(ValueError):
        encode_json({"a": float("nan")})
