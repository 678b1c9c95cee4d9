"""torchvision Mask R-CNN / Keypoint R-CNN functions with tiny random-weight models (real torchvision code)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("nuclio_sdk")

import nuclio_sdk  # noqa: E402
import nuclio_sdk.test  # noqa: E402

from cvat_ext.errors import ConfigError  # noqa: E402
from cvat_ext.functions.coco import (  # noqa: E402
    COCO_CATEGORIES,
    COCO_KEYPOINTS,
    coco_detection_labels,
    coco_person_skeleton_label,
)
from cvat_ext.functions.spec import read_labels  # noqa: E402
from cvat_ext.models.torchvision_detection import (  # noqa: E402
    ENV_VARIANT,
    ENV_WEIGHTS,
    TorchvisionDetector,
    build_detection_model,
    detector_from_env,
)
from tests.functions.images import b64, gradient  # noqa: E402
from tests.functions.loading import SERVERLESS, function_module  # noqa: E402

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = gradient(120, 160)
    img[30:90, 40:120] = rng.integers(0, 255, size=(60, 80, 3), dtype=np.uint8)
    return img


def test_coco_categories_match_torchvision() -> None:
    weights = pytest.importorskip("torchvision.models.detection").MaskRCNN_ResNet50_FPN_Weights.COCO_V1
    assert tuple(weights.meta["categories"]) == COCO_CATEGORIES
    kp_weights = pytest.importorskip("torchvision.models.detection").KeypointRCNN_ResNet50_FPN_Weights.COCO_V1
    assert tuple(kp_weights.meta["keypoint_names"]) == COCO_KEYPOINTS


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("pytorch/torchvision/maskrcnn", coco_detection_labels("mask")),
        ("pytorch/torchvision/keypointrcnn", (coco_person_skeleton_label(),)),
    ],
)
def test_function_yaml_declares_the_model_labels(folder: str, expected: Any) -> None:
    for name in ("function.yaml", "function-gpu.yaml"):
        assert read_labels(SERVERLESS / folder / "nuclio" / name) == expected


def test_tiny_maskrcnn_masks_are_crops_inside_boxes(image: np.ndarray) -> None:
    dets = TorchvisionDetector(build_detection_model("maskrcnn", "tiny"))(image)
    assert len(dets) > 0 and dets.masks is not None and dets.keypoints is None
    h, w = image.shape[:2]
    for box, mask in zip(dets.xyxy, dets.masks, strict=True):
        if mask is None:
            continue
        left, top, right, bottom = mask.ltrb
        assert mask.bitmap.any() and 0 <= left <= right < w and 0 <= top <= bottom < h
        assert left >= np.floor(box[0]) and right <= np.ceil(box[2])
        # tight: the border rows and columns of the crop hold foreground
        assert mask.bitmap[0].any() and mask.bitmap[-1].any() and mask.bitmap[:, 0].any() and mask.bitmap[:, -1].any()


def test_tiny_keypointrcnn_outputs_17_keypoints(image: np.ndarray) -> None:
    dets = TorchvisionDetector(build_detection_model("keypointrcnn", "tiny"))(image)
    assert dets.keypoints is not None and dets.keypoints.shape == (len(dets), 17, 3)


def test_weights_round_trip_and_mismatch(tmp_path: Any, image: np.ndarray) -> None:
    model = build_detection_model("maskrcnn", "tiny", seed=1)
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    # the tiny builder with another seed + the saved weights reproduces the first model exactly
    again = build_detection_model("maskrcnn", "tiny", seed=2, weights_path=path)
    a, b = TorchvisionDetector(model)(image), TorchvisionDetector(again)(image)
    np.testing.assert_allclose(a.xyxy, b.xyxy)
    with pytest.raises(ConfigError, match="does not fit the model"):
        build_detection_model("keypointrcnn", "tiny", weights_path=path)
    with pytest.raises(ConfigError, match="cannot load checkpoint"):
        build_detection_model("maskrcnn", "tiny", weights_path=tmp_path / "missing.pth")


def test_detector_from_env_requires_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VARIANT, "resnet50_fpn")
    monkeypatch.setenv(ENV_WEIGHTS, "/nonexistent/w.pth")
    with pytest.raises(ConfigError, match="not found"):
        detector_from_env("maskrcnn")


def _call(module: Any, body: Any) -> tuple[int, Any]:
    response = nuclio_sdk.test.Platform().call_handler(module.handler, nuclio_sdk.Event(body=body))
    return response.status_code, json.loads(response.body)


def test_maskrcnn_function_through_nuclio(monkeypatch: pytest.MonkeyPatch, image: np.ndarray) -> None:
    monkeypatch.setenv(ENV_VARIANT, "tiny")
    module = function_module("pytorch/torchvision/maskrcnn")
    # random weights score ~0.01: the default threshold (0.5) keeps nothing, an explicit one keeps masks
    status, items = _call(module, {"image": b64(image)})
    assert (status, items) == (200, [])
    status, items = _call(module, {"image": b64(image), "threshold": 0.001})
    assert status == 200 and items
    names = {label.name for label in coco_detection_labels()}
    h, w = image.shape[:2]
    for item in items:
        assert item["label"] in names and float(item["confidence"]) >= 0.001
        assert item["type"] in ("mask", "rectangle")
        if item["type"] == "mask":
            raw, (left, top, right, bottom) = item["mask"][:-4], item["mask"][-4:]
            assert len(raw) == (right - left + 1) * (bottom - top + 1)
            assert set(raw) <= {0, 255} and 255 in raw
            assert 0 <= left <= right < w and 0 <= top <= bottom < h
            if "points" in item:  # polygon for conv_mask_to_poly
                xy = np.asarray(item["points"]).reshape(-1, 2)
                assert xy.shape[0] >= 3 and np.all(xy[:, 0] >= left - 1) and np.all(xy[:, 0] <= right + 1)
    status, answer = _call(module, {"image": b64(image), "threshold": "0.1"})
    assert (status, answer["field"]) == (400, "threshold")


def test_keypointrcnn_function_returns_full_skeletons(monkeypatch: pytest.MonkeyPatch, image: np.ndarray) -> None:
    monkeypatch.setenv(ENV_VARIANT, "tiny")
    module = function_module("pytorch/torchvision/keypointrcnn")
    status, items = _call(module, {"image": b64(image), "threshold": 0.01})
    assert status == 200 and items
    for item in items:
        assert item["label"] == "person" and item["type"] == "skeleton"
        assert [e["label"] for e in item["elements"]] == list(COCO_KEYPOINTS)
        assert all(e["type"] == "points" and len(e["points"]) == 2 for e in item["elements"])
        assert all(isinstance(e["outside"], bool) for e in item["elements"])


def _mask_bitmap(mask: Any, h: int, w: int) -> np.ndarray:
    full = np.zeros((h, w), dtype=bool)
    if mask is not None:
        left, top, right, bottom = mask.ltrb
        full[top : bottom + 1, left : right + 1] = mask.bitmap
    return full


@pytest.mark.parametrize("arch", ["maskrcnn", "keypointrcnn"])
@pytest.mark.parametrize("factor", [2, 3])
def test_frames_above_the_working_size_are_shrunk_and_mapped_back(arch: str, factor: int) -> None:
    # a frame at the tiny model's working size (short side 128) and the same frame repeated
    # factor x factor: the shrunk big frame is the small one, so results are the small ones x factor
    rng = np.random.default_rng(factor)
    small = rng.integers(0, 256, size=(128, 176, 3), dtype=np.uint8)
    big = np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)
    detector = TorchvisionDetector(build_detection_model(arch, "tiny"))
    assert detector.work_scale(*small.shape[:2]) == 1.0 and detector.work_scale(*big.shape[:2]) < 1.0
    a, b = detector(small), detector(big)
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(b.xyxy, np.clip(a.xyxy * factor, 0, [big.shape[1], big.shape[0]] * 2), atol=1e-3)
    if arch == "keypointrcnn":
        assert a.keypoints is not None and b.keypoints is not None
        np.testing.assert_allclose(b.keypoints[..., :2], a.keypoints[..., :2] * factor, atol=1e-3)
        return
    assert a.masks is not None and b.masks is not None
    for ma, mb in zip(a.masks, b.masks, strict=True):
        up = np.repeat(np.repeat(_mask_bitmap(ma, *small.shape[:2]), factor, 0), factor, 1)
        got = _mask_bitmap(mb, *big.shape[:2])
        union = (up | got).sum()
        # bilinear resampling of the probabilities vs nearest-neighbour repetition: edges differ
        assert union == 0 or (up & got).sum() / union > 0.8
