"""A detector function: image -> model -> thresholded :class:`Detections` -> CVAT detector items.

The model is any callable ``model(rgb (H, W, 3) uint8) -> Detections`` returning unthresholded
scores; ``class_id`` values are the ``id`` of labels declared in the function's spec. The
threshold is the request's, or the function's default when CVAT sends none (it omits 0.0 too).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cvat_ext.functions.interface import DetectionModel, DetectorFunctionSpec, LabelSpec, Polygonize
from cvat_ext.functions.request import DetectorRequest
from cvat_ext.functions.response import detections_to_items
from cvat_ext.models.frame_input import FrameLimits, check_frame

__all__ = ["DetectorFunction"]


@dataclass
class DetectorFunction:
    """Callable ``(DetectorRequest) -> list of CVAT detector items``.

    ``labels`` the function's declared labels (each with the model class ``id``);
    ``default_threshold`` used when the request carries none; ``keypoint_thr`` below which a
    keypoint is sent ``outside``; ``polygonize`` (optional) turns a mask into a (K, 2) polygon sent
    as the item's ``points`` so CVAT's ``conv_mask_to_poly`` works. Labels and thresholds are
    checked once, as a :class:`DetectorFunctionSpec`.
    """

    model: DetectionModel
    labels: Sequence[LabelSpec]
    default_threshold: float = 0.5
    keypoint_thr: float = 0.0
    polygonize: Polygonize | None = None
    #: the frame geometry the model takes (default: the model's own ``frame_limits`` attribute, if any)
    frame_limits: FrameLimits | None = None
    #: seconds in the model's forward pass / in thresholding + building CVAT items (summed)
    forward_s: float = field(default=0.0, init=False)
    items_s: float = field(default=0.0, init=False)
    spec: DetectorFunctionSpec = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.spec = DetectorFunctionSpec(tuple(self.labels), self.default_threshold, self.keypoint_thr)
        self._by_id = self.spec.by_class_id
        if self.frame_limits is None:
            self.frame_limits = getattr(self.model, "frame_limits", None)

    def __call__(self, request: DetectorRequest) -> list[dict[str, Any]]:
        image = request.image
        # checked on the header, before any pixel is decoded or the model library is called
        if self.frame_limits is not None and not check_frame(image.width, image.height, self.frame_limits):
            return []
        rgb = image.rgb()
        t0 = time.perf_counter()
        dets = self.model(rgb)
        t1 = time.perf_counter()
        dets = dets.above(request.threshold_or(self.spec.default_threshold))
        items = detections_to_items(dets, self._by_id, keypoint_thr=self.spec.keypoint_thr, polygonize=self.polygonize)
        self.forward_s += t1 - t0
        self.items_s += time.perf_counter() - t1
        return items
