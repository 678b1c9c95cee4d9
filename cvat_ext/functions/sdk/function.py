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

from cvat_ext.annotations.model import MaskRle
from cvat_ext.functions.encode import PlannedShape, plan_shapes
from cvat_ext.functions.interface import DetectionModel, DetectorFunctionSpec, LabelSpec, Polygonize
from cvat_ext.models.frame_input import check_frame, rgb_from_pil

__all__ = ["SdkDetectionFunction", "sdk_label_specs"]


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
    a (K, 2) polygon for polygon labels and when the context asks for ``conv_mask_to_poly`` (a mask
    it cannot polygonize is dropped: the SDK forbids masks then). Which object becomes which shape
    is :func:`~cvat_ext.functions.encode.plan_shapes`'s policy, shared with the Nuclio handler.
    """

    def __init__(
        self,
        model_factory: Callable[[], DetectionModel],
        labels: Sequence[LabelSpec],
        *,
        default_threshold: float = 0.5,
        keypoint_thr: float = 0.0,
        polygonize: Polygonize | None = None,
    ) -> None:
        self._model_factory = model_factory
        self._model: DetectionModel | None = None
        self.function_spec = DetectorFunctionSpec(tuple(labels), default_threshold, keypoint_thr)
        self._labels = self.function_spec.by_class_id
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
        threshold = context.conf_threshold
        if threshold is None:
            threshold = self.function_spec.default_threshold
        dets = self._model(rgb).above(threshold)
        plan = plan_shapes(dets, self._labels, keypoint_thr=self.function_spec.keypoint_thr)
        to_poly = bool(context.conv_mask_to_poly)
        shapes = (self._shape(shape, to_poly) for shape in plan.shapes)
        return [shape for shape in shapes if shape is not None]

    def _shape(self, shape: PlannedShape, to_poly: bool) -> Any:
        label_id = shape.label.id
        assert label_id is not None  # planned shapes come from labels with ids
        if shape.kind == "skeleton":
            assert shape.keypoints_xy is not None and shape.outside is not None
            elements = [
                cvataa.keypoint(sub.id if sub.id is not None else k, [float(x), float(y)], outside=bool(out))
                for k, (sub, (x, y), out) in enumerate(
                    zip(shape.label.sublabels, shape.keypoints_xy.tolist(), shape.outside.tolist(), strict=True)
                )
            ]
            return cvataa.skeleton(label_id, elements, score=shape.score)
        if shape.kind == "mask":
            mask = shape.mask
            assert mask is not None
            if to_poly or shape.label.type == "polygon":
                polygon = self._polygonize(mask) if self._polygonize is not None else None
                if polygon is None:
                    return None
                return cvataa.polygon(label_id, [float(v) for v in polygon.reshape(-1)], score=shape.score)
            rle = MaskRle.from_bitmap(mask.bitmap, mask.left, mask.top)
            return cvataa.mask(label_id, [*map(float, rle.counts), *map(float, rle.ltrb)], score=shape.score)
        return cvataa.rectangle(label_id, [float(v) for v in shape.xyxy], score=shape.score)
