"""MaskRle against cvat-sdk's reference encoder/decoder, and its validation."""

from __future__ import annotations

import re

import numpy as np
import pytest
from cvat_sdk.masks import decode_mask, encode_mask
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cvat_ext.annotations.cvat_json import dump_shape, parse_shape
from cvat_ext.annotations.model import MaskRle
from cvat_ext.errors import AnnotationFormatError

IMAGE_WH = (23, 17)


def _image(draw: st.DrawFn) -> np.ndarray:
    w, h = IMAGE_WH
    return draw(arrays(np.bool_, (h, w)))


@st.composite
def images_with_foreground(draw: st.DrawFn) -> np.ndarray:
    image = _image(draw)
    y, x = draw(st.integers(0, IMAGE_WH[1] - 1)), draw(st.integers(0, IMAGE_WH[0] - 1))
    image[y, x] = True  # encode_mask needs one set pixel to derive its box
    return image


def _mask_shape(points: list[float]) -> dict[str, object]:
    return {"type": "mask", "frame": 0, "label_id": 1, "points": points}


@settings(max_examples=200, deadline=None)
@given(images_with_foreground())
def test_tight_from_bitmap_matches_encode_mask(image: np.ndarray) -> None:
    expected = encode_mask(image)
    rle = MaskRle.from_bitmap(image).tight()
    assert rle.counts.tolist() + list(rle.ltrb) == expected
    # and our parser reads the SDK's encoding back to the same object
    shape = parse_shape(_mask_shape(expected))
    assert shape.mask == rle
    assert dump_shape(shape)["points"] == expected


@settings(max_examples=200, deadline=None)
@given(images_with_foreground(), st.data())
def test_to_bitmap_matches_decode_mask(image: np.ndarray, data: st.DataObject) -> None:
    w, h = IMAGE_WH
    x1 = data.draw(st.integers(0, w - 1))
    y1 = data.draw(st.integers(0, h - 1))
    x2 = data.draw(st.integers(x1 + 1, w))
    y2 = data.draw(st.integers(y1 + 1, h))
    encoded = encode_mask(image, bbox=[x1, y1, x2, y2])  # includes boxes with foreground at the edges
    rle = parse_shape(_mask_shape(encoded)).mask
    assert rle is not None
    full = np.zeros((h, w), dtype=bool)
    left, top, right, bottom = rle.ltrb
    full[top : bottom + 1, left : right + 1] = rle.to_bitmap()
    np.testing.assert_array_equal(full, decode_mask(encoded, image_width=w, image_height=h))
    np.testing.assert_array_equal(rle.to_bitmap(), image[y1:y2, x1:x2])


@settings(max_examples=100, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 9), st.integers(1, 9))), st.integers(0, 50), st.integers(0, 50))
def test_from_bitmap_round_trips_any_crop(crop: np.ndarray, left: int, top: int) -> None:
    rle = MaskRle.from_bitmap(crop, left, top)
    assert rle.ltrb == (left, top, left + crop.shape[1] - 1, top + crop.shape[0] - 1)
    np.testing.assert_array_equal(rle.to_bitmap(), crop)
    assert rle.area == int(crop.sum())
    assert int(rle.counts.sum()) == crop.size


def test_contract_example_2x2_patch() -> None:
    # cvat-contracts §6.5: a fully set 2x2 patch at x=2..3, y=1..2
    shape = parse_shape(_mask_shape([0, 4, 2, 1, 3, 2]))
    assert shape.mask is not None
    assert shape.mask.ltrb == (2, 1, 3, 2)
    assert shape.mask.to_bitmap().tolist() == [[True, True], [True, True]]
    assert shape.xyxy.tolist() == [2.0, 1.0, 4.0, 3.0]


@pytest.mark.parametrize(
    ("counts", "ltrb", "message"),
    [
        ([], (0, 0, 1, 1), "non-empty 1-D counts"),
        ([1, 2], (0, 0, 1, 1), "sum to 3, box (0, 0, 1, 1) has 4 pixels"),
        ([5, -1], (0, 0, 1, 1), "negative run length"),
        ([1.5, 2.5], (0, 0, 1, 1), "whole numbers"),
        ([4], (2, 0, 1, 1), "empty box"),
        ([4], (0, 3, 1, 1), "empty box"),
    ],
)
def test_mask_rle_validation(counts: list[float], ltrb: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(AnnotationFormatError, match=re.escape(message)):
        MaskRle(np.asarray(counts), ltrb)


def test_mask_rle_is_read_only_and_hashable() -> None:
    rle = MaskRle(np.array([1, 3]), (0, 0, 1, 1))
    assert not rle.counts.flags.writeable
    assert hash(rle) == hash(MaskRle(np.array([1, 3]), (0, 0, 1, 1)))
    assert rle != MaskRle(np.array([0, 4]), (0, 0, 1, 1))
