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
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.consensus.merge import fuse_polygons
from cvat_ext.consensus.settings import MergeMethod
from cvat_ext.geometry import SimilarityParams

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
    # the others' similarity to the lead's drawing, where the matching linked the pair
    pair_of = pair_index(n_annotators)
    others = present & (np.arange(n_annotators)[None, :] != lead[:, None])
    lead_sim = np.take_along_axis(pair_sim, pair_of[lead[:, None], np.arange(n_annotators)[None, :]], axis=1)
    slow |= (others & ~np.isfinite(lead_sim)).any(axis=1)
    pieces: list[FloatArray] = []
    slow_items: list[tuple[int, list[tuple[int, Shape]], Shape, FloatArray]] = []
    lead_start, lead_end = start[lead_m], start[lead_m + 1]
    for j in range(n_clusters):
        if dominant[j]:
            poly = coords[lead_start[j] : lead_end[j]].astype(np.float64)
        else:
            members = _member_points(coords, start, slot[j])
            fused = fuse_polygons([pts for _, pts in members], weight[j, [r for r, _ in members]], method, vote_thr)
            if fused is None:
                return None
            poly = fused.reshape(-1)
        pieces.append(poly)
        if slow[j]:
            member_shapes = [(r, shapes[int(i)]) for r, i in enumerate(rows_k[j].tolist()) if i >= 0]
            fused_shape = Shape(type=ShapeType.POLYGON, frame=int(frames[j]), label_id=0, points=poly.reshape(-1, 2))
            slow_items.append((j, member_shapes, fused_shape, pair_sim[j]))
    fast = np.flatnonzero(~slow)
    conformity[fast] = np.where(others[fast], lead_sim[fast], np.nan)
    conformity[fast, lead[fast]] = 1.0
    shape_conformity(slow_items, lambda fused: params(fused.frame), conformity)
    lengths = np.fromiter((p.size for p in pieces), dtype=np.int64, count=len(pieces))
    out_start = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return FusedPolygons(np.concatenate(pieces) if pieces else np.zeros(0), out_start)


def _dominant(
    weight: FloatArray, present: np.ndarray, lead: IntArray, method: MergeMethod, vote_thr: float
) -> np.ndarray:
    """(J,) whether the lead's weight alone decides the vote
    (:func:`~cvat_ext.consensus.merge.dominant_member`, cluster by cluster)."""
    if method == "staple":
        return np.zeros(weight.shape[0], dtype=bool)
    if weight.shape[1] < _SEQUENTIAL_SUM:
        total = weight.sum(axis=1)
    else:  # pairwise summation groups differently with the zeros in: sum the members alone
        total = np.array([float(row[on].sum()) for row, on in zip(weight, present, strict=True)])
    best = weight[np.arange(weight.shape[0]), lead]
    need = vote_thr * total - 1e-9
    return np.asarray((best >= need) & (total - best < need), dtype=bool)


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


def pair_index(n_annotators: int) -> IntArray:
    """(R, R) column of each annotator pair in pair tables (``annotator_pairs`` order); 0 on the
    diagonal (callers handle equal annotators)."""
    out = np.zeros((n_annotators, n_annotators), dtype=np.int64)
    for p, (r, s) in enumerate(annotator_pairs(n_annotators)):
        out[r, s] = out[s, r] = p
    return out
