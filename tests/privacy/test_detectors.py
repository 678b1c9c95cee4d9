"""Face and plate detectors on real photos with hand-labelled boxes; a deployed detector over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from cvat_ext.errors import ConfigError, CvatExtError
from cvat_ext.functions.dev.gateway import FunctionGateway
from cvat_ext.privacy.detectors import FACE, PLATE, CascadeDetector, HttpDetector, union_detector
from cvat_ext.privacy.redact import merge_regions, redact
from tests.privacy.photos import box_iou, labelled_photos, plate_photos

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cascades() -> CascadeDetector:
    return CascadeDetector()


def test_every_labelled_face_is_found(cascades: CascadeDetector) -> None:
    """Recall 3/3 on the labelled photos (the measured figure, bench/privacy_blur.py)."""
    for photo in labelled_photos():
        found = cascades(photo.rgb)
        faces = found.xyxy[found.class_id == FACE]
        if len(photo.faces_xyxy):
            assert (box_iou(photo.faces_xyxy, faces).max(axis=1) >= 0.5).all(), photo.name
        assert not (found.class_id == PLATE).any(), photo.name  # no plate in these photos


@pytest.mark.parametrize("name", ["skimage:coffee", "skimage:rocket"])
def test_photos_without_faces_give_none(cascades: CascadeDetector, name: str) -> None:
    photo = next(p for p in labelled_photos() if p.name == name)
    assert len(cascades(photo.rgb)) == 0


def test_blurred_faces_are_not_found_again(cascades: CascadeDetector) -> None:
    for photo in labelled_photos():
        found = cascades(photo.rgb)
        clean = redact(photo.rgb, merge_regions(found.xyxy, photo.rgb.shape[:2], margin=0.25))
        assert len(cascades(clean)) == 0, photo.name


def test_profile_cascade_sees_both_sides(cascades: CascadeDetector) -> None:
    profile = CascadeDetector(cascades=("profile",))
    camera = next(p for p in labelled_photos() if p.name == "skimage:camera")
    left = profile(camera.rgb)
    right = profile(np.ascontiguousarray(camera.rgb[:, ::-1]))
    assert len(left) >= 1 and len(right) >= 1
    width = camera.rgb.shape[1]
    mirrored = right.xyxy[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [width, 0, width, 0]
    assert box_iou(left.xyxy, mirrored).max() > 0.5


def test_plate_photos_and_their_boxes_load() -> None:
    photos = plate_photos()
    assert [p.rgb.shape[:2] for p in photos] == [(331, 518), (512, 512)]
    for photo in photos:
        h, w = photo.rgb.shape[:2]
        boxes = np.concatenate([photo.plates_xyxy, photo.ignore_xyxy])
        assert ((boxes[:, :2] >= 0) & (boxes[:, 2:] <= [w, h]) & (boxes[:, 2:] > boxes[:, :2])).all()


def test_plate_cascade_on_the_czech_plate_needs_it_larger_than_its_window() -> None:
    """The measured behaviour the ops page reports: on the 518x331 photo the plate (82x21 px, the
    cascade's window is 60x20) is missed; on the photo enlarged 2x it is found (IoU >= 0.5)."""
    import cv2

    photo = plate_photos()[0]
    plates = CascadeDetector(cascades=("plate",))
    assert len(plates(photo.rgb)) == 0
    big = plates(np.asarray(cv2.resize(photo.rgb, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)))
    assert box_iou(photo.plates_xyxy, big.xyxy / 2).max() >= 0.5


def test_bad_configuration_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown cascades"):
        CascadeDetector(cascades=("eyes",))
    with pytest.raises(ConfigError, match="face or plate"):
        HttpDetector("http://x", {"face": "person"})
    with pytest.raises(ConfigError, match="no detector"):
        union_detector([])


@pytest.fixture(scope="module")
def face_function() -> Iterator[str]:
    """The repo's opencv-people-face detector served by the local gateway; its direct URL."""
    with FunctionGateway([REPO / "serverless" / "opencv"]) as gateway:
        listing = requests.get(
            gateway.url + "/api/functions", headers={"x-nuclio-project-name": "cvat"}, timeout=10
        ).json()
        yield f"http://127.0.0.1:{listing['opencv-people-face']['status']['httpPort']}"


def test_deployed_detector_over_http(face_function: str) -> None:
    detector = HttpDetector(face_function, {"face": "face"})
    both = union_detector([detector, CascadeDetector(cascades=("frontal",))])
    assert "http:" in both.name and "opencv-haar" in both.name
    for photo in labelled_photos()[:2]:
        found = detector(photo.rgb)
        assert (found.class_id == FACE).all()
        assert box_iou(photo.faces_xyxy, found.xyxy).max() >= 0.5
        assert len(both(photo.rgb)) >= 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"<html>", "not JSON"),
        (b'{"a": 1}', "expected a list"),
        (b'[{"label": "face", "type": "rectangle", "points": [1]}]', "item 0"),
    ],
)
def test_broken_detector_answers_name_the_detector(answer: bytes, message: str) -> None:
    detector = HttpDetector("http://det", {"face": "face"}, post=lambda url, body: answer)
    with pytest.raises(CvatExtError, match=f"privacy detector http://det: .*{message}"):
        detector(np.zeros((8, 8, 3), dtype=np.uint8))


def test_unreachable_detector_is_one_clear_error() -> None:
    detector = HttpDetector("http://127.0.0.1:9", {"face": "face"}, timeout_s=2)
    with pytest.raises(CvatExtError, match="request failed"):
        detector(np.zeros((8, 8, 3), dtype=np.uint8))


def test_pose_detector_head_keypoints_give_face_boxes() -> None:
    def element(name: str, x: float, y: float, outside: bool = False) -> dict[str, object]:
        return {"label": name, "type": "points", "points": [x, y], "outside": outside}

    skeletons = [
        {
            "label": "person",
            "type": "skeleton",
            "confidence": "0.9",
            "elements": [
                element("nose", 100, 100),
                element("left_eye", 90, 90),
                element("right_eye", 110, 90),
                element("left_ear", 80, 95, outside=True),
                element("left_shoulder", 60, 160),
            ],
        },
        # one visible head keypoint is not enough for a box
        {
            "label": "person",
            "type": "skeleton",
            "elements": [element("nose", 300, 300), element("left_eye", 0, 0, True)],
        },
    ]
    detector = HttpDetector("http://pose", {"person": "face"}, post=lambda url, body: json.dumps(skeletons).encode())
    found = detector(np.zeros((400, 400, 3), dtype=np.uint8))
    assert found.class_id.tolist() == [FACE] and found.score.tolist() == [0.9]
    # head points span 20 px: a 32 px square around their centre (100, 95)
    np.testing.assert_allclose(found.xyxy, [[84, 79, 116, 111]])
