"""Clusters of objects across R annotators, built from the pairwise optimal matchings.

Rule (documented in the README): two objects of different annotators are *linked* when the
pairwise assignment of their annotators matched them. A cluster is a set of objects in which
every two members are linked, so it holds at most one object per annotator and every pair in it
reaches the threshold (the guarantee CVAT's consensus merge gives). Connected components of the
link graph that already are such cliques become clusters directly (vectorised; nearly all of
them). Other components are split greedily: links are taken by descending similarity (ties by
object order) and two clusters join only if every cross pair is linked. Unlinked objects are
singleton clusters.

With ``rejoin`` (the engine's default, ``ConsensusSettings.rejoin_share > 0``) two more greedy
passes, by descending similarity, recognise one object drawn too differently to match as one:
(1) parts of a split component whose annotators are disjoint join along any of their links
(a chain A~B, B~C with A, C apart is one object: an annotator draws an object once);
(2) a singleton joins another cluster of other annotators along a *weak link* (a pair with a
similarity in ``[rejoin_share * iou_thr, iou_thr)``). Pairs of a cluster that are not linked keep
a NaN similarity (they count as unmatched pairs) and the cluster is reported as low overlap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray, ReplicaBatch
from cvat_ext.consensus.components import connected_components
from cvat_ext.consensus.matching import PairLinks, annotator_pairs

Pair = tuple[int, int]


@dataclass(frozen=True, eq=False)
class ClusterTable:
    """Clusters of one match group in a chunk, ordered by their first object (so by frame).

    ``frame_pos (K,)`` position of the cluster's frame in the chunk; ``members (K, R)`` the slot of
    each annotator's member, -1 if absent; ``pair_sim (K, P)`` the similarity of each annotator pair
    (order of :func:`annotator_pairs`), NaN unless both are members.
    """

    frame_pos: IntArray
    members: IntArray
    pair_sim: FloatArray

    def __post_init__(self) -> None:
        k = self.frame_pos.shape[0]
        if self.members.ndim != 2 or self.members.shape[0] != k:
            raise ValueError(f"members: expected shape ({k}, R), got {self.members.shape}")
        if self.pair_sim.shape[0] != k:
            raise ValueError(f"pair_sim: expected {k} rows, got {self.pair_sim.shape}")

    @property
    def present(self) -> BoolArray:
        """(K, R) true where the annotator has a member."""
        return self.members >= 0

    def __len__(self) -> int:
        return int(self.frame_pos.shape[0])


def build_clusters(batch: ReplicaBatch, links: Mapping[Pair, PairLinks], *, rejoin: bool = False) -> ClusterTable:
    """Cluster the rows of ``batch`` from the pairwise matchings ``links[(r, s)]``; ``rejoin``: also
    rejoin split parts with disjoint annotators and singletons along weak links (module docstring)."""
    m = batch.label.shape[0]
    n_annot = batch.n_annotators
    pairs = annotator_pairs(n_annot)
    edge_a = np.concatenate([links[p].a for p in pairs]) if pairs else np.zeros(0, np.int64)
    edge_b = np.concatenate([links[p].b for p in pairs]) if pairs else np.zeros(0, np.int64)
    edge_sim = np.concatenate([links[p].sim for p in pairs]) if pairs else np.zeros(0)
    edge_pair = np.repeat(np.arange(len(pairs)), [len(links[p]) for p in pairs])

    comp = connected_components(m, edge_a, edge_b)

    # a component is a clique of links iff it has one object per annotator at most and
    # size * (size - 1) / 2 links (links join different annotators and are one-to-one per pair)
    n_comp = int(comp.max()) + 1 if m else 0
    size = np.bincount(comp, minlength=n_comp)
    n_edges = np.bincount(comp[edge_a], minlength=n_comp)
    per_annot = np.bincount(comp * n_annot + batch.annotator, minlength=n_comp * n_annot).reshape(n_comp, n_annot)
    bad = (per_annot.max(axis=1, initial=0) > 1) | (n_edges != size * (size - 1) // 2)
    root = comp.copy()
    if bad.any():
        on_bad = bad[comp[edge_a]]
        _split_greedily(
            root, comp, bad, edge_a[on_bad], edge_b[on_bad], edge_sim[on_bad], batch.annotator, n_comp, rejoin
        )
    weak_a = np.concatenate([links[p].weak_a for p in pairs]) if pairs else np.zeros(0, np.int64)
    if rejoin and weak_a.size:
        weak_b = np.concatenate([links[p].weak_b for p in pairs])
        weak_sim = np.concatenate([links[p].weak_sim for p in pairs])
        _join_weak(root, weak_a, weak_b, weak_sim, batch.annotator)

    # table: clusters ordered by their first row
    uniq_root, first_row, inv = np.unique(root, return_index=True, return_inverse=True)
    order = np.argsort(first_row, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    cluster = rank[inv]
    members = np.full((uniq_root.size, n_annot), -1, dtype=np.int64)
    members[cluster, batch.annotator] = batch.slot
    frame_pos = np.empty(uniq_root.size, dtype=np.int64)
    frame_pos[cluster] = batch.frame_pos
    pair_sim = np.full((uniq_root.size, len(pairs)), np.nan)
    same = cluster[edge_a] == cluster[edge_b]
    pair_sim[cluster[edge_a[same]], edge_pair[same]] = edge_sim[same]
    return ClusterTable(frame_pos=frame_pos, members=members, pair_sim=pair_sim)


def _split_greedily(
    root: IntArray,
    comp: IntArray,
    bad: BoolArray,
    edge_a: IntArray,
    edge_b: IntArray,
    edge_sim: FloatArray,
    annotator: IntArray,
    n_comp: int,
    rejoin: bool,
) -> None:
    """Re-cluster the nodes of the ``bad`` components in place (``root`` per row) by the greedy rule."""
    bad_rows = np.flatnonzero(bad[comp])
    # every bad row starts alone; its new root ids come after all component ids
    root[bad_rows] = n_comp + bad_rows
    order = np.lexsort((edge_b, edge_a, -edge_sim))
    edges = list(zip(edge_a[order].tolist(), edge_b[order].tolist(), strict=True))
    linked = set(edges)
    members: dict[int, list[int]] = {}
    _greedy_joins(root, members, edges, annotator, linked)
    if rejoin:
        # parts of a component with disjoint annotators are one object drawn with a low overlap
        # somewhere (an annotator draws an object once): a link between them is enough
        _greedy_joins(root, members, edges, annotator, None)


def _greedy_joins(
    root: IntArray,
    members: dict[int, list[int]],
    edges: list[tuple[int, int]],
    annotator: IntArray,
    linked: set[tuple[int, int]] | None,
) -> None:
    """Join the clusters of each edge in turn when their annotators are disjoint and, with
    ``linked``, every cross pair is linked (``root`` and ``members`` updated in place)."""
    for a, b in edges:
        ra, rb = int(root[a]), int(root[b])
        if ra == rb:
            continue
        ma = members.get(ra, [a])
        mb = members.get(rb, [b])
        if {int(annotator[x]) for x in ma} & {int(annotator[y]) for y in mb}:
            continue
        if linked is not None and not all((x, y) in linked or (y, x) in linked for x in ma for y in mb):
            continue
        _join(root, members, ra, rb, ma + mb)


def _join_weak(root: IntArray, weak_a: IntArray, weak_b: IntArray, weak_sim: FloatArray, annotator: IntArray) -> None:
    """Join a singleton to another cluster of other annotators along a weak link (similarity below
    the threshold), by descending similarity: the same object drawn too differently to match.

    The greedy order is kept without a loop over edges: in each round, every edge that comes first
    (by similarity, then rows) among the remaining edges of *both* its clusters is decided at once.
    No earlier edge can change those two clusters, so each decision is the one the edge-by-edge
    greedy takes, and the round's edges touch disjoint clusters."""
    # only an edge with a singleton end can ever join (a join never makes a singleton)
    size = np.bincount(root, minlength=int(root.max()) + 1)
    useful = (size[root[weak_a]] == 1) | (size[root[weak_b]] == 1)
    order = np.lexsort((weak_b[useful], weak_a[useful], -weak_sim[useful]))
    weak_a, weak_b = weak_a[useful][order], weak_b[useful][order]
    if weak_a.size == 0:
        return
    if int(annotator.max()) >= MAX_ANNOTATOR_BITS:
        _join_weak_in_turn(root, weak_a, weak_b, annotator)
        return
    annots = np.zeros(size.size, dtype=np.int64)
    np.bitwise_or.at(annots, root, np.left_shift(np.int64(1), annotator))
    rank = np.arange(weak_a.size)
    first = np.empty(size.size, dtype=np.int64)
    while weak_a.size:
        ra, rb = root[weak_a], root[weak_b]
        first.fill(weak_a.size + rank[-1] + 1)
        np.minimum.at(first, ra, rank)
        np.minimum.at(first, rb, rank)
        now = (first[ra] == rank) & (first[rb] == rank)
        xa, xb = ra[now], rb[now]
        ok = (xa != xb) & ((size[xa] == 1) | (size[xb] == 1)) & ((annots[xa] & annots[xb]) == 0)
        xa, xb, a, b = xa[ok], xb[ok], weak_a[now][ok], weak_b[now][ok]
        a_single = size[xa] == 1
        src, dst = np.where(a_single, xa, xb), np.where(a_single, xb, xa)
        root[np.where(a_single, a, b)] = dst
        size[dst] += 1
        size[src] = 0
        annots[dst] |= annots[src]
        weak_a, weak_b, rank = weak_a[~now], weak_b[~now], rank[~now]


#: annotators the vectorised weak join tracks as bits of an int64; more go edge by edge
MAX_ANNOTATOR_BITS = 62


def _join_weak_in_turn(root: IntArray, weak_a: IntArray, weak_b: IntArray, annotator: IntArray) -> None:
    """:func:`_join_weak` edge by edge (edges already in greedy order), for very many annotators."""
    touched = np.flatnonzero(np.isin(root, np.unique(root[np.concatenate([weak_a, weak_b])])))
    members: dict[int, list[int]] = {}
    for row, r in zip(touched.tolist(), root[touched].tolist(), strict=True):
        members.setdefault(r, []).append(row)
    for a, b in zip(weak_a.tolist(), weak_b.tolist(), strict=True):
        ra, rb = int(root[a]), int(root[b])
        ma, mb = members[ra], members[rb]
        if ra == rb or (len(ma) > 1 and len(mb) > 1):
            continue
        if not {int(annotator[x]) for x in ma} & {int(annotator[y]) for y in mb}:
            _join(root, members, ra, rb, ma + mb)


def _join(root: IntArray, members: dict[int, list[int]], ra: int, rb: int, joined: list[int]) -> None:
    members.pop(ra, None)
    members.pop(rb, None)
    new_root = min(ra, rb)
    members[new_root] = joined
    root[joined] = new_root
