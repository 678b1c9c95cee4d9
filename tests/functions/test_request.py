from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from cvat_ext.errors import FunctionInputError
from cvat_ext.functions.request import (
    DetectorRequest,
    ImageInput,
    InteractorRequest,
    RequestLimits,
    decode_body,
    parse_request,
)
from tests.functions.images import b64, gradient, png_bomb_b64, truncated_png_b64

IMG = b64(gradient())


def test_detector_request_decodes_png_and_jpeg() -> None:
    rgb = gradient()
    req = parse_request(DetectorRequest, {"image": b64(rgb), "threshold": 0.4})
    assert req.threshold == pytest.approx(0.4)
    assert (req.image.width, req.image.height, req.image.format) == (64, 48, "PNG")
    np.testing.assert_array_equal(req.image.rgb(), rgb)
    jpeg = parse_request(DetectorRequest, {"image": b64(rgb, "JPEG")})
    assert jpeg.image.format == "JPEG" and jpeg.image.rgb().shape == (48, 64, 3)


def test_threshold_absent_means_default_and_int_accepted() -> None:
    req = parse_request(DetectorRequest, {"image": IMG})
    assert req.threshold is None and req.threshold_or(0.7) == 0.7
    assert parse_request(DetectorRequest, {"image": IMG, "threshold": 1}).threshold_or(0.2) == 1.0


def test_unknown_keys_are_ignored() -> None:
    req = parse_request(DetectorRequest, {"image": IMG, "frame": 3, "something_new": {"x": 1}})
    assert req.image.width == 64


def test_grey_and_rgba_images_become_rgb() -> None:
    grey = base64.b64encode(_encode_mode("L")).decode()
    rgba = base64.b64encode(_encode_mode("RGBA")).decode()
    for text in (grey, rgba):
        assert parse_request(DetectorRequest, {"image": text}).image.rgb().shape == (10, 20, 3)


def _encode_mode(mode: str) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (20, 10)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({}, "image", "is required"),
        ({"image": 5}, "image", "base64 string"),
        ({"image": None}, "image", "base64 string"),
        ({"image": ""}, "image", "empty"),
        ({"image": "not base64!!"}, "image", "base64"),
        ({"image": base64.b64encode(b"hello world").decode()}, "image", "not a readable image"),
        ({"image": png_bomb_b64()}, "image", "too large"),
        ({"image": png_bomb_b64(9000, 8000)}, "image", "limit"),
        ({"image": IMG, "threshold": "0.5"}, "threshold", "number"),
        ({"image": IMG, "threshold": True}, "threshold", "number"),
        ({"image": IMG, "threshold": 1.5}, "threshold", "less than or equal"),
        ({"image": IMG, "threshold": -0.1}, "threshold", "greater than or equal"),
        ({"image": IMG, "threshold": float("nan")}, "threshold", "finite"),
    ],
)
def test_bad_detector_requests(body: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(FunctionInputError) as info:
        parse_request(DetectorRequest, body)
    assert info.value.field == field
    assert info.value.status == 400
    assert fragment in str(info.value)


def test_truncated_image_fails_on_decode_with_field() -> None:
    req = parse_request(DetectorRequest, {"image": truncated_png_b64()})
    with pytest.raises(FunctionInputError) as info:
        req.image.rgb()
    assert info.value.field == "image"


def test_image_over_b64_limit_is_rejected_before_decoding() -> None:
    limits = RequestLimits(max_image_b64_chars=100)
    with pytest.raises(FunctionInputError, match="limit 100"):
        parse_request(DetectorRequest, {"image": IMG}, limits=limits)


def test_interactor_request_points_and_box() -> None:
    req = parse_request(
        InteractorRequest,
        {"image": IMG, "pos_points": [[3, 4], [5.5, 6]], "neg_points": [[1, 1]], "obj_bbox": [[30, 20], [10, 40]]},
    )
    np.testing.assert_array_equal(req.pos_xy, [[3, 4], [5.5, 6]])
    np.testing.assert_array_equal(req.neg_xy, [[1, 1]])
    np.testing.assert_array_equal(req.box_xyxy, [10, 20, 30, 40])


@pytest.mark.parametrize("box", [None, []])
def test_interactor_without_box(box: object) -> None:
    req = parse_request(InteractorRequest, {"image": IMG, "pos_points": [[1, 2]], "neg_points": [], "obj_bbox": box})
    assert req.box_xyxy is None
    assert req.neg_xy.shape == (0, 2)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"pos_points": [[1]]}, "pos_points.0"),
        ({"pos_points": [[1, "2"]]}, "pos_points.0.1"),
        ({"pos_points": [[1, True]]}, "pos_points.0.1"),
        ({"neg_points": "1,2"}, "neg_points"),
        ({"obj_bbox": [[1, 2]]}, "obj_bbox"),
        ({"obj_bbox": [[1, 2], [3, 4], [5, 6]]}, "obj_bbox"),
        ({"pos_points": [[1, 2]] * 1001}, "pos_points"),
        ({"text_prompts": [1]}, "text_prompts.0"),
    ],
)
def test_bad_interactor_requests(extra: dict[str, object], field: str) -> None:
    with pytest.raises(FunctionInputError) as info:
        parse_request(InteractorRequest, {"image": IMG, **extra})
    assert info.value.field == field


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        ("\"text\"", "JSON object"),
        (b"\xff\xfe", "not JSON"),
        (42, "JSON object"),
    ],
)
def test_decode_body_errors(body: object, fragment: str) -> None:
    with pytest.raises(FunctionInputError, match=fragment) as info:
        decode_body(body)
    assert info.value.field == "body"


def test_decode_body_bytes_and_size_limit() -> None:
    raw = json.dumps({"image": IMG}).encode()
    assert decode_body(raw)["image"] == IMG
    with pytest.raises(FunctionInputError, match="limit 10"):
        decode_body(raw, limits=RequestLimits(max_body_bytes=10))


def test_image_sha256_is_content_key() -> None:
    a = ImageInput.from_b64(IMG)
    b = ImageInput.from_b64(IMG)
    c = ImageInput.from_b64(b64(gradient(48, 65)))
    assert a.sha256() == b.sha256() != c.sha256()
    assert a.decode_s == 0.0  # nothing decoded yet: a cache hit pays only for the hash


def test_truncated_jpeg_is_rejected() -> None:
    data = base64.b64decode(b64(gradient(64, 64), "JPEG"))
    cut = base64.b64encode(data[: len(data) * 2 // 3]).decode()
    req = parse_request(DetectorRequest, {"image": cut})
    with pytest.raises(FunctionInputError) as info:
        req.image.rgb()
    assert info.value.field == "image"
