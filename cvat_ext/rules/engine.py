"""Run a rule pack over one job's annotations, frame by frame.

Outline of :func:`iter_findings`:

1. pick the pack's rules that apply (enabled, project/task scope) and build one checker each;
2. track-level checks on the job's tracks (keyframes);
3. stream the frames (:func:`cvat_ext.annotations.tracks.iter_frames`, tracks expanded; or cut
   from the frame-sorted columns of a :class:`~cvat_ext.annotations.columnar_json.ReplicaColumns`):
   every frame of the job (empty ones too, for frame-tag rules) plus any annotated frame beyond
   it, packed into a columnar :class:`~cvat_ext.rules.frame_batch.FrameBatch` of consecutive
   frames (a few thousand objects), shared by all checkers;
4. job-level conclusions (e.g. bone-length medians) once the last frame has passed.

Only one batch is alive at a time, so memory does not grow with the job's length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Required, TypedDict, Unpack

import numpy as np

from cvat_ext.annotations.columnar_json import ReplicaColumns
from cvat_ext.annotations.model import FrameAnnotations, JobAnnotations, JobMeta, LabelSet
from cvat_ext.annotations.tracks import iter_frames
from cvat_ext.errors import AnnotationFormatError
from cvat_ext.qa.findings import Finding
from cvat_ext.rules.frame_batch import FrameBatch, LabelIndex, build_frame_batch, build_table_batch
from cvat_ext.rules.kinds import CHECKERS, Checker, JobContext
from cvat_ext.rules.loader import RulePack
from cvat_ext.rules.schema import RuleBase

logger = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 4096
MAX_BATCH_FRAMES = 256

#: ``progress(frames_done, frames_total)``, called after each batch of frames
Progress = Callable[[int, int], None]


class RunOptions(TypedDict, total=False):
    """The keyword arguments of :func:`iter_findings` and :func:`check_job`.

    ``job_id``, ``annotator`` (the job's assignee: every object of a job is by its annotator) are
    put on the findings; rules scoped to projects/tasks apply only when ``project_id``/``task_id``
    match; ``batch_rows`` (default :data:`DEFAULT_BATCH_ROWS`) bounds the objects held at once;
    ``progress`` is told ``(frames_done, frames_total)`` after each batch."""

    job_id: Required[int | None]
    annotator: Required[str | None]
    project_id: int | None
    task_id: int | None
    batch_rows: int
    progress: Progress | None


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


def _object_batches(
    ann: JobAnnotations, frames: set[int], meta: JobMeta, batch_rows: int, frame_size: _FrameSizes, index: LabelIndex
) -> Iterator[tuple[FrameBatch, int]]:
    """Batches of consecutive frames of ``ann`` (tracks expanded) and how many frames each holds."""
    pending: list[FrameAnnotations] = []
    rows = 0
    for frame in iter_frames(ann, frames=frames, last_frame=meta.stop_frame):
        pending.append(frame)
        rows += len(frame.shapes)
        if rows >= batch_rows or len(pending) >= MAX_BATCH_FRAMES:
            yield build_frame_batch(pending, [frame_size(f.frame) for f in pending], index), len(pending)
            pending, rows = [], 0
    if pending:
        yield build_frame_batch(pending, [frame_size(f.frame) for f in pending], index), len(pending)


def _table_batches(
    columns: ReplicaColumns, frames: set[int], batch_rows: int, frame_size: _FrameSizes, index: LabelIndex
) -> Iterator[tuple[FrameBatch, int]]:
    """The same batches cut from a table: the same frames (every row's frame is among ``frames``,
    so a batch's rows are one run of the frame-sorted table), cut where the object path cuts."""
    table = columns.shapes
    wanted = np.array(sorted(frames), dtype=np.int64)
    lo = np.searchsorted(table.frame, wanted, side="left")
    hi = np.searchsorted(table.frame, wanted, side="right")
    visible_before = np.concatenate(([0], np.cumsum(~table.outside)))
    first = 0
    rows = 0
    for k in range(wanted.shape[0]):
        rows += int(hi[k] - lo[k])
        last = k == wanted.shape[0] - 1
        if rows >= batch_rows or k + 1 - first >= MAX_BATCH_FRAMES or last:
            part = wanted[first : k + 1]
            run = np.arange(lo[first], hi[k], dtype=np.int64)
            counts = visible_before[hi[first : k + 1]] - visible_before[lo[first : k + 1]]
            batch = build_table_batch(
                table,
                run[~table.outside[run]],
                part,
                counts,
                [columns.tags.get(f, ()) for f in part.tolist()],
                [frame_size(f) for f in part.tolist()],
                index,
            )
            yield batch, int(part.shape[0])
            first, rows = k + 1, 0


def iter_findings(
    ann: JobAnnotations | ReplicaColumns,
    labels: LabelSet,
    meta: JobMeta,
    pack: RulePack,
    **options: Unpack[RunOptions],
) -> Iterator[Finding]:
    """Findings of ``pack`` on one job, lazily: track findings, then batches of consecutive frames
    (findings of one batch grouped by rule), then job-level ones; ``options`` as in
    :class:`RunOptions` (a batch closes once it reaches ``batch_rows`` objects or 256 frames).

    ``ann`` as objects, or as columns (:class:`ReplicaColumns` of a body without tracks): the same
    findings; from columns no object is built per shape, only for the shapes a checker looks at
    (a finding names it, or its polygon or mask is needed)."""
    batch_rows = options.get("batch_rows", DEFAULT_BATCH_ROWS)
    progress = options.get("progress")
    ctx = JobContext(labels=labels, job_id=options["job_id"], annotator=options["annotator"], actions=pack.actions)
    checkers: list[Checker[Any]] = [
        CHECKERS[rule.kind](rule, ctx)
        for rule in pack.rules
        if applicable(rule, project_id=options.get("project_id"), task_id=options.get("task_id"))
    ]
    if not checkers:
        return
    frame_size = _FrameSizes(meta)

    # 1. whole tracks, then 2. frame by frame: the job's frames (empty ones included) and any
    #    annotated frame outside them, packed into batches of consecutive frames so row-wise rules
    #    run once per batch
    batches: Iterator[tuple[FrameBatch, int]]
    if isinstance(ann, ReplicaColumns):
        if ann.from_tracks:
            raise ValueError("rules over columns: the body has tracks; check its objects (JobAnnotations)")
        frames = set(meta.frame_indices()) | set(ann.frames.tolist())
        batches = _table_batches(ann, frames, batch_rows, frame_size, ctx.index)
    else:
        for checker in checkers:
            yield from checker.check_tracks(ann, frame_size, meta.stop_frame)
        frames = set(meta.frame_indices()) | set(ann.frames())
        batches = _object_batches(ann, frames, meta, batch_rows, frame_size, ctx.index)
    done = 0
    for batch, n_frames in batches:
        for checker in checkers:
            yield from checker.check_batch(batch)
        done += n_frames
        if progress is not None:
            progress(done, len(frames))

    # 3. conclusions that needed every frame
    for checker in checkers:
        yield from checker.finish()


def check_job(
    ann: JobAnnotations | ReplicaColumns,
    labels: LabelSet,
    meta: JobMeta,
    pack: RulePack,
    **options: Unpack[RunOptions],
) -> list[Finding]:
    """All findings of ``pack`` on one job, sorted by frame, then by the rule's place in the pack.

    ``ann`` and ``options`` as in :func:`iter_findings`.
    """
    found = iter_findings(ann, labels, meta, pack, **options)
    order = {rule.id: i for i, rule in enumerate(pack.rules)}
    return sorted(found, key=lambda f: (f.frame, order.get(f.code, 0)))
