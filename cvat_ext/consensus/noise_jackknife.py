"""How far the noise fit's own sampling error moves the truth estimates: a delete-a-group jackknife
over the job's frames.

The binomial standard errors of :mod:`~cvat_ext.consensus.annotator_model` measure the job's
sampling noise *given* the fitted noise. The fit itself rests on a few hundred matched pairs and
triples, and where one annotator is far more precise than the others its variance is a small
difference of large ones: on a 30-frame mask job it scatters by about its own size from job to
job, and an F1 estimate 0.1 off the truth was reported as ``± 0.01``.

The frames fall into :data:`JACKKNIFE_GROUPS` groups by frame number (modulo the count). Pass 1
keeps the pair and corner sums per group (:class:`GroupedEvidence`; the job's are their total),
and the noise is refitted with each group left out (:meth:`FamilyRefit.shifts`). A
refit moves each annotator's expected true positives and their summed similarity on the job's own
clusters: the template's share at the threshold ``q_r(s)`` and mean similarity ``m_r(s)`` per
fine size bin, weighed by the real drawings there (the rate form of the estimates; the clusters,
their existence and the true-object count are held fixed). Over the ``G`` refits the estimates
``theta_g`` spread by the jackknife's ``sqrt((G - 1) / G * sum_g (theta_g - mean)^2)``
(:func:`jackknife_se`): the fit's standard error, which the report adds to the binomial one in
quadrature.

Keypoint families (their own fit, :mod:`~cvat_ext.consensus.keypoint_noise`) are not refitted:
their standard errors stay the binomial ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cvat_ext.consensus.batch import FloatArray, IntArray
from cvat_ext.consensus.noise_model import (
    N_BINS,
    CarriedCells,
    CornerEvidence,
    IouTemplate,
    PairEvidence,
    fit_noise,
    template_moments,
)

#: frame groups of the jackknife (frame number modulo this): each refit leaves one out
JACKKNIFE_GROUPS = 8
#: the estimates whose standard error takes the fit's (label accuracy is Dawid–Skene's, not the noise's)
JACKKNIFE_METRICS = ("precision", "recall", "f1", "mean_iou")


def frame_group(frame: IntArray) -> IntArray:
    """(K,) each frame's jackknife group."""
    return np.asarray(frame, dtype=np.int64) % JACKKNIFE_GROUPS


@dataclass
class GroupedEvidence:
    """One family's pair sums (and corner sums, extent families) per frame group: the rows
    ``group * B + size bin`` of :class:`PairEvidence` and :class:`CornerEvidence` with
    :data:`JACKKNIFE_GROUPS` groups, filled in one pass; the job's sums are their total."""

    n_annotators: int
    pairs: PairEvidence = field(init=False)
    corners: CornerEvidence = field(init=False)

    def __post_init__(self) -> None:
        self.pairs = PairEvidence(self.n_annotators, groups=JACKKNIFE_GROUPS)
        self.corners = CornerEvidence(self.n_annotators, groups=JACKKNIFE_GROUPS)

    def add(
        self, frame: IntArray, pair_sim: FloatArray, size: FloatArray, bins: IntArray, xyxy: FloatArray | None
    ) -> None:
        """The clusters of one table, as :meth:`PairEvidence.add` and :meth:`CornerEvidence.add`
        take them (``bins (K,)`` their size bins), ``frame (K,)`` each cluster's frame."""
        rows = frame_group(frame) * N_BINS + bins
        self.pairs.add(pair_sim, size, rows)
        if xyxy is not None:
            self.corners.add(xyxy, pair_sim, size, rows)

    def has_group(self, group: int) -> bool:
        """True when a matched pair of frame group ``group`` is in the sums."""
        return bool(self.pairs.count[group * N_BINS : (group + 1) * N_BINS].any())


@dataclass(frozen=True)
class FamilyRefit:
    """What refitting one family's noise without a frame group needs: its ``grouped`` evidence
    (``corners``: whether its fit reads the corner sums), the fit's template, ``prior`` and
    ``prior_cells`` (:func:`~cvat_ext.consensus.noise_model.fit_noise`), and ``weight (F, R)`` the
    real drawings of each annotator per fine size bin ``sizes (F,)``."""

    grouped: GroupedEvidence
    corners: bool
    tmpl: IouTemplate
    prior: Mapping[int, tuple[float, float, float]]
    prior_cells: Mapping[int, CarriedCells]
    weight: FloatArray
    sizes: FloatArray

    def rate_sums(self, hit: FloatArray, mean_sim: FloatArray) -> FloatArray:
        """(2, R) expected true positives and their summed similarity at the rates ``hit`` and
        ``mean_sim`` (F, R)."""
        tp = self.weight * hit
        return np.stack([tp.sum(axis=0), (tp * mean_sim).sum(axis=0)])

    def shifts(self, groups: Sequence[int], iou_thr: float, base: tuple[FloatArray, FloatArray]) -> FloatArray:
        """(G, 2, R) per left-out group, how far the refit moves :meth:`rate_sums` from ``base``
        (the job's fit's hit share and mean similarity, (F, R) each); 0 for a group without pairs."""
        at_base = self.rate_sums(*base)
        out = np.zeros((len(groups), *at_base.shape))
        for i, g in enumerate(groups):
            if not self.grouped.has_group(g):
                continue
            pairs = self.grouped.pairs.total(without=g)
            corners = self.grouped.corners.total(without=g) if self.corners else None
            fit = fit_noise(pairs, iou_thr, self.tmpl, self.prior, corners, self.prior_cells, carry=False)
            hit, mean_sim, _ = template_moments(fit, self.tmpl, self.sizes, iou_thr)
            out[i] = self.rate_sums(hit, mean_sim) - at_base
        return out


def jackknife_se(
    hits: FloatArray, iou: FloatArray, objects: FloatArray, truth: float, shifts: FloatArray
) -> dict[str, FloatArray]:
    """Per :data:`JACKKNIFE_METRICS` the fit's standard error ``(R,)``: the job's expected true
    positives ``hits (R,)`` and summed similarity ``iou (R,)`` moved by each left-out group's
    ``shifts (G, 2, R)`` (summed over the families), with the drawn ``objects (R,)`` and the true
    objects ``truth`` held; NaN where a metric is not defined, zeros with fewer than two groups."""
    n_groups = shifts.shape[0]
    if n_groups < 2:
        return {m: np.zeros_like(hits) for m in JACKKNIFE_METRICS}
    h = np.maximum(hits[None, :] + shifts[:, 0], 0.0)
    s = np.maximum(iou[None, :] + shifts[:, 1], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = {
            "precision": h / objects[None, :],
            "recall": h / truth if truth > 0 else np.full_like(h, np.nan),
            "f1": 2 * h / (objects[None, :] + truth),
            "mean_iou": s / h,
        }
    factor = (n_groups - 1) / n_groups
    return {m: np.sqrt(factor * ((v - v.mean(axis=0)) ** 2).sum(axis=0)) for m, v in theta.items()}
