"""The engine's chunk source over replicas read as columns (:mod:`cvat_ext.annotations.columnar_json`).

Each replica is a :class:`~cvat_ext.annotations.columnar_json.ReplicaColumns` (shapes sorted by
frame). A chunk is ``chunk_frames`` consecutive frames of the union of the replicas' frames
(deleted frames left out), exactly the frames :func:`cvat_ext.consensus.engine.iter_chunks` gives
for the same replicas; its rows are cut from each replica's table by binary search on the frame
column, ordered (frame, annotator, file order) and split into match groups by
:func:`~cvat_ext.consensus.batch.group_batches`. Nothing is parsed again on the second pass: the
columns are the kept form of the job, a few dozen bytes per object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from cvat_ext.annotations.columnar_json import ReplicaColumns
from cvat_ext.annotations.model import FrameAnnotations, JobMeta, LabelSet
from cvat_ext.annotations.table import LazyShapes, ShapeTable
from cvat_ext.consensus.batch import ChunkInput, GroupKey, IntArray, ObjectColumns, ReplicaBatch, group_batches
from cvat_ext.consensus.engine import ChunkSource, GroundTruth, Priors, ProgressFn, score_chunks
from cvat_ext.consensus.report import ConsensusResult
from cvat_ext.consensus.settings import ConsensusSettings

__all__ = ["job_frames", "score_tables", "table_chunks", "table_source"]


def job_frames(replicas: Sequence[ReplicaColumns], meta: JobMeta) -> IntArray:
    """(F,) sorted frames any replica holds, deleted frames left out."""
    frames = np.unique(np.concatenate([r.frames for r in replicas])) if replicas else np.zeros(0, np.int64)
    if meta.deleted_frames:
        frames = np.setdiff1d(frames, np.asarray(meta.deleted_frames, dtype=np.int64))
    return frames.astype(np.int64)


#: keep pass-1 chunks for pass 2 while the job has at most this many objects: cutting them again
#: from the columns costs ~0.1 s per 600,000 boxes; keeping them, about 100 bytes an object more
#: peak memory (a 10,000-frame job of 3 x 20 boxes caches; a 100,000-frame one cuts them again,
#: bounded by the chunk) ...
TABLE_CACHE_OBJECTS = 1_000_000
#: ... and at most this many coordinate numbers: a kept chunk holds its shapes' points too (a
#: 10,000-frame job of 3 x 20 polygons has 10 million and caches; of masks, 87 million RLE numbers,
#: 0.4 GB more at the peak, and cuts them again)
TABLE_CACHE_NUMBERS = 20_000_000


def table_chunks(
    replicas: Sequence[ReplicaColumns], meta: JobMeta, chunk_frames: int, *, match_across_labels: bool = True
) -> Iterator[tuple[ChunkInput, dict[GroupKey, ReplicaBatch]]]:
    """Chunks of ``chunk_frames`` frames with their match groups (see the module docstring)."""
    frames = job_frames(replicas, meta)
    n_annot = len(replicas)
    has_tags = any(r.tags for r in replicas)
    for lo in range(0, frames.size, chunk_frames):
        chunk_frames_idx = frames[lo : lo + chunk_frames]
        table, frame_pos, annotator = _chunk_rows(replicas, chunk_frames_idx)
        per_frame = (
            tuple(
                tuple(FrameAnnotations(frame, (), r.tags[frame]) if frame in r.tags else None for r in replicas)
                for frame in chunk_frames_idx.tolist()
            )
            if has_tags
            else ((None,) * n_annot,) * chunk_frames_idx.size  # no tags: nothing per frame
        )
        chunk = ChunkInput(tuple(chunk_frames_idx.tolist()), per_frame, n_annot)
        if not len(table):
            yield chunk, {}
            continue
        xyxy = table.xyxy()
        attr_key = table.attr_key()
        columns = ObjectColumns(
            frame_pos=frame_pos,
            annotator=annotator,
            type_code=table.type_code,
            label=table.label_id,
            rotation=table.rotation,
            occluded=table.occluded,
            z_order=table.z_order,
            outside=table.outside,
            extents=lambda idx, xyxy=xyxy: xyxy.take(idx, axis=0),  # type: ignore[misc]
            attr_keys=lambda idx, attr_key=attr_key: attr_key[idx],  # type: ignore[misc]
            shapes=lambda idx, table=table: LazyShapes(table, idx),  # type: ignore[misc]
        )
        yield chunk, group_batches(chunk_frames_idx, n_annot, columns, match_across_labels=match_across_labels)


def _chunk_rows(replicas: Sequence[ReplicaColumns], frames: IntArray) -> tuple[ShapeTable, IntArray, IntArray]:
    """The chunk's rows of every replica as one table in (frame, annotator, file) order, with each
    row's frame position and annotator."""
    parts: list[ShapeTable] = []
    pos_parts: list[IntArray] = []
    annot_parts: list[IntArray] = []
    for r, replica in enumerate(replicas):
        column = replica.shapes.frame
        lo = int(np.searchsorted(column, frames[0], side="left"))
        hi = int(np.searchsorted(column, frames[-1], side="right"))
        rows_in = column[lo:hi]
        # each chunk frame's rows (both sides sorted): when they cover lo:hi, no row is on a
        # deleted frame, and the rows are one span
        counts = np.searchsorted(rows_in, frames, side="right") - np.searchsorted(rows_in, frames, side="left")
        if int(counts.sum()) == hi - lo:
            parts.append(replica.shapes.span(lo, hi))
            pos_parts.append(np.repeat(np.arange(frames.size, dtype=np.int64), counts))
        else:
            pos = np.searchsorted(frames, rows_in)
            inside = frames[np.minimum(pos, frames.size - 1)] == rows_in  # deleted frames fall out
            parts.append(replica.shapes.take(np.flatnonzero(inside) + lo))
            pos_parts.append(pos[inside].astype(np.int64))
        annot_parts.append(np.full(pos_parts[-1].size, r, dtype=np.int64))
    frame_pos, annotator = np.concatenate(pos_parts), np.concatenate(annot_parts)
    order = np.lexsort((annotator, frame_pos))  # stable: file order within (frame, annotator)
    return ShapeTable.concat(parts).take(order), frame_pos[order], annotator[order]


def table_source(replicas: Sequence[ReplicaColumns], meta: JobMeta, settings: ConsensusSettings) -> ChunkSource:
    """:data:`~cvat_ext.consensus.engine.ChunkSource` over column replicas (re-startable, no parsing)."""

    def source() -> Iterator[tuple[ChunkInput, dict[GroupKey, ReplicaBatch]]]:
        return table_chunks(replicas, meta, settings.chunk_frames, match_across_labels=settings.match_across_labels)

    return source


def score_tables(
    replicas: Mapping[str, ReplicaColumns],
    labels: LabelSet,
    meta: JobMeta,
    settings: ConsensusSettings | None = None,
    *,
    progress: ProgressFn | None = None,
    cache_objects: int | None = None,
    ground_truth: GroundTruth | None = None,
    priors: Priors | None = None,
) -> ConsensusResult:
    """:func:`~cvat_ext.consensus.engine.score_replicas` on replicas read as columns: the same
    result, chunk by chunk. Pass-1 chunks are kept for pass 2 while the job has at most
    ``cache_objects`` objects (default: :data:`TABLE_CACHE_OBJECTS`, and none kept beyond
    :data:`TABLE_CACHE_NUMBERS` coordinate numbers), else cut again from the columns."""
    settings = settings or ConsensusSettings()
    names = tuple(replicas)
    source = table_source([replicas[n] for n in names], meta, settings)
    if cache_objects is None:
        numbers = sum(r.shapes.coords.size for r in replicas.values())
        budget = TABLE_CACHE_OBJECTS if numbers <= TABLE_CACHE_NUMBERS else 0
    else:
        budget = cache_objects
    return score_chunks(names, source, labels, meta, settings, progress=progress, cache_objects=budget,
                        ground_truth=ground_truth, priors=priors)
