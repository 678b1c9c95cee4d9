"""Pairwise optimal matching of two annotators' objects, on a whole chunk of frames at once.

Objects are the rows of a :class:`~cvat_ext.consensus.batch.ReplicaBatch`. For an annotator pair
``(r, s)`` the *candidates* are the object pairs on the same frame whose similarity (IoU, or OKS
for points/skeletons) reaches ``iou_thr``. The matching maximises the summed similarity of
candidates (Hungarian, :func:`scipy.optimize.linear_sum_assignment`) per frame. On a frame where no
object has more than one candidate the candidates already are that optimum, so the solver only runs
on frames with competing candidates, on the sub-matrix of rows and columns that have candidates.

Rectangles never build an (N, N) matrix: a sort-and-sweep over box extents proposes the pairs that
overlap, and only those go through the geometry kernel. Other types use
:func:`cvat_ext.geometry.similarity_matrix` per frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cvat_ext.consensus.assignment import linear_sum_assignment
from cvat_ext.consensus.batch import FloatArray, IntArray, ReplicaBatch
from cvat_ext.consensus.segments import segment_rows_runs
from cvat_ext.geometry import (
    RowRuns,
    SimilarityParams,
    box_iou_pairs,
    runs_iou,
    similarity_matrix,
    take_runs,
)


def _empty_int() -> IntArray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class PairLinks:
    """Matched object pairs of annotators ``r < s``: rows ``a (L,)`` of r, ``b (L,)`` of s, ``sim (L,)``.

    ``weak_a``, ``weak_b``, ``weak_sim`` (W,): candidate pairs with a similarity in
    ``[weak_thr, iou_thr)`` (below the threshold: not matched; the clustering may rejoin two
    singletons along them, see :mod:`cvat_ext.consensus.clusters`). Empty without ``weak_thr``.
    """

    a: IntArray
    b: IntArray
    sim: FloatArray
    weak_a: IntArray = dataclasses.field(default_factory=_empty_int)
    weak_b: IntArray = dataclasses.field(default_factory=_empty_int)
    weak_sim: FloatArray = dataclasses.field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if not self.a.shape == self.b.shape == self.sim.shape or self.a.ndim != 1:
            raise ValueError(f"links: expected three (L,) arrays, got {self.a.shape} {self.b.shape} {self.sim.shape}")
        if not self.weak_a.shape == self.weak_b.shape == self.weak_sim.shape or self.weak_a.ndim != 1:
            raise ValueError(f"weak links: expected three (W,) arrays, got {self.weak_a.shape} {self.weak_sim.shape}")

    def __len__(self) -> int:
        return int(self.a.shape[0])


def annotator_pairs(n_annotators: int) -> list[tuple[int, int]]:
    """All ``(r, s)`` with ``r < s``, in a fixed order (the column order of pair tables)."""
    return [(r, s) for r in range(n_annotators) for s in range(r + 1, n_annotators)]


def pair_design(n_annotators: int) -> FloatArray:
    """(P, R) pair-annotator incidence in :func:`annotator_pairs` order (1 at both annotators of
    each pair): the design of a per-pair quantity that adds per annotator (variances)."""
    design = np.zeros((n_annotators * (n_annotators - 1) // 2, n_annotators))
    for p, (r, s) in enumerate(annotator_pairs(n_annotators)):
        design[p, r] = design[p, s] = 1.0
    return design


def pair_index(n_annotators: int) -> IntArray:
    """(R, R) column of each annotator pair in pair tables (:func:`annotator_pairs` order); 0 on
    the diagonal (callers handle equal annotators)."""
    out = np.zeros((n_annotators, n_annotators), dtype=np.int64)
    for p, (r, s) in enumerate(annotator_pairs(n_annotators)):
        out[r, s] = out[s, r] = p
    return out


def _rows_of(batch: ReplicaBatch, r: int) -> IntArray:
    return np.flatnonzero(batch.annotator == r)


def _reach(size: FloatArray, iou_thr: float) -> FloatArray:
    """Largest centre offset along one axis at which a box of extent ``size`` can still reach IoU
    ``iou_thr`` with any box: IoU >= t needs an overlap >= t * max(extents), which bounds the offset
    by ``size * (1 - t) * max(1, 1 / (2 t))``."""
    factor = (1.0 - iou_thr) * max(1.0, 1.0 / (2.0 * iou_thr))
    return size * factor * (1.0 + 1e-9) + 1e-9


def box_candidates(batch: ReplicaBatch, r: int, s: int, iou_thr: float = 0.0) -> tuple[IntArray, IntArray]:
    """Rows ``(ia, ib)`` of annotator r and s on the same frame whose boxes overlap and whose
    centres are close enough to reach ``iou_thr`` (a sort-and-sweep on x)."""
    rows_a, rows_b = _rows_of(batch, r), _rows_of(batch, s)
    if rows_a.size == 0 or rows_b.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # rows of (M, 4) arrays by take(axis=0): NumPy's fancy index of a 2-D array is ~8x slower
    xyxy_a, xyxy_b = batch.xyxy.take(rows_a, axis=0), batch.xyxy.take(rows_b, axis=0)
    # one sorted key per frame band: frames are separated by more than any box reach
    span = float(max(np.abs(batch.xyxy).max(), 1.0)) * 4.0 + 1.0
    cx_a = (xyxy_a[:, 0] + xyxy_a[:, 2]) / 2 + batch.frame_pos[rows_a] * span
    cx_b = (xyxy_b[:, 0] + xyxy_b[:, 2]) / 2 + batch.frame_pos[rows_b] * span
    width_a = np.abs(xyxy_a[:, 2] - xyxy_a[:, 0])
    reach = width_a / 2 + float(np.abs(xyxy_b[:, 2] - xyxy_b[:, 0]).max()) / 2
    if iou_thr > 0:
        reach = np.minimum(reach, _reach(width_a, iou_thr))
    order = np.argsort(cx_b, kind="stable")
    sorted_b = cx_b[order]
    lo = np.searchsorted(sorted_b, cx_a - reach, side="left")
    hi = np.searchsorted(sorted_b, cx_a + reach, side="right")
    counts = hi - lo
    total = int(counts.sum())
    ia = np.repeat(np.arange(rows_a.size), counts)
    offsets = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    ib = order[np.arange(total) + offsets]
    # exact extent overlap on both axes (zero-area contact cannot reach a positive threshold)
    a, b = xyxy_a.take(ia, axis=0), xyxy_b.take(ib, axis=0)
    keep = (
        (np.minimum(a[:, 2], b[:, 2]) > np.maximum(a[:, 0], b[:, 0]))
        & (np.minimum(a[:, 3], b[:, 3]) > np.maximum(a[:, 1], b[:, 1]))
        & (batch.frame_pos[rows_a][ia] == batch.frame_pos[rows_b][ib])
    )
    if iou_thr > 0:
        dy = np.abs((a[:, 1] + a[:, 3]) - (b[:, 1] + b[:, 3])) / 2
        keep &= dy <= _reach(np.abs(a[:, 3] - a[:, 1]), iou_thr)
    return rows_a[ia[keep]], rows_b[ib[keep]]


def box_links(batch: ReplicaBatch, r: int, s: int, iou_thr: float, weak_thr: float | None = None) -> PairLinks:
    """Optimal matching of axis-aligned rectangles of annotators r and s over the whole chunk."""
    ia, ib = box_candidates(batch, r, s, iou_thr if weak_thr is None else weak_thr)
    iou = box_iou_pairs(batch.xyxy.take(ia, axis=0), batch.xyxy.take(ib, axis=0))
    return match_candidates(batch, ia, ib, iou, iou_thr, weak_thr)


def _with_size(params: SimilarityParams, frame_wh: IntArray | None, frame_pos: int) -> SimilarityParams:
    if frame_wh is None:
        return params
    return params.sized((int(frame_wh[frame_pos, 0]), int(frame_wh[frame_pos, 1])))


def dense_links(
    batch: ReplicaBatch,
    r: int,
    s: int,
    params: SimilarityParams,
    iou_thr: float,
    frame_wh: IntArray | None = None,
    weak_thr: float | None = None,
) -> PairLinks:
    """Optimal matching through :func:`similarity_matrix`, one frame at a time (any shape type).
    ``frame_wh (F, 2)`` gives each frame's size (else ``params.image_wh`` holds for all)."""
    low = iou_thr if weak_thr is None else weak_thr
    ia_parts: list[IntArray] = []
    ib_parts: list[IntArray] = []
    sim_parts: list[FloatArray] = []
    has_r = (batch.index[:, r] >= 0).any(axis=1)
    has_s = (batch.index[:, s] >= 0).any(axis=1)
    for f in np.flatnonzero(has_r & has_s).tolist():
        rows_a = batch.index[f, r][batch.index[f, r] >= 0]
        rows_b = batch.index[f, s][batch.index[f, s] >= 0]
        sim = similarity_matrix(
            [batch.shape(i) for i in rows_a.tolist()],
            [batch.shape(j) for j in rows_b.tolist()],
            _with_size(params, frame_wh, f),
        )
        i, j = np.nonzero(sim >= low)
        ia_parts.append(rows_a[i])
        ib_parts.append(rows_b[j])
        sim_parts.append(sim[i, j])
    if not ia_parts:
        return match_candidates(batch, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), iou_thr)
    return match_candidates(
        batch, np.concatenate(ia_parts), np.concatenate(ib_parts), np.concatenate(sim_parts), iou_thr, weak_thr
    )


def segment_links(
    batch: ReplicaBatch,
    params: SimilarityParams,
    iou_thr: float,
    frame_wh: IntArray | None = None,
    weak_thr: float | None = None,
) -> dict[tuple[int, int], PairLinks]:
    """All annotator pairs of a polygon/mask batch: the shapes become row runs once, in blocks of
    frames (:func:`~cvat_ext.consensus.segments.segment_rows_runs`); in each block every
    annotator's runs are stacked with a row offset per frame, so that frames never overlap, and one
    run-join IoU per pair covers the block."""
    pairs = annotator_pairs(batch.n_annotators)
    parts: dict[tuple[int, int], list[tuple[IntArray, IntArray, FloatArray]]] = {p: [] for p in pairs}
    runs = segment_rows_runs(batch, params, frame_wh)
    thr = iou_thr if weak_thr is None else weak_thr
    for b, block in enumerate(runs.blocks):
        _segment_block(batch, block, runs.offsets[b], int(runs.bounds[b]), thr, parts)
    out = {}
    for p in pairs:
        if parts[p]:
            ia, ib, sim = (np.concatenate(col) for col in zip(*parts[p], strict=True))
        else:
            ia, ib, sim = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        out[p] = match_candidates(batch, ia, ib, sim, iou_thr, weak_thr)
    return out


def _segment_block(
    batch: ReplicaBatch,
    block: RowRuns,
    offsets: IntArray,
    lo: int,
    iou_thr: float,
    parts: dict[tuple[int, int], list[tuple[IntArray, IntArray, FloatArray]]],
) -> None:
    """Candidates of the rows ``lo : lo + block.count`` (a block of frames) into ``parts``."""
    annot = batch.annotator[lo : lo + block.count]
    local = [np.flatnonzero(annot == r) for r in range(batch.n_annotators)]
    taken = [take_runs(block, idx, offsets) for idx in local]
    lows = [int(x.row.min()) for x in taken if x.row.size]
    if not lows:
        return
    stride = max(int(x.row.max()) for x in taken if x.row.size) - min(lows) + 2
    frame_pos = batch.frame_pos[lo : lo + block.count]
    f0 = int(frame_pos[0])
    stacked = []
    for x, idx in zip(taken, local, strict=True):
        shift = (frame_pos[idx] - f0) * stride
        ltrb = x.ltrb + (shift[:, None] * np.array([0, 1, 0, 1])) * (x.area > 0)[:, None]
        stacked.append(RowRuns.derived(x.row + shift[x.owner], x.start, x.end, x.owner, x.count, x.area, ltrb))
    # one run join of each annotator against all later ones together (R - 1 joins, not R(R-1)/2):
    # the (n_r, n_later) IoU matrix is the pairs' matrices side by side, entry for entry
    for r in range(batch.n_annotators - 1):
        later = [s for s in range(r + 1, batch.n_annotators) if local[s].size]
        if local[r].size == 0 or not later:
            continue
        iou = runs_iou(stacked[r], RowRuns.concat([stacked[s] for s in later]))
        col = 0
        for s in later:
            sub = iou[:, col : col + local[s].size]
            col += local[s].size
            i, j = np.nonzero(sub >= iou_thr)
            parts[(r, s)].append((lo + local[r][i], lo + local[s][j], sub[i, j]))


def batch_links(
    batch: ReplicaBatch,
    params: SimilarityParams,
    iou_thr: float,
    frame_wh: IntArray | None = None,
    weak_thr: float | None = None,
) -> dict[tuple[int, int], PairLinks]:
    """The matching of every annotator pair of a batch, by the fastest path for its shape type.
    ``frame_wh (F, 2)``: each frame's size (clips masks, scales lines), else ``params.image_wh``.
    ``weak_thr`` (< ``iou_thr``): also report the pairs in ``[weak_thr, iou_thr)`` as weak links."""
    pairs = annotator_pairs(batch.n_annotators)
    if weak_thr is not None and weak_thr >= iou_thr:
        weak_thr = None
    if batch.family == "segment" and batch.shapes is not None:
        return segment_links(batch, params, iou_thr, frame_wh, weak_thr)
    if batch.family == "rectangle" and not np.any(np.mod(batch.rotation, 180.0)):
        return {(r, s): box_links(batch, r, s, iou_thr, weak_thr) for r, s in pairs}
    return {(r, s): dense_links(batch, r, s, params, iou_thr, frame_wh, weak_thr) for r, s in pairs}


def match_candidates(
    batch: ReplicaBatch, ia: IntArray, ib: IntArray, sim: FloatArray, iou_thr: float, weak_thr: float | None = None
) -> PairLinks:
    """Resolve candidate pairs (rows ``ia`` of one annotator, ``ib`` of the other, their
    similarity ``sim``) into the per-frame optimal one-to-one matching; with ``weak_thr``, the
    candidates in ``[weak_thr, iou_thr)`` come back as weak links."""
    keep = sim >= iou_thr
    if weak_thr is not None:
        weak = ~keep & (sim >= weak_thr)
        if weak.any():
            strong = match_candidates(batch, ia[keep], ib[keep], sim[keep], iou_thr)
            return dataclasses.replace(strong, weak_a=ia[weak], weak_b=ib[weak], weak_sim=sim[weak])
    ia, ib, sim = ia[keep], ib[keep], sim[keep]
    m = batch.label.shape[0]
    row_count = np.bincount(ia, minlength=m)
    col_count = np.bincount(ib, minlength=m)
    contested = (row_count[ia] > 1) | (col_count[ib] > 1)
    if not contested.any():
        return PairLinks(ia, ib, sim)
    frame = batch.frame_pos[ia]
    hard = np.isin(frame, np.unique(frame[contested]))
    out_a, out_b, out_sim = [ia[~hard]], [ib[~hard]], [sim[~hard]]
    ia_h, ib_h, sim_h, frame_h = ia[hard], ib[hard], sim[hard], frame[hard]
    order = np.argsort(frame_h, kind="stable")
    ia_h, ib_h, sim_h, frame_h = ia_h[order], ib_h[order], sim_h[order], frame_h[order]
    # per frame, the sub-matrix of rows and columns with candidates, in row order: local indices
    # are global ranks minus the rank of the frame's first row (rows are sorted by frame)
    uniq_a, rank_a = np.unique(ia_h, return_inverse=True)
    uniq_b, rank_b = np.unique(ib_h, return_inverse=True)
    frame_a, frame_b = batch.frame_pos[uniq_a], batch.frame_pos[uniq_b]
    frames, first = np.unique(frame_h, return_index=True)
    start_a = np.searchsorted(frame_a, frames)
    start_b = np.searchsorted(frame_b, frames)
    stop_a = np.searchsorted(frame_a, frames, side="right")
    stop_b = np.searchsorted(frame_b, frames, side="right")
    stops = np.append(first[1:], frame_h.size)
    # the loop solves each frame's matrix; what it picks is looked up once, after it (a pair the
    # solver picks without a candidate has weight 0 and is dropped, as are candidates of weight 0)
    frame_of = np.repeat(np.arange(frames.size), stops - first)  # each candidate's frame, 0..F-1
    local_a, local_b = rank_a - start_a[frame_of], rank_b - start_b[frame_of]
    picked_a: list[IntArray] = []
    picked_b: list[IntArray] = []
    for lo, hi, a0, a1, b0, b1 in zip(
        first.tolist(), stops.tolist(), start_a.tolist(), stop_a.tolist(), start_b.tolist(), stop_b.tolist(),
        strict=True,
    ):
        weights = np.zeros((a1 - a0, b1 - b0))
        weights[local_a[lo:hi], local_b[lo:hi]] = sim_h[lo:hi]
        sel_a, sel_b = linear_sum_assignment(weights, maximize=True)
        picked_a.append(sel_a + a0)
        picked_b.append(sel_b + b0)
    pick_a, pick_b = np.concatenate(picked_a), np.concatenate(picked_b)
    # candidates and picks as (rank_a, rank_b) keys: a pick's weight is its candidate's similarity
    # (the last one of a repeated pair, as the matrix got it)
    n_b = int(uniq_b.size)
    cand_key = rank_a * n_b + rank_b
    cand_order = np.argsort(cand_key, kind="stable")
    pick_key = pick_a * n_b + pick_b
    at = cand_order[np.maximum(np.searchsorted(cand_key, pick_key, side="right", sorter=cand_order) - 1, 0)]
    pick_sim = np.where(cand_key[at] == pick_key, sim_h[at], 0.0)
    ok = pick_sim > 0
    out_a.append(uniq_a[pick_a[ok]])
    out_b.append(uniq_b[pick_b[ok]])
    out_sim.append(pick_sim[ok])
    return PairLinks(np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_sim))
