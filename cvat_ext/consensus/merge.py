"""Fuse each kept cluster into one object.

* rectangles: weighted boxes fusion, the weighted mean of the members' ``xyxy`` (and rotation);
* masks and polygons: weighted pixel vote on the members' union crop (pixel kept when its vote
  reaches ``vote_thr`` of the members' weight), or STAPLE EM; polygons are rasterised on a
  sub-pixel grid and traced back to their largest outer contour;
* skeletons: weighted median per keypoint over the members that see it, visibility by weighted vote;
* points, polylines, ellipses, cuboids: the weighted medoid (member most similar to the others);
* method ``nearest`` (CVAT's documented rule): the member whose extent is nearest (IoU) to the
  members' mean extent, equal weights;
* labels come from the caller (Dawid–Skene posterior or weighted vote); attributes by weighted
  vote among the members that carry the chosen label.

Weights are per annotator ``(R,)``, larger = more trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import overload

import numpy as np

from cvat_ext.annotations.model import Attribute, MaskRle, Shape, ShapeType, Tag
from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray, ReplicaBatch
from cvat_ext.consensus.clusters import ClusterTable
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.consensus.settings import MergeMethod
from cvat_ext.geometry import (
    RowRuns,
    box_iou_pairs,
    mask_rle_columns,
    rle_columns_to_runs,
    rle_to_runs,
    runs_iou_paired,
    take_runs,
)

SOURCE = "consensus"
#: sub-pixel factor for polygon rasterisation, and the crop size above which it falls back to 1
_POLY_SCALE = 4
_MAX_CROP_PIXELS = 4_000_000


def member_rows(batch: ReplicaBatch, table: ClusterTable) -> IntArray:
    """(K, R) row in ``batch.shapes`` of each member, -1 where absent."""
    slots = np.where(table.members >= 0, table.members, 0)
    rows = batch.index[table.frame_pos[:, None], np.arange(table.members.shape[1])[None, :], slots]
    return np.where(table.members >= 0, rows, -1)


def fuse_boxes(xyxy: FloatArray, rotation: FloatArray, weight: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Weighted boxes fusion. ``xyxy (K, R, 4)``, ``rotation (K, R)`` degrees, ``weight (K, R)`` (0 for
    absent members). Returns fused ``xyxy (K, 4)`` and ``rotation (K,)``."""
    total = weight.sum(axis=1)
    total = np.where(total > 0, total, 1.0)
    fused = np.einsum("kr,krc->kc", weight, xyxy) / total[:, None]
    if not np.any(rotation):
        return fused, np.zeros(fused.shape[0])
    rad = np.deg2rad(rotation)
    angle = np.rad2deg(np.arctan2((weight * np.sin(rad)).sum(axis=1), (weight * np.cos(rad)).sum(axis=1)))
    return fused, np.mod(angle, 360.0)


def nearest_to_mean(xyxy: FloatArray, present: BoolArray) -> IntArray:
    """CVAT's rule: (K,) annotator position of the member whose extent has the highest IoU with the
    mean extent of the cluster (ties: the first annotator). ``xyxy (K, R, 4)``, ``present (K, R)``."""
    n_clusters, n_annot = present.shape
    count = np.maximum(present.sum(axis=1), 1)
    mean = (xyxy * present[:, :, None]).sum(axis=1) / count[:, None]
    iou = box_iou_pairs(np.repeat(mean, n_annot, axis=0), xyxy.reshape(-1, 4)).reshape(n_clusters, n_annot)
    iou = np.where(present, iou, -1.0)
    return np.asarray(iou.argmax(axis=1), dtype=np.int64)


def weighted_medoid(pair_sim: FloatArray, present: BoolArray, weight: FloatArray) -> IntArray:
    """(K,) annotator position of the member with the highest weighted similarity to the others.

    ``pair_sim (K, P)`` (NaN unless both present), ``present (K, R)``, ``weight (R,)``."""
    n_annot = present.shape[1]
    score = np.zeros(present.shape, dtype=np.float64)
    sim = np.nan_to_num(pair_sim, nan=0.0)
    for p, (r, s) in enumerate(annotator_pairs(n_annot)):
        score[:, r] += weight[s] * sim[:, p]
        score[:, s] += weight[r] * sim[:, p]
    # ties (singletons, pairs) go to the more trusted annotator
    score += 1e-6 * weight[None, :]
    score[~present] = -np.inf
    return np.asarray(score.argmax(axis=1), dtype=np.int64)


def vote_attributes(shapes: Sequence[Shape | Tag], weights: Sequence[float]) -> tuple[Attribute, ...]:
    """Per attribute spec, the value with the largest summed weight (ties: smallest value string)."""
    tally: dict[int, dict[str, float]] = {}
    for shape, w in zip(shapes, weights, strict=True):
        for attr in shape.attributes:
            per_value = tally.setdefault(attr.spec_id, {})
            per_value[attr.value] = per_value.get(attr.value, 0.0) + w
    return tuple(
        Attribute(spec_id, min(values.items(), key=lambda kv: (-kv[1], kv[0]))[0])
        for spec_id, values in sorted(tally.items())
    )


# ---------------------------------------------------------------------------------------------
# masks and polygons


def _crop_box(boxes: Sequence[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    arr = np.asarray(boxes)
    return int(arr[:, 0].min()), int(arr[:, 1].min()), int(arr[:, 2].max()), int(arr[:, 3].max())


def _paste_masks(masks: Sequence[MaskRle]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(R', H, W) bool stack of the masks on their union crop, and the crop's inclusive ltrb."""
    left, top, right, bottom = _crop_box([m.ltrb for m in masks])
    stack = np.zeros((len(masks), bottom - top + 1, right - left + 1), dtype=bool)
    for i, m in enumerate(masks):
        l0, t0, r0, b0 = m.ltrb
        stack[i, t0 - top : b0 - top + 1, l0 - left : r0 - left + 1] = m.to_bitmap()
    return stack, (left, top, right, bottom)


def pixel_vote(stack: np.ndarray, weight: FloatArray, vote_thr: float) -> np.ndarray:
    """Weighted vote ``(H, W)`` bool: pixel on where the weight of members covering it reaches
    ``vote_thr`` of the total. ``stack (R', H, W)`` bool, ``weight (R',)``."""
    acc = np.zeros(stack.shape[1:], dtype=np.float64)
    for member, w in zip(stack, weight.tolist(), strict=True):
        acc[member] += w
    return np.asarray(acc >= vote_thr * float(weight.sum()) - 1e-9)


def staple(stack: np.ndarray, weight: FloatArray, *, iterations: int = 15) -> np.ndarray:
    """STAPLE EM (Warfield et al. 2004) on the union crop; starts from the weighted vote.

    Estimates each member's sensitivity ``p`` and specificity ``q`` and the per-pixel probability of
    foreground; returns it thresholded at 0.5. Pixels with the same pattern of member votes share
    every quantity, so EM runs on the (at most 2^R') patterns weighted by their pixel counts."""
    n = stack.shape[0]
    code = np.zeros(stack.shape[1:], dtype=np.int64)
    for r in range(n):
        code |= stack[r].astype(np.int64) << r
    counts = np.bincount(code.ravel(), minlength=1 << n).astype(np.float64)
    bits = ((np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)  # (P, R')
    prob = bits @ (weight / max(float(weight.sum()), 1e-12))
    prior = float(np.clip((counts * prob).sum() / max(counts.sum(), 1.0), 1e-6, 1 - 1e-6))
    for _ in range(iterations):
        on = counts * prob
        off = counts * (1.0 - prob)
        p = np.clip(on @ bits / max(on.sum(), 1e-12), 1e-6, 1 - 1e-6)
        q = np.clip(off @ (1.0 - bits) / max(off.sum(), 1e-12), 1e-6, 1 - 1e-6)
        log_a = np.log(prior) + bits @ np.log(p) + (1 - bits) @ np.log(1 - p)
        log_b = np.log(1 - prior) + (1 - bits) @ np.log(q) + bits @ np.log(1 - q)
        prob = 1.0 / (1.0 + np.exp(np.clip(log_b - log_a, -50, 50)))
    return np.asarray(prob[code] >= 0.5)


def decides_vote(lead_weight: np.ndarray | float, total: np.ndarray | float, vote_thr: float) -> BoolArray:
    """Whether a member of weight ``lead_weight`` alone decides a ``vote_thr`` vote of members
    weighing ``total`` (the same shapes): its weight reaches the threshold, the others' together
    do not. The one rule of :func:`dominant_member`, :func:`_dominance` and the polygon fusion's
    ``_dominant``; each computes ``total`` as the vote it stands for sums it."""
    need = vote_thr * total - 1e-9
    return np.asarray((lead_weight >= need) & (total - lead_weight < need), dtype=bool)


def dominant_member(weight: FloatArray, vote_thr: float) -> int | None:
    """The member whose weight alone decides a ``vote_thr`` vote (:func:`decides_vote`), or None."""
    best = int(np.argmax(weight))
    return best if decides_vote(weight[best], float(weight.sum()), vote_thr) else None


def fuse_masks(masks: Sequence[MaskRle], weight: FloatArray, method: MergeMethod, vote_thr: float) -> MaskRle | None:
    """Fused mask (tight box) or None when the vote leaves no pixel."""
    stack, (left, top, _, _) = _paste_masks(masks)
    bits = staple(stack, weight) if method == "staple" else pixel_vote(stack, weight, vote_thr)
    if not bits.any():
        return None
    return MaskRle.from_bitmap(bits, left, top).tight()


#: clusters voted together by :func:`vote_masks` (a whole chunk's runs at once leave the cache)
VOTE_BLOCK = 128


#: CVAT RLEs of masks by position: each one's counts (int64) and their inclusive ``ltrb (n, 4)``
RleColumns = Callable[[IntArray], tuple[list[IntArray], IntArray]]


class MaskView(Sequence[MaskRle]):
    """``mask_of(positions[i])`` for each i, read when used: the member masks of a chunk's clusters
    without reading every one (a dominant cluster's vote needs only its lead's mask).
    ``rle_columns`` reads many masks' RLEs at once (no :class:`MaskRle` each)."""

    def __init__(
        self, mask_of: Callable[[int], MaskRle], positions: IntArray, rle_columns: RleColumns | None = None
    ) -> None:
        self._mask_of = mask_of
        self._positions = np.asarray(positions, dtype=np.int64)
        self._rle_columns = rle_columns

    def __len__(self) -> int:
        return int(self._positions.size)

    @overload
    def __getitem__(self, i: int) -> MaskRle: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[MaskRle]: ...
    def __getitem__(self, i: int | slice) -> MaskRle | Sequence[MaskRle]:
        if isinstance(i, slice):
            return MaskView(self._mask_of, self._positions[i], self._rle_columns)
        return self._mask_of(int(self._positions[i]))

    def view(self, sel: IntArray) -> MaskView:
        """The masks at positions ``sel`` of this view."""
        return MaskView(self._mask_of, self._positions[sel], self._rle_columns)

    def rles(self, sel: IntArray) -> tuple[list[IntArray], IntArray]:
        """The counts and ``ltrb (n, 4)`` of the masks at positions ``sel`` of this view."""
        if self._rle_columns is None:
            return mask_rle_columns([self[i] for i in np.asarray(sel).tolist()])
        return self._rle_columns(self._positions[sel])


#: the row runs of some of the masks given to :func:`vote_masks`, by their positions
MemberRuns = Callable[[IntArray], RowRuns]


def decoded_runs(masks: Sequence[MaskRle]) -> MemberRuns:
    """Runs of ``masks`` decoded on demand (the default of :func:`vote_masks`); a
    :class:`MaskView` is read as columns (no :class:`MaskRle` per mask)."""
    if isinstance(masks, MaskView):
        return lambda idx: rle_columns_to_runs(*masks.rles(idx))
    return lambda idx: rle_to_runs([masks[i] for i in idx.tolist()])


def vote_masks(
    masks: Sequence[MaskRle],
    cluster: IntArray,
    weight: FloatArray,
    n_clusters: int,
    vote_thr: float,
    lead_iou: FloatArray | None = None,
    member_runs: MemberRuns | None = None,
) -> tuple[IntArray, list[IntArray | None], FloatArray]:
    """Weighted pixel vote for many clusters at once (see :func:`_vote_block`), in blocks of
    :data:`VOTE_BLOCK` clusters. ``member_runs`` gives the members' row runs where they are
    decoded already (the matching's, clipped to the frame); by default the masks are decoded."""
    runs_of = member_runs or decoded_runs(masks)
    if n_clusters <= VOTE_BLOCK:
        return _vote_block(masks, cluster, weight, n_clusters, vote_thr, lead_iou, runs_of)
    # the members of dominant clusters not yet compared with their lead: all at once, not a few
    # per block (a decode call per block cost more than the decoding)
    dominance = _dominance(cluster, np.asarray(weight, dtype=np.float64), n_clusters, vote_thr)
    lead_iou = _lead_iou(cluster, dominance, lead_iou, runs_of)
    ltrb = np.zeros((n_clusters, 4), dtype=np.int64)
    counts: list[IntArray | None] = [None] * n_clusters
    member_iou = np.zeros(len(masks))
    for c0 in range(0, n_clusters, VOTE_BLOCK):
        c1 = min(c0 + VOTE_BLOCK, n_clusters)
        sel = np.flatnonzero((cluster >= c0) & (cluster < c1))
        part = _vote_block(
            masks.view(sel) if isinstance(masks, MaskView) else [masks[i] for i in sel.tolist()],
            cluster[sel] - c0,
            weight[sel],
            c1 - c0,
            vote_thr,
            None if lead_iou is None else lead_iou[sel],
            _subset(runs_of, sel),
        )
        ltrb[c0:c1], counts[c0:c1], member_iou[sel] = part
    return ltrb, counts, member_iou


def _subset(runs_of: MemberRuns, sel: IntArray) -> MemberRuns:
    """``runs_of`` for the members ``sel`` (positions within ``sel``)."""
    return lambda idx: runs_of(sel[idx])


#: members one cluster may have for :func:`_member_vote_iou` (one bit of an int64 each)
MEMBER_BITS = 62


def _member_vote_iou(
    runs: RowRuns,
    cluster: IntArray,
    order: IntArray,
    sweep: tuple[IntArray, IntArray, IntArray],
    kept: IntArray,
    n_clusters: int,
) -> FloatArray:
    """Each voting member's IoU with its cluster's voted mask, from the vote's own sweep.

    ``runs`` are the members' runs (owner = member), ``cluster (M,)`` each member's cluster, and
    ``order`` sorts the run events (a start and an end per run, interleaved) into the sweep whose
    ``(cluster, row, column)`` are given; ``kept`` are the stretches the vote keeps. A member
    gets a bit of its own within its cluster; the running sum of those bits tells which members
    cover a stretch (a member's runs never overlap), so each kept stretch adds its length to those
    members' intersections. Clusters of more than :data:`MEMBER_BITS` members fall back to a run
    join against the voted runs.
    """
    k, row, x = sweep
    n_members = cluster.size
    by_cluster = np.argsort(cluster, kind="stable")
    sizes = np.bincount(cluster, minlength=n_clusters)
    rank = np.empty(n_members, dtype=np.int64)
    rank[by_cluster] = np.arange(n_members) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    length = x[kept + 1] - x[kept]
    voted_area = np.bincount(k[kept], weights=length, minlength=n_clusters).astype(np.int64)
    if int(sizes.max()) > MEMBER_BITS:
        voted = RowRuns(row[kept], x[kept], x[kept + 1], k[kept], n_clusters)
        return runs_iou_paired(runs, take_runs(voted, cluster))
    bit = np.left_shift(np.int64(1), rank[runs.owner])
    covering = np.cumsum(np.stack([bit, -bit], axis=1).ravel()[order])[kept]
    stretch_k = k[kept]
    inter = np.zeros((n_clusters, int(sizes.max())))
    for r in range(inter.shape[1]):
        on = (covering >> r) & 1
        inter[:, r] = np.bincount(stretch_k, weights=length * on, minlength=n_clusters)
    inter_m = inter[cluster, rank]
    union = runs.area + voted_area[cluster] - inter_m
    out = np.zeros(n_members)
    np.divide(inter_m, union, out=out, where=union > 0)
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float64)


def _dominance(cluster: IntArray, weight: FloatArray, n_clusters: int, vote_thr: float) -> tuple[IntArray, BoolArray]:
    """Each cluster's heaviest member (the first of equal weight; -1 for a cluster without
    members) ``(K,)``, and whether its weight alone decides the vote ``(K,)`` (:func:`decides_vote`).
    Members come as ``cluster (M,)``, ``weight (M,)`` (the mask vote's layout); the totals are
    summed in member order."""
    total = np.bincount(cluster, weights=weight, minlength=n_clusters)
    order = np.lexsort((-weight, cluster))
    first = order[np.flatnonzero(np.concatenate(([True], cluster[order][1:] != cluster[order][:-1])))]
    best = np.full(n_clusters, -1, dtype=np.int64)
    best[cluster[first]] = first
    w_best = np.where(best >= 0, weight[np.maximum(best, 0)], 0.0)
    return best, (best >= 0) & decides_vote(w_best, total, vote_thr)


def _lead_iou(
    cluster: IntArray, dominance: tuple[IntArray, BoolArray], lead_iou: FloatArray | None, runs_of: MemberRuns
) -> FloatArray:
    """``lead_iou`` (M,) completed for the members of dominant clusters (``dominance``: what
    :func:`_dominance` says of the clusters): 1 for the lead, each other member's IoU with its
    lead where it was not known (decoded and compared here); NaN for the members of voting
    clusters where it was not given."""
    best, dominant = dominance
    out = np.full(cluster.size, np.nan) if lead_iou is None else np.array(lead_iou, dtype=np.float64)
    led = np.flatnonzero(dominant[cluster])
    out[led[best[cluster[led]] == led]] = 1.0
    others = led[best[cluster[led]] != led]
    others = others[~np.isfinite(out[others])]
    if others.size:
        leads, pos = np.unique(best[cluster[others]], return_inverse=True)
        out[others] = runs_iou_paired(runs_of(others), take_runs(runs_of(leads), pos))
    return out


def _vote_block(
    masks: Sequence[MaskRle],
    cluster: IntArray,
    weight: FloatArray,
    n_clusters: int,
    vote_thr: float,
    lead_iou: FloatArray | None,
    runs_of: MemberRuns,
) -> tuple[IntArray, list[IntArray | None], FloatArray]:
    """Weighted pixel vote for many clusters at once, on row runs (no bitmap is ever built).

    ``masks`` (M,) member masks, ``cluster (M,)`` the cluster of each, ``weight (M,)`` its weight.
    A pixel is kept where the weight of the members covering it reaches ``vote_thr`` of the
    cluster's member weight. Returns the tight inclusive ``ltrb (K, 4)`` and the CVAT RLE counts of
    each cluster (None where the vote keeps no pixel), and each member's IoU with its cluster's
    voted mask ``(M,)`` (0 where the vote keeps no pixel), from the runs the vote already has.
    ``lead_iou (M,)``: each member's IoU with its cluster's heaviest member (the first of equal
    weight) where already known (NaN elsewhere): a dominant cluster's vote *is* that member's mask,
    so only the unknown ones are decoded. ``runs_of`` gives members' row runs by position.

    Each run adds its weight at its start column and removes it at its end; sorted by
    (cluster, row, column), a running sum gives the coverage of every stretch between events.
    A cluster with a *dominant* member (its weight alone reaches the threshold and the others'
    together do not) votes exactly that member's mask, which is returned as drawn.
    """
    ltrb = np.zeros((n_clusters, 4), dtype=np.int64)
    counts: list[IntArray | None] = [None] * n_clusters
    member_iou = np.zeros(len(masks))
    if not masks:
        return ltrb, counts, member_iou
    weight = np.asarray(weight, dtype=np.float64)
    best, dominant = _dominance(cluster, weight, n_clusters, vote_thr)
    led_clusters = np.flatnonzero(dominant)
    if led_clusters.size:
        lead = best[led_clusters]
        lead_counts, ltrb[led_clusters] = (
            masks.rles(lead) if isinstance(masks, MaskView) else mask_rle_columns([masks[i] for i in lead.tolist()])
        )
        for kk, lead_rle in zip(led_clusters.tolist(), lead_counts, strict=True):
            counts[kk] = lead_rle
    voting = ~dominant[cluster]
    # a dominant cluster's vote is its lead's mask: the lead scores 1, the others their IoU with it
    led = np.flatnonzero(~voting)
    member_iou[led] = _lead_iou(cluster, (best, dominant), lead_iou, runs_of)[led]
    if not voting.any():
        return ltrb, counts, member_iou
    sub = np.flatnonzero(voting)
    cluster, weight = cluster[sub], weight[sub]
    runs = runs_of(sub)
    if runs.row.size == 0:
        return ltrb, counts, member_iou
    # integer weights keep the running sum exact
    w_int = np.maximum(np.round(np.asarray(weight, dtype=np.float64) / max(float(np.max(weight)), 1e-12) * 2**20), 1)
    w_int = w_int.astype(np.int64)
    need = vote_thr * np.bincount(cluster, weights=w_int, minlength=n_clusters) - 1e-6
    owner_k = cluster[runs.owner]
    # events interleaved run by run: each member's events are already sorted by (row, column) and
    # members come cluster by cluster, so a stable sort (a merge of sorted runs) is cheap
    k = np.repeat(owner_k, 2)
    row = np.repeat(runs.row, 2)
    x = np.stack([runs.start, runs.end], axis=1).ravel()
    w_run = w_int[runs.owner]
    delta = np.stack([w_run, -w_run], axis=1).ravel()
    row0, x0 = int(row.min()), int(x.min())
    n_rows, n_cols = int(row.max()) - row0 + 1, int(x.max()) - x0 + 1
    order = np.argsort((k * n_rows + (row - row0)) * n_cols + (x - x0), kind="stable")
    k, row, x, delta = k[order], row[order], x[order], delta[order]
    cover = np.cumsum(delta)
    # stretch i runs from event i to event i + 1 inside one (cluster, row)
    same = (k[1:] == k[:-1]) & (row[1:] == row[:-1])
    keep = same & (x[1:] > x[:-1]) & (cover[:-1] >= need[k[:-1]])
    i = np.flatnonzero(keep)
    if i.size == 0:
        return ltrb, counts, member_iou
    member_iou[sub] = _member_vote_iou(runs, cluster, order, (k, row, x), i, n_clusters)
    run_k, run_row, run_start, run_end = k[i], row[i], x[i], x[i + 1]
    # join stretches that touch on the same row
    joined = np.concatenate(
        ([False], (run_k[1:] == run_k[:-1]) & (run_row[1:] == run_row[:-1]) & (run_start[1:] == run_end[:-1]))
    )
    first = np.flatnonzero(~joined)
    last = np.append(first[1:], run_k.size) - 1
    run_k, run_row, run_start, run_end = run_k[first], run_row[first], run_start[first], run_end[last]
    # tight box per cluster (runs are sorted by cluster, then row)
    bounds = np.flatnonzero(np.concatenate(([True], run_k[1:] != run_k[:-1])))
    ks = run_k[bounds]
    left = np.minimum.reduceat(run_start, bounds)
    right = np.maximum.reduceat(run_end, bounds) - 1
    top = run_row[bounds]
    bottom = np.maximum.reduceat(run_row, bounds)
    ltrb[ks] = np.stack([left, top, right, bottom], axis=1)
    # flat positions in each crop; runs that continue across a crop row edge merge
    pos_k = np.repeat(np.arange(ks.size), np.diff(np.append(bounds, run_k.size)))
    width = right - left + 1
    p0 = (run_row - top[pos_k]) * width[pos_k] + (run_start - left[pos_k])
    p1 = p0 + (run_end - run_start)
    cont = np.concatenate(([False], (pos_k[1:] == pos_k[:-1]) & (p0[1:] == p1[:-1])))
    first = np.flatnonzero(~cont)
    last = np.append(first[1:], p0.size) - 1
    pos_k, p0, p1 = pos_k[first], p0[first], p1[last]
    prev_end = np.where(np.concatenate(([False], pos_k[1:] == pos_k[:-1])), np.concatenate(([0], p1[:-1])), 0)
    pairs = np.stack([p0 - prev_end, p1 - p0], axis=1)
    area = width * (bottom - top + 1)
    group_end = np.append(np.flatnonzero(pos_k[1:] != pos_k[:-1]), pos_k.size - 1)
    tails = area - p1[group_end]
    # one flat array of (gap, run) pairs with each cluster's non-zero tail inserted, then split
    flat = pairs.ravel()
    has_tail = tails > 0
    flat = np.insert(flat, 2 * (group_end[has_tail] + 1), tails[has_tail])
    sizes = 2 * np.diff(np.concatenate(([-1], group_end))) + has_tail
    for kk, piece in zip(ks.tolist(), np.split(flat, np.cumsum(sizes)[:-1]), strict=True):
        counts[kk] = piece
    return ltrb, counts, member_iou


def fuse_polygons(
    polygons: Sequence[np.ndarray], weight: FloatArray, method: MergeMethod, vote_thr: float
) -> np.ndarray | None:
    """Fused polygon ``(K, 2)`` from member polygons, or None when the vote leaves < 3 vertices.

    When one member dominates the weighted vote, the vote is its polygon: it is returned as drawn.
    """
    if method != "staple":
        lead = dominant_member(weight, vote_thr)
        if lead is not None:
            return np.asarray(polygons[lead], dtype=np.float64)
    # OpenCV only when a polygon is actually rasterised: the QA core imports without it
    import cv2

    allpts = np.concatenate(polygons)
    x0, y0 = np.floor(allpts.min(axis=0)) - 1
    x1, y1 = np.ceil(allpts.max(axis=0)) + 1
    scale = _POLY_SCALE
    if (x1 - x0) * (y1 - y0) * scale * scale > _MAX_CROP_PIXELS:
        scale = 1
    h, w = int((y1 - y0) * scale), int((x1 - x0) * scale)
    stack = np.zeros((len(polygons), h, w), dtype=np.uint8)
    frac = 4  # cv2 sub-pixel bits
    for i, poly in enumerate(polygons):
        # pixel (i, j) of the grid covers [j, j+1) / scale: its centre is at (j + 0.5) / scale
        pts = ((poly - (x0, y0)) * scale - 0.5) * (1 << frac)
        cv2.fillPoly(stack[i], [np.round(pts).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=frac)
    stack_b = stack.astype(bool)
    bits = staple(stack_b, weight) if method == "staple" else pixel_vote(stack_b, weight, vote_thr)
    contours, _ = cv2.findContours(bits.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    best = max(contours, key=cv2.contourArea)
    best = cv2.approxPolyDP(best, 0.25 * scale, True)
    if best.shape[0] < 3:
        return None
    # contour runs through boundary pixel centres: move it out by half a pixel of the grid
    xy = best.reshape(-1, 2).astype(np.float64)
    centre = xy.mean(axis=0)
    direction = xy - centre
    norm = np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-9)
    xy = xy + 0.5 * direction / norm
    return np.asarray((xy + 0.5) / scale + (x0, y0), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# skeletons


def weighted_median(values: FloatArray, weight: FloatArray) -> float:
    """The lower weighted median of ``values (n,)`` with ``weight (n,) > 0``."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weight[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


def fuse_skeleton(
    members: Sequence[Shape], weight: FloatArray, vote: tuple[FloatArray, float] | None = None
) -> tuple[Shape, ...]:
    """Fused keypoint elements: per keypoint label, the weighted median of visible members' xy,
    visible when the weight of members that see it reaches half of the members' weight.

    ``vote``: the annotator model's ``(n,)`` members' visibility vote weights and the prior's
    log-odds (:func:`fuse_keypoints_iv`'s rule): then the weighted mean (``weight``: inverse
    variances) and the flip-rate vote."""
    by_label: dict[int, list[tuple[Shape, float, float]]] = {}
    ballots = np.zeros(len(members)) if vote is None else vote[0]
    for member, w, b in zip(members, weight, ballots, strict=True):
        for element in member.elements:
            by_label.setdefault(element.label_id, []).append((element, float(w), float(b)))
    out: list[Shape] = []
    total = float(weight.sum())
    for label_id in sorted(by_label):
        entries = by_label[label_id]
        seen = [(e, w) for e, w, _ in entries if not e.outside]
        use = seen or [(e, w) for e, w, _ in entries]
        xy = np.array([e.points.reshape(-1, 2)[0] for e, _ in use])
        ww = np.array([w for _, w in use])
        if vote is None:
            point = np.array([(weighted_median(xy[:, 0], ww), weighted_median(xy[:, 1], ww))])
            outside = sum(w for _, w in seen) < 0.5 * total
        else:
            point = (ww @ xy / max(float(ww.sum()), 1e-300))[None, :]
            outside = sum(b if not e.outside else -b for e, _, b in entries) + vote[1] <= 0
        first = use[0][0]
        out.append(
            Shape(
                type=ShapeType.POINTS,
                frame=first.frame,
                label_id=label_id,
                points=point,
                outside=bool(outside),
                occluded=sum(w for e, w, _ in entries if e.occluded) > 0.5 * total,
                source=SOURCE,
                attributes=vote_attributes([e for e, _, _ in entries], [w for _, w, _ in entries]),
            )
        )
    return tuple(out)


def fuse_keypoints(
    xy: FloatArray, has: BoolArray, visible: BoolArray, occluded: BoolArray, weight: FloatArray
) -> tuple[FloatArray, BoolArray, BoolArray]:
    """:func:`fuse_skeleton` for many clusters at once.

    ``xy (K, R, P, 2)`` keypoints of each member, ``has (K, R, P)`` the member has the keypoint,
    ``visible`` / ``occluded (K, R, P)`` its flags, ``weight (K, R)`` member weights (0 if absent).
    Returns fused ``xy (K, P, 2)``, ``outside (K, P)`` and ``occluded (K, P)``.
    """
    w = np.broadcast_to(weight[:, :, None], has.shape) * has
    seen = w * visible
    any_seen = seen.sum(axis=1) > 0
    use = np.where(any_seen[:, None, :], seen, w)  # visible members, or all when none sees it
    total = weight.sum(axis=1)[:, None]
    out = np.empty(xy.shape[:1] + xy.shape[2:])
    for c in range(2):
        values = np.where(use > 0, xy[..., c], np.inf)
        order = np.argsort(values, axis=1, kind="stable")
        cum = np.cumsum(np.take_along_axis(use, order, axis=1), axis=1)
        pick = np.argmax(cum >= 0.5 * cum[:, -1:, :], axis=1)  # the lower weighted median
        chosen = np.take_along_axis(order, pick[:, None, :], axis=1)[:, 0, :]
        out[..., c] = np.take_along_axis(xy[..., c], chosen[:, None, :], axis=1)[:, 0, :]
    outside = seen.sum(axis=1) < 0.5 * total
    occ = (w * occluded).sum(axis=1) > 0.5 * total
    return out, outside, occ


def fuse_keypoints_iv(
    xy: FloatArray,
    has: BoolArray,
    visible: BoolArray,
    occluded: BoolArray,
    weight: FloatArray,
    vote: FloatArray,
    prior_logodds: float,
) -> tuple[FloatArray, BoolArray, BoolArray]:
    """Keypoint fusion with the annotator model's noise (inverse-variance fusion).

    Same arrays as :func:`fuse_keypoints`; ``weight (K, R)`` each member's inverse position variance
    at its cluster's size (0 if absent); ``vote (R,)`` the annotators' visibility vote weights and
    ``prior_logodds`` the prior's (:meth:`AnnotatorModel.visibility_vote`). Position: the weighted
    mean of the members that see the keypoint (of all that placed it when none sees it): the
    minimum-variance estimate under independent Gaussian noise. Visible: where the members' votes
    (``+vote_r`` visible, ``-vote_r`` outside) and the prior sum above 0. Returns fused
    ``xy (K, P, 2)``, ``outside (K, P)`` and ``occluded (K, P)``."""
    w = np.broadcast_to(weight[:, :, None], has.shape) * has
    seen = w * visible
    use = np.where((seen.sum(axis=1) > 0)[:, None, :], seen, w)
    total = np.maximum(use.sum(axis=1), 1e-300)
    out = np.einsum("krp,krpc->kpc", use, xy) / total[..., None]
    ballot = np.where(has, np.where(visible, 1.0, -1.0), 0.0) * vote[None, :, None]
    outside = ballot.sum(axis=1) + prior_logodds <= 0
    occ = (w * occluded).sum(axis=1) > 0.5 * weight.sum(axis=1)[:, None]  # of all members: fuse_keypoints' rule
    return out, outside, occ


# ---------------------------------------------------------------------------------------------
# points and ellipses


def fuse_points(points: Sequence[FloatArray], weight: FloatArray) -> FloatArray | None:
    """Inverse-variance fusion of ``points`` shapes: the weighted mean of each point over the members
    ``points`` ((P, 2) each, px), ``weight (n,)`` their inverse position variances; None when the
    members do not have the same number of points (no correspondence: the caller keeps a member)."""
    if not points or len({p.shape for p in points}) != 1 or float(weight.sum()) <= 0:
        return None
    stack = np.stack([np.asarray(p, dtype=np.float64) for p in points])
    return np.asarray(np.einsum("n,npc->pc", weight, stack) / float(weight.sum()), dtype=np.float64)


def fuse_ellipses(cxcy_rxry: FloatArray, rotation: FloatArray, weight: FloatArray) -> tuple[FloatArray, float]:
    """Inverse-variance fusion of ellipses: ``cxcy_rxry (n, 4)`` centres and radii px, ``rotation (n,)``
    degrees, ``weight (n,)`` -> fused ``(4,)`` and rotation (degrees, [0, 180)).

    An ellipse is the same shape as its radii swapped and turned by 90 degrees, and the same turned
    by 180: each member is first written in the form whose axes are closest to the heaviest
    member's (``rx`` along the same direction); then centre and radii are weighted means and the
    angle the weighted circular mean of twice the angle (axial data)."""
    ref = int(np.argmax(weight))
    rot = np.asarray(rotation, dtype=np.float64)
    radii = np.asarray(cxcy_rxry[:, 2:], dtype=np.float64)
    # angle between each member's x-axis and the reference's, folded into [-90, 90)
    delta = np.mod(rot - rot[ref] + 90.0, 180.0) - 90.0
    swap = np.abs(delta) > 45.0
    radii = np.where(swap[:, None], radii[:, ::-1], radii)
    rot = np.where(swap, rot - np.sign(delta) * 90.0, rot)
    total = float(weight.sum())
    out = np.concatenate([weight @ cxcy_rxry[:, :2], weight @ radii]) / total
    doubled = np.deg2rad(2.0 * rot)
    angle = np.rad2deg(np.arctan2(weight @ np.sin(doubled), weight @ np.cos(doubled))) / 2.0
    return np.asarray(out, dtype=np.float64), float(np.mod(angle, 180.0))


# ---------------------------------------------------------------------------------------------
# tags


def merge_tags(frame: int, tags: Sequence[tuple[int, Tag]], weights: FloatArray, quorum: int) -> list[Tag]:
    """Per frame: a tag label survives when at least ``quorum`` annotators gave it; score = share
    of the annotators' total weight. ``tags`` are (annotator, tag) pairs."""
    by_label: dict[int, dict[int, Tag]] = {}
    for r, tag in tags:
        by_label.setdefault(tag.label_id, {}).setdefault(r, tag)
    out: list[Tag] = []
    for label_id in sorted(by_label):
        voters = by_label[label_id]
        if len(voters) < quorum:
            continue
        members = list(voters.values())
        w = [float(weights[r]) for r in voters]
        out.append(Tag(frame=frame, label_id=label_id, source=SOURCE, attributes=vote_attributes(members, w)))
    return out
