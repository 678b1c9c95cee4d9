"""From a model's :class:`Detections` to CVAT shapes: the one policy both function paths follow.

The Nuclio handler (:func:`cvat_ext.functions.response.detections_to_items`, JSON items with label
names) and the cvat-sdk path (:class:`cvat_ext.functions.sdk.function.SdkDetectionFunction`,
``LabeledShapeRequest`` with label ids) write different formats, but which objects become which
shape is decided here, once. Per object ``i`` (a row of ``dets``), by the declared label
``labels[class_id[i]]``:

* **no declared label** for its class -> skipped (the model knows more classes than the function
  declares, e.g. COCO classes left out of the spec);
* **skeleton** label -> a skeleton with one element per sublabel, in sublabel order; a keypoint
  scoring below ``keypoint_thr`` is ``outside`` at its predicted position. A model that gives no
  keypoints for a skeleton label is a function bug -> :class:`AnnotationFormatError`;
* **mask** or **polygon** label -> the object's mask, cropped to its foreground. An object
  **without a mask (or with an empty one) is dropped**, never sent as its box. Why: CVAT pairs a
  task's mask/polygon labels only with mask/polygon function labels (contracts §2.7) and the SDK
  refuses a shape whose type is not its label's, so a box there is a shape of the wrong kind
  that an annotator would have to find and redraw; a missing shape is visible, a wrong one is
  not. :attr:`ShapePlan.dropped_without_mask` counts them and the count is logged;
* any other label (``rectangle``, ``any``, ...) -> the box ``xyxy``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import AnnotationFormatError
from cvat_ext.functions.interface import LabelSpec
from cvat_ext.models.detections import Detections, MaskCrop

__all__ = ["PlannedShape", "ShapePlan", "plan_shapes"]

logger = logging.getLogger(__name__)

ShapeKind = Literal["rectangle", "mask", "skeleton"]
MASK_LABEL_TYPES = ("mask", "polygon")


@dataclass(frozen=True, slots=True, eq=False)
class PlannedShape:
    """One object to send: ``row`` in the Detections, its label, the kind of shape and its geometry.

    ``xyxy`` (4,) pixels; ``mask`` the tight crop (kind ``mask``); ``keypoints_xy`` (K, 2) and
    ``outside`` (K,) bool (kind ``skeleton``).
    """

    row: int
    label: LabelSpec
    kind: ShapeKind
    score: float
    xyxy: npt.NDArray[np.float64]
    mask: MaskCrop | None = None
    keypoints_xy: npt.NDArray[np.float64] | None = None
    outside: npt.NDArray[np.bool_] | None = None


@dataclass(frozen=True, slots=True)
class ShapePlan:
    """The shapes to send, in Detections order, and what the policy left out."""

    shapes: tuple[PlannedShape, ...]
    dropped_without_mask: int = 0
    skipped_unlabelled: int = 0


def plan_shapes(dets: Detections, labels: Mapping[int, LabelSpec], *, keypoint_thr: float = 0.0) -> ShapePlan:
    """Apply the policy of the module docstring to ``dets`` (already thresholded by score)."""
    shapes: list[PlannedShape] = []
    dropped = skipped = 0
    class_ids = dets.class_id.tolist()
    scores = dets.score.tolist()
    for i, class_id in enumerate(class_ids):
        label = labels.get(class_id)
        if label is None:
            skipped += 1
            continue
        if label.type == "skeleton":
            if dets.keypoints is None:
                raise AnnotationFormatError(
                    f"detections: label '{label.name}' is a skeleton but the model gave no keypoints"
                )
            kp = dets.keypoints[i]
            if kp.shape[0] != len(label.sublabels):
                raise AnnotationFormatError(
                    f"detections: skeleton '{label.name}' has {len(label.sublabels)} sublabels but the model gave "
                    f"{kp.shape[0]} keypoints"
                )
            shapes.append(
                PlannedShape(
                    i,
                    label,
                    "skeleton",
                    scores[i],
                    dets.xyxy[i],
                    keypoints_xy=kp[:, :2],
                    outside=kp[:, 2] < keypoint_thr,
                )
            )
        elif label.type in MASK_LABEL_TYPES:
            mask = dets.masks[i] if dets.masks is not None else None
            tight = None if mask is None else mask.tight()
            if tight is None:
                dropped += 1
                continue
            shapes.append(PlannedShape(i, label, "mask", scores[i], dets.xyxy[i], mask=tight))
        else:
            shapes.append(PlannedShape(i, label, "rectangle", scores[i], dets.xyxy[i]))
    if dropped:
        logger.debug("dropped %d objects of mask/polygon labels that came without a mask", dropped)
    return ShapePlan(tuple(shapes), dropped, skipped)
