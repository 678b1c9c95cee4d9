"""The shared handler through the real nuclio-sdk test platform, Event and Context."""

from __future__ import annotations

import json
from typing import Any

import nuclio_sdk
import nuclio_sdk.test
import pytest

from cvat_ext.errors import FunctionInputError
from cvat_ext.functions.handler import HandlerStats, make_handler
from cvat_ext.functions.request import DetectorRequest, InteractorRequest, RequestLimits
from cvat_ext.functions.response import RawJson
from tests.functions.images import b64, gradient, png_bomb_b64, truncated_png_b64

IMG = b64(gradient())
BUILDS: list[int] = []


def _size_model(context: Any) -> Any:
    BUILDS.append(1)

    def model(req: DetectorRequest) -> list[dict[str, Any]]:
        h, w = req.image.rgb().shape[:2]
        thr = req.threshold_or(0.25)
        return [{"label": "thing", "type": "rectangle", "points": [0, 0, w - 1, h - 1], "confidence": str(thr)}]

    return model


def _broken_model(context: Any) -> Any:
    def model(req: DetectorRequest) -> Any:
        if req.threshold == 0.5:
            raise FunctionInputError("pos_points: need at least one click", field="pos_points")
        if req.threshold == 0.6:
            raise MemoryError("out of memory")
        raise RuntimeError("model exploded")

    return model


def _echo_interactor(context: Any) -> Any:
    return lambda req: {"n_pos": len(req.pos_points), "box": None if req.box_xyxy is None else req.box_xyxy.tolist()}


init_context, handler = make_handler(_size_model)
_, broken_handler = make_handler(_broken_model)
_, interactor_handler = make_handler(_echo_interactor, request_type=InteractorRequest)
_, raw_handler = make_handler(lambda ctx: lambda req: RawJson('{"blob":"AAAA"}'))
_, small_handler = make_handler(_size_model, limits=RequestLimits(max_image_b64_chars=50))


@pytest.fixture
def platform() -> nuclio_sdk.test.Platform:
    return nuclio_sdk.test.Platform()


def _call(platform: nuclio_sdk.test.Platform, h: Any, body: Any, **kw: Any) -> tuple[int, Any]:
    response = platform.call_handler(h, nuclio_sdk.Event(body=body, **kw))
    assert isinstance(response, nuclio_sdk.Response)
    assert response.content_type == "application/json"
    return response.status_code, json.loads(response.body)


def test_detector_ok_and_init_once(platform: nuclio_sdk.test.Platform) -> None:
    BUILDS.clear()
    status, body = _call(platform, handler, {"image": IMG, "threshold": 0.4})
    assert status == 200
    assert body == [{"label": "thing", "type": "rectangle", "points": [0, 0, 63, 47], "confidence": "0.4"}]
    status, body = _call(platform, handler, {"image": IMG})
    assert status == 200 and body[0]["confidence"] == "0.25"  # threshold absent = function default
    assert BUILDS == [1]  # init_context ran once for the worker


def test_bytes_body_is_decoded(platform: nuclio_sdk.test.Platform) -> None:
    status, _ = _call(platform, handler, json.dumps({"image": IMG}).encode(), content_type="application/json")
    assert status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "image"),
        ({"image": "%%%"}, "image"),
        ({"image": "aGVsbG8="}, "image"),
        ({"image": png_bomb_b64()}, "image"),
        ({"image": truncated_png_b64()}, "image"),
        ({"image": IMG, "threshold": "high"}, "threshold"),
        (b"not json", "body"),
        ([1, 2], "body"),
        (None, "body"),
    ],
)
def test_malformed_requests_get_400_json(platform: nuclio_sdk.test.Platform, body: Any, field: str) -> None:
    status, answer = _call(platform, handler, body)
    assert status == 400
    assert answer["field"] == field and answer["error"].startswith(field)


def test_oversized_image_is_400(platform: nuclio_sdk.test.Platform) -> None:
    status, answer = _call(platform, small_handler, {"image": IMG})
    assert (status, answer["field"]) == (400, "image")


def test_model_errors_never_kill_the_worker(platform: nuclio_sdk.test.Platform) -> None:
    status, answer = _call(platform, broken_handler, {"image": IMG, "threshold": 0.5})
    assert (status, answer["field"]) == (400, "pos_points")
    for thr in (0.6, 0.7):
        status, answer = _call(platform, broken_handler, {"image": IMG, "threshold": thr})
        assert status == 500 and answer["field"] is None
        assert answer["error"].startswith("internal error: ")
    # the same worker keeps answering
    status, _ = _call(platform, handler, {"image": IMG})
    assert status == 200


def test_interactor_request_type(platform: nuclio_sdk.test.Platform) -> None:
    status, body = _call(
        platform, interactor_handler, {"image": IMG, "pos_points": [[1, 2]], "neg_points": [], "obj_bbox": []}
    )
    assert (status, body) == (200, {"n_pos": 1, "box": None})
    status, body = _call(platform, interactor_handler, {"image": IMG, "pos_points": [[1, "x"]]})
    assert (status, body["field"]) == (400, "pos_points.0.1")


def test_raw_json_passes_through(platform: nuclio_sdk.test.Platform) -> None:
    assert _call(platform, raw_handler, {"image": IMG}) == (200, {"blob": "AAAA"})


def test_stats_split_runtime_and_model_time() -> None:
    context = nuclio_sdk.Context(nuclio_sdk.Logger(10, "t"))
    init_context(context)
    for _ in range(3):
        handler(context, nuclio_sdk.Event(body={"image": IMG}))
    handler(context, nuclio_sdk.Event(body={}))
    stats: HandlerStats = context.user_data.stats
    assert (stats.requests, stats.client_errors, stats.server_errors) == (4, 1, 0)
    assert stats.decode_s > 0 and stats.model_s >= 0 and stats.parse_s > 0 and stats.encode_s > 0
    assert stats.overhead_s == pytest.approx(stats.parse_s + stats.decode_s + stats.encode_s)


def test_handler_inits_lazily_without_init_context() -> None:
    context = nuclio_sdk.Context(nuclio_sdk.Logger(10, "t"))
    response = handler(context, nuclio_sdk.Event(body={"image": IMG}))
    assert response.status_code == 200
