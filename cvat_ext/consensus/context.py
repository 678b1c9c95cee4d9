"""Where a cluster sits: is it *shadowed* by a better-supported cluster of the same frame?

Who drew a cluster cannot tell a real object two annotators missed from an object one annotator
invented: both are drawn by the same annotators. Where the cluster lies can. A cluster whose extent
overlaps that of a cluster drawn by more annotators (a duplicate, a part of an object drawn as a
whole, a box placed on the neighbour) is a different kind of evidence than one in empty space. The
existence model (:mod:`cvat_ext.consensus.reliability`) weighs the two strata separately and learns
from the job itself how much the difference matters; where it does not (a crowd in which real
objects overlap), the two strata fit alike and nothing changes.

A cluster's extent is the mean of its members' axis-aligned extents. Two extents overlap when their
intersection covers at least :data:`SHADOW_COVER` of the smaller one.
"""

from __future__ import annotations

import numpy as np

from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray
from cvat_ext.consensus.small_axis import row_sum

#: share of the smaller extent two cluster extents must share to overlap
SHADOW_COVER = 0.2


def cluster_extents(xyxy: FloatArray, rows: IntArray, members: FloatArray | None = None) -> FloatArray:
    """(K, 4) mean extent of each cluster's members; ``xyxy (M, 4)`` the batch rows' extents,
    ``rows (K, R)`` member rows (-1 absent; every cluster has one member at least); ``members
    (K, R, 4)``: the members' extents when already taken from ``xyxy``."""
    present = rows >= 0
    if members is None:
        members = xyxy.take(np.maximum(rows, 0), axis=0)  # take: ~8x a fancy index
    boxes = members * present[..., None]
    return np.asarray(row_sum(boxes) / np.maximum(row_sum(present), 1)[:, None], dtype=np.float64)


def shadowed(frame_pos: IntArray, support: IntArray, extents: FloatArray, cover: float = SHADOW_COVER) -> BoolArray:
    """(K,) true where a cluster's extent overlaps that of a cluster of the same frame with more
    ``support`` (members). ``frame_pos (K,)`` must be sorted (cluster tables are)."""
    k = frame_pos.shape[0]
    out = np.zeros(k, dtype=bool)
    if k < 2:
        return out
    # clusters sorted by (frame, support descending): the clusters of a frame with more support
    # than c are a prefix of its frame's stretch, so the pairs (c, better) are listed directly,
    # without a Python loop over frames and without the pairs that cannot count
    top = int(support.max())
    key = frame_pos * (top + 1) + (top - support)
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    frame_first = np.searchsorted(key_sorted, frame_pos * (top + 1), side="left")
    cand = np.flatnonzero(support < top)
    first = frame_first[cand]
    n_better = np.searchsorted(key_sorted, frame_pos[cand] * (top + 1) + (top - support[cand]), side="left") - first
    own = np.repeat(cand, n_better)
    if own.size == 0:
        return out
    other = order[np.repeat(first - (np.cumsum(n_better) - n_better), n_better) + np.arange(own.size)]
    a, b = extents.take(own, axis=0), extents.take(other, axis=0)  # take: ~8x a 2-D fancy index
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area = (extents[:, 2] - extents[:, 0]) * (extents[:, 3] - extents[:, 1])
    hit = inter >= cover * np.maximum(np.minimum(area[own], area[other]), 1e-12)
    out[own[hit]] = True
    return out
