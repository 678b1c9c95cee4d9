"""An annotator's accuracy on gold frames: their job against the task's ground-truth job.

Gold frames are the frames of the annotator's job that the GT job fully covers: in validation mode
``gt`` the GT frames inside the job's range, in mode ``gt_pool`` also the job's honeypot frames,
whose gold is the GT of the validation frame each one shows (the collector takes both from
:meth:`~cvat_ext.sidecar.ground_truth.GroundTruth.for_job`, the view the consensus engine gets).
Both sides are cut to those frames (tracks expanded to their shapes there) and matched by the
consensus engine as a pair, labels kept apart (``match_across_labels=False``: a wrong label is a
miss and an extra), at the job's IoU threshold. The accuracy is the pair's F1, ``2·matched / (gold
objects + annotator objects)``: 1 when every gold object is drawn once with its label, lower for
misses, extras, wrong labels and poor overlap alike. A gold frame that both leave empty counts as
agreement on nothing: only frames count, not objects, toward ``frames``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cvat_ext.annotations.model import JobAnnotations, JobMeta, LabelSet
from cvat_ext.annotations.tracks import expand_track

WORST_FRAMES = 5


@dataclass(frozen=True)
class GoldCheck:
    """One job measured on gold: ``f1`` over ``frames`` gold frames holding ``gold_objects``,
    ``honeypots`` of those frames being honeypots (``gt_pool`` placeholders)."""

    job_id: int
    frames: int
    gold_objects: int
    objects: int
    matched: int
    #: the gold frames where the job did worst: ``(frame, F1)``, worst first, at most five, F1 < 1
    worst_frames: tuple[tuple[int, float], ...] = ()
    honeypots: int = 0

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
               labels: LabelSet, meta: JobMeta, *, iou_thr: float, honeypots: int = 0) -> GoldCheck | None:
    """The job's accuracy on ``gold_frames`` (task frames; those its ``meta`` covers), ``honeypots``
    of them honeypot frames with ``gold`` on them; None when it covers none."""
    from cvat_ext.consensus import ConsensusSettings, score_replicas

    frames = {f for f in gold_frames if meta.start_frame <= f <= meta.stop_frame}
    if not frames:
        return None
    gold_part = _on_frames(gold, frames, meta.stop_frame)
    work_part = _on_frames(work, frames, meta.stop_frame)
    n_gold = len(gold_part.shapes) + len(gold_part.tags)
    n_work = len(work_part.shapes) + len(work_part.tags)
    if n_gold == 0 or n_work == 0:
        one_sided = sorted({s.frame for s in (gold_part.shapes or work_part.shapes)} |
                           {t.frame for t in (gold_part.tags or work_part.tags)})
        return GoldCheck(job_id, len(frames), n_gold, n_work, 0, tuple((f, 0.0) for f in one_sided[:WORST_FRAMES]),
                         honeypots)
    settings = ConsensusSettings(iou_thr=iou_thr, match_across_labels=False, estimate_reliability=False)
    result = score_replicas({"gold": gold_part, "annotator": work_part}, labels, meta, settings)
    (pair,) = result.pairs
    # with two "annotators", a frame's F1 is the job's accuracy on that gold frame
    scored = [(int(f.frame), float(f.f1)) for f in result.iter_frames() if f.f1 == f.f1 and f.f1 < 1.0]
    worst = tuple(sorted(scored, key=lambda t: (t[1], t[0]))[:WORST_FRAMES])
    return GoldCheck(job_id, len(frames), n_gold, n_work, int(pair.matched), worst, honeypots)
