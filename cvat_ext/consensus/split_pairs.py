"""Split pairs: one object that two annotators drew too far apart to match, joined after the noise fit.

On a small object the drawings of a precise and a noisier annotator often do not match at the
link threshold (a 6 px jitter on a 10 px sign leaves an IoU near 0 with a 2 px one), so the
clustering (:mod:`cvat_ext.consensus.clusters`) makes the one object two *lone* clusters. The
existence model takes one cluster per object: two lone clusters of one real object read as two
inventions, and the precise annotator's lone objects are dropped with them.

A second linking step reads the offsets of lone drawings. For two lone drawings ``a``, ``b`` of
annotators r != s on the same frame, ``d = xyxy_a - xyxy_b`` (4,) px; with the fitted corner
variances ``v_r(s), v_s(s)`` (px^2, :meth:`~cvat_ext.consensus.noise_model.NoiseFit.pixel_variance`,
``s`` the object size), ``u = |d|^2 / (v_r + v_s)``. Two drawings of one object have
``d ~ N(0, c (v_r + v_s) I_4)``, so ``u / c`` is chi-square with 4 degrees of freedom; a drawing of
anything else nearby is a *spurious neighbour*, spread evenly over the 4-d offsets around it, so
its ``u`` has the density ``2 u / U^2`` up to the search radius ``U`` (:data:`SEARCH_U`). Per
annotator pair, EM over the job's candidate pairs fits the mixture: the share of split pairs and
the scale ``c`` (1 when the noise fit is right; the pairs' matched drawings only see the part of
the noise below the match threshold, so the fit can be short on the noisier annotators, and the
offsets themselves say by how much). Where the candidates carry the modelled chance ``m`` that the
two annotators' drawings of one object of their size fail to link (keypoint families,
:func:`non_link_chance`), a candidate's prior of being a split pair is ``share * m``: a split is a
failed link, rare on objects large enough that the pair links, where a close lone pair is a noisy
annotator's extra drawing beside another's. A candidate is a split pair when its posterior reaches 0.5
(a Bayes decision); each lone drawing joins once, the likeliest first (the greedy assignment
tracking uses). The joined cluster has two members and no link (its pair similarity stays NaN:
an unmatched pair, low overlap); its merged geometry is the inverse-variance fusion of the two
(the precise member dominates), and the existence model, refitted on the joined clusters, reads
it as what it is: an object two annotators drew. Keypoint families then give a joined pair its third
drawing (:func:`third_members`): a lone drawing that is a split partner of both its members (three
drawings of one object, none linked, of which the one-to-one join took two, often the noisier two).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray
from cvat_ext.consensus.clusters import ClusterTable
from cvat_ext.consensus.context import shadowed
from cvat_ext.consensus.keypoint_noise import KeypointFit
from cvat_ext.consensus.matching import pair_design, pair_index
from cvat_ext.consensus.nnls import nnls

#: search radius of the candidate pairs, in ``u`` (squared offset over the fitted pair variance):
#: 20 standard deviations, wide enough for a noise fit short by a factor of 10 in variance
SEARCH_U = 400.0
#: candidate pairs an annotator pair needs before its offsets are fitted (fewer: no joins)
MIN_CANDIDATES = 20
#: the smallest pair variance px^2 (a noise fitted as zero still has a pixel's rounding)
MIN_PAIR_VARIANCE = 1.0
#: the largest scale ``c`` believed: offsets more than 4x wider (in sd) than the noise fit are
#: spurious neighbours (a sloppy annotator's extra drawing near a real object), not split pairs
MAX_SCALE = 16.0
#: EM steps of :func:`fit_split_offsets`, and the largest change of a posterior that stops it
EM_STEPS = 60
EM_TOL = 1e-4

#: (K,) sizes px -> (K, R) each annotator's corner variance px^2 at those sizes
CornerVariance = Callable[[FloatArray], FloatArray]
#: sizes px ``(C,)``, annotators ``r, s (C,)`` -> ``(C,)`` the modelled probability that r's and s's
#: drawings of one object of that size do not link (:func:`non_link_chance`)
NonLink = Callable[[FloatArray, IntArray, IntArray], FloatArray]
#: the smallest non-link chance a candidate's split prior is scaled by (a pair the model says always
#: links keeps a trace of prior: the model is not exact)
MIN_NON_LINK = 1e-3


def non_link_chance(fit: KeypointFit, link_thr: float) -> NonLink:
    """The :data:`NonLink` of a keypoint family's fit: one minus its template's share of pairs of
    drawings at OKS ``link_thr`` or above (:meth:`KeypointFit.pair_link`, the law the size-aware
    existence's link table reads)."""

    def chance(size: FloatArray, r: IntArray, s: IntArray) -> FloatArray:
        spread2 = fit.mean_square(size)
        rows = np.arange(size.size)
        link = fit.pair_link(spread2[rows, r], spread2[rows, s], fit.flip[r], fit.flip[s], link_thr)
        return np.asarray(1.0 - link, dtype=np.float64)

    return chance


@dataclass(frozen=True, eq=False)
class Joined:
    """A cluster table after the split pairs were joined, with the per-cluster columns that go
    with it: ``extents (K, 4)`` mean member extent, ``sizes (K,)`` px, ``strata (K,)`` recomputed
    (None when nothing was joined: the table's own stand), ``hit (K,)`` each joined cluster's
    probability of matching the truth (NaN for the others), and ``n_joined`` the pairs joined."""

    table: ClusterTable
    extents: FloatArray
    sizes: FloatArray
    strata: IntArray | None
    hit: FloatArray
    n_joined: int


@dataclass(frozen=True, eq=False)
class Candidates:
    """Pairs of lone clusters ``(a, b)`` (rows of one cluster table) of different annotators on the
    same frame, within :data:`SEARCH_U`: ``pair (C,)`` their annotator pair's position in
    :func:`~cvat_ext.consensus.matching.annotator_pairs` order, ``u (C,)`` (module docstring)."""

    a: IntArray
    b: IntArray
    pair: IntArray
    u: FloatArray
    #: (C,) the pair variance px^2 of the noise fit at the candidate's size (``u``'s denominator)
    fit_var: FloatArray
    #: (C,) the modelled chance that the two annotators' drawings of one object of the candidate's
    #: size fail to link (:data:`NonLink`); None: 1 everywhere (the split prior is the pair's share)
    non_link: FloatArray | None = None

    def subset(self, sel: BoolArray, *, pair: int | None = None) -> Candidates:
        """The candidates ``sel (C,)``; ``pair``: each given that annotator pair (a pool's own fit)."""
        return Candidates(
            self.a[sel],
            self.b[sel],
            self.pair[sel] if pair is None else np.full(int(sel.sum()), pair, dtype=np.int64),
            self.u[sel],
            self.fit_var[sel],
            None if self.non_link is None else self.non_link[sel],
        )

    def split_weight(self) -> FloatArray:
        """(C,) what the pair's split share is scaled by for each candidate (its non-link chance)."""
        if self.non_link is None:
            return np.ones(self.u.size)
        return np.asarray(np.clip(self.non_link, MIN_NON_LINK, 1.0), dtype=np.float64)


def frame_pairs(frame_pos: IntArray) -> tuple[IntArray, IntArray]:
    """Every pair ``(i, j)``, ``i < j``, of rows with the same ``frame_pos (K,)`` (sorted): each row
    against the rest of its frame's stretch."""
    n = frame_pos.size
    later = np.searchsorted(frame_pos, frame_pos, side="right") - np.arange(n) - 1
    i = np.repeat(np.arange(n), later)
    j = i + 1 + (np.arange(i.size) - np.repeat(np.cumsum(later) - later, later))
    return i, j


def lone_candidates(
    table: ClusterTable,
    extents: FloatArray,
    sizes: FloatArray,
    variance: CornerVariance,
    non_link: NonLink | None = None,
) -> Candidates:
    """The :class:`Candidates` of one cluster table. ``extents (K, 4)`` each cluster's mean member
    extent xyxy px, ``sizes (K,)`` px, ``variance``: each annotator's fitted corner variance,
    ``non_link``: the modelled chance that a pair's drawings of one object fail to link (None: no
    tie of the split prior to the size)."""
    present = table.present
    n_annot = present.shape[1]
    lone = np.flatnonzero(present.sum(axis=1) == 1)
    empty = np.zeros(0, dtype=np.int64)
    if lone.size < 2:
        return Candidates(empty, empty, empty, np.zeros(0), np.zeros(0), None if non_link is None else np.zeros(0))
    annot = present[lone].argmax(axis=1)
    i, j = frame_pairs(table.frame_pos[lone])  # sorted: tables are ordered by frame
    ok = annot[i] != annot[j]
    i, j = i[ok], j[ok]
    a, b = lone[i], lone[j]
    r, s = np.minimum(annot[i], annot[j]), np.maximum(annot[i], annot[j])
    size = joined_size(sizes[a], sizes[b])
    var = variance(size)
    rows = np.arange(a.size)
    pair_var = np.maximum(var[rows, r] + var[rows, s], MIN_PAIR_VARIANCE)
    u = ((extents[a] - extents[b]) ** 2).sum(axis=1) / pair_var
    pair = pair_index(n_annot)[r, s]
    near = u <= SEARCH_U
    chance = None if non_link is None else non_link(size[near], r[near], s[near])
    return Candidates(a[near], b[near], pair[near], u[near], pair_var[near], chance)


@dataclass(frozen=True, eq=False)
class SplitOffsets:
    """The fitted mixture per annotator pair: ``share (P,)`` of split pairs among the candidates
    (per candidate, times its non-link chance where the candidates carry one: the prior of a split),
    ``scale (P,)`` the ``c`` of their offsets (NaN: too few candidates, no joins), ``pair_var (P,)``
    the pair variance px^2 the offsets show, ``c (v_r + v_s)``, at the split pairs' typical size,
    and ``extra (R,)`` each annotator's corner variance px^2 beyond the noise fit's there
    (:func:`extra_variance`)."""

    share: FloatArray
    scale: FloatArray
    pair_var: FloatArray
    extra: FloatArray
    #: (P,) exponent ``e`` of the spurious neighbours' density ``(e + 1) u^e / U^(e + 1)``
    spread: FloatArray

    def without_extra(self) -> SplitOffsets:
        """The same mixture with no annotator's variance beyond the noise fit's (``extra`` 0: the
        fit's variances are the drawings' own)."""
        return dataclasses.replace(self, extra=np.zeros_like(self.extra))

    def posterior(self, pair: IntArray, u: FloatArray, weight: FloatArray | None = None) -> FloatArray:
        """(C,) probability that candidates ``(pair, u)`` are one object's two drawings, 0 for a
        pair without a fitted mixture; ``weight (C,)`` scales the pair's split share per candidate
        (:meth:`Candidates.split_weight`)."""
        share, scale = self.share[pair], self.scale[pair]
        fitted = np.isfinite(scale)
        c = np.where(fitted, scale, 1.0)
        if weight is not None:
            share = share * weight  # NaN where not fitted: those are set to 0 below
        split = share * _chi2_4(u / c) / c
        spurious = (1.0 - share) * _neighbour(u, np.where(fitted, self.spread[pair], 1.0))
        post = split / np.maximum(split + spurious, 1e-300)
        return np.asarray(np.where(fitted, post, 0.0), dtype=np.float64)


def _chi2_4(x: FloatArray) -> FloatArray:
    """Chi-square density with 4 degrees of freedom."""
    return np.asarray(x * np.exp(-x / 2.0) / 4.0, dtype=np.float64)


def _neighbour(u: FloatArray, e: FloatArray | float) -> FloatArray:
    """Density of ``u`` of a spurious neighbour within :data:`SEARCH_U`: ``(e + 1) u^e / U^(e + 1)``
    (``e = 1``: even over the 4-d offsets; neighbours' sizes are not even, so ``e`` is fitted)."""
    x = np.maximum(np.asarray(u, dtype=np.float64), 1e-12) / SEARCH_U
    return np.asarray((np.asarray(e) + 1.0) * x**e / SEARCH_U, dtype=np.float64)


#: range of the neighbours' density exponent (1: even in 4-d)
SPREAD_RANGE = (0.0, 3.0)


def _fit_spread(u: FloatArray, weight: FloatArray) -> float:
    """Weighted maximum likelihood of the neighbours' exponent ``e`` on ``u (n,)``."""
    log_x = np.log(np.maximum(u, 1e-12) / SEARCH_U)
    e = -float(weight.sum()) / min(float((weight * log_x).sum()), -1e-12) - 1.0
    return float(np.clip(e, *SPREAD_RANGE))


def fit_split_offsets(candidates: Candidates, n_annotators: int) -> SplitOffsets:
    """EM for :class:`SplitOffsets` on a job's ``candidates`` (all tables of one family); a
    candidate's split prior is the pair's share times its non-link chance where they carry one.

    An annotator pair's mixture is kept only where it explains the offsets better than spurious
    neighbours alone by the BIC's margin (``log n`` for its two parameters): a split component
    spread over the whole search radius is no evidence of split pairs, and joins nothing."""
    n_pairs = n_annotators * (n_annotators - 1) // 2
    share, scale, pair_var, fit_at, spread = (np.full(n_pairs, np.nan) for _ in range(5))
    weight_all = candidates.split_weight()
    for p in range(n_pairs):
        sel = candidates.pair == p
        u, m = candidates.u[sel], weight_all[sel]
        if u.size < MIN_CANDIDATES:
            continue
        pi, c, e = 0.5 / float(m.max()), 1.0, 1.0
        w = np.full(u.size, 0.5)
        for _ in range(EM_STEPS):
            split = pi * m * _chi2_4(u / c) / c
            w_new = split / np.maximum(split + (1.0 - pi * m) * _neighbour(u, e), 1e-300)
            moved = float(np.abs(w_new - w).max())
            w = w_new
            if moved < EM_TOL:
                break
            pi = _split_share(w, m)
            # the chi-square(4) scale's maximum likelihood: mean(u) / 4, weighted
            c = float(np.clip((w * u).sum() / max(4.0 * w.sum(), 1e-12), 1e-3, MAX_SCALE))
            e = _fit_spread(u, 1.0 - w)
        mixed = np.log(pi * m * _chi2_4(u / c) / c + (1.0 - pi * m) * _neighbour(u, e) + 1e-300).sum()
        alone = np.log(_neighbour(u, _fit_spread(u, np.ones(u.size))) + 1e-300).sum()
        # BIC: the split component's two parameters must pay for themselves
        if mixed - alone < np.log(u.size):
            continue
        share[p], scale[p], spread[p] = pi, c, e
        # the fit's pair variance where the split pairs are, and what their offsets show there
        fit_at[p] = float((w * candidates.fit_var[sel]).sum() / max(w.sum(), 1e-12))
        pair_var[p] = c * fit_at[p]
    return SplitOffsets(share, scale, pair_var, extra_variance(pair_var, fit_at, n_annotators), spread)


def _split_share(w: FloatArray, m: FloatArray) -> float:
    """The M-step of the split share ``pi`` when a candidate's prior is ``pi m``: the root of
    ``sum(w) / pi = sum((1 - w) m / (1 - pi m))`` (decreasing in ``pi``) on ``(0, 1 / max(m))``,
    by bisection; ``w (n,)`` the posteriors, ``m (n,)`` the candidates' non-link chances. With every
    ``m = 1`` it is ``mean(w)`` (the extent families' candidates: taken directly)."""
    if not np.any(m != 1.0):
        return float(np.clip(w.mean(), 1e-6, 1 - 1e-6))
    total = float(w.sum())
    lo, hi = 1e-9, (1.0 - 1e-6) / float(m.max())
    for _ in range(40):
        mid = (lo + hi) / 2
        if total / mid > float(((1.0 - w) * m / (1.0 - mid * m)).sum()):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def extra_variance(pair_var: FloatArray, fit_var: FloatArray, n_annotators: int) -> FloatArray:
    """(R,) corner variance px^2 each annotator has beyond the noise fit at the split pairs' sizes.

    The split pairs show the pair variances ``pair_var (P,)`` where the fit says ``fit_var (P,)``
    (it sees matched pairs only, the part of the noise below the match threshold); pairs add in
    variance, so least squares on ``extra_r + extra_s = pair_var - fit_var`` separates them (the
    three-cornered hat), never negative (NNLS). All NaN where the fitted pairs do not determine
    every annotator's share (fewer of them than annotators, or no odd cycle among them)."""
    ok = np.isfinite(pair_var)
    design = pair_design(n_annotators)
    if not ok.any() or np.linalg.matrix_rank(design[ok]) < n_annotators:
        return np.full(n_annotators, np.nan)
    extra, _ = nnls(design[ok], (pair_var - fit_var)[ok])
    return np.asarray(extra, dtype=np.float64)


def _fused_variance(
    offsets: SplitOffsets,
    variance: CornerVariance,
    table: ClusterTable,
    a: IntArray,
    b: IntArray,
    size: FloatArray,
    third: IntArray | None = None,
) -> FloatArray:
    """(J,) corner variance px^2 of the inverse-variance fusion of the joined lone clusters
    ``a, b (J,)`` (and ``third (J,)``, -1: none) at their sizes ``size (J,)``: each drawing with
    the fit's variance plus its annotator's ``offsets.extra``; where those are not determined, the
    pair's own variance ``c (v_r + v_s)`` split evenly (the widest fusion the pair allows; a third
    drawing would only narrow it)."""
    r = table.present[a].argmax(axis=1)
    s = table.present[b].argmax(axis=1)
    rows = np.arange(a.size)
    var = variance(size)
    var_r, var_s = var[rows, r], var[rows, s]
    if np.all(np.isfinite(offsets.extra)):
        precision = 1.0 / np.maximum(var_r + offsets.extra[r], 1e-9) + 1.0 / np.maximum(var_s + offsets.extra[s], 1e-9)
        if third is not None:
            t = table.present[np.maximum(third, 0)].argmax(axis=1)
            var_t = np.maximum(var[rows, t] + offsets.extra[t], 1e-9)
            precision = precision + np.where(third >= 0, 1.0 / var_t, 0.0)
        return np.asarray(1.0 / precision, dtype=np.float64)
    n_annot = table.members.shape[1]
    lo, hi = np.minimum(r, s), np.maximum(r, s)
    scale = offsets.scale[pair_index(n_annot)[lo, hi]]
    return np.asarray(scale * np.maximum(var_r + var_s, MIN_PAIR_VARIANCE) / 4.0, dtype=np.float64)


def third_members(
    edge_a: IntArray, edge_b: IntArray, post: FloatArray, a: IntArray, b: IntArray, n: int
) -> tuple[IntArray, IntArray]:
    """The lone drawings that join a joined split pair as its third member: ``(pair, lone)``,
    ``pair`` positions in ``a, b (J,)``. A lone drawing left out of the pairs is a candidate for a
    pair when it is a split partner (an edge of ``edge_a, edge_b (E,)`` with ``post`` >= 0.5) of
    *both* its members: the three drawings are one object that none of them linked to, where the
    one-to-one join took only two (a precise drawing then stays lone beside the pair of the
    noisier two, shadowed by it, and is dropped or kept as a duplicate). Each pair and each lone
    drawing joins once, the largest summed posterior first. ``n``: the table's rows."""
    pair_of = np.full(n, -1, dtype=np.int64)
    pair_of[a] = pair_of[b] = np.arange(a.size)
    ok = post >= 0.5
    x, y, w = edge_a[ok], edge_b[ok], post[ok]
    # orient each edge as (lone drawing left over, member of a joined pair)
    left_x, left_y = pair_of[x] < 0, pair_of[y] < 0
    lone = np.concatenate([x[left_x & ~left_y], y[left_y & ~left_x]])
    pair = np.concatenate([pair_of[y[left_x & ~left_y]], pair_of[x[left_y & ~left_x]]])
    weight = np.concatenate([w[left_x & ~left_y], w[left_y & ~left_x]])
    if lone.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    key = lone * max(a.size, 1) + pair
    uniq, inv, count = np.unique(key, return_inverse=True, return_counts=True)
    both = count == 2  # a split partner of both members
    total = np.bincount(inv, weights=weight)
    lone_u, pair_u = uniq[both] // max(a.size, 1), uniq[both] % max(a.size, 1)
    # one-to-one between pairs and lone drawings (distinct node ids: pairs after the table's rows)
    got_lone, got_pair = greedy_one_to_one(lone_u, pair_u + n, -total[both], n + a.size)
    return got_pair - n, got_lone


def greedy_one_to_one(a: IntArray, b: IntArray, score: FloatArray, n: int) -> tuple[IntArray, IntArray]:
    """The edges ``(a, b)`` an edge-by-edge greedy takes by ascending ``score`` when each of the
    ``n`` nodes joins at most once. Vectorised by rounds: an edge that comes first among the
    remaining edges of both its nodes is taken, then the edges of its nodes go."""
    order = np.lexsort((b, a, score))
    a, b = a[order], b[order]
    rank = np.arange(a.size)
    taken_a: list[IntArray] = []
    taken_b: list[IntArray] = []
    first = np.empty(n, dtype=np.int64)
    while a.size:
        first.fill(a.size + int(rank[-1]) + 1)
        np.minimum.at(first, a, rank)
        np.minimum.at(first, b, rank)
        now = (first[a] == rank) & (first[b] == rank)
        taken_a.append(a[now])
        taken_b.append(b[now])
        used = np.zeros(n, dtype=bool)
        used[a[now]] = used[b[now]] = True
        rest = ~(used[a] | used[b])
        a, b, rank = a[rest], b[rest], rank[rest]
    if not taken_a:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(taken_a), np.concatenate(taken_b)


def join_split_pairs(
    table: ClusterTable,
    extents: FloatArray,
    sizes: FloatArray,
    table_strata: IntArray,
    candidates: Candidates,
    offsets: SplitOffsets,
    variance: CornerVariance,
    hit_at: Callable[[FloatArray], FloatArray],
    *,
    thirds: bool = False,
) -> Joined:
    """Join the split pairs among ``candidates`` of one cluster table (posterior >= 0.5 under
    ``offsets``, one-to-one, likeliest first); with ``thirds``, then each pair's third drawing
    (:func:`third_members`). ``extents (K, 4)`` each cluster's mean member extent, ``sizes (K,)``
    px, ``table_strata (K,)`` their strata. Clusters stay ordered by frame; a joined cluster takes
    the place of its first part, and the strata of the frames with a joined pair are recomputed (a
    joined pair outranks the lone clusters around it). ``hit (K,)`` of the result: the probability
    that a joined cluster's merged object (the inverse-variance fusion of its drawings,
    :func:`_fused_variance`) matches the truth, ``hit_at`` of its squared relative spread; NaN
    elsewhere."""
    post = offsets.posterior(candidates.pair, candidates.u, candidates.split_weight())
    split = post >= 0.5
    a, b = greedy_one_to_one(candidates.a[split], candidates.b[split], -post[split], len(table))
    if thirds:
        pair, third = third_members(candidates.a, candidates.b, post, a, b, len(table))
    else:
        pair, third = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    size = joined_size(sizes[a], sizes[b])  # what merge_rows gives the joined cluster
    size[pair] = joined_size(size[pair], sizes[third], 2, 1)
    third_of = np.full(a.size, -1, dtype=np.int64)
    third_of[pair] = third
    hit = hit_at(_fused_variance(offsets, variance, table, a, b, size, third_of) / np.maximum(size, 1e-9) ** 2)
    joined = merge_rows(table, extents, sizes, table_strata, a, b, hit)
    if pair.size == 0 or joined.strata is None:
        return joined
    alive = np.ones(len(table), dtype=bool)
    alive[np.maximum(a, b)] = False
    row = np.cumsum(alive) - 1  # a row's position in the joined table
    grown = merge_rows(
        joined.table,
        joined.extents,
        joined.sizes,
        joined.strata,
        row[np.minimum(a[pair], b[pair])],
        row[third],
        hit[pair],
        joined.hit,
    )
    return dataclasses.replace(grown, n_joined=joined.n_joined + grown.n_joined)


def joined_size(
    size_a: FloatArray, size_b: FloatArray, n_a: FloatArray | int = 1, n_b: FloatArray | int = 1
) -> FloatArray:
    """The size px of a cluster joined from two parts of sizes ``size_a, size_b`` and ``n_a, n_b``
    members: the member-weighted rms (two lone drawings: the rms of the two)."""
    return np.asarray(np.sqrt((n_a * size_a**2 + n_b * size_b**2) / (n_a + n_b)), dtype=np.float64)


def merge_rows(
    table: ClusterTable,
    extents: FloatArray,
    sizes: FloatArray,
    table_strata: IntArray,
    a: IntArray,
    b: IntArray,
    hit_joined: FloatArray,
    hit_base: FloatArray | None = None,
) -> Joined:
    """Join clusters ``a (J,)`` and ``b (J,)`` of ``table`` (disjoint annotator sets, each row in
    one pair at most) and return the :class:`Joined` table.
    Clusters stay ordered by frame; a joined cluster takes the place of its first part, with every
    member and link of both, the member-weighted mean extent and size (rms), and ``hit_joined
    (J,)`` (elsewhere ``hit_base (K,)``, None: NaN); the strata of the frames with a joined pair
    are recomputed (a joined cluster outranks the clusters around it)."""
    hit = np.full(len(table), np.nan) if hit_base is None else hit_base.copy()
    if a.size == 0:
        return Joined(table, extents, sizes, None, hit, 0)
    keep_row, gone = np.minimum(a, b), np.maximum(a, b)
    present = table.present
    members = table.members.copy()
    members[keep_row] = np.where(present[gone], members[gone], members[keep_row])
    pair_sim = table.pair_sim.copy()
    pair_sim[keep_row] = np.where(np.isnan(pair_sim[keep_row]), pair_sim[gone], pair_sim[keep_row])
    n_keep = present[keep_row].sum(axis=1)[:, None].astype(np.float64)
    n_gone = present[gone].sum(axis=1)[:, None].astype(np.float64)
    new_extents = extents.copy()
    new_extents[keep_row] = (n_keep * extents[keep_row] + n_gone * extents[gone]) / (n_keep + n_gone)
    new_sizes = sizes.copy()
    new_sizes[keep_row] = joined_size(sizes[keep_row], sizes[gone], n_keep[:, 0], n_gone[:, 0])
    hit[keep_row] = hit_joined
    alive = np.ones(len(table), dtype=bool)
    alive[gone] = False
    joined = ClusterTable(table.frame_pos[alive], members[alive], pair_sim[alive])
    new_extents, new_sizes = new_extents[alive], new_sizes[alive]
    # only the frames with a joined pair can change stratum
    strata = np.asarray(table_strata, dtype=np.int64)[alive]
    near = np.isin(joined.frame_pos, table.frame_pos[keep_row])
    strata[near] = shadowed(joined.frame_pos[near], joined.present[near].sum(axis=1), new_extents[near])
    return Joined(joined, new_extents, new_sizes, strata, hit[alive], int(gone.size))
