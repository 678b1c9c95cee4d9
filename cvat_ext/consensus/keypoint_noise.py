"""Keypoint noise of each annotator: position noise scaled with size, plus visibility flips.

Families: ``skeleton`` (keypoints with visibility) and ``points`` (every point visible). Annotator
r places a keypoint of an object of size ``s`` (px, the square root of its keypoints' box area)
at the true position plus Gaussian noise of per-axis variance ``alpha_r + beta_r s^2`` px²; in
relative units ``alpha_r / s^2 + beta_r`` (:class:`~cvat_ext.consensus.noise_model.NoiseFit`'s
law). Independently, each keypoint's visibility (CVAT's ``outside``) differs from the truth's with
probability ``flip_r``.

Fitted from the clusters of a job (:class:`KeypointEvidence`, accumulated in pass 1):

* position, three or more annotators: with keypoints ``x_r = truth + e_r``,
  ``E[(x_r - x_s)(x_r - x_t)] = Var(e_r)`` over the triples whose three members see the keypoint
  (:class:`~cvat_ext.consensus.noise_model.CornerEvidence`'s covariance, per keypoint instead of
  per box corner), NNLS per annotator over the size bins whose drawings are rarely cut off by the
  match (:func:`~cvat_ext.consensus.noise_model.fit_binned_covariance`). Two annotators: only the sum
  of the pair's variances is identified (mean squared difference), each gets half;
* flips: a keypoint two members both have but see differently is a flip of one of them:
  ``P(disagree_rs) = f_r + f_s - 2 f_r f_s``, i.e. ``1 - 2 d_rs = (1 - 2 f_r)(1 - 2 f_s)``, so
  ``-ln(1 - 2 d_rs) = g_r + g_s`` is linear in ``g = -ln(1 - 2 f)`` and NNLS over the pairs gives
  each annotator's own rate (three or more annotators identify whose flip it was; two get half);
* the truth's visible share ``pi`` from the members' visible shares, undoing the flips.

A drawing with several flips (or far off) fails to match its cluster and is not seen, so the
matched members understate both; :func:`fit_keypoint_noise` corrects the flip rates through the
template (the share of flips among the drawings that reach the link threshold).

:class:`KeypointTemplate` is the similarity template under that noise: the distribution of OKS
against the truth for P keypoints, truth visibility ``Bernoulli(pi)``, position spread ``sd / s``
and flip rate ``f``, tabulated by Monte-Carlo (fixed seed) on a grid of spreads and flip rates.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.consensus.nnls import nnls, scaled_nnls
from cvat_ext.consensus.noise_model import (
    SIZE_CENTRES,
    SIZE_EDGES,
    BinnedCovariance,
    NoiseFit,
    annotator_triples,
    fit_binned_covariance,
    nearest_other,
    pseudo_count_mean,
    size_bin,
    triple_pairs,
    with_equal_split,
)

#: flip rates the template tabulates (a keypoint's visibility differs from the truth's)
FLIP_GRID = np.array([0.0, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5])
#: relative position spreads ``sd / s`` (per axis) the template tabulates
SPREAD_GRID = np.concatenate([[0.0], np.geomspace(1e-3, 3.0, 60)])
#: Monte-Carlo draws per template cell (fixed seed: the table is deterministic)
_DRAWS = 3000
#: a size bin's positions count for the fit when r's drawings link this often (else truncated)
_MIN_LINK = 0.8


@dataclass
class KeypointEvidence:
    """Keypoints of one family's clusters, pooled per size bin and annotator (or pair).

    ``tri_cov, tri_inv_s2, tri_count (B, R, P)``: the covariance sums (relative units) of annotator
    r's offsets to the pair p of two others (zero where r is in p), as box corners have them;
    ``pair_d2, pair_inv_s2, pair_count (B, P)``: per-axis squared relative differences of the
    keypoints both members of a pair see; ``disagree, shared (P,)``: keypoints both members have,
    and those of them whose visibility differs; ``visible, has (R,)``: each annotator's visible
    and placed keypoints; ``size_count (B,)`` clusters per size bin; ``n_keypoints``: the most
    keypoints a cluster had."""

    n_annotators: int
    tri_cov: FloatArray = field(init=False)
    tri_inv_s2: FloatArray = field(init=False)
    tri_count: FloatArray = field(init=False)
    pair_d2: FloatArray = field(init=False)
    pair_inv_s2: FloatArray = field(init=False)
    pair_count: FloatArray = field(init=False)
    disagree: FloatArray = field(init=False)
    shared: FloatArray = field(init=False)
    visible: FloatArray = field(init=False)
    has: FloatArray = field(init=False)
    size_count: FloatArray = field(init=False)
    n_keypoints: int = 0

    def __post_init__(self) -> None:
        n_pairs = len(annotator_pairs(self.n_annotators))
        shape = (SIZE_EDGES.size - 1, n_pairs)
        tri = (SIZE_EDGES.size - 1, self.n_annotators, n_pairs)
        self.tri_cov, self.tri_inv_s2, self.tri_count = (np.zeros(tri) for _ in range(3))
        self.pair_d2, self.pair_inv_s2, self.pair_count = (np.zeros(shape) for _ in range(3))
        self.disagree, self.shared = np.zeros(n_pairs), np.zeros(n_pairs)
        self.visible, self.has = np.zeros(self.n_annotators), np.zeros(self.n_annotators)
        self.size_count = np.zeros(SIZE_EDGES.size - 1)

    @classmethod
    def summed(cls, n_annotators: int, parts: Sequence[KeypointEvidence]) -> KeypointEvidence:
        """The evidence of ``parts`` (of the same clusters' groups) added up."""
        out = cls(n_annotators)
        sums = [f.name for f in dataclasses.fields(cls) if not f.init]  # the sum arrays
        for part in parts:
            for name in sums:
                getattr(out, name)[...] += getattr(part, name)
            out.n_keypoints = max(out.n_keypoints, part.n_keypoints)
        return out

    def add(
        self, xy: FloatArray, has: BoolArray, visible: BoolArray, size: FloatArray, bins: IntArray | None = None
    ) -> None:
        """Clusters' keypoints: ``xy (K, R, P, 2)`` px, ``has (K, R, P)`` the member placed the
        keypoint, ``visible (K, R, P)`` and not ``outside``, ``size (K,)`` px (``bins``: its
        :func:`~cvat_ext.consensus.noise_model.size_bin`)."""
        k, n = has.shape[:2]
        if k == 0 or xy.shape[2] == 0:
            return
        self.n_keypoints = max(self.n_keypoints, int(xy.shape[2]))
        s = np.maximum(np.asarray(size, dtype=np.float64), 1.0)
        inv_s2 = 1.0 / (s * s)
        rel = xy / s[:, None, None, None]
        seen = has & visible
        # offsets are read relative to the size: a cluster whose extent collapsed under the smallest
        # size bin (one visible keypoint, or its visible ones on a line: size 1 px) has no size to
        # read them against, and is left out of the positions (its visibility still counts)
        placed = seen & (s >= SIZE_EDGES[0])[:, None, None]
        bins = size_bin(s) if bins is None else bins
        self.visible += seen.sum(axis=(0, 2))
        self.has += has.sum(axis=(0, 2))
        self.size_count += np.bincount(bins, minlength=self.size_count.size)
        pairs = annotator_pairs(n)
        diff = [rel[:, r] - rel[:, t] for r, t in pairs]  # (K, P, 2) each
        both = [placed[:, r] & placed[:, t] for r, t in pairs]
        n_bins = self.pair_count.shape[0]
        for p, (r, t) in enumerate(pairs):
            d2 = np.where(both[p], (diff[p] ** 2).mean(axis=2), 0.0).sum(axis=1)
            c = both[p].sum(axis=1).astype(np.float64)
            self.pair_d2[:, p] += np.bincount(bins, weights=d2, minlength=n_bins)
            self.pair_inv_s2[:, p] += np.bincount(bins, weights=c * inv_s2, minlength=n_bins)
            self.pair_count[:, p] += np.bincount(bins, weights=c, minlength=n_bins)
            shared = has[:, r] & has[:, t]
            self.shared[p] += shared.sum()
            self.disagree[p] += (shared & (visible[:, r] != visible[:, t])).sum()
        if n < 3:
            return
        # covariance of r's offsets to two others: r's own variance (CornerEvidence's estimator),
        # kept per triple so that the fit can leave out partners whose drawings are cut off
        for (r, _, _), (pa, pb, sign, q) in zip(annotator_triples(n), triple_pairs(n), strict=True):
            ok = both[pa] & both[pb]
            cov = np.where(ok, sign * (diff[pa] * diff[pb]).mean(axis=2), 0.0).sum(axis=1)
            c = ok.sum(axis=1).astype(np.float64)
            self.tri_cov[:, r, q] += np.bincount(bins, weights=cov, minlength=n_bins)
            self.tri_inv_s2[:, r, q] += np.bincount(bins, weights=c * inv_s2, minlength=n_bins)
            self.tri_count[:, r, q] += np.bincount(bins, weights=c, minlength=n_bins)

    def covariances(self, trust: FloatArray, min_trust: float) -> BinnedCovariance:
        """The covariance sums per (bin, annotator) over the triples whose two partners' drawings
        are trusted (``trust (B, R) >= min_trust``, the partners' link probability) in the bin."""
        n = self.n_annotators
        ev = BinnedCovariance.zeros(self.tri_cov.shape[:2])
        ok = trust >= min_trust
        for q, (a, b) in enumerate(annotator_pairs(n)):
            use = (ok[:, a] & ok[:, b])[:, None]
            ev.sum_cov += np.where(use, self.tri_cov[:, :, q], 0.0)
            ev.sum_inv_s2 += np.where(use, self.tri_inv_s2[:, :, q], 0.0)
            ev.count += np.where(use, self.tri_count[:, :, q], 0.0)
        return ev


@dataclass(frozen=True)
class KeypointFit(NoiseFit):
    """:class:`NoiseFit` of keypoint positions (``alpha, beta (R,)``: per-axis variance
    ``alpha / s^2 + beta`` relative to the size), plus ``flip (R,)`` each annotator's visibility
    flip rate, ``visible_share`` the truth's share of visible keypoints, ``n_keypoints`` P and the
    OKS ``sigma``."""

    flip: FloatArray = field(default_factory=lambda: np.zeros(0))
    visible_share: float = 1.0
    n_keypoints: int = 1
    sigma: float = 0.09

    @property
    def template(self) -> KeypointTemplate:
        return keypoint_template(self.n_keypoints, round(self.visible_share, 2), round(self.sigma, 4))

    def moments(self, size: FloatArray, iou_thr: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """At sizes ``size (B,)`` px, per annotator ``(B, R)``: the share of drawings whose OKS to the
        truth reaches ``iou_thr``, the mean and the mean square OKS of that share."""
        spread2 = self.mean_square(size)
        flip = np.broadcast_to(self.flip[None, :], spread2.shape)
        cols = self.template.moments(spread2.ravel(), flip.ravel(), iou_thr)
        return tuple(c.reshape(spread2.shape) for c in cols)  # type: ignore[return-value]

    def link_table(self, link_thr: float) -> FloatArray:
        """(B, R) on :data:`SIZE_EDGES`' bins: probability that r's drawing matches (OKS >=
        ``link_thr``) the most precise other annotator's: spreads add, flips combine
        (``f_r + f_o - 2 f_r f_o``)."""
        spread2 = self.mean_square(SIZE_CENTRES)
        if spread2.shape[1] < 2:
            return np.ones_like(spread2)
        other = nearest_other(spread2)
        other_s2 = np.take_along_axis(spread2, other, axis=1)
        f_r, f_o = np.broadcast_arrays(self.flip[None, :], self.flip[other])
        return self.pair_link(spread2, other_s2, f_r, f_o, link_thr)

    def pair_link(
        self, spread2_r: FloatArray, spread2_s: FloatArray, flip_r: FloatArray, flip_s: FloatArray, link_thr: float
    ) -> FloatArray:
        """Probability that two drawings of one object, of squared spreads ``spread2_r, spread2_s``
        and flip rates ``flip_r, flip_s`` (one shape), match at OKS ``link_thr`` or above: spreads
        add, flips combine (``f_r + f_s - 2 f_r f_s``)."""
        flip = flip_r + flip_s - 2 * flip_r * flip_s
        hit, _, _ = self.template.moments((spread2_r + spread2_s).ravel(), flip.ravel(), link_thr)
        return np.asarray(hit.reshape(np.shape(spread2_r)), dtype=np.float64)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "flip": self.flip.tolist(), "visible_share": self.visible_share}


def _flip_rates(ev: KeypointEvidence) -> FloatArray:
    """(R,) observed flip rate per annotator from the pairs' disagreements (module docstring)."""
    n = ev.n_annotators
    pairs = annotator_pairs(n)
    ok = ev.shared > 0
    if not ok.any():
        return np.zeros(n)
    d = np.clip(ev.disagree[ok] / ev.shared[ok], 0.0, 0.49)
    y = -np.log1p(-2.0 * d)
    a = np.zeros((int(ok.sum()), n))
    for row, p in enumerate(np.flatnonzero(ok).tolist()):
        a[row, list(pairs[p])] = 1.0
    w = np.sqrt(ev.shared[ok])
    if n < 3:  # two annotators: only the sum is identified
        a = np.concatenate([a * w[:, None], 1e3 * np.array([[1.0, -1.0]])])
        y = np.concatenate([y * w, [0.0]])
    else:
        a, y = a * w[:, None], y * w
    g, _ = nnls(a, y)
    return np.asarray((1.0 - np.exp(-g)) / 2.0, dtype=np.float64)


def _pair_position(ev: KeypointEvidence) -> tuple[FloatArray, FloatArray]:
    """``alpha, beta (R,)`` from the pairs' mean squared differences (the sum of the pair's
    variances): NNLS for all annotators at once; with two, each gets half."""
    n = ev.n_annotators
    pairs = annotator_pairs(n)
    b_idx, p_idx = np.nonzero(ev.pair_count >= 5)
    if b_idx.size == 0:
        return np.zeros(n), np.zeros(n)
    rows = np.zeros((b_idx.size, 2 * n))
    for row, (b, p) in enumerate(zip(b_idx.tolist(), p_idx.tolist(), strict=True)):
        r, t = pairs[p]
        rows[row, [r, t]] = ev.pair_inv_s2[b, p] / ev.pair_count[b, p]
        rows[row, [n + r, n + t]] = 1.0
    target = ev.pair_d2[b_idx, p_idx] / ev.pair_count[b_idx, p_idx]
    w = np.sqrt(ev.pair_count[b_idx, p_idx]) / np.maximum(target, 1e-6)
    a, y = rows * w[:, None], target * w
    if n < 3:
        a, y = with_equal_split(a, y, n)
    coef = scaled_nnls(a, y)
    return coef[:n], coef[n:]


def fit_keypoint_noise(
    ev: KeypointEvidence,
    pairs: FloatArray,
    link_thr: float,
    sigma: float,
    prior: Mapping[int, tuple[float, float, float, float]] | None = None,
) -> KeypointFit:
    """Fit positions, flips and the truth's visible share (module docstring).

    ``pairs (R,)``: the matched pairs behind each annotator (reported with the fit); ``link_thr``:
    the similarity at which drawings join a cluster; ``prior``: annotator position ->
    ``(alpha, beta, flip, weight)`` from earlier jobs, pooled with this job's fit ``weight``
    matched pairs strong."""
    n = ev.n_annotators
    has = np.maximum(ev.has, 1.0)
    flip_seen = _flip_rates(ev)
    seen_share = float(np.clip(np.sum(ev.visible) / np.sum(has), 0.0, 1.0))
    alpha, beta = _pair_position(ev)
    fit = _assemble(alpha, beta, flip_seen, seen_share, ev, pairs, sigma)
    if n >= 3 and ev.tri_count.sum() > 0:
        # covariances on the bins where the drawings rarely fall off the match (two rounds: the
        # first fit says where that is)
        for _ in range(2):
            link = fit.link_table(link_thr)
            trust = np.where(link >= _MIN_LINK, 1.0, 0.01)
            shape = fit_binned_covariance(ev.covariances(link, _MIN_LINK), trust)
            if shape is None:
                break
            fit = _assemble(shape[0], shape[1], fit.flip, seen_share, ev, pairs, sigma)
    # drawings with several flips miss the match: undo the truncation of the observed rates
    flip = _untruncate_flips(fit, flip_seen, link_thr, ev.size_count)
    fit = _assemble(fit.alpha, fit.beta, flip, seen_share, ev, pairs, sigma)
    if prior:
        fit = _pool_prior(fit, prior)
    return fit


def _assemble(
    alpha: FloatArray,
    beta: FloatArray,
    flip: FloatArray,
    seen_share: float,
    ev: KeypointEvidence,
    pairs: FloatArray,
    sigma: float,
) -> KeypointFit:
    """The fit with the truth's visible share undone from the members' (``seen = pi (1 - 2 f) + f``)."""
    f = float(np.mean(flip)) if flip.size else 0.0
    pi = float(np.clip((seen_share - f) / max(1.0 - 2.0 * f, 1e-6), 0.05, 1.0))
    return KeypointFit(
        alpha=np.asarray(alpha, dtype=np.float64),
        beta=np.asarray(beta, dtype=np.float64),
        pairs=pairs,
        flip=np.asarray(flip, dtype=np.float64),
        visible_share=pi,
        n_keypoints=max(ev.n_keypoints, 1),
        sigma=sigma,
    )


def _untruncate_flips(fit: KeypointFit, flip_seen: FloatArray, link_thr: float, size_count: FloatArray) -> FloatArray:
    """Flip rates whose share among the linked drawings is the observed one, per annotator.

    With ``L(f)`` the probability that r's drawing links to the most precise other's at flip rate
    ``f`` (the template, averaged over the job's sizes ``size_count (B,)``), the flips among P
    keypoints of the linked drawings have the rate ``f + f (1 - f) L'(f) / (P L(f))`` (the
    binomial tilted by the link); solved for ``f`` by bisection."""
    if not np.any(flip_seen > 0) or size_count.sum() <= 0:
        return flip_seen
    tmpl = fit.template
    spread2 = fit.mean_square(SIZE_CENTRES)  # (B, R)
    n = spread2.shape[1]
    # one annotator: no other to link with, its own spread alone
    others = np.take_along_axis(spread2, nearest_other(spread2), axis=1) if n > 1 else 0.0
    pair2 = (spread2 + others).ravel()
    share = size_count / size_count.sum()

    def seen_rate(f: FloatArray) -> FloatArray:
        step = 0.01
        lo = np.broadcast_to(np.maximum(f - step, 0.0)[None, :], spread2.shape).ravel()
        hi = np.broadcast_to((np.maximum(f - step, 0.0) + 2 * step)[None, :], spread2.shape).ravel()
        mid = np.broadcast_to(f[None, :], spread2.shape).ravel()
        link = (tmpl.moments(pair2, mid, link_thr)[0].reshape(spread2.shape) * share[:, None]).sum(axis=0)
        slope = (
            (tmpl.moments(pair2, hi, link_thr)[0] - tmpl.moments(pair2, lo, link_thr)[0]).reshape(spread2.shape)
            / (2 * step)
            * share[:, None]
        ).sum(axis=0)
        return np.asarray(f + f * (1 - f) * slope / (fit.n_keypoints * np.maximum(link, 1e-6)), dtype=np.float64)

    # seen_rate grows with f on [0, 0.45] in practice: bisection per annotator
    lo, hi = np.zeros(n), np.full(n, 0.45)
    for _ in range(20):
        mid = (lo + hi) / 2
        below = seen_rate(mid) < flip_seen
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.asarray((lo + hi) / 2, dtype=np.float64)


def _pool_prior(fit: KeypointFit, prior: Mapping[int, tuple[float, float, float, float]]) -> KeypointFit:
    """Each annotator's parameters pooled with its prior's, weighed by matched pairs."""
    alpha, beta, flip = fit.alpha.copy(), fit.beta.copy(), fit.flip.copy()
    for r, (a, b, f, w) in prior.items():
        own = float(fit.pairs[r])
        alpha[r] = pseudo_count_mean(float(alpha[r]), own, a, w)
        beta[r] = pseudo_count_mean(float(beta[r]), own, b, w)
        flip[r] = pseudo_count_mean(float(flip[r]), own, f, w)
    return KeypointFit(
        alpha=alpha,
        beta=beta,
        pairs=fit.pairs,
        flip=flip,
        visible_share=fit.visible_share,
        n_keypoints=fit.n_keypoints,
        sigma=fit.sigma,
    )


@dataclass(frozen=True, eq=False)
class KeypointTemplate:
    """OKS against the truth under position noise and visibility flips: ``sim (F, T, D)`` sorted
    draws per flip rate (:data:`FLIP_GRID`) and relative spread (:data:`SPREAD_GRID`)."""

    sim: FloatArray
    _tables: dict[float, tuple[FloatArray, FloatArray, FloatArray]] = field(default_factory=dict, repr=False)

    def moments(self, spread2: FloatArray, flip: FloatArray, thr: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """For drawings of squared relative spread ``spread2 (N,)`` and flip rate ``flip (N,)``: the
        share whose OKS reaches ``thr``, the mean and the mean square OKS of that share (``(N,)`` each);
        bilinear in spread and flip rate."""
        key = round(float(thr), 6)
        table = self._tables.get(key)
        if table is None:
            above = self.sim >= key - 1e-12
            n_above = np.maximum(above.sum(axis=2), 1)
            some = above.any(axis=2)
            table = self._tables[key] = (
                above.mean(axis=2),
                np.where(some, (self.sim * above).sum(axis=2) / n_above, key),
                np.where(some, (self.sim**2 * above).sum(axis=2) / n_above, key * key),
            )
        spread = np.sqrt(np.clip(np.asarray(spread2, dtype=np.float64), 0.0, SPREAD_GRID[-1] ** 2))
        f = np.clip(np.asarray(flip, dtype=np.float64), 0.0, FLIP_GRID[-1])
        ti, tw = _grid_weights(SPREAD_GRID, spread)
        fi, fw = _grid_weights(FLIP_GRID, f)
        out = []
        for col in table:
            lo = col[fi, ti] * (1 - tw) + col[fi, ti + 1] * tw
            hi = col[fi + 1, ti] * (1 - tw) + col[fi + 1, ti + 1] * tw
            out.append(np.asarray(lo * (1 - fw) + hi * fw, dtype=np.float64))
        return out[0], out[1], out[2]


def _grid_weights(grid: FloatArray, values: FloatArray) -> tuple[IntArray, FloatArray]:
    """Lower grid index and linear weight of each value (clipped to the grid)."""
    i = np.clip(np.searchsorted(grid, values, side="right") - 1, 0, grid.size - 2)
    w = np.clip((values - grid[i]) / (grid[i + 1] - grid[i]), 0.0, 1.0)
    return i.astype(np.int64), w


#: templates kept (17.6 MB each; a long-running sidecar meets many visible shares)
_TEMPLATE_CACHE = 4


@functools.lru_cache(maxsize=_TEMPLATE_CACHE)
def keypoint_template(n_keypoints: int, visible_share: float, sigma: float) -> KeypointTemplate:
    """The tabulated :class:`KeypointTemplate` for objects of ``n_keypoints`` keypoints, each visible
    in the truth with probability ``visible_share``, OKS ``sigma`` (the same random draws for every
    cell, so the table is smooth across spreads and flip rates)."""
    rng = np.random.default_rng(20261207)
    p = max(int(n_keypoints), 1)
    truth_vis = rng.random((_DRAWS, p)) < visible_share
    u = rng.random((_DRAWS, p))
    chi2 = (rng.normal(0.0, 1.0, (_DRAWS, p, 2)) ** 2).sum(axis=2)
    # per spread: the keypoint's OKS term exp(-d^2 / (8 s^2 sigma^2)), d^2 = spread^2 s^2 chi2
    term = np.exp(-(SPREAD_GRID[:, None, None] ** 2) * chi2[None] / (8.0 * sigma**2))  # (T, D, P)
    sim = np.empty((FLIP_GRID.size, SPREAD_GRID.size, _DRAWS))
    for i, f in enumerate(FLIP_GRID.tolist()):
        vis = truth_vis ^ (u < f)
        both, either = truth_vis & vis, (truth_vis | vis).sum(axis=1)
        num = (term * both[None]).sum(axis=2)
        sim[i] = np.where(either[None] > 0, num / np.maximum(either, 1)[None], 0.0)
    sim.sort(axis=2)
    return KeypointTemplate(sim)
