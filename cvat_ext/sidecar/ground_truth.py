"""A task's ground truth as CVAT 2.73 holds it: its ``ground_truth`` job, once accepted.

CVAT counts a GT job only in stage ``acceptance`` or state ``completed`` (its quality reports
refuse it otherwise). The GT job's frame meta lists every task frame, with ``included_frames`` the
validation frames it covers; each of those is fully annotated in GT, so an object missing there is
a real miss. The workforce gold checks and the consensus engine's GT anchors read it here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from cvat_ext.annotations.model import JobAnnotations, JobMeta
from cvat_ext.sidecar.state import JobRow


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


def accepted_gt_job(jobs: Iterable[JobRow]) -> JobRow | None:
    """The task's GT job when CVAT counts it (stage acceptance or state completed), else None."""
    for job in jobs:
        if job.type == "ground_truth" and (job.stage == "acceptance" or job.state == "completed"):
            return job
    return None


def read_ground_truth(jobs: Iterable[JobRow], reader: JobReader) -> GroundTruth | None:
    """Read the accepted GT job among a task's ``jobs`` (the state store's job cache): None when
    the task has none, or when its meta lists no validation frames."""
    gt = accepted_gt_job(jobs)
    if gt is None:
        return None
    meta = reader.meta(gt.id)
    # a GT job's meta spans the whole task: only included_frames are annotated in GT
    frames = tuple(sorted(set(meta.included_frames or ()) - set(meta.deleted_frames)))
    if not frames:
        return None
    return GroundTruth(gt.id, gt.updated_date, reader.annotations(gt), frames)
