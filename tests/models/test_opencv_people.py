"""The OpenCV detector on a real photo: skimage's astronaut (Eileen Collins), 512x512."""

from __future__ import annotations

import json

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
if not hasattr(cv2, "HOGDescriptor"):
    pytest.skip("OpenCV 5 has no HOG people detector; the models extra pins opencv < 5", allow_module_level=True)
pytest.importorskip("nuclio_sdk")
skimage_data = pytest.importorskip("skimage.data")

import nuclio_sdk  # noqa: E402
import nuclio_sdk.test  # noqa: E402

from cvat_ext.models.opencv_people import FACE, PERSON, OpenCvPeopleDetector, nms  # noqa: E402
from tests.functions.images import b64, gradient  # noqa: E402
from tests.functions.loading import function_module, iou  # noqa: E402

pytestmark = pytest.mark.models

# Regions read off the image by eye (xyxy pixels), not produced by any detector:
# the face from hairline to chin and ear to ear, the body from the top of the hair to the bottom
# edge, left shoulder to the right arm.
FACE_XYXY = [175.0, 60.0, 275.0, 165.0]
BODY_XYXY = [20.0, 15.0, 365.0, 511.0]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(skimage_data.astronaut())


def test_detector_finds_face_and_body(astronaut: np.ndarray) -> None:
    dets = OpenCvPeopleDetector()(astronaut).above(0.5)
    faces = dets.xyxy[dets.class_id == FACE].tolist()
    people = dets.xyxy[dets.class_id == PERSON].tolist()
    assert faces and max(iou(f, FACE_XYXY) for f in faces) > 0.6
    assert people and max(iou(p, BODY_XYXY) for p in people) > 0.6
    assert np.all((dets.score >= 0.5) & (dets.score <= 1))


def test_detector_on_featureless_image_finds_no_face() -> None:
    dets = OpenCvPeopleDetector()(gradient(256, 256))
    assert not np.any(dets.class_id == FACE)


def test_large_frames_are_downscaled_and_mapped_back(astronaut: np.ndarray) -> None:
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_LINEAR)
    dets = OpenCvPeopleDetector(max_side=768)(big).above(0.5)
    faces = dets.xyxy[dets.class_id == FACE].tolist()
    assert faces and max(iou(f, [v * 3 for v in FACE_XYXY]) for f in faces) > 0.6


def test_nms_against_naive() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 50, size=(40, 2))
    xyxy = np.concatenate([xy, xy + rng.uniform(5, 30, size=(40, 2))], axis=1)
    score = rng.random(40)
    keep = nms(xyxy, score, 0.4)
    # naive reference: walk by score, keep a box unless it overlaps a kept one too much
    expected: list[int] = []
    for i in np.argsort(-score, kind="stable"):
        if all(iou(xyxy[i].tolist(), xyxy[j].tolist()) <= 0.4 for j in expected):
            expected.append(int(i))
    assert keep.tolist() == expected


def test_function_through_nuclio_platform(astronaut: np.ndarray) -> None:
    module = function_module("opencv/opencv/people-face")
    platform = nuclio_sdk.test.Platform()
    response = platform.call_handler(module.handler, nuclio_sdk.Event(body={"image": b64(astronaut, "JPEG")}))
    assert response.status_code == 200
    items = json.loads(response.body)
    faces = [i["points"] for i in items if i["label"] == "face"]
    people = [i["points"] for i in items if i["label"] == "person"]
    assert max(iou(f, FACE_XYXY) for f in faces) > 0.6
    assert max(iou(p, BODY_XYXY) for p in people) > 0.6
    # threshold absent = default 0.5; a strict threshold drops the weaker detections
    strict = json.loads(
        platform.call_handler(module.handler, nuclio_sdk.Event(body={"image": b64(astronaut), "threshold": 0.95})).body
    )
    assert 0 < len(strict) < len(items) and all(float(i["confidence"]) >= 0.95 for i in strict)
    bad = platform.call_handler(module.handler, nuclio_sdk.Event(body={"image": "####"}))
    assert bad.status_code == 400 and json.loads(bad.body)["field"] == "image"
