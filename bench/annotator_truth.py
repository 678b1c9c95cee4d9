"""What a ground-truth evaluation says about one set of annotations: the yardstick of issue 11.

:func:`truth_scores` compares an annotator's (or the merge's) annotations with the truth, frame by
frame, the way a manager's GT evaluation would:

* similarity from the engine's own kernels (:func:`cvat_ext.geometry.similarity_matrix`: IoU for
  boxes, pixel IoU for masks and polygons, OKS for skeletons), with the job's settings
  (``oks_sigma``, frame size);
* an optimal one-to-one matching per frame (``linear_sum_assignment`` maximising the total
  similarity of the pairs at or above the match threshold), regardless of label: a wrong label
  is a matched object with a wrong label, counted by ``label_accuracy``, not a miss plus an extra;
* precision = matched / drawn, recall = matched / truth, F1 = 2 matched / (drawn + truth), mean IoU
  (OKS for skeletons) of the matched pairs, label accuracy = matched pairs with the truth's label /
  matched pairs.

``truth_iou`` keeps, per truth object, the similarity of its match (NaN: missed), so two sets of
annotations can be compared on the objects both found (a mean over matched objects alone favours
whoever drops the hard, small ones). ``frames`` restricts the evaluation to a frame subset (a GT
job's frames). Used by
``bench/annotator_quality.py``, ``bench/consensus_bench.py`` and the tests.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from cvat_ext.annotations.model import JobAnnotations, JobMeta, Shape
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.geometry import SimilarityParams, similarity_matrix


@dataclass(frozen=True, eq=False)
class TruthScores:
    """One set of annotations against the truth (see the module docstring for the definitions).

    ``mean_iou`` is NaN when nothing matched; counts are objects. ``truth_iou`` (truth,) float64:
    the similarity of each truth object's match, NaN when missed, truth objects in frame order
    and, within a frame, in the order of ``truth.shapes``."""

    precision: float
    recall: float
    f1: float
    mean_iou: float
    label_accuracy: float
    matched: int
    drawn: int
    truth: int
    truth_iou: npt.NDArray[np.float64]

    def get(self, metric: str) -> float:
        """The figure named ``metric`` (``precision``, ``recall``, ``f1``, ``mean_iou``, ``label_accuracy``)."""
        return float(getattr(self, metric))


def params_for(settings: ConsensusSettings, meta: JobMeta) -> SimilarityParams:
    """The similarity parameters the engine uses for a job with these settings (one frame size:
    the generated jobs have one; the first frame's is taken)."""
    info = meta.frames[0] if meta.frames else None
    return SimilarityParams(
        iou_thr=settings.iou_thr,
        oks_sigma=settings.oks_sigma,
        line_thickness=settings.line_thickness,
        image_wh=(info.width, info.height) if info is not None else (0, 0),
    )


def _by_frame(ann: JobAnnotations, frames: Collection[int] | None) -> dict[int, list[Shape]]:
    out: dict[int, list[Shape]] = {}
    for s in ann.shapes:
        if frames is None or s.frame in frames:
            out.setdefault(s.frame, []).append(s)
    return out


def truth_scores(
    pred: JobAnnotations,
    truth: JobAnnotations,
    *,
    iou_thr: float = 0.5,
    params: SimilarityParams | None = None,
    frames: Collection[int] | None = None,
) -> TruthScores:
    """``pred`` against ``truth`` at match threshold ``iou_thr`` (IoU, OKS for skeletons).

    ``params``: the similarity parameters (:func:`params_for`; default: the kernels' defaults);
    ``frames``: evaluate only these frames (None: every frame either side annotated)."""
    params = params or SimilarityParams()
    keep = None if frames is None else frozenset(frames)
    p_by, t_by = _by_frame(pred, keep), _by_frame(truth, keep)
    matched = drawn = n_truth = same_label = 0
    ious: list[float] = []
    truth_iou: list[np.ndarray] = []
    for frame in sorted(p_by.keys() | t_by.keys()):
        p, t = p_by.get(frame, []), t_by.get(frame, [])
        drawn += len(p)
        n_truth += len(t)
        frame_iou = np.full(len(t), np.nan)
        truth_iou.append(frame_iou)
        if not p or not t:
            continue
        sim = similarity_matrix(p, t, params)
        # pairs below the threshold weigh nothing: the assignment maximises the matched similarity
        rows, cols = linear_sum_assignment(np.where(sim >= iou_thr, sim, 0.0), maximize=True)
        ok = sim[rows, cols] >= iou_thr
        rows, cols = rows[ok], cols[ok]
        matched += len(rows)
        ious.extend(sim[rows, cols].tolist())
        frame_iou[cols] = sim[rows, cols]
        same_label += sum(p[i].label_id == t[j].label_id for i, j in zip(rows.tolist(), cols.tolist(), strict=True))
    return TruthScores(
        precision=matched / drawn if drawn else 0.0,
        recall=matched / n_truth if n_truth else 0.0,
        f1=2 * matched / (drawn + n_truth) if drawn + n_truth else 0.0,
        mean_iou=float(np.mean(ious)) if ious else float("nan"),
        label_accuracy=same_label / matched if matched else 0.0,
        matched=matched,
        drawn=drawn,
        truth=n_truth,
        truth_iou=np.concatenate(truth_iou) if truth_iou else np.zeros(0),
    )
