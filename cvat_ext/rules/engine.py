"""Run a rule pack over one job's annotations, frame by frame.

Outline of :func:`iter_findings`:

1. pick the pack's rules that apply (enabled, project/task scope) and build one checker each;
2. track-level checks on the job's tracks (keyframes);
3. stream the frames (:func:`cvat_ext.annotations.tracks.iter_frames`, tracks expanded): every
   frame of the job (empty ones too, for frame-tag rules) plus any annotated frame beyond it,
   packed into a columnar :class:`~cvat_ext.rules.frame_batch.FrameBatch` of consecutive frames
   (a few thousand objects), shared by all checkers;
4. job-level conclusions (e.g. bone-length medians) once the last frame has passed.

Only one batch is alive at a time, so memory does not grow with the job's length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from cvat_ext.annotations.model import FrameAnnotations, JobAnnotations, JobMeta, LabelSet
from cvat_ext.annotations.tracks import iter_frames
from cvat_ext.errors import AnnotationFormatError
from cvat_ext.qa.findings import Finding
from cvat_ext.rules.frame_batch import build_frame_batch
from cvat_ext.rules.kinds import CHECKERS, Checker, JobContext
from cvat_ext.rules.loader import RulePack
from cvat_ext.rules.schema import RuleBase

logger = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 4096
MAX_BATCH_FRAMES = 256

#: ``progress(frames_done, frames_total)``, called after each batch of frames
Progress = Callable[[int, int], None]


def applicable(rule: RuleBase, *, project_id: int | None, task_id: int | None) -> bool:
    """Enabled and inside the rule's project/task scope (a scoped rule needs the id to match)."""
    if not rule.enabled:
        return False
    scope = rule.scope
    if scope.projects is not None and project_id not in scope.projects:
        return False
    return scope.tasks is None or task_id in scope.tasks


class _FrameSizes:
    """Frame index -> (width, height) from the job meta; (0, 0) for frames the meta cannot size."""

    def __init__(self, meta: JobMeta) -> None:
        self.meta = meta
        self.cache: dict[int, tuple[int, int]] = {}

    def __call__(self, frame_idx: int) -> tuple[int, int]:
        size = self.cache.get(frame_idx)
        if size is None:
            try:
                info = self.meta.frame_info(frame_idx)
                size = (info.width, info.height)
            except AnnotationFormatError as exc:
                logger.warning("%s; size rules relative to the frame are skipped there", exc)
                size = (0, 0)
            self.cache[frame_idx] = size
        return size


def _run_batch(
    checkers: list[Checker[Any]], frames: list[FrameAnnotations], frame_size: _FrameSizes, ctx: JobContext
) -> Iterator[Finding]:
    batch = build_frame_batch(frames, [frame_size(f.frame) for f in frames], ctx.index)
    for checker in checkers:
        yield from checker.check_batch(batch)


def iter_findings(
    ann: JobAnnotations,
    labels: LabelSet,
    meta: JobMeta,
    pack: RulePack,
    *,
    job_id: int | None,
    annotator: str | None,
    project_id: int | None = None,
    task_id: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
) -> Iterator[Finding]:
    """Findings of ``pack`` on one job, lazily: track findings, then batches of consecutive frames
    (findings of one batch grouped by rule), then job-level ones. ``batch_rows`` bounds the objects
    held at once (a batch closes once it reaches this many objects or 256 frames). ``progress`` is
    told ``(frames_done, frames_total)`` after each batch."""
    ctx = JobContext(labels=labels, job_id=job_id, annotator=annotator, actions=pack.actions)
    checkers: list[Checker[Any]] = [
        CHECKERS[rule.kind](rule, ctx)
        for rule in pack.rules
        if applicable(rule, project_id=project_id, task_id=task_id)
    ]
    if not checkers:
        return
    frame_size = _FrameSizes(meta)

    # 1. whole tracks
    for checker in checkers:
        yield from checker.check_tracks(ann, frame_size, meta.stop_frame)

    # 2. frame by frame: the job's frames (empty ones included) and any annotated frame outside them,
    #    packed into batches of consecutive frames so row-wise rules run once per batch
    frames = set(meta.frame_indices()) | set(ann.frames())
    pending: list[FrameAnnotations] = []
    rows = done = 0
    for frame in iter_frames(ann, frames=frames, last_frame=meta.stop_frame):
        pending.append(frame)
        rows += len(frame.shapes)
        if rows >= batch_rows or len(pending) >= MAX_BATCH_FRAMES:
            yield from _run_batch(checkers, pending, frame_size, ctx)
            done += len(pending)
            if progress is not None:
                progress(done, len(frames))
            pending, rows = [], 0
    if pending:
        yield from _run_batch(checkers, pending, frame_size, ctx)
        if progress is not None:
            progress(done + len(pending), len(frames))

    # 3. conclusions that needed every frame
    for checker in checkers:
        yield from checker.finish()


def check_job(
    ann: JobAnnotations,
    labels: LabelSet,
    meta: JobMeta,
    pack: RulePack,
    *,
    job_id: int | None,
    annotator: str | None,
    project_id: int | None = None,
    task_id: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
) -> list[Finding]:
    """All findings of ``pack`` on one job, sorted by frame, then by the rule's place in the pack.

    ``annotator`` is the job's assignee (every object of a job is by its annotator). Rules scoped to
    projects/tasks apply only when ``project_id``/``task_id`` match.
    """
    found = iter_findings(
        ann,
        labels,
        meta,
        pack,
        job_id=job_id,
        annotator=annotator,
        project_id=project_id,
        task_id=task_id,
        batch_rows=batch_rows,
        progress=progress,
    )
    order = {rule.id: i for i, rule in enumerate(pack.rules)}
    return sorted(found, key=lambda f: (f.frame, order.get(f.code, 0)))
