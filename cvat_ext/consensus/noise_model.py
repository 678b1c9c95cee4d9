"""Localisation noise of each annotator, scaled with object size, from the matched pairs of a job.

Model. Annotator r draws an object of size ``s`` (px, the square root of its extent's area) with
corner jitter of standard deviation ``sd_r(s) = sqrt(a_r^2 + (b_r * s)^2)`` px: an absolute part
(hand tremor, zoom) and a relative one. The dissimilarity to the truth ``x = 1 - IoU`` scales with
``sd / s`` for a fixed shape of noise, so its mean square is

    E[x_r^2](s) = alpha_r / s^2 + beta_r           (alpha ~ a^2, beta ~ b^2, both >= 0)

and two annotators' independent errors add, so a pair's dissimilarity has the mean square
``E[x_rs^2](s) = (alpha_r + alpha_s) / s^2 + beta_r + beta_s`` (the "three-cornered hat" of clock
noises, per size). Non-negative least squares over the pairs of every cluster, binned by size,
fits ``alpha, beta (R,)`` per shape family (needs three annotators; with two, both get half).

From the fitted spread, a :class:`IouTemplate` gives what a ground-truth evaluation at the match
threshold would see: the share of an annotator's objects at or above ``iou_thr`` and their mean
IoU. The template is the distribution of ``1 - IoU`` of a square box under Gaussian corner noise
(a scale family: one shape, scaled by ``sd / s``), tabulated once by Monte-Carlo; it is the
documented assumption of the estimator (``docs/developers/annotator-model.md``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvat_ext.consensus.batch import FloatArray, IntArray
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.consensus.nnls import nnls, scaled_nnls

#: size bins (px, sqrt of the extent's area), log-spaced: evidence is pooled per (bin, pair)
SIZE_EDGES = np.geomspace(4.0, 1024.0, 17)
#: the bins' geometric centres (px)
SIZE_CENTRES = np.sqrt(SIZE_EDGES[:-1] * SIZE_EDGES[1:])
#: Monte-Carlo draws per template row (fixed seed: the table is deterministic)
_TEMPLATE_DRAWS = 4000
#: relative corner spreads ``sd / s`` the template tabulates
_TEMPLATE_SPREADS = np.concatenate([[0.0], np.geomspace(1e-3, 3.0, 80)])


#: the unit square as ``lo, hi (1, 2)`` corners
UNIT_SQUARE = (np.zeros((1, 2)), np.ones((1, 2)))


def size_bin(size: FloatArray) -> IntArray:
    """(N,) bin of each object size in :data:`SIZE_EDGES` (clipped to the end bins)."""
    return np.clip(np.searchsorted(SIZE_EDGES, size, side="right") - 1, 0, SIZE_EDGES.size - 2).astype(np.int64)


def nearest_other(spread2: FloatArray) -> IntArray:
    """(B, R) index of the most precise *other* annotator (the first of equal ones) per size bin,
    from ``spread2 (B, R)`` (two annotators at least): whose drawing r's must match to link."""
    n = spread2.shape[1]
    return np.stack([np.where(np.arange(n) == r, np.inf, spread2).argmin(axis=1) for r in range(n)], axis=1)


@dataclass
class PairEvidence:
    """Matched-pair dissimilarities of one shape family, pooled per (size bin, annotator pair).

    ``sum_x2, sum_inv_s2, count`` are (B, P) sums of ``x^2`` (``x = 1 - sim``), ``1/s^2`` and the
    number of matched pairs."""

    n_annotators: int
    sum_x2: FloatArray = field(init=False)
    sum_inv_s2: FloatArray = field(init=False)
    count: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        shape = (SIZE_EDGES.size - 1, len(annotator_pairs(self.n_annotators)))
        self.sum_x2, self.sum_inv_s2, self.count = (np.zeros(shape) for _ in range(3))

    def per_annotator(self) -> FloatArray:
        """(R,) matched pairs each annotator is in (its evidence)."""
        per_pair = self.count.sum(axis=0)
        out = np.zeros(self.n_annotators)
        for p, (r, s) in enumerate(annotator_pairs(self.n_annotators)):
            out[[r, s]] += per_pair[p]
        return out

    def add(self, pair_sim: FloatArray, size: FloatArray, bins: IntArray | None = None) -> None:
        """``pair_sim (K, P)`` cluster pair similarities (NaN unless both matched), ``size (K,)`` px
        (``bins (K,)``: its :func:`size_bin` when already known)."""
        ok = np.isfinite(pair_sim)
        if not ok.any():
            return
        k, p = np.nonzero(ok)
        x = 1.0 - np.clip(pair_sim[k, p], 0.0, 1.0)
        s = np.maximum(size[k], 1.0)
        cell = (size_bin(size) if bins is None else bins)[k] * self.count.shape[1] + p
        n = self.count.size
        for acc, values in ((self.sum_x2, x * x), (self.sum_inv_s2, 1.0 / (s * s))):
            acc += np.bincount(cell, weights=values, minlength=n).reshape(acc.shape)
        self.count += np.bincount(cell, minlength=n).reshape(self.count.shape)


def annotator_triples(n: int) -> list[tuple[int, int, int]]:
    """The triples ``(r, a, b)``, ``a < b``, ``r`` not in them, of ``n`` annotators: annotator r's
    corner covariance through the pairs r-a and r-b."""
    return [(r, a, b) for r in range(n) for a, b in annotator_pairs(n) if r not in (a, b)]


def triple_pairs(n: int) -> list[tuple[int, int, float, int]]:
    """Per triple ``(r, a, b)`` of :func:`annotator_triples` (same order): the pair columns of r-a
    and r-b, the sign that makes the product of their differences ``+ e_r e_r`` (a pair's
    difference is its lower annotator's minus the higher's), and the pair column of a-b."""
    index = {pair: p for p, pair in enumerate(annotator_pairs(n))}
    return [
        (
            index[(min(r, a), max(r, a))],
            index[(min(r, b), max(r, b))],
            (1.0 if r < a else -1.0) * (1.0 if r < b else -1.0),
            index[(a, b)],
        )
        for r, a, b in annotator_triples(n)
    ]


@dataclass
class CornerEvidence:
    """Corner offsets of the extents, per (size bin, triple): the covariance estimate.

    With corners drawn as truth + e_r (independent, zero-mean), two differences that share
    annotator r have ``E[(c_r - c_a)(c_r - c_b)] = Var(e_r)``: annotator r's own variance, with
    no subtraction of the others' larger ones (the three-cornered hat on pair disagreements is a
    small difference of large numbers where one annotator is far more precise than the others).
    Offsets are divided by the object size, so the sums are of squared relative spreads.
    ``sum_cov, sum_inv_s2, count`` are (B, T), T the :func:`annotator_triples`: kept per triple
    because each triple's pairs truncate it differently (:func:`fit_corner_noise`)."""

    n_annotators: int
    sum_cov: FloatArray = field(init=False)
    sum_inv_s2: FloatArray = field(init=False)
    count: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        shape = (SIZE_EDGES.size - 1, len(annotator_triples(self.n_annotators)))
        self.sum_cov, self.sum_inv_s2, self.count = (np.zeros(shape) for _ in range(3))

    def add(self, xyxy: FloatArray, pair_sim: FloatArray, size: FloatArray, bins: IntArray | None = None) -> None:
        """``xyxy (K, R, 4)`` member extents (anything where absent), ``pair_sim (K, P)`` (NaN unless
        the pair matched), ``size (K,)`` px (``bins``: its :func:`size_bin`). Uses the triples
        (r, a, b) whose pairs r-a, r-b matched."""
        n = self.n_annotators
        k = xyxy.shape[0]
        if n < 3 or k == 0:
            return
        pairs = annotator_pairs(n)
        matched = np.isfinite(pair_sim)
        # corner offsets of every pair once: (K, 4) each, first minus second annotator
        diff = [xyxy[:, r] - xyxy[:, t] for r, t in pairs]
        s_obj = np.maximum(size, 1.0)
        inv_s2 = 1.0 / (s_obj * s_obj)
        triples = triple_pairs(n)
        cov, count = np.zeros((k, len(triples))), np.zeros((k, len(triples)))
        for t, (pa, pb, sign, _) in enumerate(triples):
            ok = matched[:, pa] & matched[:, pb]
            cov[:, t] = np.where(ok, sign * (diff[pa] * diff[pb]).mean(axis=1), 0.0)
            count[:, t] = ok
        n_t = len(triples)
        cell = ((size_bin(s_obj) if bins is None else bins)[:, None] * n_t + np.arange(n_t)[None, :]).ravel()
        cells = self.count.size
        shape = self.count.shape
        self.sum_cov += np.bincount(cell, weights=(cov * inv_s2[:, None]).ravel(), minlength=cells).reshape(shape)
        self.sum_inv_s2 += np.bincount(cell, weights=(count * inv_s2[:, None]).ravel(), minlength=cells).reshape(shape)
        self.count += np.bincount(cell, weights=count.ravel(), minlength=cells).reshape(shape)


#: triples an annotator's usable cells need before the corner fit leaves out the most truncated ones
MIN_CORNER_TRIPLES = 100
#: the least truncation factor (the product of the two pairs' kept shares of the squared error) a
#: triple cell needs to count: below it the correction amplifies noise more than it removes bias
MIN_CORNER_FACTOR = 0.25


@dataclass(frozen=True)
class CornerCells:
    """One annotator's usable corner cells: ``design (M, 2)`` (mean ``1/s^2``, 1) against
    ``target (M,)`` (its corner variance, corrected for truncation, relative units), ``weight (M,)``
    (inverse standard error)."""

    design: FloatArray
    target: FloatArray
    weight: FloatArray


def corner_cells(
    ev: CornerEvidence,
    shrink: FloatArray,
    spread2: FloatArray,
    min_count: int = 5,
    min_factor: float = MIN_CORNER_FACTOR,
) -> list[CornerCells] | None:
    """Per annotator, its (size bin, triple) cells of the corner covariance; None when an annotator
    has none.

    Only matched members give offsets, so where the match truncates the errors (small objects,
    large jitter) the covariance is biased low. ``shrink (B, P)``: per size bin and pair, the share
    of the squared error the match keeps (:meth:`IouTemplate.shrink`); a triple r-a-b's covariance
    keeps about ``shrink_ra * shrink_rb`` of annotator r's variance (Gaussian errors with each pair
    truncated), so each cell is divided by it. Cells under ``min_factor`` are left out (unless fewer
    than two cells or :data:`MIN_CORNER_TRIPLES` triples are left: then every cell counts, weighed
    by its factor). ``spread2 (B, P)``: the pairs' untruncated squared spreads (0: unknown); a
    cell's standard error grows with them (the covariance of r is the mean of a product of two
    differences each as noisy as its pair), so the precise annotator's cells, small beside the
    others' spreads, weigh by that."""
    n = ev.n_annotators
    triples = annotator_triples(n)
    if not triples:  # two annotators: no triple, the pairs alone
        return None
    cols = [(pa, pb) for pa, pb, _, _ in triple_pairs(n)]
    factor = np.stack([shrink[:, pa] * shrink[:, pb] for pa, pb in cols], axis=1)  # (B, T)
    noise = np.stack([np.sqrt(spread2[:, pa] * spread2[:, pb]) for pa, pb in cols], axis=1)  # (B, T)
    owner = np.array([r for r, _, _ in triples])
    out = []
    for r in range(n):
        mine = owner == r
        cnt, fac = ev.count[:, mine], factor[:, mine]
        ok = (cnt >= min_count) & (fac >= min_factor)
        if ok.sum() < 2 or cnt[ok].sum() < MIN_CORNER_TRIPLES:
            # too little mildly truncated evidence (a small job): every cell, weighed by its factor
            ok = (cnt >= min_count) & (fac > 0)
        if not ok.any():
            return None
        c, f = cnt[ok], fac[ok]
        design = np.stack([ev.sum_inv_s2[:, mine][ok] / c, np.ones(int(ok.sum()))], axis=1)
        target = ev.sum_cov[:, mine][ok] / c / f
        spread = noise[:, mine][ok]
        spread = np.where(spread > 0, spread, np.maximum(np.abs(target), 1e-4))
        out.append(CornerCells(design, target, np.sqrt(c) * f / spread))
    return out


def _nnls_alpha_beta(design: FloatArray, target: FloatArray, weight: FloatArray) -> tuple[float, float]:
    """Weighted NNLS of ``target (M,) ~ design (M, 2) @ (alpha, beta)``, ``weight (M,)`` per row."""
    scale = np.abs(design).max(axis=0)
    w = weight[:, None]
    coef, _ = nnls(design / scale * w, target * weight)
    alpha, beta = coef / scale
    return float(alpha), float(beta)


def fit_corner_noise(cells: list[CornerCells]) -> tuple[FloatArray, FloatArray]:
    """Per annotator ``alpha, beta (R,)`` of the extents' corner variance ``alpha / s^2 + beta``
    (relative units) by NNLS over its :func:`corner_cells`."""
    fits = [_nnls_alpha_beta(cell.design, cell.target, cell.weight) for cell in cells]
    return np.array([a for a, _ in fits]), np.array([b for _, b in fits])


@dataclass
class BinnedCovariance:
    """Covariance sums per (size bin, annotator), ``(B, R)`` each: ``sum_cov`` of an annotator's
    offsets to two others over the object size squared, ``sum_inv_s2`` of ``1/s^2``, ``count``
    (the keypoint model's, which picks its triples by the partners' link before summing)."""

    sum_cov: FloatArray
    sum_inv_s2: FloatArray
    count: FloatArray


def fit_binned_covariance(
    ev: BinnedCovariance, trust: FloatArray, min_count: int = 5, min_trust: float = 0.5
) -> tuple[FloatArray, FloatArray] | None:
    """Per annotator ``alpha, beta (R,)`` of ``alpha / s^2 + beta`` by NNLS over its size bins,
    weighed by ``trust (B, R)``; bins under ``min_trust`` are left out unless fewer than two bins or
    :data:`MIN_CORNER_TRIPLES` triples are left. None when an annotator has no usable bin."""
    n = ev.count.shape[1]
    alpha, beta = np.zeros(n), np.zeros(n)
    for r in range(n):
        ok = (ev.count[:, r] >= min_count) & (trust[:, r] >= min_trust)
        if ok.sum() < 2 or ev.count[ok, r].sum() < MIN_CORNER_TRIPLES:
            ok = (ev.count[:, r] >= min_count) & (trust[:, r] > 0)
        if not ok.any():
            return None
        c = ev.count[ok, r]
        design = np.stack([ev.sum_inv_s2[ok, r] / c, np.ones(int(ok.sum()))], axis=1)
        alpha[r], beta[r] = _nnls_alpha_beta(design, ev.sum_cov[ok, r] / c, np.sqrt(c) * trust[ok, r])
    return alpha, beta


@dataclass(frozen=True)
class NoiseFit:
    """Fitted noise of one family: ``alpha, beta (R,)`` in ``E[x_r^2](s) = alpha/s^2 + beta``;
    ``pairs (R,)`` the matched pairs each annotator's fit rests on."""

    alpha: FloatArray
    beta: FloatArray
    pairs: FloatArray

    def mean_square(self, size: FloatArray) -> FloatArray:
        """(K, R) mean squared dissimilarity to the truth of each annotator at sizes ``size (K,)``."""
        inv = 1.0 / np.maximum(np.asarray(size, dtype=np.float64), 1.0) ** 2
        return np.asarray(inv[:, None] * self.alpha[None, :] + self.beta[None, :], dtype=np.float64)

    def pixel_variance(self, size: FloatArray) -> FloatArray:
        """(K, R) corner variance in px^2 (up to the template's constant): ``alpha + beta s^2``."""
        s = np.maximum(np.asarray(size, dtype=np.float64), 1.0)
        return np.asarray(self.alpha[None, :] + self.beta[None, :] * (s * s)[:, None], dtype=np.float64)

    def as_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha.tolist(), "beta": self.beta.tolist(), "pairs": self.pairs.tolist()}


#: pair cells whose truncated moment still moves at least this much with the spread set the corner
#: shape's scale (the corner fit's own trust threshold)
MIN_SCALE_ELASTICITY = 0.5
#: pairs a cell needs to set the scale (the corner fit's ``min_count``)
MIN_SCALE_PAIRS = 5


def fit_noise(
    ev: PairEvidence,
    iou_thr: float,
    tmpl: IouTemplate,
    prior: Mapping[int, tuple[float, float, float]] | None = None,
    corners: CornerEvidence | None = None,
) -> NoiseFit:
    """:func:`fit_job_noise`, then each annotator's ``alpha, beta`` pooled with its ``prior``
    (:func:`pool_prior`): the job's own evidence (its corner cells too) is fitted as without one."""
    fit = fit_job_noise(ev, iou_thr, tmpl, corners)
    return pool_prior(fit, prior) if prior else fit


def pool_prior(fit: NoiseFit, prior: Mapping[int, tuple[float, float, float]]) -> NoiseFit:
    """``prior`` maps an annotator position to ``(alpha, beta, weight)`` from earlier jobs: its
    parameters and the job's are averaged, the job's weighed by its matched pairs and the prior's
    by ``weight`` (matched pairs, capped by the caller), as a pseudo-count."""
    alpha, beta = fit.alpha.copy(), fit.beta.copy()
    for r, (a, b, w) in prior.items():
        own = float(fit.pairs[r])
        alpha[r] = pseudo_count_mean(float(alpha[r]), own, a, w)
        beta[r] = pseudo_count_mean(float(beta[r]), own, b, w)
    return NoiseFit(alpha, beta, fit.pairs)


def pseudo_count_mean(own: float, own_weight: float, prior: float, prior_weight: float) -> float:
    """The job's value and a prior's averaged by their weights (matched pairs); ``own`` where
    neither has any."""
    prior_weight = max(prior_weight, 0.0)
    total = own_weight + prior_weight
    return own if total <= 0 else (own * own_weight + prior * prior_weight) / total


def fit_job_noise(
    ev: PairEvidence,
    iou_thr: float,
    tmpl: IouTemplate,
    corners: CornerEvidence | None = None,
) -> NoiseFit:
    """NNLS fit of ``alpha, beta`` from the pooled pairs (module docstring).

    A pair is seen only where it matched (``x <= 1 - iou_thr``), so each cell's mean square is a
    truncated one: it is mapped back to the untruncated mean square through the template before the
    fit (without this, a sloppy annotator's pairs look as good as a moderate one's).

    ``corners`` (extent families): each annotator's variance *shape* comes from the corner
    covariances (:class:`CornerEvidence`), and one scale factor maps it onto the pairs'
    similarity spreads (for boxes ~1; masks and polygons also carry outline noise)."""
    n = ev.n_annotators
    pairs = annotator_pairs(n)
    per_annot = ev.per_annotator()
    rows: list[FloatArray] = []
    target: list[float] = []
    weight: list[float] = []
    elastic: list[float] = []  # per row: how far its spread is read without truncation
    counts: list[float] = []  # per row: the matched pairs behind it
    shrink = np.ones(ev.count.shape)  # per (bin, pair): the share of the squared error the match keeps
    pair_spread2 = np.zeros(ev.count.shape)  # per (bin, pair): untruncated squared spread
    b_idx, p_idx = np.nonzero(ev.count > 0)
    for b, p in zip(b_idx.tolist(), p_idx.tolist(), strict=True):
        c = ev.count[b, p]
        r, s = pairs[p]
        row = np.zeros(2 * n)
        inv = ev.sum_inv_s2[b, p] / c
        row[[r, s]] = inv
        row[[n + r, n + s]] = 1.0
        rows.append(row)
        spread2, elasticity = tmpl.untruncate(ev.sum_x2[b, p] / c, iou_thr)
        shrink[b, p] = tmpl.shrink(spread2, iou_thr)
        pair_spread2[b, p] = spread2
        target.append(spread2)
        elastic.append(elasticity)
        counts.append(float(c))
        # a cell's mean square is known to a relative precision ~ 1/sqrt(count): weigh residuals
        # relative to it, or the sloppy pairs' errors swamp the precise annotator's small variance;
        # and a truncated cell tells its spread only as far as the truncated moment still moves
        weight.append(np.sqrt(c) * elasticity / max(spread2, 1e-3))
    if not rows:
        return NoiseFit(np.zeros(n), np.zeros(n), per_annot)
    a = np.asarray(rows) * np.asarray(weight)[:, None]
    y = np.asarray(target) * np.asarray(weight)
    cells = corner_cells(corners, shrink, pair_spread2) if corners is not None else None
    if cells is not None:
        shape = fit_corner_noise(cells)
        # one scale maps the corner variances onto the pairs' similarity spreads: the count-
        # weighted mean of their ratios on the cells the match does not truncate (a truncated
        # cell's untruncated spread is biased low) and that hold a few pairs (a least-squares
        # scale was set by single lone pairs of tiny objects and came out ~0.35 on boxes, where
        # it is ~1)
        raw = np.asarray(rows) @ np.concatenate(shape)
        elastic_a, counts_a = np.asarray(elastic), np.asarray(counts)
        sel = (elastic_a >= MIN_SCALE_ELASTICITY) & (counts_a >= MIN_SCALE_PAIRS) & (raw > 0)
        if not sel.any():
            sel = raw > 0
        if sel.any():
            scale = float(np.average(np.asarray(target)[sel] / raw[sel], weights=(counts_a * elastic_a)[sel]))
            # then one fit of both: each annotator's own (scaled) corner variances and the
            # untruncated pairs; the pairs carry a moderate annotator's spread where its triples
            # are cut by the sloppy one's (a cluster needs all its pairs matched)
            joint_rows, joint_y = [a[sel]], [y[sel]]
            for r, cell in enumerate(cells):
                block = np.zeros((cell.target.size, 2 * n))
                block[:, r], block[:, n + r] = cell.design[:, 0], 1.0
                cell_w = cell.weight / max(scale, 1e-12)
                joint_rows.append(block * cell_w[:, None])
                joint_y.append(cell.target * scale * cell_w)
            coef = scaled_nnls(np.concatenate(joint_rows), np.concatenate(joint_y))
            return NoiseFit(coef[:n], coef[n:], per_annot)
    if n < 3:
        a, y = with_equal_split(a, y, n)
    coef = scaled_nnls(a, y)
    return NoiseFit(coef[:n], coef[n:], per_annot)


def with_equal_split(a: FloatArray, y: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """``a (M, 2n)``, ``y (M,)`` of an ``(alpha (n,), beta (n,))`` pair fit with two annotators
    (or one): only the pair's sum is identified, so two heavy rows ask ``alpha_0 = alpha_1`` and
    ``beta_0 = beta_1`` (each gets half)."""
    split = 1e3 * np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])[:, : 2 * n]
    return np.concatenate([a, split]), np.concatenate([y, np.zeros(2)])


@dataclass(frozen=True, eq=False)
class IouTemplate:
    """The distribution of ``x = 1 - similarity`` against the truth under Gaussian noise of relative
    spread ``sd / s``: ``spread (T,)`` the tabulated spreads, ``x (T, D)`` sorted draws per spread.

    Two annotators' errors add in variance, so a pair's ``x`` follows the row of spread
    ``sqrt(sd_r^2 + sd_s^2) / s``."""

    spread: FloatArray
    x: FloatArray

    def at_threshold(self, spread2: FloatArray, iou_thr: float) -> tuple[FloatArray, FloatArray]:
        """For objects of squared relative spread ``spread2 (N,)``: the share whose similarity to
        the truth reaches ``iou_thr`` and the mean similarity of that share (``(N,)`` each)."""
        hit, mean_sim, _ = self.moments(spread2, iou_thr)
        return hit, mean_sim

    def moments(self, spread2: FloatArray, iou_thr: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """:meth:`at_threshold` and the mean squared similarity of the share (``(N,)`` each)."""
        spread = np.sqrt(np.clip(np.asarray(spread2, dtype=np.float64), 0.0, self.spread[-1] ** 2))
        table = _threshold_table(self, round(float(iou_thr), 6))
        hit, mean_sim, mean_sq = (np.interp(spread, self.spread, col) for col in table)
        return hit, mean_sim, mean_sq

    def untruncate(self, mean_square: float, iou_thr: float) -> tuple[float, float]:
        """The squared spread whose ``x``, seen only at or below ``1 - iou_thr`` (a matched pair),
        has the mean square ``mean_square`` (capped where the truncated moment saturates), and the
        elasticity ``d ln(truncated ms) / d ln(spread^2)`` there: 1 where truncation does not bite,
        towards 0 where the observed moment barely tells the spread."""
        spread, truncated = _truncated_table(self, round(float(iou_thr), 6))
        sp = float(np.interp(mean_square, truncated, spread))
        log_ms, log_s2 = np.log(np.maximum(truncated[1:], 1e-12)), np.log(spread[1:] ** 2)
        slope = np.gradient(log_ms, log_s2)
        return sp * sp, float(np.clip(np.interp(sp * sp, spread[1:] ** 2, slope), 0.0, 1.0))

    def shrink(self, spread2: float, iou_thr: float) -> float:
        """The share of the mean square of ``x`` that the match keeps (``x <= 1 - iou_thr``) at the
        squared spread ``spread2``: truncated over untruncated mean square, 1 without truncation."""
        spread, truncated = _truncated_table(self, round(float(iou_thr), 6))
        full = _full_mean_square(self)
        sp = float(np.sqrt(max(spread2, 0.0)))
        kept = float(np.interp(sp, spread, truncated))
        whole = float(np.interp(sp, self.spread, full))
        return float(np.clip(kept / whole, 0.0, 1.0)) if whole > 0 else 1.0


def noisy_unit_boxes(spread: float, noise: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The unit square's corners moved by ``spread * noise (D, 4)``: ``lo, hi (D, 2)``."""
    box = np.array([0.0, 0.0, 1.0, 1.0]) + spread * noise
    return np.minimum(box[:, :2], box[:, 2:]), np.maximum(box[:, :2], box[:, 2:])


def corner_iou(a: tuple[FloatArray, FloatArray], b: tuple[FloatArray, FloatArray]) -> FloatArray:
    """IoU of boxes given as ``lo, hi (..., 2)`` corners (broadcast); the two sides multiplied as
    columns, which is what ``prod(axis=-1)`` gives, without its slow reduction over a short axis."""
    side = np.clip(np.minimum(a[1], b[1]) - np.maximum(a[0], b[0]), 0.0, None)
    inter = side[..., 0] * side[..., 1]
    size_a, size_b = a[1] - a[0], b[1] - b[0]
    union = size_a[..., 0] * size_a[..., 1] + size_b[..., 0] * size_b[..., 1] - inter
    return np.asarray(inter / np.maximum(union, 1e-12), dtype=np.float64)


def _box_draws(spread: float, noise: FloatArray) -> FloatArray:
    """(D,) 1 - IoU of the unit square and its corners moved by ``spread * noise[:, :4]``."""
    return 1.0 - corner_iou(noisy_unit_boxes(spread, noise[:, :4]), UNIT_SQUARE)


def _keypoint_draws(spread: float, noise: FloatArray, oks_sigma: float) -> FloatArray:
    # OKS of 5 keypoints each displaced by N(0, spread * s) per axis, s^2 the object's area
    d2 = spread**2 * (noise[:, :5] ** 2 + noise[:, 5:10] ** 2)
    return np.asarray(1.0 - np.exp(-d2 / (8.0 * oks_sigma**2)).mean(axis=1), dtype=np.float64)


#: families whose similarity is OKS
KEYPOINT_FAMILIES = frozenset({"points", "skeleton"})


@functools.cache
def template(family: str = "rectangle", oks_sigma: float = 0.09) -> IouTemplate:
    """The tabulated :class:`IouTemplate` of a match family: box IoU under corner noise for areas
    (rectangles, polygons, masks, ellipses...), OKS under keypoint noise for points and skeletons."""
    rng = np.random.default_rng(20261207)
    noise = rng.normal(0.0, 1.0, (_TEMPLATE_DRAWS, 10))
    keypoints = family in KEYPOINT_FAMILIES
    rows = [
        np.sort(_keypoint_draws(sp, noise, oks_sigma) if keypoints else _box_draws(sp, noise))
        for sp in _TEMPLATE_SPREADS.tolist()
    ]
    return IouTemplate(_TEMPLATE_SPREADS.copy(), np.asarray(rows))


@functools.cache
def _truncated_table(t: IouTemplate, iou_thr: float) -> tuple[FloatArray, FloatArray]:
    """Template rows up to where the truncated mean square stops growing: (spread, truncated ms)."""
    within = t.x <= 1.0 - iou_thr + 1e-12
    ms = (t.x**2 * within).sum(axis=1) / np.maximum(within.sum(axis=1), 1)
    top = int(np.argmax(ms)) + 1
    return t.spread[:top], np.maximum.accumulate(ms[:top])


@functools.cache
def _full_mean_square(t: IouTemplate) -> FloatArray:
    """(T,) untruncated mean square of ``x`` per template row."""
    return np.asarray((t.x**2).mean(axis=1), dtype=np.float64)


@functools.cache
def _threshold_table(t: IouTemplate, iou_thr: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per template row: share at or above ``iou_thr``, mean and mean square of its similarity."""
    hit = (t.x <= 1.0 - iou_thr + 1e-12).mean(axis=1)
    sim = 1.0 - t.x
    above = sim >= iou_thr - 1e-12
    n_above = np.maximum(above.sum(axis=1), 1)
    some = above.any(axis=1)
    mean_sim = np.where(some, (sim * above).sum(axis=1) / n_above, iou_thr)
    mean_sq = np.where(some, (sim * sim * above).sum(axis=1) / n_above, iou_thr**2)
    return hit, mean_sim, mean_sq
