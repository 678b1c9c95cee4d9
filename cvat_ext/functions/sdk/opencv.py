"""cvat-sdk auto-annotation module: OpenCV people (HOG + body-from-face) and faces (Haar).

    cvat-cli --server-host URL --org ORG task auto-annotate TASK_ID \\
        --function-module cvat_ext.functions.sdk.opencv [--conf-threshold 0.6]

Labels ``person`` and ``face`` (rectangles); shapes carry the detector score.
"""

from __future__ import annotations

from cvat_ext.functions.interface import LabelSpec
from cvat_ext.functions.sdk.function import SdkDetectionFunction
from cvat_ext.models.opencv_people import LABELS, OpenCvPeopleDetector

_function = SdkDetectionFunction(
    OpenCvPeopleDetector,
    [LabelSpec(name, "rectangle", class_id) for class_id, name in LABELS.items()],
    default_threshold=0.5,
)

spec = _function.spec
detect = _function.detect
