"""cvat-sdk auto-annotation factories for the torchvision COCO models (``create(**params)``).

    cvat-cli task auto-annotate TASK_ID --function-module cvat_ext.functions.sdk.maskrcnn \\
        [-p weights=str:/path/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth] [-p device=str:cuda] [--conv-mask-to-poly]

Without ``weights``, torchvision fetches its published COCO checkpoint through torch.hub, which
checks the sha256 prefix in the file name.
"""

from __future__ import annotations

import importlib
from typing import Any

from cvat_ext.functions.coco import coco_detection_labels, coco_person_skeleton_label
from cvat_ext.functions.sdk.function import SdkDetectionFunction
from cvat_ext.models.contours import mask_polygon
from cvat_ext.models.torchvision_detection import Arch, TorchvisionDetector, build_detection_model

_WEIGHT_ENUMS = {
    ("maskrcnn", "resnet50_fpn"): "MaskRCNN_ResNet50_FPN_Weights",
    ("maskrcnn", "resnet50_fpn_v2"): "MaskRCNN_ResNet50_FPN_V2_Weights",
    ("keypointrcnn", "resnet50_fpn"): "KeypointRCNN_ResNet50_FPN_Weights",
}


def _factory(arch: Arch, variant: str, weights: str, device: str) -> Any:
    def build() -> TorchvisionDetector:
        torch = importlib.import_module("torch")
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if weights or variant == "tiny":
            model = build_detection_model(arch, variant, weights_path=weights or None)
        else:
            detection = importlib.import_module("torchvision.models.detection")
            enum = getattr(detection, _WEIGHT_ENUMS[(arch, variant)])
            state = enum.COCO_V1.get_state_dict(progress=False, check_hash=True)
            model = build_detection_model(arch, variant)
            model.load_state_dict(state)
        return TorchvisionDetector(model, device=dev)

    return build


def create_maskrcnn(
    variant: str = "resnet50_fpn", weights: str = "", device: str = "", threshold: float = 0.5
) -> SdkDetectionFunction:
    """Mask R-CNN: 80 COCO classes as masks (polygons with --conv-mask-to-poly)."""
    return SdkDetectionFunction(
        _factory("maskrcnn", variant, weights, device),
        coco_detection_labels("mask"),
        default_threshold=threshold,
        polygonize=mask_polygon,
    )


def create_keypointrcnn(
    variant: str = "resnet50_fpn",
    weights: str = "",
    device: str = "",
    threshold: float = 0.5,
    keypoint_thr: float = 0.0,
) -> SdkDetectionFunction:
    """Keypoint R-CNN: one 17-keypoint ``person`` skeleton per detection."""
    return SdkDetectionFunction(
        _factory("keypointrcnn", variant, weights, device),
        (coco_person_skeleton_label(),),
        default_threshold=threshold,
        keypoint_thr=keypoint_thr,
    )
