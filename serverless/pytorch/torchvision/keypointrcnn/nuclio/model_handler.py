"""Model side of the Keypoint R-CNN function: one 17-keypoint skeleton per detected person."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvat_ext.functions.detector import DetectorFunction
from cvat_ext.functions.spec import function_yaml_path, read_labels
from cvat_ext.models.torchvision_detection import detector_from_env

#: used when CVAT sends no threshold (it never sends 0.0)
DEFAULT_THRESHOLD = 0.5
#: keypoint heatmap logit below which a keypoint is sent as outside (not visible)
KEYPOINT_THRESHOLD = 0.0


def build_model(context: Any) -> DetectorFunction:
    """Called once per worker by ``init_context``; weights/device from CVAT_EXT_* (function.yaml env)."""
    labels = read_labels(function_yaml_path(Path(__file__).parent))
    return DetectorFunction(
        detector_from_env("keypointrcnn"),
        labels,
        default_threshold=DEFAULT_THRESHOLD,
        keypoint_thr=KEYPOINT_THRESHOLD,
    )
