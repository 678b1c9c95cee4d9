"""The same models as cvat-sdk auto-annotation functions (``cvat-cli task auto-annotate --function-module``).

cvat-sdk's ``DetectionFunction`` protocol (contracts §4.2) is an object with ``spec``
(``DetectionFunctionSpec``) and ``detect(context, image: PIL.Image) -> list[LabeledShapeRequest]``.
Unlike the Nuclio path, CVAT stores the ``score`` the SDK uploads, so every shape carries its
model score. The thresholds follow the context: ``conf_threshold`` (None = the function's
default) and ``conv_mask_to_poly`` (masks become polygons, as the SDK requires then).

This module imports ``cvat_sdk.auto_annotation``: it *is* the SDK's function protocol, the one
exception to "only cvat_ext.cvat imports cvat_sdk". Models are built on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cvat_sdk.auto_annotation as cvataa
import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import MaskRle
from cvat_ext.models.detections import Detections, MaskCrop
from cvat_ext.models.frame_input import check_frame, rgb_from_pil
from cvat_ext.serverless.spec import LabelSpec, labels_by_id

__all__ = ["SdkDetectionFunction", "sdk_label_specs"]

Model = Callable[[npt.NDArray[np.uint8]], Detections]


def sdk_label_specs(labels: Sequence[LabelSpec]) -> list[Any]:
    """cvat-sdk label specs for our labels (skeletons with keypoint sublabels); ids are the class ids."""
    specs = []
    for label in labels:
        if label.id is None:
            continue
        if label.type == "skeleton":
            sublabels = [
                cvataa.keypoint_spec(s.name, s.id if s.id is not None else k) for k, s in enumerate(label.sublabels)
            ]
            specs.append(cvataa.skeleton_label_spec(label.name, label.id, sublabels))
        else:
            specs.append(cvataa.label_spec(label.name, label.id, type=label.type))
    return specs


class SdkDetectionFunction:
    """A cvat-sdk ``DetectionFunction`` around ``model_factory() -> model(rgb) -> Detections``.

    ``keypoint_thr``: keypoints scoring below it are ``outside``. ``polygonize`` turns a mask into
    a (K, 2) polygon when the context asks for ``conv_mask_to_poly`` (masks without one are dropped).
    """

    def __init__(
        self,
        model_factory: Callable[[], Model],
        labels: Sequence[LabelSpec],
        *,
        default_threshold: float = 0.5,
        keypoint_thr: float = 0.0,
        polygonize: Callable[[MaskCrop], npt.NDArray[np.float64] | None] | None = None,
    ) -> None:
        self._model_factory = model_factory
        self._model: Model | None = None
        self._labels = labels_by_id(labels)
        self._default_threshold = default_threshold
        self._keypoint_thr = keypoint_thr
        self._polygonize = polygonize
        self.spec = cvataa.DetectionFunctionSpec(labels=sdk_label_specs(labels))

    def detect(self, context: Any, image: Any) -> list[Any]:
        """Shapes for one PIL image, with ``score``; label/sublabel ids are the spec ids."""
        if self._model is None:
            self._model = self._model_factory()
        limits = getattr(self._model, "frame_limits", None)
        # the SDK has no empty-vs-error distinction per frame: a frame the model cannot take has no shapes
        if limits is not None and not check_frame(int(image.width), int(image.height), limits):
            return []
        rgb = rgb_from_pil(image)
        threshold = context.conf_threshold if context.conf_threshold is not None else self._default_threshold
        dets = self._model(rgb).above(threshold)
        shapes = []
        for i in range(len(dets)):
            label = self._labels.get(int(dets.class_id[i]))
            if label is None:
                continue
            shape = self._shape(label, dets, i, bool(context.conv_mask_to_poly))
            if shape is not None:
                shapes.append(shape)
        return shapes

    def _shape(self, label: LabelSpec, dets: Detections, i: int, to_poly: bool) -> Any:
        score = float(dets.score[i])
        label_id = int(dets.class_id[i])
        if label.type == "skeleton":
            if dets.keypoints is None:
                return None
            elements = [
                cvataa.keypoint(
                    sub.id if sub.id is not None else k,
                    [float(x), float(y)],
                    outside=bool(s < self._keypoint_thr),
                )
                for k, (sub, (x, y, s)) in enumerate(zip(label.sublabels, dets.keypoints[i], strict=True))
            ]
            return cvataa.skeleton(label_id, elements, score=score)
        mask = dets.masks[i] if dets.masks is not None else None
        if label.type in ("mask", "polygon"):
            # the SDK checks types strictly: a mask label gets a mask (or polygon), never a box
            tight = None if mask is None else mask.tight()
            if tight is None:
                return None
            if to_poly or label.type == "polygon":
                polygon = self._polygonize(tight) if self._polygonize is not None else None
                if polygon is None:
                    return None
                return cvataa.polygon(label_id, [float(v) for v in polygon.reshape(-1)], score=score)
            rle = MaskRle.from_bitmap(tight.bitmap, tight.left, tight.top)
            return cvataa.mask(label_id, [*map(float, rle.counts), *map(float, rle.ltrb)], score=score)
        return cvataa.rectangle(label_id, [float(v) for v in dets.xyxy[i]], score=score)
