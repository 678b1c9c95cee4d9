"""``similarity_matrix``: one (N, M) similarity per frame for any CVAT shape type.

What each type is compared with (CVAT quality control and merge, §5.3/§5.6 of the contracts, and
where we differ from CVAT 2.73):

==============  ==============================================================================
rectangle       box IoU; exact rotated-box IoU (convex clipping) where a rotation is not a
                multiple of 180°. CVAT: plain box IoU whenever the two rotations are equal
                (even non-zero), pycocotools-rasterised polygons otherwise.
polygon, mask   pixel IoU of pixel-centre rasterisations (row runs); polygons and masks mix,
                clipped to the frame when ``image_wh`` is known. CVAT: pycocotools RLE IoU
                (identical for masks; polygons rasterise within a boundary pixel).
ellipse         pixel IoU of the ellipses rasterised analytically (rotation honoured).
polyline        ``line_metric="buffer_iou"``: IoU of the lines buffered by
                ``line_thickness * sqrt(image area)``; ``"cvat"``: CVAT's pointwise Gaussian.
points          OKS with keypoints in order (different point counts -> 0). CVAT instead pairs
                the points of two sets by assignment and scores unpaired ones as misses.
skeleton        OKS over keypoints aligned by element label id, ``outside`` = invisible.
cuboid          IoU of the convex hulls of the 8 projected points (CVAT compares none).
==============  ==============================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import Shape, ShapeType
from cvat_ext.errors import AnnotationFormatError
from cvat_ext.geometry.boxes import FloatArray, box_iou
from cvat_ext.geometry.cuboids import cuboid2d_iou
from cvat_ext.geometry.ellipses import ellipse_runs
from cvat_ext.geometry.keypoints import oks
from cvat_ext.geometry.lines import line_point_similarity, polyline_runs
from cvat_ext.geometry.masks import (
    IntArray,
    RowRuns,
    concat_ranges,
    empty_runs,
    mask_rle_columns,
    rle_columns_to_runs,
    rle_flat_to_runs,
    runs_iou,
)
from cvat_ext.geometry.polygons import polygon_runs_flat
from cvat_ext.geometry.rotated import rotated_box_iou

#: polyline similarity variants (``SimilarityParams.line_metric``)
LINE_METRICS = frozenset({"buffer_iou", "cvat"})


@dataclass(frozen=True)
class SimilarityParams:
    """Parameters of the similarity kernels (CVAT quality/consensus settings names).

    ``iou_thr`` is carried for the matcher and not used by kernels. ``oks_sigma`` applies to every
    keypoint unless ``keypoint_sigmas`` (K,) gives one per keypoint (skeletons: in ascending element
    label id order). ``element_sigmas`` maps a skeleton element's (keypoint's) label id to its sigma
    (keypoints it does not list use ``oks_sigma``); it serves jobs with several skeleton labels,
    whose keypoint label ids differ. ``line_thickness`` is relative to ``sqrt(image area)``; ``image_wh`` is the
    frame size in pixels, ``(0, 0)`` when unknown (then the extent of the compared shapes is used
    as the image and nothing is clipped to the frame). ``line_metric``: ``"buffer_iou"`` (IoU of
    the lines buffered by ``line_thickness * sqrt(image area)``) or ``"cvat"`` (CVAT 2.73's own
    pointwise Gaussian line similarity, see :func:`~cvat_ext.geometry.lines.line_point_similarity`).
    """

    iou_thr: float = 0.4
    oks_sigma: float = 0.09
    keypoint_sigmas: npt.NDArray[np.float64] | None = None
    element_sigmas: Mapping[int, float] | None = None
    line_thickness: float = 0.01
    image_wh: tuple[int, int] = (0, 0)
    line_metric: str = "buffer_iou"

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
        if self.line_metric not in LINE_METRICS:
            raise AnnotationFormatError(
                f"similarity params: line_metric must be one of {sorted(LINE_METRICS)}, got {self.line_metric!r}"
            )
        if self.keypoint_sigmas is not None:
            sig = np.asarray(self.keypoint_sigmas, dtype=np.float64)
            if sig.ndim != 1 or not np.all(sig > 0):
                raise AnnotationFormatError(
                    f"similarity params: keypoint_sigmas must be a (K,) array of positive values, got {sig!r}"
                )
            object.__setattr__(self, "keypoint_sigmas", sig)
        if self.element_sigmas is not None and not all(v > 0 for v in self.element_sigmas.values()):
            raise AnnotationFormatError(
                f"similarity params: element_sigmas must be positive, got {dict(self.element_sigmas)!r}"
            )

    def sized(self, wh: tuple[int, int]) -> SimilarityParams:
        """These parameters for frames of size ``wh`` (width, height): ``self`` when it already is."""
        return self if wh == self.image_wh else dataclasses.replace(self, image_wh=wh)


#: types that compare with each other (CVAT compares polygons and masks as one "segment" family)
SHAPE_FAMILY: dict[ShapeType, str] = {
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
    families = {SHAPE_FAMILY[s.type] for s in a} | {SHAPE_FAMILY[s.type] for s in b}
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


def _frame_wh(a: Sequence[Shape], b: Sequence[Shape], params: SimilarityParams) -> tuple[float, float]:
    """The frame size, or the extent of the shapes when the frame size is unknown."""
    if min(params.image_wh) > 0:
        return float(params.image_wh[0]), float(params.image_wh[1])
    boxes = np.array([s.xyxy for s in (*a, *b)], dtype=np.float64).reshape(-1, 4)
    if boxes.size == 0:
        return 1.0, 1.0
    return max(float(boxes[:, 2].max()), 1.0), max(float(boxes[:, 3].max()), 1.0)


def segment_runs(shapes: Sequence[Shape], params: SimilarityParams) -> RowRuns:
    """Polygons and masks (any mix, in order) -> row runs, clipped to the frame when it is known."""
    if not shapes:
        return empty_runs(0)
    masks = [s.mask for s in shapes]
    if all(m is not None for m in masks):  # masks only: their runs straight from the RLE columns
        runs = rle_columns_to_runs(*mask_rle_columns(masks))  # type: ignore[arg-type]
        return runs.clipped(*params.image_wh) if min(params.image_wh) > 0 else runs
    is_mask = np.array([s.type is ShapeType.MASK for s in shapes])
    flat = [np.concatenate([s.mask.counts, s.mask.ltrb]) if s.mask is not None else np.ravel(s.points) for s in shapes]
    lengths = np.fromiter(map(len, flat), dtype=np.int64, count=len(flat))
    coords = np.concatenate(flat)
    return segment_runs_flat(is_mask, coords, np.concatenate(([0], np.cumsum(lengths))), params.image_wh)


def segment_runs_flat(
    is_mask: npt.ArrayLike, coords: npt.ArrayLike, coord_start: npt.ArrayLike, clip_wh: tuple[int, int] = (0, 0)
) -> RowRuns:
    """:func:`segment_runs` of S polygons and masks given as CVAT's flat ``points``, one shape after
    the other (:meth:`~cvat_ext.annotations.table.ShapeTable.flat_points`): ``is_mask (S,)``,
    ``coords (C,)`` (polygon: XY pairs; mask: RLE counts then inclusive ``left, top, right,
    bottom``), shape ``i`` being ``coords[coord_start[i]:coord_start[i + 1]]``. Clipped to
    ``clip_wh`` (width, height) when > 0. Vectorised over all shapes (no Shape objects)."""
    mask = np.asarray(is_mask, dtype=bool)
    flat = np.asarray(coords)
    start = np.asarray(coord_start, dtype=np.int64)
    n = mask.size
    if n == 0:
        return empty_runs(0)
    clip = min(clip_wh) > 0
    if not mask.any():
        return polygon_runs_flat(flat.reshape(-1, 2), start // 2, clip_wh=clip_wh)
    mask_runs = _flat_mask_runs(flat, start, np.flatnonzero(mask))
    if mask.all():
        return mask_runs.clipped(*clip_wh) if clip else mask_runs
    polys = np.flatnonzero(~mask)
    lengths = start[polys + 1] - start[polys]
    xy = flat[concat_ranges(start[polys], lengths)].reshape(-1, 2)
    parts = RowRuns.concat([mask_runs, polygon_runs_flat(xy, np.concatenate(([0], np.cumsum(lengths // 2))))])
    # restore the caller's order: masks were numbered first, then polygons
    position = np.concatenate([np.flatnonzero(mask), polys])
    runs = RowRuns(parts.row, parts.start, parts.end, position[parts.owner], n)
    return runs.clipped(*clip_wh) if clip else runs


def _flat_mask_runs(flat: npt.NDArray[np.generic], start: IntArray, rows: IntArray) -> RowRuns:
    """Runs of the masks ``rows`` of flat CVAT points (RLE counts, then ``ltrb``)."""
    end = start[rows + 1]
    ltrb = flat[end[:, None] - 4 + np.arange(4)]
    n_counts = end - 4 - start[rows]
    if rows.size == start.size - 1:  # masks only: the counts are read in place, the boxes skipped
        return rle_flat_to_runs(flat, n_counts, ltrb, first=start[rows])
    return rle_flat_to_runs(flat[concat_ranges(start[rows], n_counts)], n_counts, ltrb)


def _ellipse_runs(shapes: Sequence[Shape], params: SimilarityParams) -> RowRuns:
    cxcy_rxry = np.array([s.ellipse_cxcy_rxry for s in shapes], dtype=np.float64).reshape(-1, 4)
    return ellipse_runs(cxcy_rxry, [s.rotation for s in shapes], clip_wh=params.image_wh)


def _line_runs(shapes: Sequence[Shape], radius: float, params: SimilarityParams) -> RowRuns:
    return polyline_runs([s.points for s in shapes], radius, clip_wh=params.image_wh)


def points_similarity(a: Sequence[Shape], b: Sequence[Shape], params: SimilarityParams) -> FloatArray:
    """``points`` shapes -> (N, M) OKS; shapes with different point counts score 0."""
    out = np.zeros((len(a), len(b)))
    width, height = _frame_wh(a, b, params)
    count_a = np.array([s.points.shape[0] for s in a])
    count_b = np.array([s.points.shape[0] for s in b])
    for k in np.intersect1d(count_a, count_b):
        ia, ib = np.flatnonzero(count_a == k), np.flatnonzero(count_b == k)
        kp_a = np.stack([a[int(i)].points for i in ia])
        kp_b = np.stack([b[int(j)].points for j in ib])
        out[np.ix_(ia, ib)] = oks(kp_a, None, kp_b, None, sigmas=_sigmas(params, int(k)), fallback_scale=width * height)
    return out


def _sigmas(params: SimilarityParams, k: int) -> float | FloatArray:
    if params.keypoint_sigmas is None:
        return params.oks_sigma
    if params.keypoint_sigmas.shape != (k,):
        raise AnnotationFormatError(
            f"similarity params: keypoint_sigmas has {params.keypoint_sigmas.shape[0]} values for {k} keypoints"
        )
    return params.keypoint_sigmas


def skeleton_keypoints(shapes: Sequence[Shape], label_ids: Sequence[int]) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Skeletons -> keypoints (N, K, 2) and visibility (N, K) in the order of ``label_ids``.

    A keypoint is visible when its element exists and is not ``outside``.
    """
    column = {label_id: k for k, label_id in enumerate(label_ids)}
    kp = np.zeros((len(shapes), len(column), 2))
    vis = np.zeros((len(shapes), len(column)), dtype=bool)
    for i, s in enumerate(shapes):
        for e in s.elements:
            k = column[e.label_id]
            kp[i, k] = e.points.reshape(-1, 2)[0]
            vis[i, k] = not e.outside
    return kp, vis


def skeleton_similarity(a: Sequence[Shape], b: Sequence[Shape], params: SimilarityParams) -> FloatArray:
    """Skeletons -> (N, M) OKS over keypoints aligned by element label id (ascending)."""
    label_ids = sorted({e.label_id for s in (*a, *b) for e in s.elements})
    if not label_ids:
        return np.zeros((len(a), len(b)))
    width, height = _frame_wh(a, b, params)
    kp_a, vis_a = skeleton_keypoints(a, label_ids)
    kp_b, vis_b = skeleton_keypoints(b, label_ids)
    sigmas: float | FloatArray
    if params.element_sigmas is not None and params.keypoint_sigmas is None:
        sigmas = np.array([params.element_sigmas.get(i, params.oks_sigma) for i in label_ids], dtype=np.float64)
    else:
        sigmas = _sigmas(params, len(label_ids))
    return oks(kp_a, vis_a, kp_b, vis_b, sigmas=sigmas, fallback_scale=width * height)


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
    if family == "polyline" and params.line_metric == "cvat":
        width, height = _frame_wh(a, b, params)
        return line_point_similarity(
            [s.points for s in a], [s.points for s in b], scale=width * height, torso_r=params.line_thickness
        )
    if family in _RUN_FAMILIES:
        runs_a, runs_b = _family_runs(family, a, b, params)
        return runs_iou(runs_a, runs_b)
    if family == "points":
        return points_similarity(a, b, params)
    if family == "skeleton":
        return skeleton_similarity(a, b, params)
    assert family == "cuboid"
    return cuboid2d_iou(np.stack([s.points for s in a]), np.stack([s.points for s in b]))


_RUN_FAMILIES = frozenset({"segment", "ellipse", "polyline"})


def _family_runs(
    family: str, a: Sequence[Shape], b: Sequence[Shape], params: SimilarityParams
) -> tuple[RowRuns, RowRuns]:
    """Rasterise both sides of a run-based family the same way."""
    if family == "segment":
        return segment_runs(a, params), segment_runs(b, params)
    if family == "ellipse":
        return _ellipse_runs(a, params), _ellipse_runs(b, params)
    width, height = _frame_wh(a, b, params)
    radius = params.line_thickness * float(np.sqrt(width * height))
    return _line_runs(a, radius, params), _line_runs(b, radius, params)


def similarity_sparse(
    a: Sequence[Shape],
    frame_a: npt.ArrayLike,
    b: Sequence[Shape],
    frame_b: npt.ArrayLike,
    params: SimilarityParams | None = None,
    *,
    min_sim: float = 0.0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray]:
    """Similarities of same-frame pairs over a chunk of frames, without (N, M) arrays.

    ``a`` (N shapes) with ``frame_a`` (N,) frame ids, ``b`` (M) with ``frame_b`` (M,) ->
    ``(ia, ib, sim)`` (P,) each, the pairs of one frame whose similarity is > 0 and >= ``min_sim``,
    sorted by ``(ia, ib)``; unlisted pairs score below that. Same values as
    :func:`similarity_matrix`, which it calls once per frame (a loop over frames, not pairs: small
    per-frame arrays stay in cache, which measured faster than one rasterisation of the whole
    chunk, see ``bench/geometry_kernels.py``). ``params.image_wh`` applies to every frame.
    """
    params = params or SimilarityParams()
    fa = np.asarray(frame_a, dtype=np.int64).reshape(-1)
    fb = np.asarray(frame_b, dtype=np.int64).reshape(-1)
    if fa.size != len(a) or fb.size != len(b):
        raise AnnotationFormatError(
            f"similarity_sparse: {fa.size} frame ids for {len(a)} shapes, {fb.size} for {len(b)}"
        )
    _family(a, b)
    order_a = np.argsort(fa, kind="stable")
    order_b = np.argsort(fb, kind="stable")
    frames_a, start_a = np.unique(fa[order_a], return_index=True)
    frames_b, start_b = np.unique(fb[order_b], return_index=True)
    end_a = np.append(start_a[1:], fa.size)
    end_b = np.append(start_b[1:], fb.size)
    _, slots_a, slots_b = np.intersect1d(frames_a, frames_b, assume_unique=True, return_indices=True)
    parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray]] = []
    for ka, kb in zip(slots_a.tolist(), slots_b.tolist()):
        rows_a = order_a[start_a[ka] : end_a[ka]]
        rows_b = order_b[start_b[kb] : end_b[kb]]
        mat = similarity_matrix([a[i] for i in rows_a.tolist()], [b[j] for j in rows_b.tolist()], params)
        i, j = np.nonzero(mat > 0)
        parts.append((rows_a[i], rows_b[j], mat[i, j]))
    if not parts:
        none = np.zeros(0, dtype=np.int64)
        return none, none, np.zeros(0)
    ia = np.concatenate([p[0] for p in parts])
    ib = np.concatenate([p[1] for p in parts])
    sim = np.concatenate([p[2] for p in parts])
    order = np.lexsort((ib, ia))
    ia, ib, sim = ia[order], ib[order], sim[order]
    keep = sim >= min_sim
    return ia[keep], ib[keep], sim[keep]


def similarity_matrices(
    groups: Sequence[Sequence[Shape]], params: SimilarityParams | None = None
) -> dict[tuple[int, int], FloatArray]:
    """All annotator pairs of one frame: ``groups[r]`` are annotator r's shapes (one type family)
    -> ``{(r, s): (N_r, N_s) similarity}`` for every ``r < s``.

    Same values as :func:`similarity_matrix` (except buffered polylines when ``image_wh`` is
    unknown: the radius then comes from the extent of every annotator's lines, one radius for all
    pairs); masks, polygons, ellipses and buffered lines are rasterised once per annotator
    instead of once per pair (R - 1 times fewer rasterisations).
    """
    params = params or SimilarityParams()
    family = _family([s for g in groups for s in g], [])
    pairs = [(r, s) for r in range(len(groups)) for s in range(r + 1, len(groups))]
    reuse = family in _RUN_FAMILIES and not (family == "polyline" and params.line_metric == "cvat")
    if not reuse:
        return {(r, s): similarity_matrix(groups[r], groups[s], params) for r, s in pairs}
    everyone = [s for g in groups for s in g]
    if family == "segment":
        runs = [segment_runs(g, params) for g in groups]
    elif family == "ellipse":
        runs = [_ellipse_runs(g, params) for g in groups]
    else:
        # one radius for every pair, from the frame (or the extent of all annotators' lines)
        width, height = _frame_wh(everyone, [], params)
        radius = params.line_thickness * float(np.sqrt(width * height))
        runs = [_line_runs(g, radius, params) for g in groups]
    return {(r, s): runs_iou(runs[r], runs[s]) for r, s in pairs}
