"""Model side of the OpenCV people/face function: the detector and the labels it maps to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvat_ext.functions.detector import DetectorFunction
from cvat_ext.functions.spec import function_yaml_path, read_labels
from cvat_ext.models.opencv_people import OpenCvPeopleDetector

#: used when CVAT sends no threshold (it never sends 0.0); 0.5 = positive side of the classifiers
DEFAULT_THRESHOLD = 0.5


def build_model(context: Any) -> DetectorFunction:
    """Called once per worker by ``init_context``."""
    labels = read_labels(function_yaml_path(Path(__file__).parent))
    return DetectorFunction(OpenCvPeopleDetector(), labels, default_threshold=DEFAULT_THRESHOLD)
