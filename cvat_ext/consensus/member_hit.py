"""What each annotator did in each cluster: the posterior that its drawing matches the truth.

The truth estimates count an annotator's true positives. Summing a *rate* per cluster (the share
``q_r(s)`` of r's drawings of size ``s`` that reach the match threshold, from r's fitted noise)
gives every annotator of one noise profile the same expected hits per drawing: two annotators
with the same jitter whose realised misfits differ by chance (one had 25 more drawings under the
threshold on a 1,000-object job, a 0.02-0.03 gap in F1) read alike. The cluster's own evidence
tells them apart: r's similarity to a partner in the cluster.

Under the noise model (Gaussian corner noise of relative spread ``sd / s`` per annotator, the
box template's assumption, :mod:`cvat_ext.consensus.noise_model`) r's dissimilarity to the truth
``x_r`` and to a partner ``x_rs`` are correlated (both carry r's error). :func:`pair_hit_table`
tabulates, once per family and thresholds by Monte-Carlo over a grid of the two spreads, the
share of r's drawings that reach ``iou_thr`` against the truth given ``x_rs`` (50 bins over
[0, 1]), and the chance that r's drawing does *not* link to s's (``x_rs > 1 - link_thr``) when it
hits and when it misses. :func:`member_hit` then gives each member of a real cluster:

* with a matched partner (finite pair similarity): ``P(hit | x_rs)`` for its most precise
  matched partner (the one whose similarity tells the most about r's own error);
* alone (no matched partner): Bayes on who is absent, each absent annotator s either did not draw
  the object (``1 - draw_s``) or drew it and did not link (``draw_s P(no link | hit or miss)``):
  a lone drawing whose precise neighbour is absent is likely a misfit.

Keypoint families (OKS with visibility flips) keep the rate: their joint law has the flips too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.consensus.noise_model import UNIT_SQUARE, corner_iou, noisy_unit_boxes

#: relative spreads ``sd / s`` the table is built on (log-spaced; interpolated in log spread)
SPREAD_GRID = np.geomspace(0.004, 2.0, 28)
#: bins of the pair dissimilarity ``x_rs = 1 - sim`` over [0, 1]
X_BINS = 50
#: Monte-Carlo draws per (spread_r, spread_s) cell (fixed seed: the table is deterministic)
_DRAWS = 2000
#: ratio of two annotators' fitted variances under which the fit does not tell them apart (three
#: annotators with the same 5 px jitter are fitted 22-32 px^2 on a 1,000-object polygon job)
SAME_SPREAD = 1.6
#: draws' worth of the cell's marginal hit share each bin is shrunk towards (sparse bins)
_SMOOTH = 2.0


@dataclass(frozen=True, eq=False)
class PairHitTable:
    """``hit (T, T, X)``: P(r's drawing reaches ``iou_thr`` | r's spread, s's spread, ``x_rs`` bin);
    ``apart (2, 2, T, T)``: P(r's and s's drawings do not match, ``x_rs > 1 - thr``) for ``thr`` the
    link threshold (0) and ``iou_thr`` (1), given r misses (0) / hits (1)."""

    hit: FloatArray
    apart: FloatArray

    def matched(self, spread2_r: FloatArray, spread2_s: FloatArray) -> FloatArray:
        """(N, X) P(hit | ``x_rs`` bin) in every bin, for drawings of squared relative spreads
        ``spread2_r, spread2_s (N,)``."""
        return _bilinear(self.hit, spread2_r, spread2_s)

    def unmatched(self, spread2_r: FloatArray, spread2_s: FloatArray, hit: bool, at_link: bool) -> FloatArray:
        """(N,) P(r's drawing does not match s's | r hits (``hit``) or misses), at the link
        threshold (``at_link``: s's drawing is elsewhere) or the match threshold (s's drawing is in
        r's cluster, joined through another member)."""
        return _bilinear(self.apart[0 if at_link else 1, int(hit)][..., None], spread2_r, spread2_s)[..., 0]


def x_bin(x_rs: FloatArray) -> IntArray:
    """The bin of each pair dissimilarity ``x_rs = 1 - sim`` (any shape) among :data:`X_BINS` over
    [0, 1] (clipped: 1 falls in the last)."""
    return np.clip((np.asarray(x_rs) * X_BINS).astype(np.int64), 0, X_BINS - 1)


def _bilinear(table: FloatArray, spread2_r: FloatArray, spread2_s: FloatArray) -> FloatArray:
    """``table (T, T, X)`` at ``(spread_r, spread_s)`` of shape ``S`` (bilinear in log spread):
    ``(*S, X)``."""
    log_grid = np.log(SPREAD_GRID)

    def axis(spread2: FloatArray) -> tuple[IntArray, FloatArray]:
        v = np.clip(0.5 * np.log(np.maximum(np.asarray(spread2, dtype=np.float64), 1e-300)), log_grid[0], log_grid[-1])
        i = np.clip(np.searchsorted(log_grid, v, side="right") - 1, 0, log_grid.size - 2)
        return i, ((v - log_grid[i]) / (log_grid[i + 1] - log_grid[i]))[..., None]

    (i, wi), (j, wj) = axis(spread2_r), axis(spread2_s)
    out = (
        table[i, j] * (1 - wi) * (1 - wj)
        + table[i + 1, j] * wi * (1 - wj)
        + table[i, j + 1] * (1 - wi) * wj
        + table[i + 1, j + 1] * wi * wj
    )
    return np.asarray(out, dtype=np.float64)


@functools.cache
def pair_hit_table(iou_thr: float, link_thr: float) -> PairHitTable:
    """The table for area families (box IoU under corner noise; masks and polygons are read as
    boxes with their fitted spread, as the truth estimates' template does)."""
    rng = np.random.default_rng(20261207)
    noise_r, noise_s = rng.normal(0.0, 1.0, (2, _DRAWS, 4))
    n = SPREAD_GRID.size
    hit = np.empty((n, n, X_BINS))
    apart = np.empty((2, 2, n, n))
    # s's drawings at every spread at once: (T, D, 2) corners, one IoU per r's spread below
    boxes_s = [noisy_unit_boxes(float(sp), noise_s) for sp in SPREAD_GRID.tolist()]
    lo_s, hi_s = (np.stack(c) for c in zip(*boxes_s, strict=True))
    cell = np.arange(n)[:, None] * X_BINS  # each s spread's first bin in the flat (T * X) count
    for i, sp_r in enumerate(SPREAD_GRID.tolist()):
        box_r = noisy_unit_boxes(sp_r, noise_r)
        hits = corner_iou(box_r, UNIT_SQUARE) >= iou_thr - 1e-12
        q = hits.mean()
        sim = corner_iou((box_r[0][None], box_r[1][None]), (lo_s, hi_s))  # (T, D)
        flat = (cell + x_bin(1.0 - sim)).ravel()
        count = np.bincount(flat, minlength=n * X_BINS).reshape(n, X_BINS)
        hit_count = np.bincount(flat, weights=np.tile(hits, n), minlength=n * X_BINS).reshape(n, X_BINS)
        hit[i] = (hit_count + _SMOOTH * q) / (count + _SMOOTH)
        for t, thr in enumerate((link_thr, iou_thr)):
            below = sim < thr - 1e-12
            apart[t, 1, i] = (below & hits).sum(axis=1) / max(hits.sum(), 1)
            apart[t, 0, i] = (below & ~hits).sum(axis=1) / max((~hits).sum(), 1)
    # likelihoods, kept off 0 (a hit nearly always matches a partner as precise as the truth)
    return PairHitTable(np.clip(hit, 1e-4, 1 - 1e-4), np.clip(apart, 1e-3, 1.0))


def pooled_spread2(spread2: FloatArray) -> FloatArray:
    """(F, R) each annotator's squared spread ``spread2 (F, R)`` replaced by the mean over the
    annotators whose fitted variance is within :data:`SAME_SPREAD` of its own (itself included):
    the fit's own scatter between equally precise annotators is larger than the realised
    differences the per-cluster evidence reads, and would decide their order instead."""
    ratio = spread2[:, :, None] / np.maximum(spread2[:, None, :], 1e-300)
    # itself always (a spread fitted at 0 has no ratio to itself)
    near = ((ratio <= SAME_SPREAD) & (ratio >= 1.0 / SAME_SPREAD)) | np.eye(spread2.shape[1], dtype=bool)[None]
    return np.asarray((near * spread2[:, None, :]).sum(axis=2) / near.sum(axis=2), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class MemberRatios:
    """Each partner's log-likelihood ratio of hit against miss for every (size bin, r, s), from
    :func:`member_ratios`: ``matched (B, R, R, X)`` by ``x_rs`` bin, ``apart (B, R, R)`` (s in the
    cluster, not matched to r), ``absent (B, R, R)`` (s not in the cluster), ``prior_logit (B, R)``."""

    matched: FloatArray
    apart: FloatArray
    absent: FloatArray
    prior_logit: FloatArray

    def posterior(self, present: BoolArray, pair_sim: FloatArray, bins: IntArray) -> FloatArray:
        """(K, R) P(member r of cluster k reaches the match threshold against the truth | the
        cluster is real, the cluster's evidence); 0 where absent. ``present (K, R)``, ``pair_sim
        (K, P)`` (NaN: not matched), ``bins (K,)`` each cluster's size bin. Rows are independent:
        a job's clusters may be given a block at a time."""
        n_annot = present.shape[1]
        logit = np.zeros((bins.size, n_annot))
        for p, (a, b) in enumerate(annotator_pairs(n_annot)):
            x = 1.0 - pair_sim[:, p]
            matched = np.isfinite(x)
            xb = x_bin(np.where(matched, x, 0.0))
            for r, s in ((a, b), (b, a)):
                lr = np.where(
                    matched,
                    self.matched[bins, r, s, xb],
                    np.where(present[:, s], self.apart[bins, r, s], self.absent[bins, r, s]),
                )
                logit[:, r] += lr
        # the partners share r's error, so their ratios are not independent given hit or miss:
        # summed as they are (naive Bayes) the posteriors came out too sure and the hits 2-3 % low
        # on boxes; the sum is damped as if the R - 1 partners' evidence were one partner's, repeated
        logit = self.prior_logit[bins] + logit / np.sqrt(max(n_annot - 1, 1))
        return np.asarray(np.where(present, 1.0 / (1.0 + np.exp(-logit)), 0.0), dtype=np.float64)


def member_ratios(table: PairHitTable, spread2: FloatArray, rate: FloatArray, draw: FloatArray | None) -> MemberRatios:
    """The ratios :meth:`MemberRatios.posterior` sums, once per job and family. ``spread2 (F, R)``
    each annotator's fitted squared relative spread per size bin, ``rate (F, R)`` the template's
    share at the threshold (the prior), ``draw (R,)`` the fitted draw rates (None: absent
    annotators tell nothing).

    Each other annotator s adds its log-likelihood ratio of hit against miss (matched, from
    ``x_rs``; in the cluster but not matched to r, ``x_rs`` above ``1 - iou_thr``; absent, not
    drawn or not linked), the sum damped by ``sqrt(R - 1)`` (they share r's error)."""
    n_bins, n_annot = spread2.shape
    prior = np.clip(np.asarray(rate, dtype=np.float64), 1e-4, 1 - 1e-4)
    prior_logit = np.log(prior / (1 - prior))  # (F, R)
    # every (bin, r, s) row of the table once: a gather per cluster, not an interpolation
    sp_r = np.broadcast_to(spread2[:, :, None], (n_bins, n_annot, n_annot)).ravel()
    sp_s = np.broadcast_to(spread2[:, None, :], (n_bins, n_annot, n_annot)).ravel()
    shape = (n_bins, n_annot, n_annot)
    hit_rows = table.matched(sp_r, sp_s)  # (B R R, X)
    lr_matched = np.log(hit_rows / (1 - hit_rows)).reshape(*shape, X_BINS) - prior_logit[:, :, None, None]
    lr_apart = (
        np.log(table.unmatched(sp_r, sp_s, True, False)) - np.log(table.unmatched(sp_r, sp_s, False, False))
    ).reshape(shape)
    lr_absent: FloatArray = np.zeros(shape)
    if draw is not None:
        d = np.broadcast_to(np.clip(np.asarray(draw, dtype=np.float64), 0.0, 1.0)[None, None, :], shape).ravel()
        like_hit = (1 - d) + d * table.unmatched(sp_r, sp_s, True, True)
        like_miss = (1 - d) + d * table.unmatched(sp_r, sp_s, False, True)
        lr_absent = np.asarray(np.log(like_hit) - np.log(like_miss), dtype=np.float64).reshape(shape)
    return MemberRatios(lr_matched, lr_apart, lr_absent, prior_logit)


def member_hit(
    table: PairHitTable,
    present: BoolArray,
    pair_sim: FloatArray,
    bins: IntArray,
    spread2: FloatArray,
    rate: FloatArray,
    draw: FloatArray | None,
) -> FloatArray:
    """(K, R) :meth:`MemberRatios.posterior` of every cluster at once (see :func:`member_ratios`)."""
    return member_ratios(table, spread2, rate, draw).posterior(present, pair_sim, bins)
