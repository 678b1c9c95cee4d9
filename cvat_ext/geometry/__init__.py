"""Vectorised all-pairs similarity kernels for every CVAT shape type (numpy/scipy only).

Per frame: :func:`similarity_matrix` dispatches a list of :class:`~cvat_ext.annotations.model.Shape`
to the kernel of their type. The kernels take columnar arrays and return (N, M) float64 in [0, 1];
empty input gives a correctly shaped empty matrix; degenerate input gives 0, never NaN.
"""

from cvat_ext.geometry.boxes import box_area, box_iou, box_iou_batched
from cvat_ext.geometry.rotated import box_corners, convex_intersection_area, convex_iou, rotated_box_iou
from cvat_ext.geometry.similarity import SimilarityParams, rectangle_similarity, similarity_matrix

__all__ = [
    "SimilarityParams",
    "box_area",
    "box_corners",
    "box_iou",
    "box_iou_batched",
    "convex_intersection_area",
    "convex_iou",
    "rectangle_similarity",
    "rotated_box_iou",
    "similarity_matrix",
]
