"""``similarity_matrix``: one (N, M) similarity per frame for any CVAT shape type.

What each type is compared with (following CVAT quality control, §5.3 of the contracts):

==============  ==============================================================================
rectangle       box IoU; exact rotated-box IoU for pairs where a rotation is not a multiple of 180°
polygon, mask   segment IoU on pixel-centre rasterisations (row runs; polygons and masks mix)
ellipse         segment IoU of the ellipses rasterised analytically (rotation honoured)
polyline        IoU of the lines buffered by ``line_thickness * sqrt(image area)``, rasterised
points          OKS (different point counts -> 0)
skeleton        OKS over keypoints aligned by element label id, invisible (outside) ones handled
cuboid          IoU of the convex hulls of the 8 projected points
==============  ==============================================================================
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import Shape, ShapeType
from cvat_ext.errors import AnnotationFormatError
from cvat_ext.geometry.boxes import FloatArray, box_iou
from cvat_ext.geometry.rotated import rotated_box_iou

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimilarityParams:
    """Parameters of the similarity kernels (CVAT quality/consensus settings names).

    ``iou_thr`` is carried for the matcher and not used by kernels. ``oks_sigma`` applies to every
    keypoint unless ``keypoint_sigmas`` (K,) gives one per keypoint (skeletons: in ascending element
    label id order). ``line_thickness`` is relative to ``sqrt(image area)``; ``image_wh`` is the
    frame size in pixels, ``(0, 0)`` when unknown (then the extent of the compared shapes is used
    as the image and nothing is clipped to the frame).
    """

    iou_thr: float = 0.4
    oks_sigma: float = 0.09
    keypoint_sigmas: npt.NDArray[np.float64] | None = None
    line_thickness: float = 0.01
    image_wh: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou_thr <= 1.0:
            raise AnnotationFormatError(f"similarity params: iou_thr must be in [0, 1], got {self.iou_thr}")
        if not self.oks_sigma > 0:
            raise AnnotationFormatError(f"similarity params: oks_sigma must be > 0, got {self.oks_sigma}")
        if not self.line_thickness > 0:
            raise AnnotationFormatError(f"similarity params: line_thickness must be > 0, got {self.line_thickness}")
        if len(self.image_wh) != 2 or min(self.image_wh) < 0:
            raise AnnotationFormatError(
                f"similarity params: image_wh must be (width, height) >= 0, got {self.image_wh}"
            )
        if self.keypoint_sigmas is not None:
            sig = np.asarray(self.keypoint_sigmas, dtype=np.float64)
            if sig.ndim != 1 or not np.all(sig > 0):
                raise AnnotationFormatError(
                    f"similarity params: keypoint_sigmas must be a (K,) array of positive values, got {sig!r}"
                )
            object.__setattr__(self, "keypoint_sigmas", sig)


#: types that compare with each other (CVAT compares polygons and masks as one "segment" family)
_FAMILY: dict[ShapeType, str] = {
    ShapeType.RECTANGLE: "rectangle",
    ShapeType.POLYGON: "segment",
    ShapeType.MASK: "segment",
    ShapeType.ELLIPSE: "ellipse",
    ShapeType.POLYLINE: "polyline",
    ShapeType.POINTS: "points",
    ShapeType.SKELETON: "skeleton",
    ShapeType.CUBOID: "cuboid",
}


def _family(a: Sequence[Shape], b: Sequence[Shape]) -> str | None:
    families = {_FAMILY[s.type] for s in a} | {_FAMILY[s.type] for s in b}
    if len(families) > 1:
        types = sorted({s.type.value for s in a} | {s.type.value for s in b})
        raise AnnotationFormatError(f"similarity_matrix: cannot compare shape types {types} with each other")
    return families.pop() if families else None


def rectangle_similarity(a: Sequence[Shape], b: Sequence[Shape]) -> FloatArray:
    """Rectangles -> (N, M) IoU, rotation-aware."""
    xyxy_a = np.array([s.points for s in a], dtype=np.float64).reshape(-1, 4)
    xyxy_b = np.array([s.points for s in b], dtype=np.float64).reshape(-1, 4)
    rot_a = np.array([s.rotation for s in a], dtype=np.float64)
    rot_b = np.array([s.rotation for s in b], dtype=np.float64)
    if np.any(np.mod(rot_a, 180.0) != 0) or np.any(np.mod(rot_b, 180.0) != 0):
        return rotated_box_iou(xyxy_a, rot_a, xyxy_b, rot_b)
    return box_iou(xyxy_a, xyxy_b)


def similarity_matrix(a: Sequence[Shape], b: Sequence[Shape], params: SimilarityParams | None = None) -> FloatArray:
    """(N, M) float64 similarity in [0, 1] between the shapes of one frame.

    All shapes of ``a`` and ``b`` must belong to one comparable type family (polygons and masks mix;
    anything else mixed raises :class:`AnnotationFormatError`). Empty input gives an empty (N, M)
    matrix. Symmetric: ``similarity_matrix(a, b) == similarity_matrix(b, a).T``.
    """
    params = params or SimilarityParams()
    family = _family(a, b)
    if family is None or not a or not b:
        return np.zeros((len(a), len(b)))
    if family == "rectangle":
        return rectangle_similarity(a, b)
    raise AnnotationFormatError(f"similarity_matrix: shape type family {family!r} is not supported yet")
