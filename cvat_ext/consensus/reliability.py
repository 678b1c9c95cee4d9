"""Per-annotator reliability: Dawid–Skene for labels, variance separation for geometry.

Labels: Dawid & Skene (1979) EM over clusters. Each annotator r has a confusion matrix
``pi[r, true, given]``; the E-step gives each cluster a posterior over true labels, the M-step
re-estimates the confusions (with add-``smoothing`` counts) and the class prior. An annotator's
label reliability is its prior-weighted accuracy ``sum_c prior_c pi[r, c, c]``.

Geometry: for annotators r, s the mean disagreement of their matched pairs ``d_rs = (1 - IoU_rs)^2``
grows like ``v_r + v_s``, the two annotators' own localisation noise (the "three-cornered hat"
used to separate clock noises). Solving ``d_rs = v_r + v_s`` by least squares over all pairs
(needs R >= 3) gives each annotator's noise; fusion weights are ``1 / v_r`` (inverse variance), and
``1 - sqrt(v_r)`` is reported as the geometric reliability (an estimate of its IoU to the truth).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray
from cvat_ext.consensus.matching import pair_design
from cvat_ext.rows import distinct_rows

if TYPE_CHECKING:
    from cvat_ext.consensus.annotator_model import AnnotatorModel


@dataclass(frozen=True, eq=False)
class DawidSkene:
    """Fitted model. ``classes (L,)`` label ids; ``confusion (R, L, L)``; ``prior (L,)``."""

    classes: IntArray
    confusion: FloatArray
    prior: FloatArray

    @property
    def accuracy(self) -> FloatArray:
        """(R,) prior-weighted probability that an annotator gives the true label."""
        diag = np.diagonal(self.confusion, axis1=1, axis2=2)
        return np.asarray(diag @ self.prior, dtype=np.float64)

    def posterior(self, labels: IntArray) -> FloatArray:
        """(K, L) posterior over ``classes`` for clusters ``labels (K, R)`` (-1 = absent)."""
        codes = _encode(labels, self.classes)
        return _e_step(codes, self.confusion, self.prior)


def _encode(labels: IntArray, classes: IntArray) -> IntArray:
    """Label ids -> class positions, -1 for absent or unknown labels."""
    pos = np.searchsorted(classes, labels)
    pos = np.clip(pos, 0, max(classes.size - 1, 0))
    ok = (labels >= 0) & (classes.size > 0)
    if classes.size:
        ok &= classes[pos] == labels
    return np.where(ok, pos, -1)


def _e_step(codes: IntArray, confusion: FloatArray, prior: FloatArray) -> FloatArray:
    n_units, n_annot = codes.shape
    log_post = np.broadcast_to(np.log(prior), (n_units, prior.size)).copy()
    for r in range(n_annot):
        # row g of the transposed log-confusion: log P(given g | true c) for every c; the appended
        # zero row serves absent members (code -1)
        table = np.vstack([np.log(confusion[r]).T, np.zeros((1, prior.size))])
        log_post += table[codes[:, r]]
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    return np.asarray(post / post.sum(axis=1, keepdims=True), dtype=np.float64)


def _patterns(codes: IntArray) -> tuple[IntArray, IntArray]:
    """Distinct rows of ``codes (K, R)`` and how often each occurs."""
    rows = distinct_rows(codes)
    return codes[rows.first], rows.counts


def fit_dawid_skene(labels: IntArray, *, iterations: int = 20, smoothing: float = 0.5, tol: float = 1e-6) -> DawidSkene:
    """Fit on ``labels (K, R)``: the label id each annotator gave each cluster, -1 when absent.

    Starts from the (unweighted) majority vote; ``iterations = 0`` returns that initial model.
    Stops early when no posterior moves by more than ``tol``. EM runs on the distinct label
    patterns weighted by their counts (the sufficient statistics), not on every cluster.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n_annot = labels.shape[1] if labels.ndim == 2 else 0
    classes = np.unique(labels[labels >= 0])
    n_cls = classes.size
    if n_cls == 0:
        return DawidSkene(classes, np.ones((n_annot, 0, 0)), np.zeros(0))
    codes, weight = _patterns(_encode(labels, classes))
    # one-hot of the given labels per annotator, with a trailing "absent" column dropped
    onehot = [np.eye(n_cls + 1)[codes[:, r]][:, :n_cls] for r in range(n_annot)]
    post = sum(onehot, np.zeros((codes.shape[0], n_cls)))
    post = post / np.maximum(post.sum(axis=1, keepdims=True), 1.0)
    confusion = prior = np.zeros(0)
    w = weight[:, None].astype(np.float64)
    for _ in range(max(iterations, 0) + 1):
        # M-step
        counts = np.stack([(post * w).T @ oh for oh in onehot]) + smoothing
        confusion = counts / counts.sum(axis=2, keepdims=True)
        prior = ((post * w).sum(axis=0) + smoothing) / (float(weight.sum()) + smoothing * n_cls)
        new_post = _e_step(codes, confusion, prior)
        moved = float(np.abs(new_post - post).max()) if post.size else 0.0
        post = new_post
        if moved < tol:
            break
    return DawidSkene(classes, confusion, prior)


def separate_noise(pair_disagreement: FloatArray, n_annotators: int) -> FloatArray:
    """Per-annotator noise ``v (R,)`` from pair disagreements ``d (P,)`` (pairs in
    :func:`~cvat_ext.consensus.matching.annotator_pairs` order, NaN when a pair never matched).

    Least squares on ``d_rs = v_r + v_s``; equal noise when the system is underdetermined.
    """
    d = np.asarray(pair_disagreement, dtype=np.float64)
    ok = np.isfinite(d)
    if n_annotators < 3 or ok.sum() < n_annotators:
        mean = float(np.nanmean(d)) / 2 if ok.any() else 0.0
        return np.full(n_annotators, mean)
    design = pair_design(n_annotators)
    v, *_ = np.linalg.lstsq(design[ok], d[ok], rcond=None)
    return np.asarray(np.clip(v, 0.0, None), dtype=np.float64)


def fusion_weights(noise: FloatArray, *, floor_share: float = 0.1) -> FloatArray:
    """Inverse-variance weights ``(R,)`` scaled to max 1; noise is floored at ``floor_share`` of
    the mean so one near-perfect annotator does not take all the weight."""
    noise = np.asarray(noise, dtype=np.float64)
    if noise.size == 0:
        return noise
    floor = max(float(noise.mean()) * floor_share, 1e-9)
    w = 1.0 / np.maximum(noise, floor)
    return np.asarray(w / w.max(), dtype=np.float64)


#: existence strata (:mod:`cvat_ext.consensus.context`)
OPEN, SHADOWED = 0, 1


#: annotators from which shadowed clusters drawn by several of them may be spurious (the echo
#: model): with three, the shadowed patterns cannot tell its parameters apart
MIN_ECHO_ANNOTATORS = 4


@dataclass(frozen=True, eq=False)
class ExistenceModel:
    """Is a cluster a real object? A capture–recapture model with false positives, by stratum.

    A real object is drawn by annotator r independently with probability ``sensitivity[r]``
    (clusters nobody drew are never seen: the model is truncated at zero); an annotator misses
    objects wherever they are, so the sensitivities are shared by the strata. False objects differ
    by where they are (:mod:`cvat_ext.consensus.context`):

    * open space (stratum 0): an invention of one annotator, annotator r with probability
      ``false_share[0, r]`` (two annotators do not invent the same object there);
    * shadowed by a better-supported cluster (stratum 1): a spurious drawing around a real object
      (a duplicate, a part, a box dropped on the neighbour). With ``echo`` (fitted from
      :data:`MIN_ECHO_ANNOTATORS` annotators on) each annotator makes one independently with
      probability ``echo[r]``, so several may coincide; otherwise it is one annotator's, annotator
      r with probability ``false_share[1, r]``.

    A cluster drawn by everyone is real, and is never shadowed (nothing near it has more
    support): it tells the sensitivities, not the strata. So the model weighs the *partial*
    clusters, those some annotator did not draw: ``prior[c]`` is the share of real objects among
    the partial clusters of stratum c, and the real objects' patterns are conditioned on being
    partial (in a crowd, where partial clusters are often shadowed and complete ones never, the
    strata then fit alike).
    """

    prior: FloatArray  # (2,)
    sensitivity: FloatArray  # (R,)
    false_share: FloatArray  # (2, R)
    echo: FloatArray | None = None  # (R,)

    def posterior(self, present: npt.NDArray[np.bool_], stratum: IntArray | None = None) -> FloatArray:
        """(K,) P(real | which annotators drew the cluster, its stratum); ``present (K, R)``,
        ``stratum (K,)`` (None: all open)."""
        present = np.asarray(present, dtype=bool)
        c = np.zeros(present.shape[0], dtype=np.int64) if stratum is None else np.asarray(stratum, dtype=np.int64)
        shadow = c == SHADOWED
        partial = np.asarray(~present.all(axis=1), dtype=bool)
        real = self.prior[c] * _bernoulli_truncated(present, self.sensitivity, not_all=partial)
        fake = np.where(present.sum(axis=1) == 1, self.false_share[c, present.argmax(axis=1)], 0.0)
        if self.echo is not None:
            fake = np.where(shadow, _bernoulli_truncated(present, self.echo, not_all=shadow), fake)
        fake = (1.0 - self.prior[c]) * fake
        return np.asarray(np.where(partial, real / np.maximum(real + fake, 1e-300), 1.0), dtype=np.float64)


def _bernoulli_truncated(
    present: npt.NDArray[np.bool_], prob: FloatArray, *, not_all: npt.NDArray[np.bool_] | None = None
) -> FloatArray:
    """(K,) P(pattern | each annotator draws with ``prob[r]`` independently, at least one does;
    where ``not_all``, also not all of them)."""
    log_p, log_q = np.log(prob), np.log1p(-prob)
    seen = max(1.0 - float(np.exp(log_q.sum())), 1e-300)
    out = np.exp(present @ log_p + (~present) @ log_q) / seen
    if not_all is not None:
        out = np.where(not_all, out / max(1.0 - float(np.exp(log_p.sum())) / seen, 1e-300), out)
    return np.asarray(out, dtype=np.float64)


def _fit_truncated(hits: FloatArray, n: float, eps: float) -> FloatArray:
    """Per-annotator draw probabilities from ``hits (R,)`` among ``n`` units seen, adding the units
    nobody drew (a zero-truncated Bernoulli, by fixed-point steps)."""
    p = np.clip(hits / max(n, eps), eps, 1 - eps)
    for _ in range(5):
        miss = float(np.prod(1.0 - p))
        unseen = n * miss / max(1.0 - miss, eps)
        p = np.clip(hits / max(n + unseen, eps), eps, 1 - eps)
    return p


def fit_existence(
    present: npt.NDArray[np.bool_],
    stratum: IntArray | None = None,
    *,
    iterations: int = 100,
    tol: float = 1e-8,
) -> ExistenceModel:
    """EM for :class:`ExistenceModel` on the presence patterns ``present (K, R)`` of clusters in
    ``stratum (K,)`` (0 open, 1 shadowed; None: all open), over the distinct (pattern, stratum)
    pairs with their counts."""
    present = np.asarray(present, dtype=bool)
    n_units, n_annot = present.shape
    eps = 1e-6
    flat = np.full((2, n_annot), 1.0 / max(n_annot, 1))
    if n_units == 0 or n_annot == 0:
        return ExistenceModel(np.ones(2), np.full(n_annot, 0.5), flat)
    strata = np.zeros(n_units, dtype=np.int64) if stratum is None else np.asarray(stratum, dtype=np.int64)
    distinct = distinct_rows(np.column_stack([present, strata]))
    pattern, c, count = present[distinct.first], strata[distinct.first], distinct.counts.astype(np.float64)
    size = pattern.sum(axis=1)
    single = size == 1
    shadow = c == SHADOWED
    echoes = n_annot >= MIN_ECHO_ANNOTATORS
    partial = size < n_annot
    units = np.bincount(c[partial], weights=count[partial], minlength=2)
    # start: lone objects half real, and shadowed groups too when they may be spurious
    real = np.where(single | (shadow & echoes), 0.5, 1.0)
    model = ExistenceModel(np.ones(2), np.full(n_annot, 0.5), flat)
    for _ in range(iterations):
        w_real, w_fake = count * real, count * (1.0 - real)
        sensitivity = _fit_truncated(w_real @ pattern, float(w_real.sum()), eps)
        share = np.zeros((2, n_annot))
        np.add.at(share, c[single], w_fake[single, None] * pattern[single])
        share = (share + eps) / (share.sum(axis=1, keepdims=True) + eps * n_annot)
        echo = _fit_truncated(w_fake[shadow] @ pattern[shadow], float(w_fake[shadow].sum()), eps) if echoes else None
        real_partial = np.bincount(c[partial], weights=w_real[partial], minlength=2)
        prior = np.clip(real_partial / np.maximum(units, eps), eps, 1.0)
        model = ExistenceModel(prior, sensitivity, share, echo)
        new_real = model.posterior(pattern, c)
        moved = float(np.abs(new_real - real).max())
        real = new_real
        if moved < tol:
            break
    return model


@dataclass(frozen=True, eq=False)
class ReliabilityModel:
    """What pass 1 learnt about the annotators (arrays are (R,), annotator order of ``names``)."""

    names: tuple[str, ...]
    weights: FloatArray
    family_weights: Mapping[str, FloatArray]
    existence: Mapping[str, ExistenceModel]
    dawid_skene: DawidSkene | None
    label_reliability: FloatArray
    geometric_reliability: FloatArray
    #: the size-scaled noise model: when set, the merge weighs members by their inverse variance
    annotator_model: AnnotatorModel | None = None
    #: per family: the keep decision's threshold on the probability of a true positive
    #: (:meth:`AnnotatorModel.keep_threshold`, set by the engine from all the job's clusters); 0.5
    #: where absent
    keep_thr: Mapping[str, float] = field(default_factory=dict)

    def member_weights(self, family: str, size: FloatArray) -> FloatArray:
        """(K, R) fusion weight of each annotator in clusters of ``size (K,)`` px: inverse variance
        from the annotator model when fitted, else the family's weights for every cluster."""
        if self.annotator_model is not None:
            w = self.annotator_model.member_weights(family, size)
            if w is not None:
                return w
        return np.broadcast_to(self.weights_for(family)[None, :], (size.shape[0], len(self.names)))

    def keep(
        self,
        family: str,
        present: BoolArray,
        quorum: int,
        stratum: IntArray | None = None,
        size: FloatArray | None = None,
        linked: BoolArray | None = None,
        hit: FloatArray | None = None,
    ) -> BoolArray:
        """(K,) clusters to merge, a decision on a fitted model where there is one: with the
        annotator model and cluster ``size (K,)`` px, the probability that the cluster adds a true
        positive (:meth:`AnnotatorModel.keep_probability`; ``linked (K,)``: some two members
        matched; ``hit (K,)``: an unlinked cluster's probability of matching the truth where
        known) at the family's :attr:`keep_thr` (the merge's expected F1 at its most; 0.5
        without it); else the existence posterior at 0.5 (``stratum``: see
        :class:`ExistenceModel`); else ``quorum`` members."""
        if self.annotator_model is not None and size is not None:
            p_tp = self.annotator_model.keep_probability(family, present, stratum, size, linked, hit)
            if p_tp is not None:
                return np.asarray(p_tp >= self.keep_thr.get(family, 0.5))
        model = self.existence.get(family)
        if model is not None:
            return model.posterior(present, stratum) >= 0.5
        return np.asarray(present.sum(axis=1) >= quorum)

    def weights_for(self, family: str) -> FloatArray:
        """Fusion weights for one match family (falls back to the pooled weights)."""
        return self.family_weights.get(family, self.weights)

    def consensus_labels(self, labels: IntArray) -> IntArray:
        """(K,) consensus label of clusters ``labels (K, R)`` (-1 = absent): the Dawid–Skene posterior
        when fitted, else the weighted vote (ties: the smallest label id)."""
        if labels.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        if self.dawid_skene is not None and self.dawid_skene.classes.size:
            post = self.dawid_skene.posterior(labels)
            return np.asarray(self.dawid_skene.classes[post.argmax(axis=1)], dtype=np.int64)
        classes = np.unique(labels[labels >= 0])
        votes = np.zeros((labels.shape[0], classes.size))
        k, r = np.nonzero(labels >= 0)
        np.add.at(votes, (k, np.searchsorted(classes, labels[k, r])), self.weights[r])
        return np.asarray(classes[votes.argmax(axis=1)], dtype=np.int64)
