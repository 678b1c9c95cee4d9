"""An annotator's accuracy on gold frames: their job against the task's ground-truth job.

Gold frames are the GT job's frames that the annotator's job covers. Both sides are cut to those
frames (tracks expanded to their shapes there) and matched by the consensus engine as a pair,
labels kept apart (``match_across_labels=False``: a wrong label is a miss and an extra), at the
job's IoU threshold. The accuracy is the pair's F1, ``2·matched / (gold objects + annotator
objects)``: 1 when every gold object is drawn once with its label, lower for misses, extras, wrong
labels and poor overlap alike. A gold frame that both leave empty counts as agreement on nothing:
only frames count, not objects, toward ``frames``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet
from cvat_ext.annotations.tracks import expand_track


@dataclass(frozen=True)
class GoldCheck:
    """One job measured on gold: ``f1`` over ``frames`` gold frames holding ``gold_objects``."""

    job_id: int
    frames: int
    gold_objects: int
    objects: int
    matched: int

    @property
    def f1(self) -> float:
        total = self.gold_objects + self.objects
        return 1.0 if total == 0 else 2.0 * self.matched / total


def _on_frames(ann: JobAnnotations, frames: set[int], last_frame: int) -> JobAnnotations:
    shapes = [s for s in ann.shapes if s.frame in frames]
    for track in ann.tracks:
        shapes += [s for s in expand_track(track, last_frame=last_frame) if s.frame in frames and not s.outside]
    return JobAnnotations(tags=tuple(t for t in ann.tags if t.frame in frames), shapes=tuple(shapes))


def gold_check(job_id: int, work: JobAnnotations, gold: JobAnnotations, gold_frames: Iterable[int],
               labels: LabelSet, meta: JobMeta, *, iou_thr: float) -> GoldCheck | None:
    """The job's accuracy on ``gold_frames`` (those its ``meta`` covers); None when it covers none."""
    from cvat_ext.consensus import ConsensusSettings, score_replicas

    frames = {f for f in gold_frames if meta.start_frame <= f <= meta.stop_frame}
    if not frames:
        return None
    gold_part = _on_frames(gold, frames, meta.stop_frame)
    work_part = _on_frames(work, frames, meta.stop_frame)
    n_gold = len(gold_part.shapes) + len(gold_part.tags)
    n_work = len(work_part.shapes) + len(work_part.tags)
    if n_gold == 0 or n_work == 0:
        return GoldCheck(job_id, len(frames), n_gold, n_work, 0)
    settings = ConsensusSettings(iou_thr=iou_thr, match_across_labels=False, estimate_reliability=False)
    result = score_replicas({"gold": gold_part, "annotator": work_part}, labels, meta, settings)
    (pair,) = result.pairs
    return GoldCheck(job_id, len(frames), n_gold, n_work, int(pair.matched))
