"""Polygon fusion of a chunk's kept clusters, read from the table's columns.

What :meth:`~cvat_ext.consensus.fuse.ChunkMerger._fuse_members` and
:func:`~cvat_ext.consensus.conformity.shape_conformity` give cluster by cluster, for clusters of
polygons only, with no :class:`Shape` per member where one member dominates the weighted vote:
its flat points are copied from the columns, and the others' conformity to it is the matching's
pair similarity. Clusters the vote does not leave to one member are fused one by one
(:func:`~cvat_ext.consensus.merge.fuse_polygons`) and compared by rasterising, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvat_ext.annotations.model import Shape, ShapeType
from cvat_ext.annotations.table import TYPE_CODE, LazyShapes
from cvat_ext.consensus.batch import FloatArray, IntArray, ReplicaBatch
from cvat_ext.consensus.conformity import shape_conformity
from cvat_ext.consensus.matching import pair_index
from cvat_ext.consensus.merge import decides_vote, fuse_polygons
from cvat_ext.consensus.settings import MergeMethod
from cvat_ext.geometry import SimilarityParams
from cvat_ext.geometry.masks import concat_ranges, runs_iou_paired, take_runs
from cvat_ext.geometry.similarity import segment_runs_flat

_POLYGON_CODE = TYPE_CODE[ShapeType.POLYGON]
#: numpy sums fewer numbers than this one after the other: a row sum with absent members' zero
#: weights then equals the sum over the members alone, bit for bit
_SEQUENTIAL_SUM = 8


@dataclass(frozen=True)
class FusedPolygons:
    """Fused polygons of J clusters: CVAT's flat points ``xy (C,)`` (x, y, x, y, ...), float64,
    cluster ``j``'s at ``xy[start[j]:start[j + 1]]`` (``start (J + 1,)``)."""

    xy: FloatArray
    start: IntArray


def fuse_polygon_clusters(
    batch: ReplicaBatch,
    rows_k: IntArray,
    weight_k: FloatArray,
    pair_sim: FloatArray,
    frames: IntArray,
    method: MergeMethod,
    vote_thr: float,
    params: Callable[[int], SimilarityParams],
    conformity: FloatArray,
) -> FusedPolygons | None:
    """Fused polygons of clusters ``rows_k (J, R)`` (member batch rows, -1 absent), member weights
    ``weight_k (J, R)``, the matching's ``pair_sim (J, P)``, on ``frames (J,)``; fills
    ``conformity (J, R)`` (rows all NaN on entry). None, with nothing written, when a member is
    not a polygon, the batch has no table behind it, or a vote leaves no polygon (the caller's
    per-cluster path then copies the most trusted member, pose fields and all)."""
    shapes = batch.shapes
    n_clusters, n_annotators = rows_k.shape
    if not isinstance(shapes, LazyShapes) or method == "nearest" or n_clusters == 0:
        return None
    present = rows_k >= 0
    safe = np.maximum(rows_k, 0)
    if not np.where(present, batch.type_code[safe] == _POLYGON_CODE, True).all():
        return None
    member_j, member_r = np.nonzero(present)  # cluster by cluster, annotators in order
    coords, start = shapes.flat_points(rows_k[member_j, member_r])
    slot = np.full((n_clusters, n_annotators), -1, dtype=np.int64)
    slot[member_j, member_r] = np.arange(member_j.size)
    weight = np.where(present, weight_k, 0.0)
    lead = np.where(present, weight, -np.inf).argmax(axis=1)  # first of the heaviest, as argmax
    dominant = _dominant(weight, present, lead, method, vote_thr)
    lead_m = slot[np.arange(n_clusters), lead]
    slow = ~dominant | _earlier_twin(coords, start, member_j, member_r, lead, lead_m, dominant)
    # the others' similarity to the lead's drawing, where the matching linked the pair (others
    # are rasterised against it)
    pair_of = pair_index(n_annotators)
    others = present & (np.arange(n_annotators)[None, :] != lead[:, None])
    lead_sim = np.take_along_axis(pair_sim, pair_of[lead[:, None], np.arange(n_annotators)[None, :]], axis=1)
    lead_start, lead_end = start[lead_m], start[lead_m + 1]
    voted: dict[int, FloatArray] = {}  # clusters no member dominates: their vote's polygon
    for j in np.flatnonzero(~dominant).tolist():
        members = _member_points(coords, start, slot[j])
        fused = fuse_polygons([pts for _, pts in members], weight[j, [r for r, _ in members]], method, vote_thr)
        if fused is None:
            return None
        voted[j] = fused.reshape(-1)
    lengths = lead_end - lead_start
    for j, poly in voted.items():
        lengths[j] = poly.size
    out_start = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    xy = np.empty(int(out_start[-1]), dtype=np.float64)
    dom = np.flatnonzero(dominant)
    xy[concat_ranges(out_start[dom], lengths[dom])] = coords[concat_ranges(lead_start[dom], lengths[dom])]
    for j, poly in voted.items():
        xy[out_start[j] : out_start[j + 1]] = poly
    fast = np.flatnonzero(~slow)
    conformity[fast] = np.where(others[fast], lead_sim[fast], np.nan)
    conformity[fast, lead[fast]] = 1.0
    _unlinked_conformity(coords, start, slot, xy, out_start, fast, frames, params, conformity)
    slow_items = [
        (
            j,
            [(r, shapes[i]) for r, i in enumerate(rows_k[j].tolist()) if i >= 0],
            Shape(
                type=ShapeType.POLYGON,
                frame=int(frames[j]),
                label_id=0,
                points=xy[out_start[j] : out_start[j + 1]].reshape(-1, 2),
            ),
            pair_sim[j],
        )
        for j in np.flatnonzero(slow).tolist()
    ]
    shape_conformity(slow_items, lambda fused: params(fused.frame), conformity)
    return FusedPolygons(xy, out_start)


def _unlinked_conformity(
    coords: Any,
    start: IntArray,
    slot: IntArray,
    xy: FloatArray,
    xy_start: IntArray,
    clusters: IntArray,
    frames: IntArray,
    params: Callable[[int], SimilarityParams],
    conformity: FloatArray,
) -> None:
    """IoU of each member of ``clusters`` still without a conformity (NaN: the matching did not
    link it with the lead) with its cluster's fused polygon, by rasterising both as
    :func:`~cvat_ext.consensus.conformity.shape_conformity` does (frame-clipped row runs, one
    paired join per frame size)."""
    todo_j, todo_r = np.nonzero(np.isnan(conformity[clusters]) & (slot[clusters] >= 0))
    if not todo_j.size:
        return
    todo_j = clusters[todo_j]
    distinct, frame_of = np.unique(frames[todo_j], return_inverse=True)
    size_of = [params(int(f)).image_wh for f in distinct.tolist()]  # one lookup per frame
    by_size: dict[tuple[int, int], list[int]] = {}
    for p, k in enumerate(frame_of.tolist()):
        by_size.setdefault(size_of[k], []).append(p)
    for wh, picks in by_size.items():
        at = np.asarray(picks, dtype=np.int64)
        js, rs = todo_j[at], todo_r[at]
        m = slot[js, rs]
        member_len = start[m + 1] - start[m]
        member_xy = np.asarray(coords[concat_ranges(start[m], member_len)], dtype=np.float64)
        member_runs = segment_runs_flat(
            np.zeros(m.size, dtype=bool), member_xy, np.concatenate(([0], np.cumsum(member_len))), wh
        )
        # each fused polygon rasterised once, then repeated for its members
        fused_j, fused_of = np.unique(js, return_inverse=True)
        fused_len = xy_start[fused_j + 1] - xy_start[fused_j]
        fused_runs = segment_runs_flat(
            np.zeros(fused_j.size, dtype=bool),
            xy[concat_ranges(xy_start[fused_j], fused_len)],
            np.concatenate(([0], np.cumsum(fused_len))),
            wh,
        )
        conformity[js, rs] = runs_iou_paired(member_runs, take_runs(fused_runs, fused_of))


def _dominant(
    weight: FloatArray, present: np.ndarray, lead: IntArray, method: MergeMethod, vote_thr: float
) -> np.ndarray:
    """(J,) whether the lead's weight alone decides the vote
    (:func:`~cvat_ext.consensus.merge.dominant_member`, cluster by cluster). Not the mask vote's
    :func:`~cvat_ext.consensus.merge._dominance` on purpose: its totals are summed in member order,
    and here they must be NumPy's pairwise sums of :func:`~cvat_ext.consensus.merge.fuse_polygons`
    (bit for bit, 8 or more members), which the clusters left to it are voted with."""
    if method == "staple":
        return np.zeros(weight.shape[0], dtype=bool)
    if weight.shape[1] < _SEQUENTIAL_SUM:
        total = weight.sum(axis=1)
    else:  # pairwise summation groups differently with the zeros in: sum the members alone
        total = np.array([float(row[on].sum()) for row, on in zip(weight, present, strict=True)])
    return decides_vote(weight[np.arange(weight.shape[0]), lead], total, vote_thr)


def _earlier_twin(
    coords: Any,
    start: IntArray,
    member_j: IntArray,
    member_r: IntArray,
    lead: IntArray,
    lead_m: IntArray,
    dominant: np.ndarray,
) -> np.ndarray:
    """(J,) dominant clusters where an annotator before the lead drew exactly the lead's polygon
    (the conformity rule then takes that one as the drawing: left to the per-cluster path)."""
    out = np.zeros(lead.shape[0], dtype=bool)
    lengths = np.diff(start)
    lead_of = lead_m[member_j]
    maybe = dominant[member_j] & (member_r < lead[member_j]) & (lengths == lengths[lead_of])
    for m, lm in zip(np.flatnonzero(maybe).tolist(), lead_of[maybe].tolist(), strict=True):
        if np.array_equal(coords[start[m] : start[m + 1]], coords[start[lm] : start[lm + 1]]):
            out[member_j[m]] = True
    return out


def _member_points(coords: Any, start: IntArray, slot_row: IntArray) -> list[tuple[int, FloatArray]]:
    """(annotator, points (n, 2) float64) of one cluster's members, annotators in order."""
    return [
        (r, coords[start[m] : start[m + 1]].astype(np.float64).reshape(-1, 2))
        for r, m in enumerate(slot_row.tolist())
        if m >= 0
    ]
