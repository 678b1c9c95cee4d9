"""The chunk-level matching and clustering equal a naive per-frame reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from cvat_ext.annotations.model import FrameAnnotations, MaskRle, Shape, ShapeType
from cvat_ext.consensus.batch import ChunkInput, ReplicaBatch, build_batches
from cvat_ext.consensus.clusters import _join_weak, _join_weak_in_turn
from cvat_ext.consensus.engine import cluster_batch
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.geometry import SimilarityParams, box_iou, similarity_matrix

PARAMS = SimilarityParams(image_wh=(40, 30))


def naive_clusters(batch: ReplicaBatch, iou_thr: float) -> set[frozenset[int]]:
    """Per frame: dense IoU, Hungarian on the candidate sub-matrix per annotator pair, then the
    greedy clique rule over every link of the frame. Clusters as sets of batch rows."""
    out: set[frozenset[int]] = set()
    for f in range(batch.n_frames):
        rows = [batch.index[f, r][batch.index[f, r] >= 0] for r in range(batch.n_annotators)]
        links: list[tuple[float, int, int]] = []
        for r, s in annotator_pairs(batch.n_annotators):
            a, b = rows[r], rows[s]
            if a.size == 0 or b.size == 0:
                continue
            if batch.shapes is None:
                sim = box_iou(batch.xyxy[a], batch.xyxy[b])
            else:
                sim = similarity_matrix([batch.shapes[i] for i in a], [batch.shapes[j] for j in b], PARAMS)
            cand = sim >= iou_thr
            keep_a = np.flatnonzero(cand.any(axis=1))
            keep_b = np.flatnonzero(cand.any(axis=0))
            if keep_a.size == 0:
                continue
            sub = np.where(cand, sim, 0.0)[np.ix_(keep_a, keep_b)]
            sel_a, sel_b = linear_sum_assignment(sub, maximize=True)
            for i, j in zip(sel_a, sel_b, strict=True):
                if sub[i, j] > 0:
                    links.append((float(sub[i, j]), int(a[keep_a[i]]), int(b[keep_b[j]])))
        linked = {(x, y) for _, x, y in links} | {(y, x) for _, x, y in links}
        cluster = {int(n): frozenset([int(n)]) for part in rows for n in part}
        for _, x, y in sorted(links, key=lambda t: (-t[0], t[1], t[2])):
            cx, cy = cluster[x], cluster[y]
            if cx == cy:
                continue
            if {int(batch.annotator[n]) for n in cx} & {int(batch.annotator[n]) for n in cy}:
                continue
            if not all((p, q) in linked for p in cx for q in cy):
                continue
            joined = cx | cy
            for n in joined:
                cluster[n] = joined
        out |= set(cluster.values())
    return out


def fast_clusters(batch: ReplicaBatch, iou_thr: float) -> set[frozenset[int]]:
    table = cluster_batch(batch, PARAMS, iou_thr)
    out = set()
    for k in range(len(table)):
        members = [
            int(batch.index[table.frame_pos[k], r, slot]) for r, slot in enumerate(table.members[k]) if slot >= 0
        ]
        out.add(frozenset(members))
    return out


@st.composite
def replica_batches(draw: st.DrawFn) -> ReplicaBatch:
    n_frames = draw(st.integers(1, 3))
    n_annot = draw(st.integers(2, 4))
    # a coarse grid makes identical boxes, ties and competing candidates common
    coord = st.integers(0, 6).map(float)
    rows = []
    for f in range(n_frames):
        for r in range(n_annot):
            for _ in range(draw(st.integers(0, 5))):
                x0, y0 = draw(coord), draw(coord)
                w, h = draw(st.integers(0, 4)), draw(st.integers(1, 4))
                rows.append((f, r, x0, y0, x0 + w, y0 + h))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 6)
    return ReplicaBatch.from_columns(
        frames=np.arange(n_frames),
        n_annotators=n_annot,
        frame_pos=arr[:, 0].astype(np.int64),
        annotator=arr[:, 1].astype(np.int64),
        label=np.ones(len(rows), dtype=np.int64),
        xyxy=arr[:, 2:],
    )


@settings(max_examples=300, deadline=None)
@given(batch=replica_batches(), iou_thr=st.sampled_from([0.1, 0.3, 0.5, 0.75]))
def test_fast_clusters_equal_naive_reference(batch: ReplicaBatch, iou_thr: float) -> None:
    fast = fast_clusters(batch, iou_thr)
    assert fast == naive_clusters(batch, iou_thr)
    # every row is in exactly one cluster, with at most one object per annotator
    rows = [r for c in fast for r in c]
    assert sorted(rows) == list(range(batch.label.shape[0]))
    for c in fast:
        annots = [int(batch.annotator[r]) for r in c]
        assert len(annots) == len(set(annots))


def _chain_batch() -> ReplicaBatch:
    # a chain: IoU(A,B) = IoU(B,C) = 80/120 = 0.667, IoU(A,C) = 60/140 = 0.43
    return ReplicaBatch.from_columns(
        frames=np.array([0]),
        n_annotators=3,
        frame_pos=np.zeros(3, dtype=np.int64),
        annotator=np.array([0, 1, 2]),
        label=np.ones(3, dtype=np.int64),
        xyxy=np.array([[0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10]], dtype=np.float64),
    )


def test_every_pair_in_a_cluster_reaches_the_threshold() -> None:
    # A~B and B~C match, A and C do not -> no cluster may hold both A and C
    batch = _chain_batch()
    table = cluster_batch(batch, PARAMS, 0.5)
    members = sorted(tuple(int(x) for x in m) for m in table.members)
    assert members == [(-1, -1, 0), (0, 0, -1)]  # the greedy rule keeps the first best link (A, B)
    kept = table.pair_sim[np.isfinite(table.pair_sim)]
    assert kept == pytest.approx([80 / 120])


def test_hungarian_beats_greedy_on_competing_candidates() -> None:
    # IoU(a0,b0) = 90/100 = 0.9, IoU(a0,b1) = 80/120 = 0.667, IoU(a1,b0) = 70/120 = 0.583,
    # IoU(a1,b1) = 50/150 = 0.33. Taking the best pair first (a0-b0) leaves a1 and b1 unmatched;
    # the optimum matches a0-b1 and a1-b0 (1.25 > 0.9).
    batch = ReplicaBatch.from_columns(
        frames=np.array([0]),
        n_annotators=2,
        frame_pos=np.zeros(4, dtype=np.int64),
        annotator=np.array([0, 0, 1, 1]),
        label=np.ones(4, dtype=np.int64),
        xyxy=np.array([[0, 0, 10, 10], [-3, 0, 7, 10], [0, 0, 9, 10], [2, 0, 12, 10]], dtype=np.float64),
    )
    table = cluster_batch(batch, PARAMS, 0.5)
    pairs = {(int(m[0]), int(m[1])) for m in table.members}
    assert pairs == {(0, 1), (1, 0)}
    assert sorted(table.pair_sim[:, 0].tolist()) == pytest.approx([70 / 120, 80 / 120])


@st.composite
def segment_batches(draw: st.DrawFn) -> ReplicaBatch:
    """Masks and polygons (some partly outside the 40x30 frame) on a few frames."""
    n_frames = draw(st.integers(1, 3))
    n_annot = draw(st.integers(2, 3))
    per_frame = []
    for f in range(n_frames):
        row = []
        for _ in range(n_annot):
            shapes = []
            for _ in range(draw(st.integers(0, 4))):
                x0, y0 = draw(st.integers(-3, 34)), draw(st.integers(-3, 24))
                w, h = draw(st.integers(1, 8)), draw(st.integers(1, 8))
                if draw(st.booleans()):
                    bits = np.array(draw(st.lists(st.booleans(), min_size=w * h, max_size=w * h))).reshape(h, w)
                    bits[0, 0] = True
                    mask = MaskRle.from_bitmap(bits, x0, y0)
                    shapes.append(Shape(type=ShapeType.MASK, frame=f, label_id=1, points=np.zeros((0, 2)), mask=mask))
                else:
                    poly = [(x0, y0), (x0 + w, y0), (x0 + w / 2, y0 + h)]
                    shapes.append(Shape(type=ShapeType.POLYGON, frame=f, label_id=1, points=np.array(poly, float)))
            row.append(FrameAnnotations(frame=f, shapes=tuple(shapes)))
        per_frame.append(tuple(row))
    chunk = ChunkInput(tuple(range(n_frames)), tuple(per_frame), n_annot)
    batches = build_batches(chunk)
    return batches.get(("segment", None)) or draw(replica_batches())


@settings(max_examples=150, deadline=None)
@given(batch=segment_batches(), iou_thr=st.sampled_from([0.2, 0.5]))
def test_segment_matching_equals_naive_reference(batch: ReplicaBatch, iou_thr: float) -> None:
    assert fast_clusters(batch, iou_thr) == naive_clusters(batch, iou_thr)


@pytest.mark.parametrize(
    ("xyxy", "weak_thr", "expected"),
    [
        # a chain of disjoint annotators is one object drawn with a low overlap somewhere
        ([[0, 0, 10, 10], [2, 0, 12, 10], [4, 0, 14, 10]], 0.25, [(0, 0, 0)]),
        # a singleton joins the pair it overlaps below the threshold (IoU 0.43 >= 0.25)
        ([[0, 0, 10, 10], [0, 0, 10, 10], [4, 0, 14, 10]], 0.25, [(0, 0, 0)]),
        # ... but not below the weak threshold (IoU 0.43 < 0.45)
        ([[0, 0, 10, 10], [0, 0, 10, 10], [4, 0, 14, 10]], 0.45, [(-1, -1, 0), (0, 0, -1)]),
        # two singletons of different annotators join along a weak link; the third stays alone
        ([[0, 0, 10, 10], [4, 0, 14, 10], [40, 40, 50, 50]], 0.25, [(-1, -1, 0), (0, 0, -1)]),
    ],
)
def test_rejoin_recognises_one_object_drawn_apart(xyxy: list[list[float]], weak_thr: float, expected: list) -> None:
    batch = dataclasses.replace(_chain_batch(), xyxy=np.array(xyxy, dtype=np.float64))
    table = cluster_batch(batch, PARAMS, 0.5, None, weak_thr)
    assert sorted(tuple(int(x) for x in m) for m in table.members) == expected
    # unlinked pairs inside a cluster keep NaN: only links reach the threshold
    finite = table.pair_sim[np.isfinite(table.pair_sim)]
    assert np.all(finite >= 0.5)


@settings(max_examples=150, deadline=None)
@given(batch=replica_batches(), iou_thr=st.sampled_from([0.3, 0.5, 0.75]))
def test_rejoined_clusters_coarsen_the_strict_ones(batch: ReplicaBatch, iou_thr: float) -> None:
    strict = fast_clusters(batch, iou_thr)
    table = cluster_batch(batch, PARAMS, iou_thr, None, iou_thr / 2)
    rejoined = {
        frozenset(int(batch.index[table.frame_pos[k], r, slot]) for r, slot in enumerate(m) if slot >= 0)
        for k, m in enumerate(table.members)
    }
    rows = sorted(r for c in rejoined for r in c)
    assert rows == list(range(batch.label.shape[0]))
    for c in rejoined:
        annots = [int(batch.annotator[r]) for r in c]
        assert len(annots) == len(set(annots))
    # every strict cluster lies inside one rejoined cluster
    for c in strict:
        assert sum(1 for d in rejoined if c <= d) == 1


def _partition(root: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(root == r).tolist()) for r in np.unique(root)}


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 30).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, n - 1), min_size=n, max_size=n),  # cluster seed per row
            st.lists(st.integers(0, 3), min_size=n, max_size=n),  # annotator per row
            st.lists(
                st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.sampled_from([0.2, 0.3, 0.35, 0.4])),
                max_size=3 * n,
            ),
        )
    )
)
def test_weak_joins_by_rounds_equal_the_edge_by_edge_greedy(data: tuple[list[int], list[int], list]) -> None:
    seeds, annots, edges = data
    edges = [(a, b, w) for a, b, w in edges if a != b]
    root = np.array(seeds, dtype=np.int64)
    annotator = np.array(annots, dtype=np.int64)
    weak_a = np.array([e[0] for e in edges], dtype=np.int64)
    weak_b = np.array([e[1] for e in edges], dtype=np.int64)
    weak_sim = np.array([e[2] for e in edges], dtype=np.float64)
    fast = root.copy()
    _join_weak(fast, weak_a, weak_b, weak_sim, annotator)
    # reference: the same useful edges in greedy order, decided one at a time
    slow = root.copy()
    size = np.bincount(root, minlength=int(root.max()) + 1)
    useful = (size[root[weak_a]] == 1) | (size[root[weak_b]] == 1)
    order = np.lexsort((weak_b[useful], weak_a[useful], -weak_sim[useful]))
    if order.size:
        _join_weak_in_turn(slow, weak_a[useful][order], weak_b[useful][order], annotator)
    assert _partition(fast) == _partition(slow)


def _per_frame_matching(batch: ReplicaBatch, ia: np.ndarray, ib: np.ndarray, sim: np.ndarray, thr: float) -> tuple:
    """The reference: every frame's candidates in one dense matrix (the last of a repeated pair),
    solved on its own; uncontested frames keep their candidates as they are (in input order)."""
    keep = sim >= thr
    ia, ib, sim = ia[keep], ib[keep], sim[keep]
    frame = batch.frame_pos[ia]
    m = batch.label.size
    contested = (np.bincount(ia, minlength=m)[ia] > 1) | (np.bincount(ib, minlength=m)[ib] > 1)
    hard = np.isin(frame, frame[contested])
    out = [(ia[~hard], ib[~hard], sim[~hard])]
    for f in np.unique(frame[hard]).tolist():
        sel = np.flatnonzero(hard & (frame == f))
        rows, cols = np.unique(ia[sel]), np.unique(ib[sel])
        weights = np.zeros((rows.size, cols.size))
        for i in sel.tolist():  # in input order: a repeated pair keeps its last similarity
            weights[np.searchsorted(rows, ia[i]), np.searchsorted(cols, ib[i])] = sim[i]
        a, b = linear_sum_assignment(weights, maximize=True)
        ok = weights[a, b] > 0
        out.append((rows[a[ok]], cols[b[ok]], weights[a[ok], b[ok]]))
    return tuple(np.concatenate(col) for col in zip(*out, strict=True))


@pytest.mark.parametrize("seed", range(6))
def test_match_candidates_equal_a_matrix_per_frame(seed: int) -> None:
    """Random candidates on a few frames: contested and not, repeated pairs, ties, zero and
    below-threshold similarities; the same links in the same order as one solve per frame."""
    from cvat_ext.consensus.matching import match_candidates

    rng = np.random.default_rng(seed)
    n_frames, per_frame = 12, 6
    frame_pos = np.repeat(np.arange(n_frames), 2 * per_frame)
    annotator = np.tile(np.repeat([0, 1], per_frame), n_frames)
    batch = ReplicaBatch.from_columns(
        frames=np.arange(n_frames),
        n_annotators=2,
        frame_pos=frame_pos,
        annotator=annotator,
        label=np.ones(frame_pos.size, dtype=np.int64),
        xyxy=np.tile([0.0, 0.0, 1.0, 1.0], (frame_pos.size, 1)),
    )
    ia, ib = [], []
    for f in range(n_frames):
        rows_a = np.flatnonzero((frame_pos == f) & (annotator == 0))
        rows_b = np.flatnonzero((frame_pos == f) & (annotator == 1))
        n = int(rng.integers(0, 10))
        ia.append(rng.choice(rows_a, n))
        ib.append(rng.choice(rows_b, n))
    ia_all, ib_all = np.concatenate(ia), np.concatenate(ib)
    sim = rng.choice([0.0, 0.3, 0.5, 0.5, 0.75, 1.0], ia_all.size) * rng.choice([1.0, 1.0, 0.9], ia_all.size)
    links = match_candidates(batch, ia_all, ib_all, sim, 0.3)
    expected = _per_frame_matching(batch, ia_all, ib_all, sim, 0.3)
    for got, want in zip((links.a, links.b, links.sim), expected, strict=True):
        assert np.array_equal(got, want)
