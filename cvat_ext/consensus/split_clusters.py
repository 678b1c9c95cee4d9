"""Split clusters: one object whose drawings fell into two clusters of one frame, joined after the noise fit.

:mod:`cvat_ext.consensus.split_pairs` joins two *lone* drawings. With more annotators an object's
drawings can also fall into two clusters of several members: the two sloppy annotators' drawings
link to each other but to none of the others', and the merge keeps both clusters (a duplicate: one
true positive and one false positive). This step reads the offset between two clusters ``A``, ``B``
of one frame whose annotator sets are disjoint and each of which has two members or more:
``d = e_A - e_B`` (4,) px between their mean member extents (xyxy; keypoint families: each drawing's
keypoints' bounding box), and ``u = |d|^2 / (V_A + V_B)`` with ``V_A = sum_{r in A} v_r(s) / |A|^2``
the fitted variance of A's mean extent at the object size ``s`` (``v_r`` px^2, the family's
``pixel_variance``).

One object: ``d ~ N(0, c (V_A + V_B) I_4)`` (``u / c`` chi-square with 4 degrees of freedom); two
objects: ``u`` has the spurious neighbours' density of the job (its exponent fitted, so the prior of
two distinct objects that close is the job's own density of nearby distinct clusters). The mixture
is :func:`~cvat_ext.consensus.split_pairs.fit_split_offsets`'s, pooled over every annotator set of
the family, with a candidate's prior of one object ``share * m``: ``m`` the modelled chance that no
drawing of A links to one of B when they are drawings of one object. The cross pairs' non-link
events share drawings (one drawing placed badly fails to link with every drawing of the other part),
so ``m`` is their upper bound, the smallest of the cross pairs' non-link chances
(:func:`~cvat_ext.consensus.split_pairs.non_link_chance`): the chance that the likeliest link of
the two parts fails (keypoint families, whose link law is measured right; the extent families
keep ``m = 1``, the untied share, as their split pairs do). Their product (independent events)
was measured and is too small: it left most duplicates unjoined
(``docs/developers/annotator-model.md``, *Split clusters*).

A candidate joins at posterior >= 0.5, each cluster once, the likeliest first. The joined cluster
keeps every member and the links each part had (no cross link: those pairs stay NaN); its keep reads
``P(real)`` of the joined pattern. With three annotators no two clusters of two or more are disjoint.

Keypoint families also pair a *lone* drawing with a cluster of *every other* annotator (their own
pool, :data:`LONE_POOL`, its own mixture): one drawing that failed to link to all the others, e.g.
a precise skeleton beside the moderate and sloppy ones' cluster, which shadows it and has it dropped
while the cluster's moderate-led object misses. Beside any cluster of two or more (five annotators,
pooled or in their own mixture) lone drawings joined ~600 per job and lowered merged F1: a lone
drawing beside a partial cluster is as often a neighbour's; beside the rest of the team it is the
missing member's or nobody's (``docs/developers/annotator-model.md``, *Split clusters*, *Three
drawings*).
"""

from __future__ import annotations

import numpy as np

from cvat_ext.consensus.batch import FloatArray, IntArray
from cvat_ext.consensus.clusters import ClusterTable
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.consensus.split_pairs import (
    MIN_PAIR_VARIANCE,
    SEARCH_U,
    Candidates,
    CornerVariance,
    Joined,
    NonLink,
    SplitOffsets,
    fit_split_offsets,
    frame_pairs,
    greedy_one_to_one,
    joined_size,
    merge_rows,
)

#: candidate pools, fitted apart: two clusters of two or more members each; a lone drawing beside
#: a cluster of every other annotator (keypoint families)
CLUSTER_POOL, LONE_POOL = 0, 1


def cluster_candidates(
    table: ClusterTable,
    extents: FloatArray,
    sizes: FloatArray,
    variance: CornerVariance,
    non_link: NonLink | None,
) -> Candidates:
    """Pairs of clusters of one frame with disjoint annotator sets within :data:`SEARCH_U`: each of
    two members or more (``pair`` :data:`CLUSTER_POOL`), and where ``non_link`` is given (keypoint
    families) a lone drawing beside a cluster of every other annotator (``pair``
    :data:`LONE_POOL`; two lone drawings are :mod:`~cvat_ext.consensus.split_pairs`').
    ``extents (K, 4)`` mean member extent xyxy px, ``sizes (K,)`` px, ``variance`` each annotator's
    fitted corner variance, ``non_link`` a pair's chance of not linking (module docstring; None: the
    prior of one object is the share alone, as the extent families' split pairs')."""
    present = table.present
    count = present.sum(axis=1)
    n_annot = present.shape[1]
    # two disjoint sets of two or more need four annotators
    multi = count > 1 if n_annot >= 4 else np.zeros(count.size, dtype=bool)
    # keypoint families: a lone drawing and a cluster of every other annotator (one drawing failed
    # to link to all the others: a precise one beside the noisier ones' cluster, shadowed by it)
    rest = (count == 1) | (count == n_annot - 1) if non_link is not None and n_annot >= 3 else np.zeros_like(multi)
    rows = np.flatnonzero(multi | rest)
    i, j = frame_pairs(table.frame_pos[rows])
    i, j = rows[i], rows[j]
    disjoint = ~(present[i] & present[j]).any(axis=1)
    lone_beside = rest[i] & rest[j] & (np.minimum(count[i], count[j]) == 1) & (count[i] + count[j] == n_annot)
    ok = disjoint & ((multi[i] & multi[j]) | lone_beside)
    a, b = i[ok], j[ok]
    pool = np.where(np.minimum(count[a], count[b]) == 1, LONE_POOL, CLUSTER_POOL).astype(np.int64)
    size = joined_size(sizes[a], sizes[b], count[a], count[b])
    var = variance(size)
    # variance of each cluster's mean member extent (the members' noises are independent)
    var_a = (var * present[a]).sum(axis=1) / count[a] ** 2
    var_b = (var * present[b]).sum(axis=1) / count[b] ** 2
    pair_var = np.maximum(var_a + var_b, MIN_PAIR_VARIANCE)
    u = ((extents[a] - extents[b]) ** 2).sum(axis=1) / pair_var
    near = u <= SEARCH_U
    a, b, size, u, pair_var, pool = a[near], b[near], size[near], u[near], pair_var[near], pool[near]
    if non_link is None:
        return Candidates(a, b, pool, u, pair_var, None)
    # no drawing of one part links to one of the other: the likeliest cross link failed (its upper bound)
    chance = np.ones(a.size)
    for r, s in annotator_pairs(present.shape[1]):
        cross = (present[a, r] & present[b, s]) | (present[a, s] & present[b, r])
        if cross.any():
            rs = np.full(int(cross.sum()), r), np.full(int(cross.sum()), s)
            chance[cross] = np.minimum(chance[cross], non_link(size[cross], *rs))
    return Candidates(a, b, pool, u, pair_var, chance)


def fit_cluster_offsets(candidates: Candidates) -> SplitOffsets:
    """The offset mixture of a family's pooled cluster candidates, one per pool (``pair``
    :data:`CLUSTER_POOL`, :data:`LONE_POOL`): a lone drawing beside the rest is a different
    population (its offsets carry one drawing's noise, and where it is not the object's it is a
    neighbour's drawing, not a cluster) and gets its own share, scale and neighbours' exponent."""
    fits = [
        fit_split_offsets(candidates.subset(candidates.pair == pool, pair=0), 2) for pool in (CLUSTER_POOL, LONE_POOL)
    ]
    return SplitOffsets(
        *(
            np.concatenate([getattr(f, name) for f in fits])
            for name in ("share", "scale", "pair_var", "extra", "spread")
        )
    )


def join_split_clusters(
    table: ClusterTable,
    extents: FloatArray,
    sizes: FloatArray,
    table_strata: IntArray,
    hit: FloatArray | None,
    candidates: Candidates,
    offsets: SplitOffsets,
) -> Joined:
    """Join the split clusters among ``candidates`` of one table (posterior >= 0.5, one-to-one,
    likeliest first). ``hit (K,)``: the table's hit column (joined split pairs'; None: all NaN),
    carried to the clusters that stay; a joined cluster's is NaN (its parts' links make it a
    matched cluster, whose keep reads ``P(real)`` alone)."""
    post = offsets.posterior(candidates.pair, candidates.u, candidates.split_weight())
    split = post >= 0.5
    a, b = greedy_one_to_one(candidates.a[split], candidates.b[split], -post[split], len(table))
    return merge_rows(table, extents, sizes, table_strata, a, b, np.full(a.size, np.nan), hit)
