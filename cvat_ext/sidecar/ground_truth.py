"""A task's ground truth as CVAT 2.73 holds it: its ``ground_truth`` job, once accepted.

CVAT counts a GT job only in stage ``acceptance`` or state ``completed`` (its quality reports
refuse it otherwise). The GT job's frame meta lists every task frame, with ``included_frames`` the
validation frames it covers; each of those is fully annotated in GT, so an object missing there is
a real miss. The workforce gold checks and the consensus engine's GT anchors read it here.

Two validation modes place the GT frames differently (``GET /api/tasks/{id}/validation_layout``):

* ``gt``: the validation frames are ordinary task frames, inside the annotation jobs: a job's GT
  frames are those within its frame range (:meth:`GroundTruth.within`);
* ``gt_pool`` ("honeypots"): the validation frames form a pool outside every annotation job, and
  each annotation job holds placeholder frames that show one of them. On honeypot frame ``h``
  showing validation frame ``r``, the GT objects of ``r`` are the truth of ``h``
  (:meth:`GroundTruth.for_job` copies them there). Replica jobs of a consensus task hold their
  parent's frames, so the parent's frame range selects the honeypots of all its replicas.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from cvat_ext.annotations.model import JobAnnotations, JobMeta, Shape, Tag
from cvat_ext.cvat.records import ValidationLayout
from cvat_ext.errors import CvatNotFoundError, CvatPermissionError
from cvat_ext.sidecar.expiring import ExpiringCache
from cvat_ext.sidecar.state import JobRow

log = logging.getLogger(__name__)

_T = TypeVar("_T", Shape, Tag)


class LayoutSource(Protocol):
    """The CVAT call the honeypot mapping needs (:class:`~cvat_ext.cvat.client.CvatClient` has it)."""

    def get_validation_layout(self, task_id: int) -> ValidationLayout: ...


class JobReader(Protocol):
    """The cycle's cached reads (one CVAT call per job version)."""

    def annotations(self, job: JobRow) -> JobAnnotations: ...

    def meta(self, job_id: int) -> JobMeta: ...


@dataclass(frozen=True)
class GroundTruth:
    """The accepted GT job ``job_id`` of a task: its annotations and the task frames it covers
    (sorted, deleted frames excluded); ``updated_date`` says which version was read."""

    job_id: int
    updated_date: str
    annotations: JobAnnotations
    frames: tuple[int, ...]

    def within(self, start_frame: int, stop_frame: int) -> tuple[int, ...]:
        """The GT frames inside ``start_frame..stop_frame`` (inclusive): a parent job's share."""
        return tuple(f for f in self.frames if start_frame <= f <= stop_frame)

    def for_job(self, meta: JobMeta, honeypots: Sequence[tuple[int, int]] = ()) -> JobTruth:
        """The truth of one (parent) job: its own GT frames, plus each honeypot ``(h, r)`` (a
        placeholder frame ``h`` of the job showing validation frame ``r``) whose ``r`` this GT
        covers, with the GT shapes and tags of ``r`` copied onto ``h`` (honeypot tasks have no
        tracks: CVAT allows them for image tasks only). Deleted frames of the job are left out."""
        deleted = set(meta.deleted_frames)
        own = [f for f in self.within(meta.start_frame, meta.stop_frame) if f not in deleted]
        covered = set(self.frames)
        used = [(h, r) for h, r in honeypots
                if r in covered and meta.start_frame <= h <= meta.stop_frame and h not in deleted]
        gt = self.annotations
        if used:
            shapes, tags = _by_frame(gt.shapes), _by_frame(gt.tags)
            gt = replace(
                gt,
                shapes=gt.shapes + tuple(_on_frame(s, h) for h, r in used for s in shapes.get(r, ())),
                tags=gt.tags + tuple(replace(t, frame=h) for h, r in used for t in tags.get(r, ())),
            )
        frames = tuple(sorted({*own, *(h for h, _ in used)}))
        return JobTruth(self.job_id, gt, frames, len(used))


@dataclass(frozen=True)
class JobTruth:
    """What a job is measured against: the GT annotations (honeypot copies included) and the
    job's frames they fully cover (``frames``, sorted; ``honeypots`` of them are honeypot frames)."""

    gt_job_id: int
    annotations: JobAnnotations
    frames: tuple[int, ...]
    honeypots: int = 0


def _by_frame(objects: Iterable[_T]) -> dict[int, list[_T]]:
    """``objects`` (shapes or tags) grouped by their ``frame``."""
    grouped: dict[int, list[_T]] = {}
    for obj in objects:
        grouped.setdefault(obj.frame, []).append(obj)
    return grouped


def _on_frame(shape: Shape, frame: int) -> Shape:
    """``shape`` (and a skeleton's points) moved to task frame ``frame``."""
    return replace(shape, frame=frame, elements=tuple(_on_frame(e, frame) for e in shape.elements))


def accepted_gt_job(jobs: Iterable[JobRow]) -> JobRow | None:
    """The task's GT job when CVAT counts it (stage acceptance or state completed), else None."""
    for job in jobs:
        if job.type == "ground_truth" and (job.stage == "acceptance" or job.state == "completed"):
            return job
    return None


def read_ground_truth(jobs: Iterable[JobRow], reader: JobReader) -> GroundTruth | None:
    """Read the accepted GT job among a task's ``jobs`` (the state store's job cache): None when
    the task has none, when its meta lists no validation frames, or when nothing is drawn in it
    (said in the log): the one rule for the consensus estimates and the workforce gold checks."""
    gt = accepted_gt_job(jobs)
    if gt is None:
        return None
    meta = reader.meta(gt.id)
    # a GT job's meta spans the whole task: only included_frames are annotated in GT
    frames = tuple(sorted(set(meta.included_frames or ()) - set(meta.deleted_frames)))
    if not frames:
        return None
    annotations = reader.annotations(gt)
    if not (annotations.shapes or annotations.tracks or annotations.tags):
        # every GT frame would say "nothing here": far likelier a GT job accepted before anyone
        # annotated it than a validation set of empty frames, and it would call every object spurious
        log.warning("task GT job %d is accepted but has no annotations: not used as ground truth", gt.id)
        return None
    return GroundTruth(gt.id, gt.updated_date, annotations, frames)


class Honeypots:
    """Each task's honeypots, read from its validation layout at most once per ``ttl_s`` and GT
    version (``max_tasks`` kept). A layout CVAT will not give (404: a server older than 2.20; 403:
    no permission) is said once per task in the log, and every time in :meth:`of`'s reason."""

    def __init__(
        self, client: LayoutSource, *, ttl_s: float, clock: Callable[[], float], max_tasks: int = 1024
    ) -> None:
        self.client = client
        self._cache: ExpiringCache[tuple[int, str], tuple[tuple[tuple[int, int], ...], str | None]] = ExpiringCache(
            ttl_s=ttl_s, clock=clock, max_entries=max_tasks
        )
        self._said: set[int] = set()

    def of(self, task_id: int, gt_version: str) -> tuple[tuple[tuple[int, int], ...], str | None]:
        """The task's ``(honeypot frame, real frame)`` pairs (empty outside ``gt_pool`` mode), and
        None, or no pairs and why the layout could not be read."""
        hit = self._cache.get((task_id, gt_version))
        if hit is not None:
            return hit
        try:
            layout = self.client.get_validation_layout(task_id)
        except (CvatNotFoundError, CvatPermissionError) as exc:
            why = (f"the task's validation layout could not be read (CVAT answered {exc.status}; "
                   "a server before 2.20 has none, 403: the bot may not read it): honeypot frames are not used")
            if task_id not in self._said:
                self._said.add(task_id)
                log.warning("task %d: %s: %s", task_id, why, exc)
            return self._cache.put((task_id, gt_version), ((), why))
        return self._cache.put((task_id, gt_version), (layout.active_honeypots(), None))

    def truth_for(self, task_id: int, gt: GroundTruth, meta: JobMeta) -> tuple[JobTruth, str | None]:
        """What the job of ``meta`` in task ``task_id`` is measured against (:meth:`GroundTruth.for_job`
        with the task's honeypots), and why honeypots were not used, or None: the one view of GT that
        the consensus engine and the workforce gold checks share."""
        pairs, unread = self.of(task_id, gt.updated_date)
        return gt.for_job(meta, pairs), unread
