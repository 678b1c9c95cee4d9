"""A generative model of the annotators, and what a ground-truth evaluation would say about them.

Each annotator r, on the latent true objects of a job:

* draws a real object with probability ``recall`` (the existence model's sensitivity,
  :class:`~cvat_ext.consensus.reliability.ExistenceModel`), and adds spurious objects;
* gives it a label through its confusion matrix (Dawid–Skene, :class:`~cvat_ext.consensus.reliability.DawidSkene`);
* places it with a localisation noise that scales with the object's size, per shape family
  (:mod:`cvat_ext.consensus.noise_model`).

The estimates against the latent truth at the job's match threshold ``iou_thr`` follow from the
fit, cluster by cluster: a cluster is real with its existence posterior ``p_k``; annotator r's
member of a real cluster of size ``s`` reaches ``iou_thr`` against the truth with probability
``h_kr``, the posterior given what the other annotators did in that cluster
(:mod:`~cvat_ext.consensus.member_hit`; keypoint families: the rate ``q_r(s)`` of the noise
template), and then has the mean IoU ``m_r(s)``. So, with ``n_r`` the objects r drew and ``N`` the
expected number of true objects (the real clusters plus those nobody drew),

    TP_r = sum_k present_kr p_k h_kr,   precision = TP_r / n_r,   recall = TP_r / N,
    F1 = 2 TP_r / (n_r + N),   mean IoU = sum_k present_kr p_k h_kr m_r / TP_r,

and label accuracy is the Dawid–Skene prior-weighted accuracy. Standard errors are binomial on
the evidence (``sqrt(v (1 - v) / n)`` with n the objects behind each ratio) plus, for the mean
IoU, the spread of the member similarities: the sampling noise of the job. Without GT the noise
fit's own error is added in quadrature (a jackknife over frame groups,
:mod:`~cvat_ext.consensus.noise_jackknife`); the model's systematic error is what the GT check
measures (``ground_truth.model_error`` in the report).

Ground truth (:mod:`cvat_ext.consensus.gt_anchor`): on the GT frames the model's estimate and the
measurement are both known, so each estimate is corrected by their difference (a control variate:
the model's bias on the GT frames is removed from the whole job's estimate; the part all
annotators share and each one's departure from it are shrunk apart, by their own noise). Priors from earlier
jobs (the ``model`` dicts of earlier reports) enter once, as pseudo-counts of what the job
estimates from: each family's noise ``alpha, beta`` (then precision, recall, F1 and mean IoU
follow from the pooled noise, on this job's objects) and the label accuracy, each counting as
``min(evidence, PRIOR_CAP)`` pairs or objects besides the job's own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray
from cvat_ext.consensus.gt_anchor import GtTally, measured
from cvat_ext.consensus.keypoint_noise import KeypointFit, fit_keypoint_noise
from cvat_ext.consensus.member_hit import member_ratios, pair_hit_table, pooled_spread2
from cvat_ext.consensus.noise_jackknife import (
    JACKKNIFE_METRICS,
    EvidenceSums,
    GroupedEvidence,
    frame_group,
    jackknife_se,
)
from cvat_ext.consensus.noise_jackknife import fit_shifts as jackknife_shifts
from cvat_ext.consensus.noise_model import (
    KEYPOINT_FAMILIES,
    CarriedCells,
    NoiseFit,
    fit_noise,
    size_bin,
    template,
    template_moments,
)
from cvat_ext.consensus.reliability import DawidSkene, ExistenceModel
from cvat_ext.consensus.sized_existence import SizedExistence, clusters_per_object, fit_sized_existence, link_table
from cvat_ext.errors import ConfigError

#: the five metrics of a truth estimate, in report order
METRICS = ("precision", "recall", "f1", "mean_iou", "label_accuracy")
#: the most objects an earlier job's estimate counts for against this job's evidence
PRIOR_CAP = 200.0
#: the estimates a prior's figure is pooled into directly; the others derive from the noise fit,
#: which has pooled the prior's noise already (pooling them again counted the prior twice)
PRIOR_POOLED_METRICS = ("label_accuracy",)
#: families whose merge weighs members by the fitted inverse variance (extent-based noise)
WEIGHTED_FAMILIES = frozenset({"rectangle", "segment", "ellipse"})
#: version of the ``model`` dict layout (a prior of another version is refused)
MODEL_VERSION = 1


@dataclass
class FamilyEvidence:
    """What pass 1 keeps about one shape family's clusters for the annotator model."""

    n_annotators: int
    present: list[BoolArray] = field(default_factory=list)
    strata: list[IntArray] = field(default_factory=list)
    size: list[FloatArray] = field(default_factory=list)
    frame: list[IntArray] = field(default_factory=list)
    pair_sim: list[FloatArray] = field(default_factory=list)
    #: the noise evidence per frame group (:mod:`~cvat_ext.consensus.noise_jackknife`)
    grouped: GroupedEvidence = field(init=False)

    def __post_init__(self) -> None:
        self.grouped = GroupedEvidence(self.n_annotators)

    def add(
        self,
        present: BoolArray,
        size: FloatArray,
        frame: IntArray,
        pair_sim: FloatArray,
        strata: IntArray | None,
        xyxy: FloatArray | None = None,
        keypoints: tuple[FloatArray, BoolArray, BoolArray] | None = None,
    ) -> None:
        """One cluster table: ``present (K, R)``, ``size (K,)`` px, ``frame (K,)``, ``pair_sim (K, P)``;
        ``xyxy (K, R, 4)`` the member extents for families whose noise is read on the corners;
        ``keypoints``: ``xy (K, R, P, 2)``, ``has``, ``visible (K, R, P)`` for keypoint families."""
        self.present.append(present)
        self.size.append(size)
        self.frame.append(frame)
        self.pair_sim.append(pair_sim)
        self.strata.append(strata if strata is not None else np.zeros(present.shape[0], dtype=np.int64))
        self.grouped.add(frame, pair_sim, size, size_bin(size), xyxy, keypoints)


def cluster_size(xyxy: FloatArray, rows: IntArray, extents: FloatArray | None = None) -> FloatArray:
    """(K,) object size of each cluster in px: the square root of its members' mean extent area
    (``extents (K, R, 4)``: the members' extents when already taken from ``xyxy``)."""
    present = rows >= 0
    box = xyxy[np.maximum(rows, 0)] if extents is None else extents
    area = np.maximum((box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1]), 0.0)
    mean = (area * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return np.asarray(np.sqrt(np.maximum(mean, 1.0)), dtype=np.float64)


@dataclass(frozen=True)
class TruthEstimate:
    """One annotator's estimated precision / recall / F1 / mean IoU / label accuracy against the
    latent truth (``values``), their standard errors (``se``) and the GT objects that informed them."""

    values: Mapping[str, float]
    se: Mapping[str, float]
    gt_objects: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {m: self.values[m] for m in METRICS}
        out["se"] = {m: self.se[m] for m in METRICS}
        out["gt_objects"] = self.gt_objects
        return out


@dataclass(frozen=True, eq=False)
class AnnotatorModel:
    """The fitted model: per family noise fits, per annotator truth estimates and model dicts."""

    names: tuple[str, ...]
    noise: Mapping[str, NoiseFit]
    #: per family: existence with size-dependent sensitivities (where the engine's existence model
    #: was fitted: 3+ annotators, automatic quorum); the truth estimates use it (the merge's keep /
    #: drop decisions, :meth:`keep_probability`, use :attr:`keep_existence`)
    existence: Mapping[str, SizedExistence]
    estimates: tuple[TruthEstimate, ...]
    models: tuple[dict[str, Any], ...]
    #: ``{"frames", "objects", "model_error": {annotator: {metric: estimate - measured}}}`` or None
    ground_truth: dict[str, Any] | None = None
    #: per family: ``(F, R)`` probability that annotator r's drawing of an object in fine size bin
    #: f reaches the job's match threshold against the truth (from the fitted noise)
    truth_hit: Mapping[str, FloatArray] = field(default_factory=dict)
    #: per family: the size-aware existence with its lone spurious shares per (stratum, size bin)
    #: (``fit_sized_existence(..., shares_by_bin=True)``), for the keep / drop decisions; the engine
    #: sets it on the clusters with their split pairs and split clusters joined
    #: (``engine._fit_keep_existence``)
    keep_existence: Mapping[str, SizedExistence] = field(default_factory=dict)
    #: per family: the expected number of true objects of the job (real clusters over the clusters
    #: each true object leaves, the objects nobody drew included), the merge's recall denominator
    true_objects: Mapping[str, float] = field(default_factory=dict)
    #: per keypoint family: the factor on a drawing's fitted variance where it was joined beside a
    #: linked cluster without linking to it (the split clusters' lone pool scale ``c``; the engine
    #: sets it, ``engine._join_split_clusters``): its offset to the others is selected wide
    unlinked_scale: Mapping[str, float] = field(default_factory=dict)
    _weight_tables: dict[str, FloatArray] = field(default_factory=dict, repr=False)

    def noise_weighted(self, family: str) -> bool:
        """True when ``family``'s merge uses the fitted noise (weights, keep / drop): the extent
        families, and the keypoint families where positions and visibility flips are fitted apart
        (:class:`~cvat_ext.consensus.keypoint_noise.KeypointFit`)."""
        return family in WEIGHTED_FAMILIES or isinstance(self.noise.get(family), KeypointFit)

    def member_weights(self, family: str, size: FloatArray) -> FloatArray | None:
        """(K, R) inverse-variance fusion weights of each annotator at cluster sizes ``size (K,)``
        (scaled to max 1 per cluster), None when the family's noise was not fitted."""
        fit = self.noise.get(family)
        if fit is None or not self.noise_weighted(family) or not np.any(fit.pairs > 0):
            return None
        # tabulated on the fine size bins once per family: a lookup per cluster, not arithmetic
        table = self._weight_tables.get(family)
        if table is None:
            var = fit.pixel_variance(_FINE_CENTRES)
            # a floor keeps an annotator measured as noise-free from taking weight it cannot be sure of
            var = np.maximum(var, 0.01 * var.mean(axis=1, keepdims=True) + 1e-12)
            w = 1.0 / var
            table = self._weight_tables[family] = w / w.max(axis=1, keepdims=True)
        return np.asarray(table[_fine_bin(size)], dtype=np.float64)

    def visibility_vote(self, family: str) -> tuple[FloatArray, float] | None:
        """For a keypoint family's fused visibility: ``(R,)`` each annotator's vote weight
        ``ln((1 - f_r) / f_r)`` (its flip rate ``f_r``, kept within [0.5 %, 45 %]) and the prior
        log-odds ``ln(pi / (1 - pi))`` of a true keypoint being visible; a keypoint is visible where
        the votes of the members (+ visible, - outside) and the prior sum above 0 (the posterior
        under independent flips). None when the family has no keypoint fit."""
        fit = self.noise.get(family)
        if not isinstance(fit, KeypointFit) or not np.any(fit.pairs > 0):
            return None
        f = np.clip(fit.flip, 0.005, 0.45)
        pi = float(np.clip(fit.visible_share, 0.02, 0.98))
        return np.asarray(np.log((1 - f) / f), dtype=np.float64), float(np.log(pi / (1 - pi)))

    def keep_probability(
        self,
        family: str,
        present: BoolArray,
        stratum: IntArray | None,
        size: FloatArray,
        linked: BoolArray | None = None,
        joined_hit: FloatArray | None = None,
    ) -> FloatArray | None:
        """(K,) probability that merging a cluster adds a true positive: P(real | who drew it,
        its stratum, its size ``(K,)`` px) from :attr:`keep_existence`, times, for a cluster
        no two members of which matched (one drawing, or drawings joined without a match:
        ``linked (K,)`` false; None: the clusters of one drawing), the probability that its best
        member matches the truth at the job's threshold (a lone 15 px-jitter box on a 10 px sign
        is a false positive even where the sign is real; the merged object of an unmatched pair
        is about as good as its better member), or ``joined_hit (K,)`` where finite (the split
        pairs' own, :mod:`~cvat_ext.consensus.split_pairs`). None when the family's
        :attr:`keep_existence` was not fitted or the family is not :meth:`noise_weighted`."""
        sized = self.keep_existence.get(family)
        hit = self.truth_hit.get(family)
        if sized is None or hit is None or not self.noise_weighted(family):
            return None
        present = np.asarray(present, dtype=bool)
        p_real = sized.posterior(present, stratum, size)
        # keypoint families: lone clusters only (their weak rejoins are the keypoint model's business)
        lone = present.sum(axis=1) == 1
        unlinked = lone if linked is None or family not in WEIGHTED_FAMILIES else ~np.asarray(linked, dtype=bool)
        best_hit = np.where(present, hit[_fine_bin(np.asarray(size, dtype=np.float64))], 0.0).max(axis=1)
        if joined_hit is not None:
            joined = np.isfinite(joined_hit)
            best_hit = np.where(joined, joined_hit, best_hit)
            unlinked = unlinked | joined  # a joined split group never matched, keypoint families too
        return np.asarray(np.where(unlinked, p_real * best_hit, p_real), dtype=np.float64)

    def keep_threshold(self, family: str, p_tp: FloatArray) -> float:
        """The keep decision's threshold on :meth:`keep_probability` for ``family``, given every
        cluster's ``p_tp (K,)`` in the job: :func:`f1_keep_threshold` with the family's expected
        true objects; 0.5 (the most true minus false positives) where those are not known."""
        n_true = self.true_objects.get(family)
        return 0.5 if n_true is None else f1_keep_threshold(p_tp, n_true)


def template_link(family: str, fit: NoiseFit, link_thr: float, oks_sigma: float) -> FloatArray:
    """(B, R) probability that annotator r's drawing of an object in size bin b links to the most
    precise other annotator's at ``link_thr``, from ``family``'s fitted noise: the size-aware
    existence's link prior (:func:`~cvat_ext.consensus.sized_existence.fit_link`)."""
    if isinstance(fit, KeypointFit):
        return fit.link_table(link_thr)
    return link_table(fit, template(family, oks_sigma), link_thr)


def f1_keep_threshold(p_tp: FloatArray, n_true: float) -> float:
    """The threshold on the clusters' probabilities of adding a true positive ``p_tp (K,)`` that
    maximises the merge's expected F1, ``2 sum(p) / (kept + n_true)`` over the kept clusters
    (``n_true``: the expected true objects).

    The expected F1 is largest when the clusters kept are the likeliest ones, as many as raise it:
    one more cluster of probability ``p`` raises it when ``p > F1 / 2`` (the F1 at that point), so
    the threshold is half the F1 reached, never above 0.5; a Bayes decision at 0.5 maximises the
    expected true minus false positives instead, and drops the clusters between (the merge's F1 is
    under 0.9 where a precise annotator's small objects are coin flips). Returns 0.5 when there is
    nothing to keep or no true object (the ratio is then not defined)."""
    p = np.sort(np.asarray(p_tp, dtype=np.float64).ravel())[::-1]
    if p.size == 0 or n_true <= 0:
        return 0.5
    f1 = 2.0 * np.cumsum(p) / (np.arange(1, p.size + 1) + n_true)
    return float(min(0.5, 0.5 * f1.max()))


#: fine log-spaced size bins (px) on which the threshold share and mean IoU are evaluated: the
#: per-cluster sums are pooled per (bin, annotator) first (ratio of neighbouring edges ~1.07)
FINE_EDGES = np.geomspace(1.0, 4096.0, 129)
_FINE_CENTRES = np.sqrt(FINE_EDGES[:-1] * FINE_EDGES[1:])


def _fine_bin(size: FloatArray) -> IntArray:
    """(K,) fine size bin (:data:`FINE_EDGES`) of each size, clipped to the end bins."""
    return np.clip(np.searchsorted(FINE_EDGES, size, side="right") - 1, 0, _FINE_CENTRES.size - 1).astype(np.int64)


def _real_per_bin(present: BoolArray, real: FloatArray, size: FloatArray) -> FloatArray:
    """(B, R) sum over clusters of ``present * real`` per fine size bin and annotator (``real (K,)``,
    or ``(K, R)`` per member)."""
    n_bins, n_annot = _FINE_CENTRES.size, present.shape[1]
    fine = _fine_bin(size)
    k, r = np.nonzero(present)
    cell = fine[k] * n_annot + r
    out = np.bincount(cell, weights=real[k] if real.ndim == 1 else real[k, r], minlength=n_bins * n_annot)
    return np.asarray(out.reshape(n_bins, n_annot), dtype=np.float64)


@dataclass
class _Sums:
    """Per-annotator sums over a set of clusters (the whole job, or its GT frames)."""

    n_annot: int
    objects: FloatArray = field(init=False)
    hits: FloatArray = field(init=False)
    iou: FloatArray = field(init=False)
    iou_sq: FloatArray = field(init=False)
    truth: float = 0.0

    def __post_init__(self) -> None:
        self.objects, self.hits, self.iou, self.iou_sq = (np.zeros(self.n_annot) for _ in range(4))

    def add(
        self,
        present: BoolArray,
        real: FloatArray,
        size: FloatArray,
        moments: tuple[FloatArray, ...],
        objects: FloatArray,
        hit: FloatArray | None = None,
    ) -> None:
        """Clusters ``present (K, R)``, ``real (K,)``, ``size (K,)``; ``moments``: the share at the
        threshold, mean and mean square similarity of that share, (B, R) each per fine bin;
        ``objects (K,)``: the distinct real objects each cluster stands for (``real`` times its
        object share, the real objects nobody drew included); ``hit (K, R)``: each member's own
        posterior of reaching the threshold (:mod:`~cvat_ext.consensus.member_hit`; None: the rate)."""
        q, m, m2 = moments
        # the members' own hit probabilities where given, else the rate per bin
        weight = real if hit is None else real[:, None] * hit
        p = _real_per_bin(present, weight, size) * (q if hit is None else 1.0)
        self.objects += present.sum(axis=0)
        self.hits += p.sum(axis=0)
        self.iou += (p * m).sum(axis=0)
        self.iou_sq += (p * m2).sum(axis=0)
        self.truth += float(objects.sum())

    def values(self, label_accuracy: FloatArray) -> dict[str, FloatArray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return {
                "precision": np.where(self.objects > 0, self.hits / self.objects, np.nan),
                "recall": np.where(self.truth > 0, self.hits / self.truth, np.nan),
                "f1": np.where(self.objects + self.truth > 0, 2 * self.hits / (self.objects + self.truth), np.nan),
                "mean_iou": np.where(self.hits > 0, self.iou / self.hits, np.nan),
                "label_accuracy": label_accuracy,
            }


#: clusters whose member hits are computed at once (bounds the temporaries on long jobs)
HIT_BLOCK_ROWS = 1 << 16


def _row_blocks(parts: Sequence[FloatArray]) -> Iterator[tuple[slice, FloatArray]]:
    """Consecutive per-chunk ``parts`` joined into blocks of at least :data:`HIT_BLOCK_ROWS` rows
    (the last one shorter): each block's slice of the concatenated rows, and its rows."""
    lo, pending = 0, []
    for i, part in enumerate(parts):
        pending.append(part)
        rows = sum(len(p) for p in pending)
        if rows >= HIT_BLOCK_ROWS or i == len(parts) - 1:
            yield slice(lo, lo + rows), pending[0] if len(pending) == 1 else np.concatenate(pending)
            lo, pending = lo + rows, []


def _binomial_se(value: FloatArray, n: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.sqrt(np.clip(value * (1 - value), 0, None) / np.maximum(n, 1.0)), dtype=np.float64)


def fit_annotator_model(
    names: Sequence[str],
    evidence: Mapping[str, FamilyEvidence],
    existence: Mapping[str, ExistenceModel],
    quorum: int,
    dawid_skene: DawidSkene | None,
    label_counts: FloatArray,
    iou_thr: float,
    *,
    link_thr: float | None = None,
    oks_sigma: float = 0.09,
    gt: GtTally | None = None,
    priors: Mapping[str, Mapping[str, Any]] | None = None,
) -> AnnotatorModel:
    """Fit the noise per family and derive each annotator's truth estimate (module docstring).

    ``label_counts (R,)``: the labelled objects behind each annotator's Dawid–Skene accuracy."""
    names = tuple(names)
    n = len(names)
    link_thr = iou_thr if link_thr is None else link_thr
    sized: dict[str, SizedExistence] = {}
    prior_of = _parse_priors(names, priors)
    noise: dict[str, NoiseFit] = {}
    truth_hit: dict[str, FloatArray] = {}
    true_objects: dict[str, float] = {}
    job, on_gt = _Sums(n), _Sums(n)
    # the noise fit's own standard error: a refit per left-out frame group (noise_jackknife)
    frames_seen = [f for ev in evidence.values() for f in ev.frame]
    job_groups = np.unique(frame_group(np.concatenate(frames_seen))).tolist() if frames_seen else []
    fit_shifts: list[FloatArray] = []
    for family, ev in evidence.items():
        if not ev.present:
            continue
        # each prior's (alpha, beta, flip, weight); an earlier layout without ``flip``: no flips
        fam_prior = {
            r: (
                float(pr["noise"][family]["alpha"]),
                float(pr["noise"][family]["beta"]),
                float(pr["noise"][family].get("flip", 0.0) or 0.0),
                min(float(pr["noise"][family]["pairs"]), PRIOR_CAP),
            )
            for r, pr in prior_of.items()
            if family in pr.get("noise", {})
        }
        fit_family = functools.partial(
            _fit_family, family, fam_prior, carried_cells(prior_of, family), iou_thr, link_thr, oks_sigma
        )
        rates = functools.partial(_family_moments, family, iou_thr, oks_sigma)
        fit = fit_family(ev.grouped.sums())
        noise[family] = fit
        present = np.concatenate(ev.present)
        size = np.concatenate(ev.size)
        frames = np.concatenate(ev.frame)
        model = existence.get(family)
        if model is not None:
            # who drew a cluster, weighed with how likely each drawing was to link at its size
            link = template_link(family, fit, link_thr, oks_sigma)
            strata = np.concatenate(ev.strata)
            sized[family], real = fit_sized_existence(model, link, present, strata, size)
            # a real object drawn apart by two annotators is two real clusters but one object; and
            # the objects nobody drew are counted in (zero clusters)
            objects = real / clusters_per_object(sized[family], present, real, size)
            true_objects[family] = float(objects.sum())
        else:
            real = (present.sum(axis=1) >= quorum).astype(np.float64)
            objects = real
        moments = rates(fit)
        truth_hit[family] = moments[0]
        if gt is None:
            refit = functools.partial(fit_family, carry=False)
            weight = _real_per_bin(present, real, size)
            fit_shifts.append(jackknife_shifts(job_groups, ev.grouped, refit, rates, weight, fit))
        on_gt_frames = gt.frame_mask(frames) if gt is not None else None
        if isinstance(fit, KeypointFit):
            blocks: Iterator[tuple[slice, FloatArray | None]] = iter([(slice(None), None)])
        else:
            # what each member did in its cluster, not the annotator's rate (module docstring), a
            # block of clusters at a time (a long job has millions: the posteriors' temporaries)
            spread2 = pooled_spread2(fit.mean_square(_FINE_CENTRES))
            rate = template(family, oks_sigma).at_threshold(spread2.ravel(), iou_thr)[0].reshape(spread2.shape)
            ratios = member_ratios(
                pair_hit_table(round(float(iou_thr), 6), round(float(link_thr), 6)),
                spread2,
                rate,
                sized[family].draw if family in sized else None,
            )
            fine_bin = _fine_bin(size)
            blocks = (
                (sl, ratios.posterior(present[sl], pair_sim, fine_bin[sl])) for sl, pair_sim in _row_blocks(ev.pair_sim)
            )
        for sl, hit in blocks:
            job.add(present[sl], real[sl], size[sl], moments, objects[sl], hit)
            if on_gt_frames is not None:
                g = on_gt_frames[sl]
                on_gt.add(
                    present[sl][g], real[sl][g], size[sl][g], moments, objects[sl][g], None if hit is None else hit[g]
                )
    label_acc = dawid_skene.accuracy if dawid_skene is not None and dawid_skene.classes.size else np.full(n, np.nan)
    values = job.values(label_acc)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou_sd = np.sqrt(np.clip(job.iou_sq / np.maximum(job.hits, 1e-12) - values["mean_iou"] ** 2, 0, None))
    se = {
        "precision": _binomial_se(values["precision"], job.objects),
        "recall": _binomial_se(values["recall"], np.full(n, job.truth)),
        "f1": _binomial_se(values["f1"], (job.objects + job.truth) / 2),
        "mean_iou": iou_sd / np.sqrt(np.maximum(job.hits, 1.0)),
        "label_accuracy": _binomial_se(label_acc, label_counts),
    }
    evidence_n = {
        "precision": job.objects,
        "recall": np.full(n, job.truth),
        "f1": (job.objects + job.truth) / 2,
        "mean_iou": job.hits,
        "label_accuracy": label_counts,
    }
    gt_report = None
    gt_objects = np.zeros(n, dtype=np.int64)
    if gt is None and fit_shifts:
        # the fit's error adds to the sampling error; with GT the anchor measures and removes it
        fit_se = jackknife_se(job.hits, job.iou, job.objects, job.truth, np.sum(fit_shifts, axis=0))
        for m_ in JACKKNIFE_METRICS:
            se[m_] = np.where(np.isfinite(fit_se[m_]), np.hypot(se[m_], np.nan_to_num(fit_se[m_])), se[m_])
    if gt is not None:
        values, se, gt_report = _anchor(names, values, se, on_gt.values(label_acc), gt, iou_sd)
        gt_objects = gt.counts[:, 0].astype(np.int64)
    values, se = _apply_priors(values, se, evidence_n, prior_of)
    estimates = tuple(
        TruthEstimate(
            values={m_: _f(values[m_][r]) for m_ in METRICS},
            se={m_: _f(se[m_][r]) for m_ in METRICS},
            gt_objects=int(gt_objects[r]),
        )
        for r in range(n)
    )
    models = tuple(_model_dict(r, names, noise, sized, values, evidence_n, dawid_skene, job.objects) for r in range(n))
    return AnnotatorModel(
        names, noise, sized, estimates, models, gt_report, truth_hit=truth_hit, true_objects=true_objects
    )


def _fit_family(
    family: str,
    prior: Mapping[int, tuple[float, float, float, float]],
    cells: Mapping[int, CarriedCells],
    iou_thr: float,
    link_thr: float,
    oks_sigma: float,
    sums: EvidenceSums,
    *,
    carry: bool = True,
) -> NoiseFit:
    """One family's noise fitted on ``sums`` (the job's evidence, or all but a frame group's):
    keypoint positions and visibility flips for keypoint families
    (:mod:`~cvat_ext.consensus.keypoint_noise`), else the pairs (and the corners, for
    :data:`WEIGHTED_FAMILIES`) with each person's ``prior`` ``(alpha, beta, flip, weight)`` and
    carried corner ``cells`` (``carry``: :func:`~cvat_ext.consensus.noise_model.fit_noise`'s)."""
    if family in KEYPOINT_FAMILIES and sums.keypoints.has.sum() > 0:
        return fit_keypoint_noise(sums.keypoints, sums.pairs.per_annotator(), link_thr, oks_sigma, prior)
    pair_prior = {r: (a, b, w) for r, (a, b, _, w) in prior.items()}
    corners = sums.corners if family in WEIGHTED_FAMILIES else None
    return fit_noise(sums.pairs, iou_thr, template(family, oks_sigma), pair_prior, corners, cells, carry=carry)


def _family_moments(
    family: str, iou_thr: float, oks_sigma: float, fit: NoiseFit
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(F, R) each on the fine size bins: the share of each annotator's drawings at or above
    ``iou_thr`` against the truth, their mean and mean square similarity (``fit``'s template)."""
    if isinstance(fit, KeypointFit):
        return fit.moments(_FINE_CENTRES, iou_thr)
    return template_moments(fit, template(family, oks_sigma), _FINE_CENTRES, iou_thr)


def _f(v: float | np.floating[Any]) -> float:
    return float(v)


def _anchor(
    names: tuple[str, ...],
    values: dict[str, FloatArray],
    se: dict[str, FloatArray],
    model_on_gt: dict[str, FloatArray],
    gt: GtTally,
    iou_sd: FloatArray,
) -> tuple[dict[str, FloatArray], dict[str, FloatArray], dict[str, Any]]:
    """Correct each estimate by the model's own error on the GT frames, shrunk by how much of that
    error the GT sample's noise explains; the report's GT section. ``iou_sd (R,)``: the spread of
    each annotator's matched similarities (the noise of a mean IoU over few objects)."""
    truth = measured(gt.counts)
    error = {m: model_on_gt[m] - truth[m] for m in METRICS}
    n_gt, n_obj, n_tp = (np.maximum(gt.counts[:, i], 1.0) for i in (0, 1, 2))
    # the sampling noise of the error on the GT frames (the estimate there follows the same
    # frames' data, so half the variance of the measurement's own; the earlier uncorrected form)
    noise = {
        "precision": _binomial_se(truth["precision"], n_obj),
        "recall": _binomial_se(truth["recall"], n_gt),
        "f1": _binomial_se(truth["f1"], (n_obj + n_gt) / 2),
        "mean_iou": np.nan_to_num(iou_sd) / np.sqrt(n_tp),
    }
    out, out_se = {}, {}
    for m in METRICS:
        # label accuracy: Dawid–Skene's estimate is one job-wide figure, so the GT frames' difference
        # is only the GT sample's noise; it is reported (model_error) but does not correct
        ok = np.isfinite(error[m]) & (m != "label_accuracy")
        e = np.where(ok, error[m], 0.0)
        var = noise[m] ** 2 * 0.5 if m in noise else np.zeros_like(e)
        # shrink the correction by the share of the error's square its noise explains (a model
        # already right on the job would otherwise take on the GT sample's noise: with 10 % of
        # the frames that made the estimates worse than without GT once the model was unbiased),
        # in two parts: the error all annotators share (its noise averages over them) and each
        # one's departure from it (its own noise): corrected one by one, two annotators of one
        # profile took independent draws of their samples' noise and swapped their order
        common = float(np.mean(e[ok])) if ok.any() else 0.0
        common_var = float(np.mean(var[ok])) / max(int(ok.sum()), 1) if ok.any() else 0.0
        keep_common = float(np.clip(1.0 - common_var / common**2, 0.0, 1.0)) if common else 0.0
        # departures from the common part as far as it is kept (none kept: each annotator's own
        # error), shrunk by the share of their spread the noise does not explain (empirical Bayes:
        # the annotators' own biases scatter by tau^2 around the common one)
        own = e - keep_common * common
        tau2 = max(float(np.mean(own[ok] ** 2) - np.mean(var[ok])), 0.0) if ok.any() else 0.0
        keep_own = tau2 / np.maximum(tau2 + var, 1e-300)
        shift = keep_common * common + keep_own * own
        out[m] = np.where(ok, np.clip(values[m] - shift, 0.0, 1.0), values[m])
        # the correction carries the GT sample's own noise
        out_se[m] = np.where(ok, np.sqrt(se[m] ** 2 + keep_common * common_var + keep_own * var), se[m])
    report = {
        "frames": len(gt.frames),
        "objects": gt.n_objects,
        "model_error": {
            name: {m: (None if not np.isfinite(error[m][r]) else round(float(error[m][r]), 6)) for m in METRICS}
            for r, name in enumerate(names)
        },
    }
    return out, out_se, report


def _parse_priors(
    names: tuple[str, ...], priors: Mapping[str, Mapping[str, Any]] | None
) -> dict[int, Mapping[str, Any]]:
    """Annotator position -> prior ``model`` dict; unknown annotators are ignored (they did not
    work on this job), a dict of another layout is refused."""
    out: dict[int, Mapping[str, Any]] = {}
    for name, model in (priors or {}).items():
        if name not in names:
            continue
        if not isinstance(model, Mapping) or model.get("version") != MODEL_VERSION or "truth_estimate" not in model:
            raise ConfigError(f"priors: annotator {name!r}: not a model dict of version {MODEL_VERSION}")
        out[names.index(name)] = model
    return out


def carried_cells(prior_of: Mapping[int, Mapping[str, Any]], family: str) -> dict[int, CarriedCells]:
    """Annotator position -> the corner cells its prior carries for ``family`` (a model dict
    without them, as stored before they were carried, or of another cells layout: none)."""
    out: dict[int, CarriedCells] = {}
    for r, model in prior_of.items():
        stored = model.get("noise", {}).get(family, {}).get("corner_cells")
        cells = CarriedCells.from_dict(stored) if isinstance(stored, Mapping) else None
        if cells is not None:
            out[r] = cells
    return out


def _apply_priors(
    values: dict[str, FloatArray],
    se: dict[str, FloatArray],
    evidence_n: Mapping[str, FloatArray],
    prior_of: Mapping[int, Mapping[str, Any]],
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """Pseudo-count update of :data:`PRIOR_POOLED_METRICS`: the prior's value counts for
    ``min(its evidence, PRIOR_CAP)`` objects."""
    if not prior_of:
        return values, se
    values = {m: v.copy() for m, v in values.items()}
    se = {m: v.copy() for m, v in se.items()}
    for r, model in prior_of.items():
        est, ev = model["truth_estimate"], model.get("evidence", {})
        for m in PRIOR_POOLED_METRICS:
            pv, pn = est.get(m), min(float(ev.get(m, 0.0)), PRIOR_CAP)
            if pv is None or pn <= 0:
                continue
            n_job = float(evidence_n[m][r])
            if not np.isfinite(values[m][r]):
                values[m][r], n_job = float(pv), 0.0
            total = n_job + pn
            values[m][r] = (values[m][r] * n_job + float(pv) * pn) / total
            se[m][r] = (
                float(se[m][r]) * np.sqrt(n_job / total) if n_job else float(_binomial_se(np.array(pv), np.array(pn)))
            )
    return values, se


def _model_dict(
    r: int,
    names: tuple[str, ...],
    noise: Mapping[str, NoiseFit],
    existence: Mapping[str, SizedExistence],
    values: Mapping[str, FloatArray],
    evidence_n: Mapping[str, FloatArray],
    dawid_skene: DawidSkene | None,
    objects: FloatArray,
) -> dict[str, Any]:
    """The JSON-serialisable parameters of annotator r (what a later job takes as its prior)."""

    def num(v: float) -> float | None:
        return None if not np.isfinite(v) else round(float(v), 6)

    confusion = None
    if dawid_skene is not None and dawid_skene.classes.size:
        cm = dawid_skene.confusion[r]
        confusion = {
            "classes": dawid_skene.classes.tolist(),
            "accuracy_per_class": [num(float(x)) for x in np.diagonal(cm)],
        }
    return {
        "version": MODEL_VERSION,
        "annotator": names[r],
        "truth_estimate": {m: num(float(values[m][r])) for m in METRICS},
        "evidence": {m: num(float(evidence_n[m][r])) for m in METRICS},
        "objects": int(objects[r]),
        "existence": {
            family: {
                "draw_rate": num(float(model.draw[r])),
                "spurious_share": num(float(model.false_share[0, r])),
            }
            for family, model in existence.items()
        },
        "label_confusion": confusion,
        "noise": {
            family: {
                "alpha": num(float(fit.alpha[r])),
                "beta": num(float(fit.beta[r])),
                "pairs": num(float(fit.pairs[r])),
                **({"flip": num(float(fit.flip[r]))} if isinstance(fit, KeypointFit) else {}),
                **({"corner_cells": fit.cells[r].as_dict()} if fit.cells is not None else {}),
            }
            for family, fit in noise.items()
        },
    }
