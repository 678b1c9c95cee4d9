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
from collections.abc import Callable, Mapping
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


#: size bins of the evidence sums
N_BINS = SIZE_EDGES.size - 1

#: the unit square as ``lo, hi (1, 2)`` corners
UNIT_SQUARE = (np.zeros((1, 2)), np.ones((1, 2)))


def group_sum(sums: FloatArray, groups: int, without: int | None = None) -> FloatArray:
    """``(B, C)``: the ``(groups * B, C)`` per-group ``sums`` added over the groups, ``without`` one."""
    per = sums.reshape(groups, sums.shape[0] // groups, sums.shape[1])
    if without is not None:
        per = np.delete(per, without, axis=0)
    return np.asarray(per.sum(axis=0), dtype=np.float64)


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
    number of matched pairs; ``(groups * B, P)`` where they are kept per group of clusters (the
    jackknife's frame groups, :mod:`~cvat_ext.consensus.noise_jackknife`: row ``group * B + bin``;
    :meth:`total` adds them up)."""

    n_annotators: int
    groups: int = 1
    sum_x2: FloatArray = field(init=False)
    sum_inv_s2: FloatArray = field(init=False)
    count: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.groups * N_BINS, len(annotator_pairs(self.n_annotators)))
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
        (``bins (K,)``: its :func:`size_bin` when already known; with groups, the row
        ``group * B + size_bin``)."""
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

    def total(self, without: int | None = None) -> PairEvidence:
        """The sums over the groups (``without`` one of them): the evidence of one job, ungrouped."""
        out = PairEvidence(self.n_annotators)
        out.sum_x2, out.sum_inv_s2, out.count = (
            group_sum(a, self.groups, without) for a in (self.sum_x2, self.sum_inv_s2, self.count)
        )
        return out


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
class BinnedCovariance:
    """Covariance sums per (size bin, column), ``(B, C)`` each: ``sum_cov`` of an annotator's
    products of offsets to two others over the object size squared, ``sum_inv_s2`` of ``1/s^2``,
    ``count``. The columns are the :func:`annotator_triples` for the corners (:class:`CornerEvidence`)
    and the annotators for the keypoint model (which picks its triples by the partners' link
    before summing)."""

    sum_cov: FloatArray
    sum_inv_s2: FloatArray
    count: FloatArray

    @classmethod
    def zeros(cls, shape: tuple[int, int]) -> BinnedCovariance:
        return cls(np.zeros(shape), np.zeros(shape), np.zeros(shape))

    def add(self, cell: IntArray, cov: FloatArray, inv_s2: FloatArray, count: FloatArray) -> None:
        """Add ``(K, C)`` per-cluster terms; ``cell (K*C,)`` their flat (bin, column) index."""
        n, shape = self.count.size, self.count.shape
        for acc, values in ((self.sum_cov, cov), (self.sum_inv_s2, inv_s2), (self.count, count)):
            acc += np.bincount(cell, weights=values.ravel(), minlength=n).reshape(shape)

    def total(self, groups: int, without: int | None = None) -> BinnedCovariance:
        """The sums of ``groups`` groups of rows added (``without`` one of them)."""
        return BinnedCovariance(*(group_sum(a, groups, without) for a in (self.sum_cov, self.sum_inv_s2, self.count)))


@dataclass
class CornerEvidence:
    """Corner offsets of the extents, per (size bin, triple): the covariance estimate.

    With corners drawn as truth + e_r (independent, zero-mean), two differences that share
    annotator r have ``E[(c_r - c_a)(c_r - c_b)] = Var(e_r)``: annotator r's own variance, with
    no subtraction of the others' larger ones (the three-cornered hat on pair disagreements is a
    small difference of large numbers where one annotator is far more precise than the others).
    Offsets are divided by the object size, so the sums are of squared relative spreads.
    ``every`` holds the sums over every triple whose pairs r-a, r-b matched (cliques and chains),
    (B, T) with T the :func:`annotator_triples`: kept per triple because each triple's pairs
    truncate it differently (:func:`fit_corner_noise`). ``clique`` holds the same sums over the
    clique triples alone (the pair a-b matched too), whose selection :func:`clique_covariance`
    models."""

    n_annotators: int
    #: groups of clusters kept apart, as :class:`PairEvidence`'s (``bins`` of :meth:`add` the rows)
    groups: int = 1
    every: BinnedCovariance = field(init=False)
    clique: BinnedCovariance = field(init=False)

    def __post_init__(self) -> None:
        shape = (self.groups * N_BINS, len(annotator_triples(self.n_annotators)))
        self.every, self.clique = BinnedCovariance.zeros(shape), BinnedCovariance.zeros(shape)

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
        clique = np.zeros((k, len(triples)), dtype=bool)
        for t, (pa, pb, sign, pab) in enumerate(triples):
            ok = matched[:, pa] & matched[:, pb]
            cov[:, t] = np.where(ok, sign * (diff[pa] * diff[pb]).mean(axis=1), 0.0)
            count[:, t] = ok
            clique[:, t] = ok & matched[:, pab]
        n_t = len(triples)
        cell = ((size_bin(s_obj) if bins is None else bins)[:, None] * n_t + np.arange(n_t)[None, :]).ravel()
        cov_s = cov * inv_s2[:, None]
        count_s = count * inv_s2[:, None]
        self.every.add(cell, cov_s, count_s, count)
        self.clique.add(cell, cov_s * clique, count_s * clique, count * clique)

    def total(self, without: int | None = None) -> CornerEvidence:
        """The sums over the groups (``without`` one of them), as :meth:`PairEvidence.total`."""
        out = CornerEvidence(self.n_annotators)
        out.every, out.clique = self.every.total(self.groups, without), self.clique.total(self.groups, without)
        return out


#: triples an annotator's usable cells need before the corner fit leaves out the most truncated ones
MIN_CORNER_TRIPLES = 100
#: the least truncation factor (the product of the two pairs' kept shares of the squared error) a
#: triple cell needs to count: below it the correction amplifies noise more than it removes bias
MIN_CORNER_FACTOR = 0.25


@dataclass(frozen=True)
class CornerCells:
    """One annotator's usable corner cells: ``design (M, 2)`` (mean ``1/s^2``, 1) against
    ``target (M,)`` (its corner variance, corrected for truncation, relative units), ``weight (M,)``
    (inverse standard error), ``bins (M,)`` each cell's size bin, ``factor (M,)`` the share of the
    variance it read (its truncation correction's divisor; 1 for a carried bin)."""

    design: FloatArray
    target: FloatArray
    weight: FloatArray
    bins: IntArray
    factor: FloatArray

    @classmethod
    def empty(cls) -> CornerCells:
        return cls(np.zeros((0, 2)), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0))

    def __add__(self, other: CornerCells) -> CornerCells:
        return CornerCells(
            np.concatenate([self.design, other.design]),
            np.concatenate([self.target, other.target]),
            np.concatenate([self.weight, other.weight]),
            np.concatenate([self.bins, other.bins]),
            np.concatenate([self.factor, other.factor]),
        )


def shrink_factor(shrink: FloatArray, n: int) -> FloatArray:
    """(B, T) ``shrink_ra * shrink_rb`` per (size bin, triple) from ``shrink (B, P)`` (the share of
    the squared error each pair's match keeps): the share of r's variance a triple keeps with each of
    its two pairs truncated alone (every triple whose pairs r-a and r-b matched, chains too)."""
    cols = [(pa, pb) for pa, pb, _, _ in triple_pairs(n)]
    if not cols:  # fewer than three annotators: no triple
        return np.zeros((shrink.shape[0], 0))
    return np.stack([shrink[:, pa] * shrink[:, pb] for pa, pb in cols], axis=1)


#: a triple's three pair differences in the errors ``(e_r, e_a, e_b)``: r-a, r-b, a-b
_TRIPLE_DIFFERENCES = np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0], [0.0, 1.0, -1.0]])


def clique_covariance(variance: FloatArray, kept: Callable[[FloatArray], FloatArray], scale: float = 1.0) -> FloatArray:
    """``(...,)`` the covariance a clique triple reads for r (in ``variance``'s units), from
    ``variance (..., 3)`` the squared spreads of r, a, b (as the match sees them) and ``kept``: the
    share of a pair's squared error its match keeps at a squared spread (vectorised
    :meth:`IouTemplate.shrink`).

    Gaussian errors ``Sigma = diag(v_r, v_a, v_b)`` conditioned on each pair's truncation in turn
    (r-a, r-b, a-b): a truncation keeping the share ``k`` of the difference ``c``'s variance moves
    ``Sigma <- Sigma - (1 - k) Sigma c c^T Sigma / c^T Sigma c``, ``k`` read at that difference's
    spread under the current ``Sigma``; the triple reads ``c_ra^T Sigma c_rb``. With a-b matched too
    (a clique) this is ``v_r shrink_ra shrink_rb`` no more: the a-b match adds about
    ``v_a v_b / (v_a + v_b) (1 - k_ab)``, which for a precise r beside two noisy annotators is the
    size of its own variance. ``scale``: the similarity's squared spread over the corners' (the
    joint fit's scale: masks and polygons also carry outline noise); ``k`` is read there."""
    v = np.maximum(np.asarray(variance, dtype=np.float64), 1e-12)
    sigma = v[..., :, None] * np.eye(3)
    for c in _TRIPLE_DIFFERENCES:
        sc = sigma @ c  # (..., 3)
        var = np.maximum(sc @ c, 1e-300)
        # the match truncates the similarity, whose spread is ``scale`` times the corners'
        cut = (1.0 - kept(scale * var)) / var
        sigma = sigma - cut[..., None, None] * sc[..., :, None] * sc[..., None, :]
    c_ra, c_rb = _TRIPLE_DIFFERENCES[0], _TRIPLE_DIFFERENCES[1]
    return np.asarray((sigma @ c_rb) @ c_ra, dtype=np.float64)


def clique_correction(
    variance: FloatArray, kept: Callable[[FloatArray], FloatArray], scale: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    """``slope, offset (...,)``: :func:`clique_covariance` linearised in r's variance at ``variance
    (..., 3)``, ``covariance ~ slope * v_r + offset``. Inverting the line (not dividing by the
    covariance over ``v_r``) stays finite where a fit put ``v_r`` near 0: the a-b match's
    additive term then moves the cell by itself, not by a huge factor."""
    v = np.asarray(variance, dtype=np.float64)
    base = clique_covariance(v, kept, scale)
    step = 0.1 * v[..., 0] + 0.01 * np.minimum(v[..., 1], v[..., 2]) + 1e-12
    moved = v.copy()
    moved[..., 0] += step
    slope = (clique_covariance(moved, kept, scale) - base) / step
    return slope, base - slope * v[..., 0]


def triple_variances(fit: NoiseFit, sums: BinnedCovariance) -> FloatArray:
    """(B, T, 3) the fitted squared spreads of each triple's r, a, b at its cells' mean ``1/s^2``
    (``sums``' cells; empty cells at the bin centre)."""
    centre = 1.0 / SIZE_CENTRES**2
    inv_s2 = np.where(sums.count > 0, sums.sum_inv_s2 / np.maximum(sums.count, 1e-12), centre[:, None])
    members = np.array(annotator_triples(fit.alpha.size))  # (T, 3): r, a, b
    return np.asarray(inv_s2[..., None] * fit.alpha[members] + fit.beta[members], dtype=np.float64)


def corner_cells(sums: BinnedCovariance, factor: FloatArray, spread2: FloatArray, n: int) -> list[CornerCells] | None:
    """Per annotator (``n`` of them), its (size bin, triple) cells of the corner covariance
    ``sums`` read as ``factor`` of its variance (:func:`annotator_corner_cells`, every cell where
    too few are mildly truncated); None when an annotator has none (or there are fewer than three
    annotators)."""
    cells = annotator_corner_cells(sums, factor, spread2, n, fallback=True)
    usable = [c for c in cells if c is not None]
    return usable if cells and len(usable) == n else None


def annotator_corner_cells(
    sums: BinnedCovariance,
    factor: FloatArray,
    spread2: FloatArray,
    n: int,
    offset: FloatArray | None = None,
    min_count: int = 5,
    min_factor: float = MIN_CORNER_FACTOR,
    *,
    fallback: bool,
) -> list[CornerCells | None]:
    """Per annotator (``n`` of them), its (size bin, triple) cells of the corner covariance
    ``sums``, None for an annotator without usable cells; ``[]`` with fewer than three annotators.

    Only matched members give offsets, so where the match truncates the errors (small objects,
    large jitter) the covariance is biased. ``factor (B, T)``: the share of annotator r's variance
    each (bin, triple) cell reads, ``offset (B, T)`` what it reads besides (the covariance is
    ``factor * v_r + offset``: :func:`shrink_factor` and no offset for every triple,
    :func:`clique_correction` for the cliques), so each cell less its offset is divided by the
    factor. Cells under ``min_factor`` are left out; where fewer than two cells or
    :data:`MIN_CORNER_TRIPLES` triples are left, ``fallback`` takes every cell, weighed by its factor
    (a small job), and without it the annotator has none. ``spread2 (B, P)``: the pairs'
    untruncated squared spreads (0: unknown); a cell's standard error grows with them (the
    covariance of r is the mean of a product of two differences each as noisy as its pair), so the
    precise annotator's cells, small beside the others' spreads, weigh by that."""
    triples = annotator_triples(n)
    if not triples:  # two annotators: no triple, the pairs alone
        return []
    cols = [(pa, pb) for pa, pb, _, _ in triple_pairs(n)]
    noise = np.stack([np.sqrt(spread2[:, pa] * spread2[:, pb]) for pa, pb in cols], axis=1)  # (B, T)
    owner = np.array([r for r, _, _ in triples])
    bin_of = np.broadcast_to(np.arange(factor.shape[0])[:, None], factor.shape)
    out: list[CornerCells | None] = []
    for r in range(n):
        mine = owner == r
        cnt, fac = sums.count[:, mine], factor[:, mine]
        ok = (cnt >= min_count) & (fac >= min_factor)
        if ok.sum() < 2 or cnt[ok].sum() < MIN_CORNER_TRIPLES:
            ok = (cnt >= min_count) & (fac > 0) if fallback else np.zeros_like(ok)
        if not ok.any():
            out.append(None)
            continue
        c, f = cnt[ok], fac[ok]
        design = np.stack([sums.sum_inv_s2[:, mine][ok] / c, np.ones(int(ok.sum()))], axis=1)
        target = (sums.sum_cov[:, mine][ok] / c - (0.0 if offset is None else offset[:, mine][ok])) / f
        spread = noise[:, mine][ok]
        spread = np.where(spread > 0, spread, np.maximum(np.abs(target), 1e-4))
        out.append(CornerCells(design, target, np.sqrt(c) * f / spread, bin_of[:, mine][ok], f))
    return out


#: the share of its weight a person's carried corner cells keep at each later job (geometric
#: forgetting: the last ~1 / (1 - decay) jobs dominate, so a person who changes is followed)
CELL_DECAY = 0.8
#: layout of the carried cells in a model dict (``noise[family]["corner_cells"]``)
CELLS_LAYOUT = 1


@dataclass(frozen=True)
class CarriedCells:
    """One annotator's truncation-corrected corner cells pooled per size bin (:data:`SIZE_EDGES`),
    what its model carries to its next job: ``inv_s2 (B,)`` the mean ``1/s^2``, ``target (B,)`` the
    corrected corner variance (relative units, before the pairs' scale), ``precision (B,)`` the sum
    of the cells' squared inverse standard errors (0: no evidence in that bin)."""

    inv_s2: FloatArray
    target: FloatArray
    precision: FloatArray

    @classmethod
    def pooled(cls, cells: CornerCells) -> CarriedCells:
        """Per bin, the precision-weighted means of ``cells`` (a job's triples, a prior's bins)."""
        n_bins = SIZE_CENTRES.size
        w2 = cells.weight**2
        precision = np.bincount(cells.bins, weights=w2, minlength=n_bins).astype(np.float64)
        safe = np.maximum(precision, 1e-300)
        inv_s2 = np.bincount(cells.bins, weights=w2 * cells.design[:, 0], minlength=n_bins) / safe
        target = np.bincount(cells.bins, weights=w2 * cells.target, minlength=n_bins) / safe
        return cls(inv_s2, target, precision)

    def cells(self, decay: float = CELL_DECAY) -> CornerCells:
        """The bins with evidence as corner cells, their precision times ``decay``."""
        ok = self.precision > 0
        design = np.stack([self.inv_s2[ok], np.ones(int(ok.sum()))], axis=1)
        return CornerCells(
            design, self.target[ok], np.sqrt(decay * self.precision[ok]), np.flatnonzero(ok), np.ones(int(ok.sum()))
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "layout": CELLS_LAYOUT,
            **{
                k: [float(f"{x:.6g}") for x in v.tolist()]
                for k, v in (("inv_s2", self.inv_s2), ("target", self.target), ("precision", self.precision))
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CarriedCells | None:
        """The cells of a model dict's ``corner_cells``; None for another layout or a malformed one
        (the prior then pools as a dict without cells)."""
        try:
            if d.get("layout") != CELLS_LAYOUT:
                return None
            arrays = [np.asarray(d[k], dtype=np.float64) for k in ("inv_s2", "target", "precision")]
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        n_bins = SIZE_CENTRES.size
        if any(a.shape != (n_bins,) for a in arrays) or not all(np.isfinite(a).all() for a in arrays):
            return None
        inv_s2, target, precision = arrays
        return cls(inv_s2, target, np.maximum(precision, 0.0))


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
    ``pairs (R,)`` the matched pairs each annotator's fit rests on; ``cells`` each annotator's
    corrected corner cells pooled per size bin (its earlier jobs' too), what its model carries on
    (None: a fit without corner cells)."""

    alpha: FloatArray
    beta: FloatArray
    pairs: FloatArray
    cells: tuple[CarriedCells, ...] | None = None

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


def template_moments(
    fit: NoiseFit, tmpl: IouTemplate, size: FloatArray, iou_thr: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """At sizes ``size (B,)`` px, per annotator ``(B, R)``: the share of ``fit``'s drawings whose
    similarity to the truth reaches ``iou_thr`` under ``tmpl``, the mean and the mean square
    similarity of that share."""
    spread2 = fit.mean_square(size)
    hit, mean_sim, mean_sq = tmpl.moments(spread2.ravel(), iou_thr)
    return hit.reshape(spread2.shape), mean_sim.reshape(spread2.shape), mean_sq.reshape(spread2.shape)


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
    prior_cells: Mapping[int, CarriedCells] | None = None,
    *,
    carry: bool = True,
) -> NoiseFit:
    """:func:`fit_job_noise` (with the ``prior_cells`` a person's earlier jobs carry pooled into its
    corner cells), then the ``alpha, beta`` of each annotator whose cells did not carry its prior
    pooled with its ``prior`` (:func:`pool_prior`): the job's own evidence is fitted as without one,
    and a prior counts once, through its cells or through its parameters. ``carry=False``: the fit
    alone, without the cells a model carries on where no prior brings any (a refit that is not
    stored: the same ``alpha, beta``, a third of the time)."""
    fit = fit_job_noise(ev, iou_thr, tmpl, corners, prior_cells, carry=carry)
    carried = {r for r, c in (prior_cells or {}).items() if c.precision.sum() > 0} if fit.cells is not None else set()
    rest = {r: p for r, p in (prior or {}).items() if r not in carried}
    return pool_prior(fit, rest) if rest else fit


def pool_prior(fit: NoiseFit, prior: Mapping[int, tuple[float, float, float]]) -> NoiseFit:
    """``prior`` maps an annotator position to ``(alpha, beta, weight)`` from earlier jobs: its
    parameters and the job's are averaged, the job's weighed by its matched pairs and the prior's
    by ``weight`` (matched pairs, capped by the caller), as a pseudo-count."""
    alpha, beta = fit.alpha.copy(), fit.beta.copy()
    for r, (a, b, w) in prior.items():
        own = float(fit.pairs[r])
        alpha[r] = pseudo_count_mean(float(alpha[r]), own, a, w)
        beta[r] = pseudo_count_mean(float(beta[r]), own, b, w)
    return NoiseFit(alpha, beta, fit.pairs, fit.cells)


def pseudo_count_mean(own: float, own_weight: float, prior: float, prior_weight: float) -> float:
    """The job's value and a prior's averaged by their weights (matched pairs); ``own`` where
    neither has any."""
    prior_weight = max(prior_weight, 0.0)
    total = own_weight + prior_weight
    return own if total <= 0 else (own * own_weight + prior * prior_weight) / total


@dataclass(frozen=True)
class PairCells:
    """The pair side of the fit, one row per (size bin, pair) cell with matched pairs: ``rows (M,
    2R)`` its design (mean ``1/s^2`` under ``alpha`` and 1 under ``beta`` of both annotators),
    ``target (M,)`` the untruncated squared spread, ``weight (M,)`` the inverse relative standard
    error times the elasticity, ``elastic, counts (M,)``; ``shrink, spread2 (B, P)`` per cell the
    share of the squared error the match keeps and the untruncated squared spread (1 and 0 where
    empty)."""

    rows: FloatArray
    target: FloatArray
    weight: FloatArray
    elastic: FloatArray
    counts: FloatArray
    shrink: FloatArray
    spread2: FloatArray


def pair_cells(ev: PairEvidence, iou_thr: float, tmpl: IouTemplate) -> PairCells:
    """The :class:`PairCells` of ``ev``: a pair is seen only where it matched (``x <= 1 -
    iou_thr``), so each cell's mean square is a truncated one, mapped back to the untruncated mean
    square through the template (without this, a sloppy annotator's pairs look as good as a moderate
    one's)."""
    n = ev.n_annotators
    shrink = np.ones(ev.count.shape)
    pair_spread2 = np.zeros(ev.count.shape)
    b_idx, p_idx = np.nonzero(ev.count > 0)  # one row per (bin, pair) cell with matched pairs
    counts = ev.count[b_idx, p_idx]
    members = np.asarray(annotator_pairs(n), dtype=np.int64).reshape(-1, 2)[p_idx]  # (M, 2): r, s
    rows = np.zeros((counts.size, 2 * n))
    at = np.arange(counts.size)[:, None]
    rows[at, members] = (ev.sum_inv_s2[b_idx, p_idx] / counts)[:, None]
    rows[at, n + members] = 1.0
    spread2, elastic = tmpl.untruncate(ev.sum_x2[b_idx, p_idx] / counts, iou_thr)
    shrink[b_idx, p_idx] = tmpl.kept_share(spread2, iou_thr)
    pair_spread2[b_idx, p_idx] = spread2
    # a cell's mean square is known to a relative precision ~ 1/sqrt(count): weigh residuals
    # relative to it, or the sloppy pairs' errors swamp the precise annotator's small variance;
    # and a truncated cell tells its spread only as far as the truncated moment still moves
    weight = np.sqrt(counts) * elastic / np.maximum(spread2, 1e-3)
    return PairCells(rows, spread2, weight, elastic, counts.astype(np.float64), shrink, pair_spread2)


#: refits of the clique correction, each at the previous fit's spreads (the first at the fit with
#: every triple divided by :func:`shrink_factor`)
CLIQUE_REFITS = 2


def fit_job_noise(
    ev: PairEvidence,
    iou_thr: float,
    tmpl: IouTemplate,
    corners: CornerEvidence | None = None,
    prior_cells: Mapping[int, CarriedCells] | None = None,
    *,
    carry: bool = True,
) -> NoiseFit:
    """NNLS fit of ``alpha, beta`` from the pooled pairs (module docstring, :func:`pair_cells`).

    ``corners`` (extent families): each annotator's variance *shape* comes from the corner
    covariances (:class:`CornerEvidence`), and one scale factor maps it onto the pairs'
    similarity spreads (for boxes ~1; masks and polygons also carry outline noise): every triple
    whose pairs r-a, r-b matched, divided by :func:`shrink_factor`. Its clique triples are then read
    by :func:`clique_fit` and carried on in the fit's ``cells``; where an annotator's earlier jobs
    carry ``prior_cells`` (:class:`CarriedCells`), that fit, with them pooled in, is the job's.
    ``carry=False`` without ``prior_cells``: no clique cells (the fit's ``cells`` is None)."""
    n = ev.n_annotators
    per_annot = ev.per_annotator()
    pc = pair_cells(ev, iou_thr, tmpl)
    if not pc.target.size:
        return NoiseFit(np.zeros(n), np.zeros(n), per_annot)
    if corners is not None:
        cells = corner_cells(corners.every, shrink_factor(pc.shrink, n), pc.spread2, n)
        first = joint_fit(pc, cells) if cells is not None else None
        if first is not None and cells is not None and not carry and not prior_cells:
            return NoiseFit(first[0][:n], first[0][n:], per_annot)
        if first is not None and cells is not None:
            pooled = clique_fit(pc, corners, cells, first, per_annot, tmpl, iou_thr, prior_cells or {})
            # one job's clique cells alone are unbiased but as noisy as its every-triple reading
            # (and worse on polygons): the job's own fit stays that reading until a person's
            # earlier jobs add their cells; the clique cells are carried on either way
            if prior_cells:
                return pooled
            return NoiseFit(first[0][:n], first[0][n:], per_annot, pooled.cells)
    a, y = pc.rows * pc.weight[:, None], pc.target * pc.weight
    if n < 3:
        a, y = with_equal_split(a, y, n)
    coef = scaled_nnls(a, y)
    return NoiseFit(coef[:n], coef[n:], per_annot)


def clique_fit(
    pc: PairCells,
    corners: CornerEvidence,
    every: list[CornerCells],
    first: tuple[FloatArray, float],
    pairs: FloatArray,
    tmpl: IouTemplate,
    iou_thr: float,
    prior_cells: Mapping[int, CarriedCells],
) -> NoiseFit:
    """Refit the joint fit ``first`` (coefficients and scale, :func:`joint_fit`) on the clique
    triples' cells, each less :func:`clique_correction` at the last fit's spreads, with each
    annotator's carried ``prior_cells`` pooled in (:data:`CLIQUE_REFITS` times). An annotator whose
    clique cells are all cut below :data:`MIN_CORNER_FACTOR` keeps its cells of ``every`` triple
    (:func:`shrink_factor`) and carries none of its own."""
    n = pairs.size

    def kept(spread2: FloatArray) -> FloatArray:
        return tmpl.kept_share(spread2, iou_thr)

    coef, scale = first
    fit = NoiseFit(coef[:n], coef[n:], pairs)
    earlier = {r: cells.cells() for r, cells in prior_cells.items()}  # the same in every refit
    for _ in range(CLIQUE_REFITS):
        # in the corners' units; the match truncates the similarity, ``scale`` times as wide
        variance = triple_variances(fit, corners.clique) / max(scale, 1e-12)
        slope, offset = clique_correction(variance, kept, scale)
        clique = annotator_corner_cells(corners.clique, slope, pc.spread2, n, offset, fallback=False)
        if not clique:
            break
        own = [c if c is not None else e for c, e in zip(clique, every, strict=True)]
        cells = [c + earlier[r] if r in earlier else c for r, c in enumerate(own)]
        joint = joint_fit(pc, cells)
        if joint is None:
            break
        coef, scale = joint
        carried = tuple(
            CarriedCells.pooled((c if c is not None else CornerCells.empty()) + earlier.get(r, CornerCells.empty()))
            for r, c in enumerate(clique)
        )
        fit = NoiseFit(coef[:n], coef[n:], pairs, carried)
    return fit


def joint_fit(pc: PairCells, cells: list[CornerCells]) -> tuple[FloatArray, float] | None:
    """``(alpha (R,), beta (R,))`` concatenated and the scale: the corner cells' shape
    (:func:`fit_corner_noise`) scaled onto the pairs' spreads, then one NNLS over both; None without
    a pair cell to scale on.

    The scale is the count-weighted mean of the pairs' ratios on the cells the match does not
    truncate (a truncated cell's untruncated spread is biased low) and that hold a few pairs (a
    least-squares scale was set by single lone pairs of tiny objects and came out ~0.35 on boxes,
    where it is ~1). The joint fit takes each annotator's own (scaled) corner variances and the
    untruncated pairs: the pairs carry a moderate annotator's spread where its triples are cut by
    the sloppy one's (a cluster needs all its pairs matched)."""
    n = len(cells)
    raw = pc.rows @ np.concatenate(fit_corner_noise(cells))
    sel = (pc.elastic >= MIN_SCALE_ELASTICITY) & (pc.counts >= MIN_SCALE_PAIRS) & (raw > 0)
    if not sel.any():
        sel = raw > 0
    if not sel.any():
        return None
    scale = float(np.average(pc.target[sel] / raw[sel], weights=(pc.counts * pc.elastic)[sel]))
    joint_rows, joint_y = [pc.rows[sel] * pc.weight[sel, None]], [pc.target[sel] * pc.weight[sel]]
    for r, cell in enumerate(cells):
        block = np.zeros((cell.target.size, 2 * n))
        block[:, r], block[:, n + r] = cell.design[:, 0], 1.0
        cell_w = cell.weight / max(scale, 1e-12)
        joint_rows.append(block * cell_w[:, None])
        joint_y.append(cell.target * scale * cell_w)
    return scaled_nnls(np.concatenate(joint_rows), np.concatenate(joint_y)), scale


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

    def untruncate(self, mean_square: FloatArray, iou_thr: float) -> tuple[FloatArray, FloatArray]:
        """``(M,)`` each, per mean square ``mean_square (M,)``: the squared spread whose ``x``, seen
        only at or below ``1 - iou_thr`` (a matched pair), has that mean square (capped where the
        truncated moment saturates), and the elasticity ``d ln(truncated ms) / d ln(spread^2)``
        there: 1 where truncation does not bite, towards 0 where the observed moment barely tells
        the spread."""
        spread, truncated = _truncated_table(self, round(float(iou_thr), 6))
        sp = np.interp(np.asarray(mean_square, dtype=np.float64), truncated, spread)
        log_ms, log_s2 = np.log(np.maximum(truncated[1:], 1e-12)), np.log(spread[1:] ** 2)
        slope = np.gradient(log_ms, log_s2)
        return sp * sp, np.clip(np.interp(sp * sp, spread[1:] ** 2, slope), 0.0, 1.0)

    def shrink(self, spread2: float, iou_thr: float) -> float:
        """The share of the mean square of ``x`` that the match keeps (``x <= 1 - iou_thr``) at the
        squared spread ``spread2``: truncated over untruncated mean square, 1 without truncation."""
        return float(self.kept_share(np.array([spread2]), iou_thr)[0])

    def kept_share(self, spread2: FloatArray, iou_thr: float) -> FloatArray:
        """:meth:`shrink` at each of the squared spreads ``spread2 (...)``."""
        spread, truncated = _truncated_table(self, round(float(iou_thr), 6))
        sp = np.sqrt(np.maximum(np.asarray(spread2, dtype=np.float64), 0.0))
        kept = np.interp(sp, spread, truncated)
        whole = np.interp(sp, self.spread, _full_mean_square(self))
        return np.where(whole > 0, np.clip(kept / np.where(whole > 0, whole, 1.0), 0.0, 1.0), 1.0)


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
