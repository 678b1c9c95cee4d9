"""Model side of the Mask R-CNN function: COCO boxes + instance masks (raw crop + inclusive bbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvat_ext.functions.detector import DetectorFunction
from cvat_ext.functions.spec import function_yaml_path, read_labels
from cvat_ext.models.contours import mask_polygon
from cvat_ext.models.torchvision_detection import detector_from_env

#: used when CVAT sends no threshold (it never sends 0.0)
DEFAULT_THRESHOLD = 0.5


def build_model(context: Any) -> DetectorFunction:
    """Called once per worker by ``init_context``; weights/device from CVAT_EXT_* (function.yaml env)."""
    labels = read_labels(function_yaml_path(Path(__file__).parent))
    return DetectorFunction(
        detector_from_env("maskrcnn"), labels, default_threshold=DEFAULT_THRESHOLD, polygonize=mask_polygon
    )
