"""Existence with size: a real object's drawing joins its cluster only when it lands close enough.

The existence model (:class:`~cvat_ext.consensus.reliability.ExistenceModel`) gives each annotator
one sensitivity. But a drawing joins the cluster of its object only when it matches the others'
drawings, and whether it does depends on the object's size: a 15 px jitter on a 10 px sign lands
outside the match, on a 100 px car it does not. Without size, a precise annotator's lone tiny
object (the noisy ones drew it too, and missed the match) looks like an invention.

Here annotator r's sensitivity on an object of size ``s`` is ``draw_r * link_r(s)``: ``draw_r`` the
probability it draws a real object at all (fitted), ``link_r(s)`` the probability its drawing
matches the most precise other annotator's (from the fitted noise and the template, at the
link threshold). The lone spurious drawings' shares per annotator are refitted with them: the
base model, blind to size, reads a precise annotator's lone small objects (the noisy ones drew
them too, and missed the match) as its inventions and gives it a spurious share near the sloppy
one's. The echoes (spurious drawings around real objects, several annotators at once) stay the
base model's. EM runs on the distinct (pattern, stratum, size bin) units with their counts.

The merge's keep / drop decision reads a second fit, on the clusters after the split joins
(``engine._fit_keep_existence``), whose lone spurious shares are per (stratum, size bin)
(``shares_by_bin``): the real share is per size bin, so with one spurious share per annotator a
bin whose real lone precise drawings raise the real share raises every annotator's lone clusters
there (on the relative-jitter generator the moderate annotator's lone open drawings were kept).
The truth estimates keep the per-stratum shares: per bin they read worse
(``docs/developers/annotator-model.md``, *Keep or drop*).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray
from cvat_ext.consensus.noise_model import SIZE_CENTRES, SIZE_EDGES, IouTemplate, NoiseFit, nearest_other, size_bin
from cvat_ext.consensus.reliability import SHADOWED, ExistenceModel
from cvat_ext.rows import distinct_rows

_EPS = 1e-6
#: partial clusters' worth of the stratum's real share each size bin's own share is shrunk with
PRIOR_UNITS = 20.0
#: spurious lone clusters' worth of the stratum's shares each size bin's lone spurious shares are
#: shrunk with (``shares_by_bin``)
SHARE_PRIOR_UNITS = 20.0
#: real clusters' worth of the template's link each (size bin, annotator) link fit is shrunk with
LINK_PRIOR_UNITS = 20.0
#: template link at or above which a size bin is taken as always linking: there the fitted
#: sensitivity is the draw rate alone
LINK_SURE = 0.98
#: real clusters of the always-linking bins needed to read the draw rate there
MIN_DRAW_UNITS = 20.0
#: floor of :func:`clusters_per_object` (a bin where nearly every drawing splits and reads spurious
#: would otherwise turn a few real clusters into many objects)
MIN_CLUSTERS_PER_OBJECT = 0.2


def link_table(fit: NoiseFit, tmpl: IouTemplate, link_thr: float) -> FloatArray:
    """(B, R) probability that annotator r's drawing of an object in size bin b matches (similarity
    >= ``link_thr``) the drawing of the most precise other annotator."""
    spread2 = fit.mean_square(SIZE_CENTRES)  # (B, R)
    if spread2.shape[1] < 2:
        return np.ones_like(spread2)
    others = np.take_along_axis(spread2, nearest_other(spread2), axis=1)
    hit, _ = tmpl.at_threshold((spread2 + others).ravel(), link_thr)
    return np.asarray(hit.reshape(spread2.shape), dtype=np.float64)


def fit_link(
    pattern: BoolArray, bins: IntArray, w_real: FloatArray, template_link: FloatArray, draw: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The draw rates ``(R,)`` and link table ``(B, R)`` the real clusters show, for 3+ annotators.

    Under independent annotators, r's sensitivity on a real object of size bin b is the share of
    the real clusters that two or more *other* annotators drew in which r's drawing is too: such a
    cluster is seen and is no lone cluster whatever r does, so neither the unseen objects nor the
    lone clusters (real or spurious: what the fit is for) enter. With one precise annotator A it
    is the clusters with A and C but not B against those with all three. The link on outlines is
    far from the box template's (a 2 px and a 6 px mask of a 16-23 px object link in 46 % of the
    objects, where the template says 89 %), so it is read from the job. Per (bin, annotator) the
    sensitivity is shrunk towards ``draw * template_link`` with :data:`LINK_PRIOR_UNITS` real
    clusters' weight; the draw rate is the sensitivity on the bins the template says always link
    (:data:`LINK_SURE`), ``draw (R,)`` kept where they hold fewer than :data:`MIN_DRAW_UNITS` real
    clusters. ``pattern (U, R)`` the units' members, ``bins (U,)`` their size bins, ``w_real (U,)``
    their real clusters (count times P(real))."""
    n_bins, n_annot = template_link.shape
    if n_annot < 3:
        return draw, template_link
    others = pattern.sum(axis=1, keepdims=True) - pattern  # (U, R)
    seen_without = w_real[:, None] * (others >= 2)
    total = np.zeros((n_bins, n_annot))
    np.add.at(total, bins, seen_without)
    drawn = np.zeros((n_bins, n_annot))
    np.add.at(drawn, bins, seen_without * pattern)
    sure = template_link >= LINK_SURE
    sure_total = (total * sure).sum(axis=0)
    draw = np.where(sure_total >= MIN_DRAW_UNITS, (drawn * sure).sum(axis=0) / np.maximum(sure_total, _EPS), draw)
    draw = np.clip(draw, _EPS, 1 - _EPS)
    sens = (drawn + LINK_PRIOR_UNITS * draw * template_link) / (total + LINK_PRIOR_UNITS)
    return draw, np.clip(sens / draw, _EPS, 1.0)


@dataclass(frozen=True, eq=False)
class SizedExistence:
    """``base`` with size-dependent sensitivities ``draw (R,) * link (B, R)``, its own real share of
    the partial clusters per stratum and size bin ``prior (2, B)``, and lone spurious shares
    ``false_share (2, R)`` (per stratum, summing to 1 over annotators) or, where fitted per size
    bin too, ``bin_share (2, B, R)`` (``false_share`` then is their pooled share per stratum)."""

    base: ExistenceModel
    draw: FloatArray
    link: FloatArray
    prior: FloatArray
    false_share: FloatArray
    bin_share: FloatArray | None = None

    def sensitivity_of_bins(self, bins: IntArray) -> FloatArray:
        """(K, R) probability each annotator's drawing of a real object in size bins ``bins (K,)``
        joins its cluster."""
        return np.clip(self.draw[None, :] * self.link[bins], _EPS, 1 - _EPS)

    def posterior(self, present: BoolArray, stratum: IntArray | None, size: FloatArray) -> FloatArray:
        """(K,) P(real | who drew the cluster, its stratum, its size ``(K,)`` px)."""
        bins = size_bin(np.asarray(size, dtype=np.float64))
        return self.posterior_of_bins(present, stratum, bins)

    def posterior_of_bins(self, present: BoolArray, stratum: IntArray | None, bins: IntArray) -> FloatArray:
        present = np.asarray(present, dtype=bool)
        sens = self.sensitivity_of_bins(bins)
        c = np.zeros(present.shape[0], dtype=np.int64) if stratum is None else np.asarray(stratum, dtype=np.int64)
        partial = ~present.all(axis=1)
        log_p, log_q = np.log(sens), np.log1p(-sens)
        seen = np.maximum(1.0 - np.exp(log_q.sum(axis=1)), 1e-300)
        not_all = np.maximum(1.0 - np.exp(log_p.sum(axis=1)) / seen, 1e-300)
        prior = self.prior[c, bins]
        real = prior * np.exp((present * log_p + ~present * log_q).sum(axis=1)) / seen / not_all
        base = self.base
        who = present.argmax(axis=1)
        share = self.false_share[c, who] if self.bin_share is None else self.bin_share[c, bins, who]
        fake = np.where(present.sum(axis=1) == 1, share, 0.0)
        if base.echo is not None:
            e_p, e_q = np.log(base.echo), np.log1p(-base.echo)
            e_seen = max(1.0 - float(np.exp(e_q.sum())), 1e-300)
            e_not_all = max(1.0 - float(np.exp(e_p.sum())) / e_seen, 1e-300)
            echo = np.exp(present @ e_p + (~present) @ e_q) / e_seen / e_not_all
            fake = np.where(c == SHADOWED, echo, fake)
        fake = (1.0 - prior) * fake
        return np.asarray(np.where(partial, real / np.maximum(real + fake, 1e-300), 1.0), dtype=np.float64)


def fit_sized_existence(
    base: ExistenceModel,
    link: FloatArray,
    present: BoolArray,
    stratum: IntArray,
    size: FloatArray,
    *,
    shares_by_bin: bool = False,
    iterations: int = 30,
    tol: float = 1e-6,
) -> tuple[SizedExistence, FloatArray]:
    """EM for ``draw`` and ``prior`` with the base model's spurious part and the given ``link (B, R)``,
    on the distinct (pattern, stratum, size bin) units; the lone spurious shares per stratum or,
    with ``shares_by_bin``, per stratum and size bin (shrunk towards the stratum's with
    :data:`SHARE_PRIOR_UNITS`). Returns the model and each cluster's P(real) ``(K,)``."""
    present = np.asarray(present, dtype=bool)
    n_annot = present.shape[1]
    bins = size_bin(np.asarray(size, dtype=np.float64))
    n_bins = SIZE_EDGES.size - 1
    strata = np.asarray(stratum, dtype=np.int64)
    units = distinct_rows(np.column_stack([present, strata, bins]))
    pattern, c, b = present[units.first], strata[units.first], bins[units.first]
    inverse, count = units.inverse, units.counts
    w = count.astype(np.float64)
    partial = ~pattern.all(axis=1)
    cell = c * n_bins + b
    units_by_bin = np.bincount(cell[partial], weights=w[partial], minlength=2 * n_bins).reshape(2, n_bins)
    units = units_by_bin.sum(axis=1)
    single = pattern.sum(axis=1) == 1
    # the echo model (when fitted) explains the shadowed stratum; lone shares are of the rest
    lone = single & ((c != SHADOWED) | (base.echo is None))
    model = SizedExistence(
        base,
        np.clip(base.sensitivity, _EPS, 1 - _EPS),
        link,
        np.repeat(base.prior[:, None], n_bins, axis=1),
        base.false_share.copy(),
    )
    real = model.posterior_of_bins(pattern, c, b)
    for _ in range(iterations):
        w_real = w * real
        # draw rate: the real clusters' members over the drawings expected to link there
        draw = np.clip((w_real @ pattern) / np.maximum(w_real @ link[b], _EPS), _EPS, 1 - _EPS)
        draw, fitted_link = fit_link(pattern, b, w_real, link, draw)
        # the real share of the partial clusters per stratum and size bin, shrunk towards the
        # stratum's: the spurious drawings have sizes of their own (a sloppy annotator's tiny
        # boxes), so one share for all sizes reads a lone precise drawing of a 20 px object as
        # likely spurious as a lone 8 px one
        real_partial = np.bincount(cell[partial], weights=w_real[partial], minlength=2 * n_bins).reshape(2, n_bins)
        stratum_prior = real_partial.sum(axis=1, keepdims=True) / np.maximum(units[:, None], _EPS)
        prior = np.clip((real_partial + PRIOR_UNITS * stratum_prior) / (units_by_bin + PRIOR_UNITS), _EPS, 1.0)
        # who invents the lone spurious drawings, per stratum (and size bin)
        spurious = (w - w_real)[lone, None] * pattern[lone]
        share = np.zeros((2, n_annot))
        np.add.at(share, c[lone], spurious)
        share = np.where(
            share.sum(axis=1, keepdims=True) > 0,
            (share + _EPS) / (share.sum(axis=1, keepdims=True) + _EPS * n_annot),
            base.false_share,
        )
        bin_share = _bin_shares(spurious, c[lone], b[lone], share, n_bins) if shares_by_bin else None
        model = SizedExistence(base, draw, fitted_link, prior, share, bin_share)
        new_real = model.posterior_of_bins(pattern, c, b)
        moved = float(np.abs(new_real - real).max()) if real.size else 0.0
        real = new_real
        if moved < tol:
            break
    return model, np.asarray(real[np.ravel(inverse)], dtype=np.float64)


def _bin_shares(spurious: FloatArray, c: IntArray, b: IntArray, share: FloatArray, n_bins: int) -> FloatArray:
    """(2, B, R) who invents the lone spurious drawings per stratum and size bin: the spurious lone
    clusters ``spurious (L, R)`` (weight on their annotator) of strata ``c (L,)`` and size bins
    ``b (L,)``, shrunk towards the stratum's shares ``share (2, R)`` with
    :data:`SHARE_PRIOR_UNITS` clusters' weight."""
    by_bin = np.zeros((2, n_bins, share.shape[1]))
    np.add.at(by_bin, (c, b), spurious)
    return (by_bin + SHARE_PRIOR_UNITS * share[:, None, :]) / (by_bin.sum(axis=2, keepdims=True) + SHARE_PRIOR_UNITS)


def clusters_per_object(model: SizedExistence, present: BoolArray, real: FloatArray, size: FloatArray) -> FloatArray:
    """(K,) the expected real clusters per true object of each cluster's size bin (objects nobody
    drew included, as zero): ``N = sum_k real_k / clusters_per_object_k`` counts the true objects.

    A real object whose drawings do not match each other (a 6 px jitter on a 12 px sign) gives
    several clusters: the drawings that linked, and a lone cluster for each one that did not (the
    split pairs); counting every real cluster as an object counted such an object two or three
    times (N 5-15 % high on the pixel-jitter presets). Per size bin, with ``pi_s = draw_s link_s``:
    the linked drawings make one cluster, real when two or more (``1 - P(none) - P(one)``) and as
    real as s's lone clusters of the bin when s alone (``lr_s``, their mean P(real)); each drawing
    that did not link (``draw_s (1 - link_s)``) adds a lone cluster, again ``lr_s`` real (a split
    drawing read as spurious adds nothing). ``present (K, R)``, ``real (K,)`` the clusters'
    P(real), ``size (K,)`` px."""
    present = np.asarray(present, dtype=bool)
    bins = size_bin(np.asarray(size, dtype=np.float64))
    n_bins, n_annot = model.link.shape
    lone = present.sum(axis=1) == 1
    k, r = np.nonzero(present & lone[:, None])
    cell = bins[k] * n_annot + r
    mass = np.bincount(cell, weights=real[k], minlength=n_bins * n_annot).reshape(n_bins, n_annot)
    count = np.bincount(cell, minlength=n_bins * n_annot).reshape(n_bins, n_annot)
    lone_real = np.where(count > 0, mass / np.maximum(count, 1), 0.0)  # (B, R)
    linked = np.clip(model.draw[None, :] * model.link, _EPS, 1 - _EPS)  # (B, R)
    none = np.prod(1.0 - linked, axis=1)  # (B,)
    alone = linked * none[:, None] / (1.0 - linked)  # (B, R): s linked, nobody else
    apart = model.draw[None, :] * (1.0 - model.link)
    per_object = (1.0 - none - alone.sum(axis=1)) + ((alone + apart) * lone_real).sum(axis=1)
    return np.asarray(np.maximum(per_object, MIN_CLUSTERS_PER_OBJECT)[bins], dtype=np.float64)
