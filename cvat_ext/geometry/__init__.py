"""Vectorised all-pairs similarity kernels for every CVAT shape type (numpy/scipy only).

Per frame: :func:`similarity_matrix` dispatches lists of :class:`~cvat_ext.annotations.model.Shape`
to the kernel of their type. The kernels take columnar arrays and return (N, M) float64 in [0, 1];
empty input gives a correctly shaped empty matrix; degenerate input gives 0, never NaN; every
kernel is exactly symmetric (``k(a, b) == k(b, a).T``).

Modules: ``boxes`` (axis-aligned IoU, batched over frames), ``rotated`` (exact convex clipping),
``masks`` (row-run segment IoU, CVAT RLE), ``polygons`` / ``ellipses`` / ``lines`` (scanline
rasterisers into row runs), ``keypoints`` (OKS, sigma estimation), ``cuboids`` (2D hull IoU, 3D
oriented-box IoU), ``similarity`` (``SimilarityParams`` and the dispatch).
"""

from cvat_ext.geometry.boxes import box_area, box_iou, box_iou_batched, box_iou_pairs
from cvat_ext.geometry.cuboids import convex_hulls, cuboid2d_iou, cuboid3d_iou
from cvat_ext.geometry.ellipses import ellipse_iou, ellipse_runs
from cvat_ext.geometry.keypoints import (
    estimate_keypoint_sigmas,
    keypoint_box_wh,
    keypoint_sigma_moments,
    oks,
    oks_paired,
    sigmas_from_moments,
)
from cvat_ext.geometry.lines import line_iou, line_point_similarity, polyline_runs
from cvat_ext.geometry.masks import (
    RowRuns,
    concat_ranges,
    empty_runs,
    mask_iou,
    mask_rle_columns,
    owner_offsets,
    rle_columns_to_runs,
    rle_flat_to_runs,
    rle_to_runs,
    runs_intersection,
    runs_iou,
    runs_iou_paired,
    runs_iou_sparse,
    take_runs,
)
from cvat_ext.geometry.polygons import polygon_iou, polygon_runs, polygon_runs_flat
from cvat_ext.geometry.rotated import box_corners, convex_intersection_area, convex_iou, rotated_box_iou
from cvat_ext.geometry.similarity import (
    LINE_METRICS,
    SHAPE_FAMILY,
    SimilarityParams,
    points_similarity,
    rectangle_similarity,
    segment_runs,
    segment_runs_flat,
    similarity_matrices,
    similarity_matrix,
    similarity_sparse,
    skeleton_keypoints,
    skeleton_similarity,
)

#: the issue's name for the 2D cuboid kernel
cuboid_iou = cuboid2d_iou

__all__ = [
    "LINE_METRICS",
    "SHAPE_FAMILY",
    "RowRuns",
    "SimilarityParams",
    "box_area",
    "box_corners",
    "box_iou",
    "box_iou_batched",
    "box_iou_pairs",
    "concat_ranges",
    "convex_hulls",
    "convex_intersection_area",
    "convex_iou",
    "cuboid2d_iou",
    "cuboid3d_iou",
    "cuboid_iou",
    "ellipse_iou",
    "ellipse_runs",
    "empty_runs",
    "estimate_keypoint_sigmas",
    "keypoint_box_wh",
    "keypoint_sigma_moments",
    "line_iou",
    "line_point_similarity",
    "mask_iou",
    "mask_rle_columns",
    "oks",
    "oks_paired",
    "owner_offsets",
    "points_similarity",
    "polygon_iou",
    "polygon_runs",
    "polygon_runs_flat",
    "polyline_runs",
    "rectangle_similarity",
    "rle_columns_to_runs",
    "rle_flat_to_runs",
    "rle_to_runs",
    "rotated_box_iou",
    "runs_intersection",
    "runs_iou",
    "runs_iou_paired",
    "runs_iou_sparse",
    "segment_runs",
    "segment_runs_flat",
    "sigmas_from_moments",
    "similarity_matrices",
    "similarity_matrix",
    "similarity_sparse",
    "skeleton_keypoints",
    "skeleton_similarity",
    "take_runs",
]
