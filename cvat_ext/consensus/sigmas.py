"""Per-keypoint OKS sigmas for skeleton matching: CVAT-style defaults, given, or estimated.

``ConsensusSettings.keypoint_sigmas``:

* ``"default"``: every keypoint uses ``oks_sigma`` (CVAT's single sigma);
* a mapping ``skeleton label name -> sigmas`` in the order of the label's sublabels;
* ``"estimate"``: a first matching pass with the default sigma, then per keypoint the spread of the
  matched clusters' keypoints around their replica mean (COCO's recipe,
  :func:`cvat_ext.geometry.estimate_keypoint_sigmas`), then the real matching with those sigmas.

Sigmas are keyed by the keypoint's (element's) label id, which is unique across skeleton labels,
so one table serves a job with several skeleton labels (``SimilarityParams.element_sigmas``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cvat_ext.annotations.model import LabelSet
from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray, ReplicaBatch
from cvat_ext.errors import ConfigError
from cvat_ext.geometry import keypoint_sigma_moments, sigmas_from_moments


def keypoint_columns(batch: ReplicaBatch, rows_k: IntArray) -> tuple[IntArray, FloatArray, BoolArray]:
    """Keypoints of skeleton clusters, columnar.

    ``rows_k (K, R)`` member rows (-1 absent) -> ``kp_label (P,)`` element label ids (ascending, the
    union over the members), ``xy (K, R, P, 2)`` pixels (0 where missing) and ``flags (K, R, P, 3)``
    (element present, visible i.e. not ``outside``, occluded).
    """
    member_rows = rows_k[rows_k >= 0].tolist()
    elements = [(j, e) for j, i in enumerate(member_rows) for e in batch.shape(i).elements]
    kp_label = np.unique(np.array([e.label_id for _, e in elements], dtype=np.int64))
    xy_m = np.zeros((len(member_rows), kp_label.size, 2))
    flags_m = np.zeros((len(member_rows), kp_label.size, 3), dtype=bool)
    if elements:
        m_idx = np.array([j for j, _ in elements], dtype=np.int64)
        p_idx = np.searchsorted(kp_label, np.array([e.label_id for _, e in elements], dtype=np.int64))
        xy_m[m_idx, p_idx] = np.array([e.points.reshape(-1, 2)[0] for _, e in elements])
        flags_m[m_idx, p_idx] = np.array([(True, not e.outside, e.occluded) for _, e in elements], dtype=bool)
    present = rows_k >= 0
    slot = np.zeros(rows_k.shape, dtype=np.int64)
    slot[present] = np.arange(len(member_rows))
    xy = np.where(present[:, :, None, None], xy_m[slot], 0.0)
    flags = flags_m[slot] & present[:, :, None, None]
    return kp_label, xy, flags


def points_columns(batch: ReplicaBatch, rows_k: IntArray) -> tuple[FloatArray, BoolArray]:
    """Points of ``points`` clusters, columnar: ``rows_k (K, R)`` -> ``xy (K, R, P, 2)`` pixels and
    ``has (K, R, P)``, P the most points of a member; a member has its cluster's points when it
    has as many as the cluster's largest member (shapes of other counts never match: OKS 0)."""
    present = rows_k >= 0
    count = np.zeros(rows_k.shape, dtype=np.int64)
    member_rows = rows_k[present].tolist()
    count[present] = [batch.shape(i).points.shape[0] for i in member_rows]
    p = int(count.max()) if count.size else 0
    xy = np.zeros((*rows_k.shape, p, 2))
    full = present & (count == count.max(axis=1, keepdims=True)) if count.size else present
    for (k, r), i in zip(np.argwhere(full).tolist(), rows_k[full].tolist(), strict=True):
        xy[k, r] = batch.shape(i).points
    has = np.broadcast_to(full[:, :, None], (*rows_k.shape, p)).copy()
    return xy, has


def member_keypoints(batch: ReplicaBatch, rows_k: IntArray) -> tuple[FloatArray, BoolArray, BoolArray]:
    """Keypoints of the clusters ``rows_k (K, R)`` of a ``skeleton`` or ``points`` batch:
    ``xy (K, R, P, 2)`` px, ``has`` (the member placed the keypoint) and ``visible`` (not
    ``outside``; every point of a ``points`` shape), ``(K, R, P)`` each."""
    if batch.family == "points":
        xy, has = points_columns(batch, rows_k)
        return xy, has, has
    _, xy, flags = keypoint_columns(batch, rows_k)
    return xy, flags[..., 0], flags[..., 1]


class SigmaAccumulator:
    """Spread of matched keypoints, summed chunk by chunk, per element label id."""

    def __init__(self) -> None:
        self.num: dict[int, float] = {}
        self.dof: dict[int, float] = {}

    def add(self, batch: ReplicaBatch, rows: IntArray) -> None:
        """Clusters ``rows (K, R)`` of a skeleton batch; clusters of one member carry no spread."""
        rows = rows[(rows >= 0).sum(axis=1) >= 2]
        if rows.shape[0] == 0:
            return
        kp_label, xy, flags = keypoint_columns(batch, rows)
        visible = flags[..., 0] & flags[..., 1]
        num, dof = keypoint_sigma_moments(np.moveaxis(xy, 1, 0), np.moveaxis(visible, 1, 0))
        for label_id, n, d in zip(kp_label.tolist(), num.tolist(), dof.tolist(), strict=True):
            self.num[label_id] = self.num.get(label_id, 0.0) + n
            self.dof[label_id] = self.dof.get(label_id, 0.0) + d

    def sigmas(self, default: float) -> dict[int, float]:
        """Element label id -> sigma (``default`` for keypoints never seen twice)."""
        ids = sorted(self.num)
        values = sigmas_from_moments([self.num[i] for i in ids], [self.dof[i] for i in ids], default=default)
        return dict(zip(ids, values.tolist(), strict=True))


def given_sigmas(table: Mapping[str, list[float]], labels: LabelSet) -> dict[int, float]:
    """Settings' ``skeleton label name -> sigmas (sublabel order)`` as element label id -> sigma."""
    out: dict[int, float] = {}
    for name, values in table.items():
        label = labels.by_name.get(name)
        if label is None or not label.sublabels:
            raise ConfigError(f"consensus settings: keypoint_sigmas: {name!r} is not a skeleton label of the task")
        if len(values) != len(label.sublabels):
            raise ConfigError(
                f"consensus settings: keypoint_sigmas: skeleton {name!r} has {len(label.sublabels)} keypoints "
                f"({', '.join(s.name for s in label.sublabels)}), got {len(values)} sigmas"
            )
        out.update({sub.id: float(v) for sub, v in zip(label.sublabels, values, strict=True)})
    return out


def sigmas_by_skeleton(element_sigmas: Mapping[int, float], labels: LabelSet) -> dict[str, tuple[float, ...]]:
    """For the report: skeleton label name -> sigma per sublabel (sublabel order), for the
    skeletons that have at least one keypoint in ``element_sigmas``; ``nan`` for keypoints without."""
    out: dict[str, tuple[float, ...]] = {}
    for label in labels:
        if label.sublabels and any(s.id in element_sigmas for s in label.sublabels):
            out[label.name] = tuple(float(element_sigmas.get(s.id, float("nan"))) for s in label.sublabels)
    return out
