"""Statistics and findings of a whole job, accumulated chunk by chunk (pass 2 of the engine).

Per cluster: missing / extra / label and attribute disagreements / low overlap flags (kept as
columnar :class:`~cvat_ext.consensus.report.FindingBlock` s); per annotator, annotator pair, label
and frame: the counts behind the report; Krippendorff's alpha on localise-then-label values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from cvat_ext.annotations.model import JobAnnotations, LabelSet, Shape, Tag
from cvat_ext.consensus.agreement import AlphaAccumulator, add_grouped, safe_ratio
from cvat_ext.consensus.annotator_model import AnnotatorModel
from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray, ReplicaBatch
from cvat_ext.consensus.clusters import ClusterTable
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.consensus.reliability import ReliabilityModel
from cvat_ext.consensus.report import (
    AnnotatorStats,
    ConsensusResult,
    FindingBlock,
    FindingKind,
    FrameTable,
    JobSummary,
    LabelStats,
    PairStats,
    consensus_finding,
)
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.consensus.small_axis import column_counts, row_any, row_max, row_min, row_sum
from cvat_ext.qa.findings import Finding, Votes

#: value code of "not annotated" in the localise-then-label alpha (label ids are >= 0)
NOT_ANNOTATED = -2

# frame tally columns
_F_CLUSTERS, _F_KEPT, _F_SIM, _F_SIM_N, _F_MISSING, _F_EXTRA, _F_LABEL, _F_FINDINGS, _F_OBJECTS = range(9)
_F_COLS = 9


def _extents(batch: ReplicaBatch, rows: IntArray, present: BoolArray) -> FloatArray:
    """(K, 4) union of the members' extents."""
    xyxy = batch.xyxy.take(np.maximum(rows, 0), axis=0)  # take: ~8x a 2-D fancy index
    lo = row_min(np.where(present[:, :, None], xyxy[:, :, :2], np.inf))
    hi = row_max(np.where(present[:, :, None], xyxy[:, :, 2:], -np.inf))
    return np.concatenate([lo, hi], axis=1)


class JobTally:
    """Statistics and findings over the whole job."""

    def __init__(self, model: ReliabilityModel, labels: LabelSet, settings: ConsensusSettings) -> None:
        self.model = model
        self.labels = labels
        self.settings = settings
        n = len(model.names)
        self.n_annot = n
        self.pairs = annotator_pairs(n)
        self.quorum = settings.quorum_for(n)
        # per annotator: objects, matched, missing, extra, label_correct, sim_sum, sim_n
        self.annot = np.zeros((n, 7))
        # per pair: matched, sim_sum
        self.pair = np.zeros((len(self.pairs), 2))
        # per label: clusters, kept, sim_sum, sim_n, missing, extra, label_dis, attr_dis
        self.per_label: dict[int, FloatArray] = {}
        self.label_alpha: dict[int, AlphaAccumulator] = {}
        self.alpha_label = AlphaAccumulator()
        self.low_overlap = 0
        self.blocks: list[FindingBlock] = []
        self.tag_findings: list[Finding] = []
        self.frame_idx: list[IntArray] = []
        self.frame_counts: list[FloatArray] = []
        # per annotator: sum and count of its members' similarity to their merged object
        self.conformity = np.zeros((n, 2))

    def add_conformity(self, sim: FloatArray) -> None:
        """``sim (K, R)``: each member's IoU/OKS to the merged object of its (kept) cluster, NaN absent."""
        ok = np.isfinite(sim)
        self.conformity[:, 0] += np.where(ok, sim, 0.0).sum(axis=0)
        self.conformity[:, 1] += column_counts(ok)

    def add_group(
        self,
        batch: ReplicaBatch,
        table: ClusterTable,
        rows: IntArray,
        labels_kr: IntArray,
        cons: IntArray,
        kept: BoolArray,
        score: FloatArray,
        frame_tally: FloatArray,
    ) -> None:
        present = rows >= 0
        count = row_sum(present)
        n = self.n_annot
        sim = table.pair_sim
        sim_ok = np.isfinite(sim)
        sim0 = np.where(sim_ok, sim, 0.0)
        sim_sum = row_sum(sim0)
        sim_n = row_sum(sim_ok)

        # disagreements
        label_dis = row_any(present & (labels_kr != row_max(labels_kr)[:, None]))
        akeys = batch.attr_key[np.maximum(rows, 0)]
        same = present & (labels_kr == cons[:, None])
        big = np.iinfo(np.int64).max
        amin = row_min(np.where(same, akeys, big))
        amax = row_max(np.where(same, akeys, -big))
        attr_dis = (row_sum(same) >= 2) & (amax > amin)
        missing = np.where(kept, n - count, 0)
        extra = np.where(kept, 0, count)
        min_sim = row_min(np.where(sim_ok, sim, np.inf))
        min_sim[sim_n == 0] = np.nan
        # a rejoined cluster has a pair below the match threshold (not linked): low overlap too
        low = (np.nan_to_num(min_sim, nan=1.0) < self.settings.low_overlap_thr) | (count * (count - 1) // 2 > sim_n)
        self.low_overlap += int(low.sum())

        # annotators and pairs
        p_kept = present & kept[:, None]
        self.annot[:, 0] += column_counts(present)
        self.annot[:, 1] += column_counts(p_kept)
        self.annot[:, 2] += column_counts(kept[:, None] & ~present)
        self.annot[:, 3] += column_counts(present & ~kept[:, None])
        self.annot[:, 4] += column_counts(p_kept & (labels_kr == cons[:, None]))
        pair_n = column_counts(sim_ok)
        pair_sum = sim0.sum(axis=0)
        self.pair[:, 0] += pair_n
        self.pair[:, 1] += pair_sum
        for p, (r, s) in enumerate(self.pairs):
            self.annot[[r, s], 5] += pair_sum[p]
            self.annot[[r, s], 6] += pair_n[p]

        # alpha: localise-then-label (job and per consensus label) and label-only
        lol = np.where(present, labels_kr, NOT_ANNOTATED)
        add_grouped(self.label_alpha, lol, cons)
        self.alpha_label.add(labels_kr)

        # labels
        per_cluster = (np.ones(len(table)), kept, sim_sum, sim_n, missing, extra, label_dis, attr_dis)
        label_ids, label_pos = np.unique(cons, return_inverse=True)
        sums = np.stack([np.bincount(label_pos, weights=c, minlength=label_ids.size) for c in per_cluster], axis=1)
        for label, row in zip(label_ids.tolist(), sums, strict=True):
            self.per_label.setdefault(label, np.zeros(8))
            self.per_label[label] += row

        # findings, columnar
        flags = np.stack([kept & (count < n), ~kept, label_dis, attr_dis, low], axis=1)
        n_findings = row_sum(flags)
        idx = np.flatnonzero(n_findings)
        if idx.size:
            rows_i = rows.take(idx, axis=0)
            first = rows_i[np.arange(idx.size), (rows_i >= 0).argmax(axis=1)]
            self.blocks.append(
                FindingBlock(
                    frame=batch.frames[table.frame_pos[idx]],
                    type_code=batch.type_code[first],
                    label=cons[idx],
                    labels=labels_kr.take(idx, axis=0),
                    xyxy=_extents(batch, rows_i, rows_i >= 0),
                    min_similarity=min_sim[idx],
                    score=score[idx],
                    kept=kept[idx],
                    flags=flags.take(idx, axis=0),
                )
            )

        # frames
        size = frame_tally.shape[0]
        columns = (np.ones(len(table)), kept, sim_sum, sim_n, missing, extra, label_dis, n_findings, count)
        for col, values in enumerate(columns):
            frame_tally[:, col] += np.bincount(table.frame_pos, weights=values, minlength=size)

    def _alpha_lol(self) -> float:
        job = AlphaAccumulator()
        for acc in self.label_alpha.values():
            job.merge(acc)
        return job.alpha()

    @staticmethod
    def frame_tally(n_frames: int) -> FloatArray:
        """A zeroed per-frame tally for a chunk, filled by :meth:`add_group` and :meth:`add_tags`."""
        return np.zeros((n_frames, _F_COLS))

    def add_tags(self, frame: int, tags: list[tuple[int, Tag]], merged: list[Tag], frame_row: FloatArray) -> None:
        """Tag findings on one frame, counted into its ``frame_row`` of the chunk tally."""
        names = self.model.names
        by_label: dict[int, set[int]] = {}
        for r, tag in tags:
            by_label.setdefault(tag.label_id, set()).add(r)
        added = 0
        kept = {t.label_id for t in merged}
        for label_id, voters in sorted(by_label.items()):
            if len(voters) == self.n_annot:
                continue
            present = tuple(names[r] for r in sorted(voters))
            missing = tuple(nm for r, nm in enumerate(names) if r not in voters)
            label = self.labels.name_of(label_id)
            by_annot = tuple((p, label) for p in present)
            votes = Votes("tag", present, missing, by_annot, float("nan"), len(voters) / self.n_annot, label_id in kept)
            self.tag_findings.append(
                consensus_finding(FindingKind.TAG_DISAGREEMENT, frame, label, (0.0, 0.0, 0.0, 0.0), votes)
            )
            added += 1
        frame_row[_F_FINDINGS] += added

    def add_frames(self, frames: IntArray, frame_tally: FloatArray) -> None:
        self.frame_idx.append(frames)
        self.frame_counts.append(frame_tally)

    def result(
        self,
        merged: Callable[[], JobAnnotations],
        *,
        keypoint_sigmas: Mapping[str, tuple[float, ...]] | None = None,
        merged_stream: Callable[[], tuple[tuple[Tag, ...], Iterator[list[Shape]]]] | None = None,
        merged_parts: Callable[[], tuple[tuple[Tag, ...], Iterator[Sequence[Any]]]] | None = None,
        annotator_model: AnnotatorModel | None = None,
    ) -> ConsensusResult:
        names = self.model.names
        st = self.settings
        annotators = []
        for r, name in enumerate(names):
            objects, matched, missing, extra, correct, sim_sum, sim_n = self.annot[r].tolist()
            n_kept = matched + missing
            annotators.append(
                AnnotatorStats(
                    annotator=name,
                    objects=int(objects),
                    matched=int(matched),
                    missing=int(missing),
                    extra=int(extra),
                    vs_consensus_precision=safe_ratio(matched, objects),
                    vs_consensus_recall=safe_ratio(matched, n_kept),
                    vs_consensus_f1=safe_ratio(2 * matched, objects + n_kept),
                    vs_consensus_mean_iou=safe_ratio(sim_sum, sim_n),
                    vs_consensus_iou=safe_ratio(float(self.conformity[r, 0]), float(self.conformity[r, 1])),
                    vs_consensus_label_accuracy=safe_ratio(correct, matched),
                    label_reliability=float(self.model.label_reliability[r]),
                    geometric_reliability=float(self.model.geometric_reliability[r]),
                    weight=float(self.model.weights[r]),
                    truth_estimate={} if annotator_model is None else annotator_model.estimates[r].as_dict(),
                    model={} if annotator_model is None else annotator_model.models[r],
                )
            )
        obj = self.annot[:, 0].tolist()
        pairs = tuple(
            PairStats(
                a=names[r],
                b=names[q],
                objects_a=int(obj[r]),
                objects_b=int(obj[q]),
                matched=int(self.pair[p, 0]),
                f1=safe_ratio(2 * float(self.pair[p, 0]), obj[r] + obj[q]),
                mean_iou=safe_ratio(float(self.pair[p, 1]), float(self.pair[p, 0])),
            )
            for p, (r, q) in enumerate(self.pairs)
        )
        labels = tuple(
            LabelStats(
                label=self.labels.name_of(label_id),
                clusters=int(acc[0]),
                kept=int(acc[1]),
                mean_iou=safe_ratio(float(acc[2]), float(acc[3])),
                missing=int(acc[4]),
                extra=int(acc[5]),
                label_disagreements=int(acc[6]),
                attribute_disagreements=int(acc[7]),
                alpha=self.label_alpha[label_id].alpha(),
            )
            for label_id, acc in sorted(self.per_label.items())
        )
        frame_idx = np.concatenate(self.frame_idx) if self.frame_idx else np.zeros(0, dtype=np.int64)
        counts = np.concatenate(self.frame_counts) if self.frame_counts else np.zeros((0, _F_COLS))
        t = counts.sum(axis=0).tolist()
        lab = sum((acc for acc in self.per_label.values()), np.zeros(8))
        summary = JobSummary(
            frames=int(frame_idx.size),
            annotators=names,
            clusters=int(t[_F_CLUSTERS]),
            kept=int(t[_F_KEPT]),
            mean_iou=safe_ratio(t[_F_SIM], t[_F_SIM_N]),
            f1=safe_ratio(2 * t[_F_SIM_N], (self.n_annot - 1) * t[_F_OBJECTS]),
            alpha_lol=self._alpha_lol(),
            alpha_label=self.alpha_label.alpha(),
            missing=int(t[_F_MISSING]),
            extra=int(t[_F_EXTRA]),
            label_disagreements=int(t[_F_LABEL]),
            attribute_disagreements=int(lab[7]),
            low_overlap=self.low_overlap,
            quorum=st.quorum_label(self.n_annot),
            iou_thr=st.iou_thr,
            method=st.method,
        )
        return ConsensusResult(
            summary=summary,
            annotators=tuple(annotators),
            pairs=pairs,
            labels=labels,
            frame_table=FrameTable(frame_idx, counts, self.n_annot),
            finding_blocks=tuple(self.blocks),
            extra_findings=tuple(self.tag_findings),
            label_name=self.labels.name_of,
            merged_builder=merged,
            keypoint_sigmas=dict(keypoint_sigmas or {}),
            merged_stream=merged_stream,
            merged_parts=merged_parts,
            ground_truth=None if annotator_model is None else annotator_model.ground_truth,
        )
