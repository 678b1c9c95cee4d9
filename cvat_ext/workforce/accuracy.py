"""One annotator's accuracy on one consensus job, as a manager reads it.

The consensus engine (issue 11) estimates each annotator's precision, recall, F1, mean IoU and
label accuracy *against the latent truth* (``AnnotatorStats.truth_estimate``, with standard
errors and the number of ground-truth objects that informed them). Before it, and whenever an
estimate is absent, the only figure is the annotator's F1 *against the consensus* of the
replicas, which is agreement, not accuracy. :class:`AnnotatorAccuracy` carries both, and
:meth:`AnnotatorAccuracy.text` is the one wording used by the issues, the task guide and the
report pages, so no figure ever appears unlabeled.

Stored in the sidecar's ``scores.detail["annotators"]`` as :meth:`as_dict` (JSON).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cvat_ext.consensus.report import AnnotatorStats

#: the metrics of a truth estimate, in the engine's key names
TRUTH_METRICS = ("precision", "recall", "f1", "mean_iou", "label_accuracy")
#: ``±`` is followed by one standard error, as in the engine's own report lines


@dataclass(frozen=True)
class AnnotatorAccuracy:
    """``name``: the annotator (CVAT username, :mod:`cvat_ext.cvat.annotators`) of replica ``job_id``;
    ``vs_consensus_f1`` in [0, 1] (NaN-free: 0 when nothing was comparable); ``truth``: metric ->
    estimate in [0, 1] and ``truth_se``: metric -> standard error (empty without an estimate);
    ``gt_objects``: ground-truth objects behind the estimate (0 without GT)."""

    name: str
    job_id: int
    vs_consensus_f1: float
    truth: Mapping[str, float]
    truth_se: Mapping[str, float]
    gt_objects: int = 0

    @property
    def estimated(self) -> bool:
        return "f1" in self.truth

    @classmethod
    def from_stats(cls, stats: AnnotatorStats, job_id: int) -> AnnotatorAccuracy:
        """From the engine's per-annotator report (NaN figures: nothing to estimate, left out)."""
        est = stats.truth_estimate or {}
        return cls(
            name=stats.annotator,
            job_id=job_id,
            vs_consensus_f1=_finite(stats.vs_consensus_f1),
            truth={k: _finite(est[k]) for k in TRUTH_METRICS if _number(est.get(k))},
            truth_se={k: _finite(v) for k, v in (est.get("se") or {}).items() if k in TRUTH_METRICS and _number(v)},
            gt_objects=int(est.get("gt_objects") or 0),
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["truth"], out["truth_se"] = dict(self.truth), dict(self.truth_se)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnnotatorAccuracy:
        return cls(
            name=str(data["name"]),
            job_id=int(data["job_id"]),
            vs_consensus_f1=float(data["vs_consensus_f1"]),
            truth={str(k): float(v) for k, v in (data.get("truth") or {}).items()},
            truth_se={str(k): float(v) for k, v in (data.get("truth_se") or {}).items()},
            gt_objects=int(data.get("gt_objects") or 0),
        )

    def f1_text(self) -> str:
        """The F1 with what it is measured against: ``est. F1 0.82 ± 0.04`` (± one standard error) or
        ``F1 vs consensus 0.78``."""
        if not self.estimated:
            return f"F1 vs consensus {self.vs_consensus_f1:.2f}"
        return f"est. F1 {self.truth['f1']:.2f}{_pm(self.truth_se.get('f1'))}"

    def text(self) -> str:
        """The full line: the estimate vs truth (F1, mean IoU, GT objects), or the labelled vs-consensus F1."""
        if not self.estimated:
            return f"F1 vs consensus {self.vs_consensus_f1:.2f} (no truth estimate)"
        parts = [self.f1_text()]
        if "mean_iou" in self.truth:
            parts.append(f"mean IoU {self.truth['mean_iou']:.2f}{_pm(self.truth_se.get('mean_iou'))}")
        gt = f"{self.gt_objects} GT objects" if self.gt_objects else "no GT"
        return f"{', '.join(parts)} vs truth ({gt})"

    def said(self) -> str:
        """What a consensus finding on this annotator's replica quotes: ``ann3: est. F1 …``."""
        return f"{self.name}: {self.text()}"


def _pm(se: float | None) -> str:
    return "" if se is None else f" ± {se:.2f}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


def _finite(value: Any) -> float:
    v = float(value)
    return 0.0 if not math.isfinite(v) else v  # NaN (nothing to compare) counts as no agreement


def accuracies_of(detail: Mapping[str, Any]) -> list[AnnotatorAccuracy]:
    """The per-annotator figures a consensus score row keeps (``ScoreRow.detail``). Rows written
    before annotators were named keep only ``replicas`` (job id -> F1 vs consensus): those read as
    ``job<ID>`` without an estimate."""
    if "annotators" in detail:
        return [AnnotatorAccuracy.from_dict(a) for a in detail["annotators"]]
    return [
        AnnotatorAccuracy(f"job{job_id}", int(job_id), float(value), {}, {})
        for job_id, value in sorted(detail.get("replicas", {}).items(), key=lambda kv: int(kv[0]))
    ]


@dataclass(frozen=True)
class AccuracySummary:
    """One annotator over several jobs: ``f1`` / ``mean_iou`` the mean estimate over the ``estimated``
    jobs that had one, with the standard error of that mean (jobs taken as independent); ``gt_objects``
    summed; ``vs_consensus_f1`` the mean over all ``jobs``."""

    name: str
    jobs: int
    estimated: int
    f1: float | None
    f1_se: float | None
    mean_iou: float | None
    mean_iou_se: float | None
    gt_objects: int
    vs_consensus_f1: float

    def f1_text(self) -> str:
        """``0.820 ± 0.030`` (the estimate vs truth ± one standard error), or ``—`` when no job had one."""
        return _estimate_text(self.f1, self.f1_se)

    def mean_iou_text(self) -> str:
        return _estimate_text(self.mean_iou, self.mean_iou_se)


def _estimate_text(value: float | None, se: float | None) -> str:
    return "—" if value is None else f"{value:.3f}" + ("" if se is None else f" ± {se:.3f}")


def summarise(accuracies: Sequence[AnnotatorAccuracy]) -> list[AccuracySummary]:
    """Group by annotator name (sorted)."""
    by_name: dict[str, list[AnnotatorAccuracy]] = {}
    for a in accuracies:
        by_name.setdefault(a.name, []).append(a)
    return [combine(name, group) for name, group in sorted(by_name.items())]


def combine(name: str, group: Sequence[AnnotatorAccuracy]) -> AccuracySummary:
    """One annotator's jobs (``group``, not empty) as one summary."""
    f1, f1_se = _mean_se(group, "f1")
    iou, iou_se = _mean_se(group, "mean_iou")
    return AccuracySummary(
        name=name, jobs=len(group), estimated=sum(a.estimated for a in group), f1=f1, f1_se=f1_se,
        mean_iou=iou, mean_iou_se=iou_se, gt_objects=sum(a.gt_objects for a in group),
        vs_consensus_f1=float(np.mean([a.vs_consensus_f1 for a in group])),
    )


def _mean_se(group: Sequence[AnnotatorAccuracy], metric: str) -> tuple[float | None, float | None]:
    values = np.array([a.truth[metric] for a in group if metric in a.truth])
    if not len(values):
        return None, None
    ses = np.array([a.truth_se[metric] for a in group if metric in a.truth and metric in a.truth_se])
    se = float(np.sqrt(np.sum(ses**2)) / len(values)) if len(ses) == len(values) else None
    return float(values.mean()), se


def gt_check_line(parent_job_id: int, gt: Mapping[str, Any]) -> str:
    """The calibration check of one parent job: the model's own error (estimate minus what GT
    measured) per annotator on the GT frames, F1 and mean IoU."""
    errors = gt.get("model_error") or {}

    def signed(v: Any) -> str:
        return "n/a" if v is None else f"{v:+.2f}"

    per = "; ".join(f"{name}: F1 {signed(e.get('f1'))}, mean IoU {signed(e.get('mean_iou'))}"
                    for name, e in sorted(errors.items()))
    honeypots = f" ({gt['honeypots']} of them honeypots)" if gt.get("honeypots") else ""
    unread = f" {gt['honeypots_unread'][0].upper()}{gt['honeypots_unread'][1:]}." if gt.get("honeypots_unread") else ""
    return (f"Ground-truth check, job {parent_job_id}: GT job {gt.get('job_id')}, {gt.get('frames', 0)} frames"
            f"{honeypots}, {gt.get('objects', 0)} objects; estimate minus GT on those frames: {per or 'n/a'}.{unread}")

