"""How far the noise fit's own sampling error moves the truth estimates: a delete-a-group jackknife
over the job's frames.

The binomial standard errors of :mod:`~cvat_ext.consensus.annotator_model` measure the job's
sampling noise *given* the fitted noise. The fit itself rests on a few hundred matched pairs and
triples, and where one annotator is far more precise than the others its variance is a small
difference of large ones: on a 30-frame mask job it scatters by about its own size from job to
job, and an F1 estimate 0.1 off the truth was reported as ``± 0.01``.

The frames fall into :data:`JACKKNIFE_GROUPS` groups by frame number (modulo the count). Pass 1
keeps the noise evidence per group (:class:`GroupedEvidence`: pair, corner and keypoint sums; the
job's are their total), and each family's noise is refitted with each group left out
(:func:`fit_shifts`, by the same fit as the job's). A refit moves each annotator's expected true
positives and their summed similarity on the job's own clusters: the fit's share at the threshold
``q_r(s)`` and mean similarity ``m_r(s)`` per fine size bin, weighed by the real drawings there
(the rate form of the estimates; the clusters, their existence and the true-object count are held
fixed). Over the ``G`` refits the estimates ``theta_g`` spread by the jackknife's
``sqrt((G - 1) / G * sum_g (theta_g - mean)^2)`` (:func:`jackknife_se`): the fit's standard
error, which the report adds to the binomial one in quadrature.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray
from cvat_ext.consensus.keypoint_noise import KeypointEvidence
from cvat_ext.consensus.noise_model import N_BINS, CornerEvidence, NoiseFit, PairEvidence

#: frame groups of the jackknife (frame number modulo this): each refit leaves one out
JACKKNIFE_GROUPS = 8
#: the estimates whose standard error takes the fit's (label accuracy is Dawid–Skene's, not the noise's)
JACKKNIFE_METRICS = ("precision", "recall", "f1", "mean_iou")


def frame_group(frame: IntArray) -> IntArray:
    """(K,) each frame's jackknife group."""
    return np.asarray(frame, dtype=np.int64) % JACKKNIFE_GROUPS


@dataclass(frozen=True)
class EvidenceSums:
    """The noise evidence of one family over a set of frame groups (the job's, or all but one)."""

    pairs: PairEvidence
    corners: CornerEvidence
    keypoints: KeypointEvidence


@dataclass
class GroupedEvidence:
    """One family's noise evidence per frame group: the rows ``group * B + size bin`` of
    :class:`PairEvidence` and :class:`CornerEvidence` with :data:`JACKKNIFE_GROUPS` groups, and a
    :class:`KeypointEvidence` per group (keypoint families), filled in one pass."""

    n_annotators: int
    pairs: PairEvidence = field(init=False)
    corners: CornerEvidence = field(init=False)
    keypoints: dict[int, KeypointEvidence] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pairs = PairEvidence(self.n_annotators, groups=JACKKNIFE_GROUPS)
        self.corners = CornerEvidence(self.n_annotators, groups=JACKKNIFE_GROUPS)

    def add(
        self,
        frame: IntArray,
        pair_sim: FloatArray,
        size: FloatArray,
        bins: IntArray,
        xyxy: FloatArray | None = None,
        keypoints: tuple[FloatArray, BoolArray, BoolArray] | None = None,
    ) -> None:
        """The clusters of one table, as :meth:`PairEvidence.add`, :meth:`CornerEvidence.add` and
        :meth:`KeypointEvidence.add` take them (``bins (K,)`` their size bins), ``frame (K,)`` each
        cluster's frame."""
        group = frame_group(frame)
        rows = group * N_BINS + bins
        self.pairs.add(pair_sim, size, rows)
        if xyxy is not None:
            self.corners.add(xyxy, pair_sim, size, rows)
        if keypoints is not None:
            xy, has, visible = keypoints
            for g in np.unique(group).tolist():
                sel = group == g
                if g not in self.keypoints:
                    self.keypoints[g] = KeypointEvidence(self.n_annotators)
                self.keypoints[g].add(xy[sel], has[sel], visible[sel], size[sel], bins[sel])

    def has_group(self, group: int) -> bool:
        """True when a matched pair or a keypoint of frame group ``group`` is in the sums."""
        rows = slice(group * N_BINS, (group + 1) * N_BINS)
        return bool(self.pairs.count[rows].any()) or group in self.keypoints

    def sums(self, without: int | None = None) -> EvidenceSums:
        """The evidence of every group (``without`` one of them)."""
        parts = [k for g, k in sorted(self.keypoints.items()) if g != without]
        return EvidenceSums(
            self.pairs.total(without), self.corners.total(without), KeypointEvidence.summed(self.n_annotators, parts)
        )


def rate_sums(weight: FloatArray, hit: FloatArray, mean_sim: FloatArray) -> FloatArray:
    """(2, R) expected true positives and their summed similarity of the real drawings ``weight
    (F, R)`` per fine size bin at the rates ``hit`` and ``mean_sim`` (F, R)."""
    tp = weight * hit
    return np.stack([tp.sum(axis=0), (tp * mean_sim).sum(axis=0)])


def fit_shifts(
    groups: Sequence[int],
    grouped: GroupedEvidence,
    refit: Callable[[EvidenceSums], NoiseFit],
    rates: Callable[[NoiseFit], tuple[FloatArray, ...]],
    weight: FloatArray,
    base: NoiseFit,
) -> FloatArray:
    """(G, 2, R) per left-out group of ``groups``, how far :func:`rate_sums` of the real drawings
    ``weight`` moves from the job's fit ``base`` when the family is refitted (``refit``) on the
    other groups' evidence; ``rates``: a fit's hit share and mean similarity per fine bin (first
    two of the tuple). 0 for a group without evidence of this family."""
    at_base = rate_sums(weight, *rates(base)[:2])
    out = np.zeros((len(groups), *at_base.shape))
    for i, g in enumerate(groups):
        if grouped.has_group(g):
            out[i] = rate_sums(weight, *rates(refit(grouped.sums(without=g)))[:2]) - at_base
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
