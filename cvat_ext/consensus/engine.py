"""The job-level driver: stream a job's replicas chunk by chunk, score agreement, merge.

Two passes over the frames, each a chunk (``settings.chunk_frames``) at a time:

1. match and cluster every match group, keep the small cluster tables (member slots and labels),
   pool pairwise disagreement and the cluster labels;
2. fit the reliabilities (Dawid–Skene on labels, noise separation on geometry), then merge each
   cluster, collect findings and statistics.

The second pass reuses the first pass's chunks while they hold fewer than
:data:`CACHE_OBJECTS` objects in total, and re-reads the replicas otherwise, so a long job never
needs more than a chunk of work in memory beyond the cluster tables. Within that budget the mask
vote also reuses the row runs the matching decoded, while they number at most
:data:`CACHE_RUNS`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from cvat_ext.annotations.model import FrameAnnotations, JobAnnotations, JobMeta, LabelSet, Tag
from cvat_ext.annotations.tracks import iter_frames
from cvat_ext.consensus.annotator_model import (
    WEIGHTED_FAMILIES,
    AnnotatorModel,
    FamilyEvidence,
    cluster_size,
    fit_annotator_model,
    template_link,
)
from cvat_ext.consensus.batch import BoolArray, ChunkInput, FloatArray, GroupKey, IntArray, ReplicaBatch, build_batches
from cvat_ext.consensus.clusters import ClusterTable, build_clusters
from cvat_ext.consensus.context import cluster_extents, shadowed
from cvat_ext.consensus.fuse import ChunkMerger
from cvat_ext.consensus.gt_anchor import GtTally
from cvat_ext.consensus.keypoint_noise import KeypointFit
from cvat_ext.consensus.matching import annotator_pairs, batch_links
from cvat_ext.consensus.merge import member_rows
from cvat_ext.consensus.noise_model import KEYPOINT_FAMILIES, IouTemplate, template
from cvat_ext.consensus.reliability import (
    ExistenceModel,
    ReliabilityModel,
    fit_dawid_skene,
    fit_existence,
    fusion_weights,
    separate_noise,
)
from cvat_ext.consensus.report import ConsensusResult
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.consensus.sigmas import SigmaAccumulator, given_sigmas, member_keypoints, sigmas_by_skeleton
from cvat_ext.consensus.sized_existence import SizedExistence, fit_sized_existence
from cvat_ext.consensus.small_axis import column_counts, row_any, row_sum
from cvat_ext.consensus.split_clusters import LONE_POOL, cluster_candidates, fit_cluster_offsets, join_split_clusters
from cvat_ext.consensus.split_pairs import (
    Candidates,
    CornerVariance,
    Joined,
    NonLink,
    fit_split_offsets,
    join_split_pairs,
    lone_candidates,
    non_link_chance,
)
from cvat_ext.consensus.tally import JobTally
from cvat_ext.errors import ConfigError
from cvat_ext.geometry import SimilarityParams

logger = logging.getLogger(__name__)

#: keep pass-1 chunks for pass 2 while the job has at most this many objects
CACHE_OBJECTS = 2_000_000
#: ... the same for :func:`score_streams`, whose callers read from disk to save memory
STREAM_CACHE_OBJECTS = 50_000
#: ... and, within those, the matching's mask/polygon row runs for the mask vote while they hold
#: at most this many runs in total (32 bytes a run)
CACHE_RUNS = 8_000_000

#: families whose annotator noise is measured on the extents' corners (additive in the jitter
#: variances at every object size; (1 - IoU)^2 carries a rasterisation floor on small objects)
EXTENT_FAMILIES = frozenset({"rectangle", "segment"})

#: progress callback: (pass name, frames just finished)
ProgressFn = Callable[[str, int], None]
#: ground truth: the GT annotations and the frames they cover (every frame listed fully annotated)
GroundTruth = tuple[JobAnnotations, Sequence[int]]
#: annotator name -> the ``model`` dict of an earlier report
Priors = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class ChunkClusters:
    """Pass-1 result for one chunk: per match group its clusters, object sizes (K,) px
    (:func:`~cvat_ext.consensus.annotator_model.cluster_size`) and, when the existence model
    decides the quorum, existence strata (K,) (:func:`cluster_strata`) and the clusters' mean
    extents (K, 4) xyxy px (what :func:`~cvat_ext.consensus.split_pairs.join_split_pairs` reads)."""

    tables: Mapping[GroupKey, ClusterTable]
    strata: Mapping[GroupKey, IntArray]
    sizes: Mapping[GroupKey, FloatArray]
    extents: Mapping[GroupKey, FloatArray] = dataclasses.field(default_factory=dict)
    #: per match group with joined split pairs: (K,) probability that a joined cluster's merged
    #: object matches the truth (NaN for the other clusters)
    hits: Mapping[GroupKey, FloatArray] = dataclasses.field(default_factory=dict)


#: a stored pass-1 chunk: the chunk and its batches while cached (else None), and its clusters
StoredChunk = tuple[ChunkInput | None, dict[GroupKey, ReplicaBatch] | None, ChunkClusters]


#: a re-startable per-replica stream: each call yields the replica's frames anew, in frame order
FrameSource = Callable[[], Iterator[FrameAnnotations]]


class FrameReader(Protocol):
    """What :func:`score_streams` reads a replica from (:class:`cvat_ext.annotations.frame_store.FrameStore`)."""

    def iter_frames(self, last_frame: int | None, *, window: int = ...) -> Iterator[FrameAnnotations]:
        """Per-frame annotations in frame order, tracks expanded up to ``last_frame``, read
        ``window`` frames at a time."""
        ...


def _frames_of(ann: JobAnnotations, last_frame: int) -> Iterator[FrameAnnotations]:
    if ann.tracks:
        yield from iter_frames(ann, last_frame=last_frame)
        return
    # no tracks: slicing the shapes by frame gives what iter_frames gives, at a fraction of the cost
    shapes = ann.shapes
    frame_of = np.fromiter((sh.frame for sh in shapes), dtype=np.int64, count=len(shapes))
    if frame_of.size and np.any(np.diff(frame_of) < 0):
        order = np.argsort(frame_of, kind="stable")
        shapes = tuple(shapes[i] for i in order.tolist())
        frame_of = frame_of[order]
    bounds = np.flatnonzero(np.diff(frame_of)) + 1
    starts = [0, *bounds.tolist()]
    stops = [*bounds.tolist(), len(shapes)]
    by_frame = {int(frame_of[a]): shapes[a:b] for a, b in zip(starts, stops, strict=True) if b > a}
    tags: dict[int, list[Tag]] = {}
    for tag in ann.tags:
        tags.setdefault(tag.frame, []).append(tag)
    for frame in sorted(by_frame.keys() | tags.keys()):
        yield FrameAnnotations(frame=frame, shapes=tuple(by_frame.get(frame, ())), tags=tuple(tags.get(frame, ())))


def iter_chunks(
    replicas: Sequence[JobAnnotations | FrameSource], meta: JobMeta, chunk_frames: int
) -> Iterator[ChunkInput]:
    """Frames that any replica annotated, joined across replicas, ``chunk_frames`` at a time.

    A replica is its whole :class:`JobAnnotations` or a :data:`FrameSource` (called once here)."""
    deleted = set(meta.deleted_frames)
    streams = [_frames_of(r, meta.stop_frame) if isinstance(r, JobAnnotations) else r() for r in replicas]
    heads: list[FrameAnnotations | None] = [next(s, None) for s in streams]
    frames: list[int] = []
    per_frame: list[tuple[FrameAnnotations | None, ...]] = []
    while True:
        live = [h.frame for h in heads if h is not None]
        if not live:
            break
        frame = min(live)
        row = tuple(h if h is not None and h.frame == frame else None for h in heads)
        for i, h in enumerate(row):
            if h is not None:
                heads[i] = next(streams[i], None)
        if frame in deleted:
            continue
        frames.append(frame)
        per_frame.append(row)
        if len(frames) == chunk_frames:
            yield ChunkInput(tuple(frames), tuple(per_frame), len(replicas))
            frames, per_frame = [], []
    if frames:
        yield ChunkInput(tuple(frames), tuple(per_frame), len(replicas))


def _params(
    settings: ConsensusSettings, meta: JobMeta, frame: int, element_sigmas: Mapping[int, float] | None = None
) -> SimilarityParams:
    info = meta.frame_info(frame) if meta.frames else None
    return SimilarityParams(
        iou_thr=settings.iou_thr,
        oks_sigma=settings.oks_sigma,
        element_sigmas=element_sigmas,
        line_thickness=settings.line_thickness,
        image_wh=(info.width, info.height) if info is not None else (0, 0),
    )


def cluster_batch(
    batch: ReplicaBatch,
    params: SimilarityParams,
    iou_thr: float,
    frame_wh: IntArray | None = None,
    weak_thr: float | None = None,
) -> ClusterTable:
    """Match every annotator pair of one match group and cluster the matches (``weak_thr``: also
    rejoin singletons along pairs of similarity in ``[weak_thr, iou_thr)``)."""
    return build_clusters(batch, batch_links(batch, params, iou_thr, frame_wh, weak_thr), rejoin=weak_thr is not None)


def cluster_strata(
    batch: ReplicaBatch, table: ClusterTable, rows: IntArray, extents: FloatArray | None = None
) -> IntArray:
    """(K,) existence stratum of each cluster: 1 when shadowed by a better-supported cluster
    (``extents (K, 4)``: the clusters' mean extents, when already computed)."""
    if extents is None:
        extents = cluster_extents(batch.xyxy, rows)
    return shadowed(table.frame_pos, row_sum(table.present), extents).astype(np.int64)


def _frame_sizes(meta: JobMeta, frames: Sequence[int]) -> IntArray | None:
    """(F, 2) width and height of each frame, None when the meta lists no frames."""
    if not meta.frames:
        return None
    infos = [meta.frame_info(f) for f in frames]
    return np.array([(i.width, i.height) for i in infos], dtype=np.int64).reshape(-1, 2)


#: a re-startable stream of chunks with their match-group batches (called once per pass)
ChunkSource = Callable[[], Iterable[tuple[ChunkInput, dict[GroupKey, ReplicaBatch]]]]


def score_replicas(
    replicas: Mapping[str, JobAnnotations],
    labels: LabelSet,
    meta: JobMeta,
    settings: ConsensusSettings | None = None,
    *,
    progress: ProgressFn | None = None,
    ground_truth: GroundTruth | None = None,
    priors: Priors | None = None,
) -> ConsensusResult:
    """Score the agreement of a job's consensus replicas and merge them.

    ``replicas`` maps annotator name -> that annotator's job annotations (the order fixes the
    annotator order of every table). Returns the per-frame findings, the job/label/annotator/pair
    statistics and the merged annotations (``source="consensus"``, ``score`` set).

    ``ground_truth``: the GT annotations and the frames they cover (each fully annotated): they
    anchor the annotator model and the report gains ``ground_truth``. ``priors``: annotator name
    -> a ``model`` dict of an earlier report (:mod:`cvat_ext.consensus.annotator_model`).
    """
    settings = settings or ConsensusSettings()
    names = tuple(replicas)
    source = _batched_source([replicas[n] for n in names], meta, settings)
    return score_chunks(
        names, source, labels, meta, settings, progress=progress, ground_truth=ground_truth, priors=priors
    )


def score_streams(
    readers: Mapping[str, FrameReader],
    labels: LabelSet,
    meta: JobMeta,
    settings: ConsensusSettings | None = None,
    *,
    progress: ProgressFn | None = None,
    cache_objects: int | None = None,
    ground_truth: GroundTruth | None = None,
    priors: Priors | None = None,
) -> ConsensusResult:
    """:func:`score_replicas` on replicas read frame by frame (e.g. from
    :class:`~cvat_ext.annotations.frame_store.FrameStore`), re-read on every pass.

    Pass-1 chunks are kept for pass 2 only while the job has at most ``cache_objects`` objects
    (default :data:`STREAM_CACHE_OBJECTS`), so memory stays at about a chunk's worth of work plus
    the cluster tables. The result is the one :func:`score_replicas` gives for the same replicas.
    """
    settings = settings or ConsensusSettings()
    names = tuple(readers)
    window = settings.chunk_frames
    sources: list[JobAnnotations | FrameSource] = [
        functools.partial(readers[n].iter_frames, meta.stop_frame, window=window) for n in names
    ]
    budget = STREAM_CACHE_OBJECTS if cache_objects is None else cache_objects
    source = _batched_source(sources, meta, settings)
    return score_chunks(names, source, labels, meta, settings, progress=progress, cache_objects=budget,
                        ground_truth=ground_truth, priors=priors)


def _batched_source(
    replicas: Sequence[JobAnnotations | FrameSource], meta: JobMeta, settings: ConsensusSettings
) -> ChunkSource:
    """The engine's chunk source over whole or streamed replicas: chunks with their match groups."""
    chunk_frames = settings.chunk_frames
    across = settings.match_across_labels

    def source() -> Iterator[tuple[ChunkInput, dict[GroupKey, ReplicaBatch]]]:
        for chunk in iter_chunks(replicas, meta, chunk_frames):
            yield chunk, build_batches(chunk, match_across_labels=across)

    return source


def score_chunks(
    names: Sequence[str],
    source: ChunkSource,
    labels: LabelSet,
    meta: JobMeta,
    settings: ConsensusSettings,
    *,
    progress: ProgressFn | None = None,
    cache_objects: int | None = None,
    ground_truth: GroundTruth | None = None,
    priors: Priors | None = None,
) -> ConsensusResult:
    """The engine on already columnar chunks (what :func:`score_replicas` feeds it; the benchmark
    feeds it directly to time matching, agreement and merge without the object conversion).

    ``cache_objects``: keep pass-1 chunks for pass 2 while the job has at most this many objects
    (default :data:`CACHE_OBJECTS`), else call ``source`` again."""
    cache_budget = CACHE_OBJECTS if cache_objects is None else cache_objects
    names = tuple(names)
    n_annot = len(names)
    if n_annot < 2:
        raise ConfigError(f"consensus needs at least 2 replicas, got {n_annot}: {list(names)}")

    # pass 0 (only for estimated keypoint sigmas): match skeletons with the default sigma
    element_sigmas = _element_sigmas(source, labels, meta, settings, progress)

    # pass 1: clusters, pooled pair disagreement and labels
    pairs = annotator_pairs(n_annot)
    # per family: pooled pair disagreement (sum, count), and the IoU-based one for reporting
    by_family: dict[str, FloatArray] = {}
    iou_disagreement = np.zeros((2, len(pairs)))
    stored: list[StoredChunk] = []
    all_labels: list[IntArray] = []
    presence: dict[str, list[BoolArray]] = {}
    strata_of: dict[str, list[IntArray]] = {}
    auto_quorum = settings.auto_quorum(n_annot)
    evidence: dict[str, FamilyEvidence] = {}
    gt = GtTally(ground_truth, n_annot, settings.iou_thr) if ground_truth is not None else None
    n_objects = n_runs = 0
    for chunk, batches in source():
        params = _params(settings, meta, chunk.frames[0], element_sigmas)
        frame_wh = _frame_sizes(meta, chunk.frames)
        tables: dict[GroupKey, ClusterTable] = {}
        chunk_strata: dict[GroupKey, IntArray] = {}
        chunk_sizes: dict[GroupKey, FloatArray] = {}
        chunk_extents: dict[GroupKey, FloatArray] = {}
        for key, batch in batches.items():
            table = cluster_batch(batch, params, settings.iou_thr, frame_wh, settings.weak_thr)
            rows = member_rows(batch, table)
            tables[key] = table
            all_labels.append(np.where(rows >= 0, batch.label[np.maximum(rows, 0)], -1))
            presence.setdefault(batch.family, []).append(rows >= 0)
            extents = batch.xyxy.take(np.maximum(rows, 0), axis=0)  # take: ~8x a 2-D fancy index
            if auto_quorum:
                mean_extents = cluster_extents(batch.xyxy, rows, extents)
                chunk_strata[key] = cluster_strata(batch, table, rows, mean_extents)
                strata_of.setdefault(batch.family, []).append(chunk_strata[key])
                # the split-pair join reads them (keypoint families: the keypoints' bounding box)
                if batch.family in WEIGHTED_FAMILIES or batch.family in KEYPOINT_FAMILIES:
                    chunk_extents[key] = mean_extents
            chunk_sizes[key] = cluster_size(batch.xyxy, rows, extents)
            evidence.setdefault(batch.family, FamilyEvidence(n_annot)).add(
                rows >= 0,
                chunk_sizes[key],
                batch.frames[table.frame_pos],
                table.pair_sim,
                chunk_strata.get(key),
                # the extents' corners for every family whose noise weighs the merge (ellipses:
                # centre +- radii, the axes as drawn)
                extents if batch.family in WEIGHTED_FAMILIES else None,
                member_keypoints(batch, rows)
                if batch.family in KEYPOINT_FAMILIES and batch.shapes is not None
                else None,
            )
            if gt is not None:
                gt.add_batch(batch, params)
            ok = np.isfinite(table.pair_sim)
            iou_d = np.where(ok, (1.0 - table.pair_sim) ** 2, 0.0)
            ok_n = column_counts(ok)
            iou_disagreement += (iou_d.sum(axis=0), ok_n)
            d = _box_disagreement(batch, rows, pairs) if batch.family in EXTENT_FAMILIES else iou_d
            acc = by_family.setdefault(batch.family, np.zeros((2, len(pairs))))
            acc += (np.where(ok, d, 0.0).sum(axis=0), ok_n)
            n_objects += int(batch.label.shape[0])
        if n_runs <= CACHE_RUNS:
            n_runs += sum(runs.n_runs for b in batches.values() for runs in b.runs_cache.values())
            if n_runs > CACHE_RUNS:  # over the budget: the vote decodes the masks again
                _drop_runs(b for _, b, _ in stored if b is not None)
        if n_runs > CACHE_RUNS:
            _drop_runs([batches])
        keep = n_objects <= cache_budget
        if not keep and stored and stored[0][0] is not None:
            # over the budget: pass 2 will re-read everything, so drop what was kept so far
            stored = [(None, None, clusters) for _, _, clusters in stored]
        clusters = ChunkClusters(tables, chunk_strata, chunk_sizes, chunk_extents)
        stored.append((chunk if keep else None, batches if keep else None, clusters))
        if progress is not None:
            progress("match", len(chunk.frames))
    cached = n_objects <= cache_budget

    model = _fit_reliability(names, all_labels, iou_disagreement, by_family, settings)
    if auto_quorum:
        model = dataclasses.replace(
            model,
            existence={
                family: fit_existence(np.concatenate(parts), np.concatenate(strata_of[family]))
                for family, parts in presence.items()
            },
        )
    if gt is not None:
        gt.finish()
    label_table = np.concatenate(all_labels) if all_labels else np.zeros((0, n_annot), dtype=np.int64)
    annotators = fit_annotator_model(
        names,
        evidence,
        model.existence,
        settings.quorum_for(n_annot),
        model.dawid_skene,
        (label_table >= 0).sum(axis=0).astype(np.float64),
        settings.iou_thr,
        link_thr=settings.link_thr,
        oks_sigma=settings.oks_sigma,
        gt=gt,
        priors=priors,
    )
    if settings.weights is None and settings.estimate_reliability and settings.method != "nearest":
        if auto_quorum:
            # second linking step, now that the noise is known; the existence that decides keep /
            # drop is fitted on the joined clusters (the truth estimates keep pass 1's)
            stored, unlinked = _join_split_pairs(stored, annotators, model.existence, settings)
            annotators = dataclasses.replace(
                annotators,
                unlinked_scale=unlinked,
                keep_existence=_fit_keep_existence(stored, annotators, model.existence, settings),
            )
        model = dataclasses.replace(model, annotator_model=annotators)
        if auto_quorum:
            model = dataclasses.replace(model, keep_thr=_keep_thresholds(stored, annotators))
    logger.info("consensus weights %s", dict(zip(names, np.round(model.weights, 3).tolist(), strict=True)))

    # pass 2: merge and statistics
    tally = JobTally(model, labels, settings)
    merger = ChunkMerger(
        model, labels, meta, settings, tally, params=lambda frame: _params(settings, meta, frame, element_sigmas)
    )
    again = None if cached else iter(source())
    for chunk_or_none, batches_or_none, clusters in stored:
        if again is not None:
            chunk, batches = next(again)
        else:
            assert chunk_or_none is not None and batches_or_none is not None
            chunk, batches = chunk_or_none, batches_or_none
        merger.merge_chunk(chunk, batches, clusters.tables, clusters.strata, clusters.sizes, clusters.hits)
        _drop_runs([batches])
        if progress is not None:
            progress("merge", len(chunk.frames))
    sigmas = sigmas_by_skeleton(element_sigmas, labels) if element_sigmas is not None else {}
    return tally.result(
        merger.merged,
        keypoint_sigmas=sigmas,
        merged_stream=merger.stream,
        merged_parts=merger.parts,
        annotator_model=annotators,
    )


def _join_split_pairs(
    stored: list[StoredChunk],
    annotators: AnnotatorModel,
    existence: Mapping[str, ExistenceModel],
    settings: ConsensusSettings,
) -> tuple[list[StoredChunk], dict[str, float]]:
    """Join the split pairs of every stored cluster table (:mod:`cvat_ext.consensus.split_pairs`:
    the lone pairs' offsets fitted per family over the whole job, then joined table by table).
    Returns the new stored chunks and per keypoint family the variance factor of a lone drawing
    joined beside a cluster of the others (:attr:`AnnotatorModel.unlinked_scale`)."""
    n_annot = len(annotators.names)
    # the lone clusters are those that did not link at the weak threshold (or the match one)
    link_thr = settings.link_thr
    # sweep 1: the candidate pairs of every table whose family's keep reads the noise
    found = _find_candidates(stored, annotators, existence, link_thr, lone_candidates)
    offsets = {
        family: fit_split_offsets(_concat_candidates([v for (_, k), v in found.items() if k[0] == family]), n_annot)
        for family in {k[0] for _, k in found}
    }
    # keypoint families: a joined pair's hit reads the keypoint fit's own variances. That fit is
    # read where the partners link (no truncation to make up for), and the offsets of the keypoints'
    # bounding boxes also move with every visibility flip, which the three-cornered hat put on the
    # precise annotator (16.6 px^2 of extra on a 2 px jitter): its joined small skeletons were dropped
    keypoint = {f for f in offsets if isinstance(annotators.noise[f], KeypointFit)}
    offsets = {f: o.without_extra() if f in keypoint else o for f, o in offsets.items()}
    # the template's share of drawings at the match threshold, per family
    hit_at = {
        family: functools.partial(_hit_at, template(family, settings.oks_sigma), settings.iou_thr) for family in offsets
    }
    # sweep 2: join
    out = _join_sweep(
        stored,
        found,
        lambda key, table, extents, sizes, strata, _hit, candidates: join_split_pairs(
            table,
            extents,
            sizes,
            strata,
            candidates,
            offsets[key[0]],
            annotators.noise[key[0]].pixel_variance,
            hit_at[key[0]],
            thirds=key[0] in keypoint,
        ),
    )
    out, unlinked = _join_split_clusters(out, annotators, existence, link_thr)
    # the mean extents were for the joins: pass 2 does not read them (32 bytes a cluster)
    out = [(chunk, batches, dataclasses.replace(clusters, extents={})) for chunk, batches, clusters in out]
    return out, unlinked


def _fit_keep_existence(
    stored: list[StoredChunk],
    annotators: AnnotatorModel,
    existence: Mapping[str, ExistenceModel],
    settings: ConsensusSettings,
) -> dict[str, SizedExistence]:
    """Per family whose merge weighs the noise, the size-aware existence of the keep decisions
    (:attr:`AnnotatorModel.keep_existence`) on the stored clusters, as pass 2 will merge them: its
    lone spurious shares per (stratum, size bin), the echoes ``existence``'s."""
    columns: dict[str, list[tuple[BoolArray, IntArray, FloatArray]]] = {}
    for _, _, clusters in stored:
        for key, table in clusters.tables.items():
            if key[0] in existence and annotators.noise_weighted(key[0]):
                columns.setdefault(key[0], []).append((table.present, clusters.strata[key], clusters.sizes[key]))
    out = {}
    for family, parts in columns.items():
        present, strata, size = (np.concatenate(col) for col in zip(*parts, strict=True))
        link = template_link(family, annotators.noise[family], settings.link_thr, settings.oks_sigma)
        out[family], _ = fit_sized_existence(existence[family], link, present, strata, size, shares_by_bin=True)
    return out


def _keep_thresholds(stored: list[StoredChunk], annotators: AnnotatorModel) -> dict[str, float]:
    """Per family, the keep decision's threshold (:meth:`AnnotatorModel.keep_threshold`) on the
    probabilities that the job's clusters, as pass 2 will merge them, add a true positive."""
    p_of: dict[str, list[FloatArray]] = {}
    for _, _, clusters in stored:
        for key, table in clusters.tables.items():
            p_tp = annotators.keep_probability(
                key[0],
                table.present,
                clusters.strata.get(key),
                clusters.sizes[key],
                row_any(np.isfinite(table.pair_sim)),
                clusters.hits.get(key),
            )
            if p_tp is not None:
                p_of.setdefault(key[0], []).append(p_tp)
    return {family: annotators.keep_threshold(family, np.concatenate(parts)) for family, parts in p_of.items()}


def _join_split_clusters(
    stored: list[StoredChunk],
    annotators: AnnotatorModel,
    existence: Mapping[str, ExistenceModel],
    link_thr: float,
) -> tuple[list[StoredChunk], dict[str, float]]:
    """Join the split clusters of the tables whose family's keep reads the noise
    (:mod:`cvat_ext.consensus.split_clusters`: the offsets between clusters of disjoint annotators
    fitted per family over the whole job, then joined table by table). Returns the new stored
    chunks and per family with a fitted lone pool its scale
    ``c`` (a lone drawing's offset to the cluster it joins is ``c`` times wider than the fit says)."""
    found = _find_candidates(stored, annotators, existence, link_thr, cluster_candidates)
    offsets = {
        family: fit_cluster_offsets(_concat_candidates([v for (_, k), v in found.items() if k[0] == family]))
        for family in {k[0] for _, k in found}
    }
    logger.debug("split clusters: %s", {f: (o.share, o.scale, o.spread) for f, o in offsets.items()})
    out = _join_sweep(
        stored,
        found,
        lambda key, table, extents, sizes, strata, hit, candidates: join_split_clusters(
            table, extents, sizes, strata, hit, candidates, offsets[key[0]]
        ),
    )
    lone_scale = {f: float(o.scale[LONE_POOL]) for f, o in offsets.items() if np.isfinite(o.scale[LONE_POOL])}
    return out, lone_scale


#: (group, table, extents (K, 4), sizes (K,), strata (K,), hits (K,) or None, candidates) -> the joined table
JoinFn = Callable[[GroupKey, ClusterTable, FloatArray, FloatArray, IntArray, FloatArray | None, Candidates], Joined]


def _join_sweep(
    stored: list[StoredChunk], found: Mapping[tuple[int, GroupKey], Candidates], join: JoinFn
) -> list[StoredChunk]:
    """``join`` every stored table with candidates in ``found``; the new stored chunks (their
    tables, strata, sizes, extents and hits replaced where something joined)."""
    out: list[StoredChunk] = []
    for c, (chunk, batches, clusters) in enumerate(stored):
        tables, strata, sizes = dict(clusters.tables), dict(clusters.strata), dict(clusters.sizes)
        extents, hits = dict(clusters.extents), dict(clusters.hits)
        for key in clusters.tables:
            if (c, key) not in found:
                continue
            done = join(key, tables[key], extents[key], sizes[key], strata[key], hits.get(key), found[c, key])
            if done.strata is not None:
                tables[key], sizes[key], strata[key], extents[key] = done.table, done.sizes, done.strata, done.extents
                hits[key] = done.hit
        out.append((chunk, batches, ChunkClusters(tables, strata, sizes, extents, hits)))
    return out


def _find_candidates(
    stored: list[StoredChunk],
    annotators: AnnotatorModel,
    existence: Mapping[str, ExistenceModel],
    link_thr: float,
    candidates_of: Callable[[ClusterTable, FloatArray, FloatArray, CornerVariance, NonLink | None], Candidates],
) -> dict[tuple[int, GroupKey], Candidates]:
    """``candidates_of`` each stored table whose family's keep reads the noise, by (chunk, group)."""
    found: dict[tuple[int, GroupKey], Candidates] = {}
    for c, (_, _, clusters) in enumerate(stored):
        for key, extents in clusters.extents.items():
            fit = annotators.noise.get(key[0])
            if fit is not None and key[0] in existence and annotators.noise_weighted(key[0]):
                # keypoint families: a split's prior follows the keypoint model's chance of a non-link
                # at the size (its link law matches the measured link rates); tied the same way,
                # masks and polygons lost F1 (docs/developers/annotator-model.md, Split pairs)
                non_link = non_link_chance(fit, link_thr) if isinstance(fit, KeypointFit) else None
                found[c, key] = candidates_of(
                    clusters.tables[key], extents, clusters.sizes[key], fit.pixel_variance, non_link
                )
    return found


def _concat_candidates(parts: list[Candidates]) -> Candidates:
    def column(name: str) -> FloatArray | None:
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    return Candidates(*(column(f) for f in ("a", "b", "pair", "u", "fit_var", "non_link")))  # type: ignore[arg-type]


def _hit_at(tmpl: IouTemplate, iou_thr: float, spread2: FloatArray) -> FloatArray:
    """(N,) share of drawings of squared relative spread ``spread2 (N,)`` at ``iou_thr`` or above."""
    return tmpl.at_threshold(spread2, iou_thr)[0]


def _drop_runs(chunks: Iterable[Mapping[GroupKey, ReplicaBatch]]) -> None:
    """Forget the row runs the matching kept with these chunks' batches (the vote decodes again)."""
    for batches in chunks:
        for batch in batches.values():
            batch.runs_cache.clear()


def _element_sigmas(
    source: ChunkSource,
    labels: LabelSet,
    meta: JobMeta,
    settings: ConsensusSettings,
    progress: ProgressFn | None,
) -> dict[int, float] | None:
    """Keypoint label id -> OKS sigma for skeleton matching; None = ``oks_sigma`` everywhere."""
    if settings.keypoint_sigmas == "default":
        return None
    if settings.keypoint_sigmas != "estimate":
        return given_sigmas(settings.keypoint_sigmas, labels)
    acc = SigmaAccumulator()
    for chunk, batches in source():
        skeletons = [b for b in batches.values() if b.family == "skeleton" and b.shapes is not None]
        if skeletons:
            params = _params(settings, meta, chunk.frames[0])
            frame_wh = _frame_sizes(meta, chunk.frames)
            for batch in skeletons:
                acc.add(batch, member_rows(batch, cluster_batch(batch, params, settings.iou_thr, frame_wh)))
        if progress is not None:
            progress("sigmas", len(chunk.frames))
    sigmas = acc.sigmas(settings.oks_sigma)
    logger.info("estimated keypoint sigmas %s", {k: round(v, 4) for k, v in sigmas.items()})
    return sigmas


def _box_disagreement(batch: ReplicaBatch, rows: IntArray, pairs: list[tuple[int, int]]) -> FloatArray:
    """(K, P) squared corner offsets of two members, over the product of their sizes (NaN-free;
    absent members give garbage the caller masks). Additive in the annotators' relative jitter
    variances, unlike IoU."""
    xyxy = batch.xyxy.take(np.maximum(rows, 0), axis=0)
    size = np.sqrt(np.maximum((xyxy[..., 2] - xyxy[..., 0]) * (xyxy[..., 3] - xyxy[..., 1]), 1.0))
    out = np.zeros((rows.shape[0], len(pairs)))
    for p, (r, s) in enumerate(pairs):
        out[:, p] = row_sum((xyxy[:, r] - xyxy[:, s]) ** 2) / (4.0 * size[:, r] * size[:, s])
    return out


def _mean_disagreement(acc: FloatArray) -> FloatArray:
    return np.where(acc[1] > 0, acc[0] / np.maximum(acc[1], 1), np.nan)


def _fit_reliability(
    names: tuple[str, ...],
    all_labels: list[IntArray],
    iou_disagreement: FloatArray,
    by_family: Mapping[str, FloatArray],
    settings: ConsensusSettings,
) -> ReliabilityModel:
    n_annot = len(names)
    label_table = np.concatenate(all_labels) if all_labels else np.zeros((0, n_annot), dtype=np.int64)
    use_estimate = settings.estimate_reliability and settings.method != "nearest"
    ds = fit_dawid_skene(label_table, iterations=settings.dawid_skene_iters if use_estimate else 0)
    noise = separate_noise(_mean_disagreement(iou_disagreement), n_annot)
    family_weights: dict[str, FloatArray] = {}
    if settings.weights is not None:
        unknown = sorted(set(settings.weights) - set(names))
        if unknown:
            raise ConfigError(f"consensus settings: weights for unknown annotators {unknown}; replicas: {list(names)}")
        weights = np.array([settings.weights.get(n, 1.0) for n in names], dtype=np.float64)
    elif use_estimate and n_annot >= 3:
        weights = fusion_weights(noise)
        for family, acc in by_family.items():
            family_weights[family] = fusion_weights(separate_noise(_mean_disagreement(acc), n_annot))
    else:
        weights = np.ones(n_annot)
    return ReliabilityModel(
        names=names,
        weights=weights,
        family_weights=family_weights,
        existence={},
        dawid_skene=ds if use_estimate else None,
        label_reliability=ds.accuracy if ds.classes.size else np.full(n_annot, np.nan),
        geometric_reliability=1.0 - np.sqrt(noise),
    )
