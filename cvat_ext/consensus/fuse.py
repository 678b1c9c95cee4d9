"""Pass 2 of the engine on one chunk: consensus labels, quorum and fused objects.

:class:`ChunkMerger` turns the clusters of a chunk into merged shapes (kept columnar in
:class:`MergedColumns` until the job's annotations are asked for) and tags, and hands every match
group to the :class:`~cvat_ext.consensus.tally.JobTally`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvat_ext.annotations.model import Attribute, JobAnnotations, JobMeta, LabelSet, MaskRle, Shape, ShapeType, Tag
from cvat_ext.consensus.annotator_model import cluster_size
from cvat_ext.consensus.batch import BoolArray, ChunkInput, FloatArray, GroupKey, IntArray, ReplicaBatch
from cvat_ext.consensus.clusters import ClusterTable
from cvat_ext.consensus.conformity import box_conformity, keypoint_conformity, shape_conformity
from cvat_ext.consensus.matching import pair_design, pair_index
from cvat_ext.consensus.merge import (
    SOURCE,
    MaskView,
    MemberRuns,
    fuse_boxes,
    fuse_ellipses,
    fuse_keypoints,
    fuse_keypoints_iv,
    fuse_masks,
    fuse_points,
    fuse_polygons,
    fuse_skeleton,
    member_rows,
    merge_tags,
    nearest_to_mean,
    vote_attributes,
    vote_masks,
    weighted_medoid,
)
from cvat_ext.consensus.polygon_fusion import fuse_polygon_clusters
from cvat_ext.consensus.reliability import ReliabilityModel
from cvat_ext.consensus.settings import ConsensusSettings
from cvat_ext.consensus.sigmas import keypoint_columns
from cvat_ext.consensus.small_axis import row_any, row_sum
from cvat_ext.consensus.tally import JobTally
from cvat_ext.geometry import SimilarityParams

_MASK_CODE = list(ShapeType).index(ShapeType.MASK)
#: families fused member by member from their geometry (centre/axes/angle, points) with the
#: annotator model's inverse-variance weights; without the model they keep the weighted medoid
_FUSED_BY_NOISE = frozenset({"ellipse", "points"})


@dataclass(frozen=True, eq=False)
class MergedColumns:
    """Fused objects of one match group in one chunk, columnar (K kept clusters): rectangles
    (``xyxy (K, 4)``, ``rotation (K,)``), masks (``mask_ltrb (K, 4)``, ``mask_counts`` K RLEs),
    keypoints or polygons (CVAT's flat points ``poly_xy``, object ``k``'s at
    ``poly_xy[poly_start[k]:poly_start[k + 1]]``)."""

    frame: IntArray
    label: IntArray
    score: FloatArray
    occluded: BoolArray
    z_order: IntArray
    attributes: tuple[tuple[Attribute, ...], ...] | None
    xyxy: FloatArray | None = None
    rotation: FloatArray | None = None
    mask_ltrb: IntArray | None = None
    mask_counts: Sequence[IntArray] | None = None
    kp_label: IntArray | None = None  # (P,) keypoint label ids
    kp_xy: FloatArray | None = None  # (K, P, 2)
    kp_outside: BoolArray | None = None  # (K, P)
    kp_occluded: BoolArray | None = None  # (K, P)
    kp_present: BoolArray | None = None  # (K, P) some member has the keypoint
    poly_xy: FloatArray | None = None  # (C,) x, y, x, y, ...
    poly_start: IntArray | None = None  # (K + 1,)

    def materialise(self) -> list[Shape]:
        n = self.frame.shape[0]
        attrs = self.attributes or ((),) * n
        return [
            Shape(
                frame=f,
                label_id=lb,
                source=SOURCE,
                score=round(sc, 4),
                occluded=occ,
                z_order=z,
                attributes=at,
                **geometry,
            )
            for f, lb, sc, occ, z, at, geometry in zip(
                self.frame.tolist(),
                self.label.tolist(),
                self.score.tolist(),
                self.occluded.tolist(),
                self.z_order.tolist(),
                attrs,
                self._geometry(),
                strict=True,
            )
        ]

    def _geometry(self) -> list[dict[str, Any]]:
        """Per object, the ``Shape`` fields of its fused geometry."""
        if self.xyxy is not None and self.rotation is not None:
            return [
                {"type": ShapeType.RECTANGLE, "points": xy, "rotation": rot}
                for xy, rot in zip(self.xyxy, self.rotation.tolist(), strict=True)
            ]
        if self.poly_xy is not None and self.poly_start is not None:
            xy, bounds = self.poly_xy, self.poly_start.tolist()
            return [
                {"type": ShapeType.POLYGON, "points": xy[lo:hi].reshape(-1, 2)} for lo, hi in itertools.pairwise(bounds)
            ]
        no_points = np.zeros((0, 2))
        if self.kp_label is not None:
            assert self.kp_xy is not None and self.kp_present is not None
            assert self.kp_outside is not None and self.kp_occluded is not None
            labels = self.kp_label.tolist()
            out = []
            for k, frame in enumerate(self.frame.tolist()):
                elements = tuple(
                    Shape(
                        type=ShapeType.POINTS,
                        frame=frame,
                        label_id=labels[p],
                        points=self.kp_xy[k, p][None, :],
                        outside=bool(self.kp_outside[k, p]),
                        occluded=bool(self.kp_occluded[k, p]),
                        source=SOURCE,
                    )
                    for p in np.flatnonzero(self.kp_present[k]).tolist()
                )
                out.append({"type": ShapeType.SKELETON, "points": no_points, "elements": elements})
            return out
        assert self.mask_ltrb is not None and self.mask_counts is not None
        return [
            {"type": ShapeType.MASK, "points": no_points, "mask": MaskRle(counts, (lt[0], lt[1], lt[2], lt[3]))}
            for lt, counts in zip(self.mask_ltrb.tolist(), self.mask_counts, strict=True)
        ]


class ChunkMerger:
    """Merges chunk after chunk; :meth:`merged` builds the job's merged annotations."""

    def __init__(
        self,
        model: ReliabilityModel,
        labels: LabelSet,
        meta: JobMeta,
        settings: ConsensusSettings,
        tally: JobTally,
        params: Callable[[int], SimilarityParams] | None = None,
    ) -> None:
        self.model = model
        self.labels = labels
        self.meta = meta
        self.settings = settings
        self.tally = tally
        self.quorum = settings.quorum_for(len(model.names))
        self.weights = model.weights if settings.method != "nearest" else np.ones(len(model.names))
        #: similarity parameters of a frame (the engine's: frame size, keypoint sigmas)
        self.params: Callable[[int], SimilarityParams] = params or (lambda _frame: SimilarityParams())
        self._parts: list[MergedColumns | list[Shape]] = []
        self._chunk_starts: list[int] = []  # position in ``_parts`` where each chunk begins
        self._tags: list[Tag] = []

    def merged(self) -> JobAnnotations:
        """Merged shapes sorted by frame (stable), and merged tags."""
        shapes = [sh for part in self._iter_chunks() for sh in part]
        return JobAnnotations(shapes=tuple(shapes), tags=tuple(self._tags))

    def stream(self) -> tuple[tuple[Tag, ...], Iterator[list[Shape]]]:
        """The merged tags, and the merged shapes built one chunk at a time (each sorted by frame;
        chunks come in frame order, so the concatenation is what :meth:`merged` gives)."""
        return tuple(self._tags), self._iter_chunks()

    def parts(self) -> tuple[tuple[Tag, ...], Iterator[list[MergedColumns | list[Shape]]]]:
        """The merged tags, and per chunk (in frame order) its parts as kept: columns or shapes;
        a chunk's shapes are its parts' rows sorted by frame, stable (what :meth:`stream` builds)."""
        bounds = [*self._chunk_starts, len(self._parts)]
        return tuple(self._tags), (self._parts[lo:hi] for lo, hi in itertools.pairwise(bounds))

    def _iter_chunks(self) -> Iterator[list[Shape]]:
        bounds = [*self._chunk_starts, len(self._parts)]
        for lo, hi in itertools.pairwise(bounds):
            shapes: list[Shape] = []
            for part in self._parts[lo:hi]:
                shapes.extend(part.materialise() if isinstance(part, MergedColumns) else part)
            shapes.sort(key=lambda sh: sh.frame)
            yield shapes

    def merge_chunk(
        self,
        chunk: ChunkInput,
        batches: Mapping[GroupKey, ReplicaBatch],
        tables: Mapping[GroupKey, ClusterTable],
        strata: Mapping[GroupKey, IntArray] | None = None,
        sizes: Mapping[GroupKey, FloatArray] | None = None,
        hits: Mapping[GroupKey, FloatArray] | None = None,
    ) -> None:
        """Merge one chunk's clusters (``sizes``: each cluster's object size, px, when known;
        ``hits``: joined split pairs' probability of matching the truth, see
        :meth:`~cvat_ext.consensus.reliability.ReliabilityModel.keep`)."""
        frame_tally = self.tally.frame_tally(len(chunk.frames))
        self._chunk_starts.append(len(self._parts))
        w_all = float(self.model.weights.sum())
        for key, batch in batches.items():
            table = tables[key]
            rows = member_rows(batch, table)
            present = rows >= 0
            labels_kr = np.where(present, batch.label[np.maximum(rows, 0)], -1)
            cons = self.model.consensus_labels(labels_kr)
            size = sizes[key] if sizes is not None and key in sizes else cluster_size(batch.xyxy, rows)
            stratum = None if strata is None else strata.get(key)
            linked = row_any(np.isfinite(table.pair_sim))
            hit = None if hits is None else hits.get(key)
            kept = self.model.keep(batch.family, present, self.quorum, stratum, size, linked, hit)
            score = row_sum(self.model.weights[None, :] * present) / w_all
            conformity = np.full((int(kept.sum()), len(self.model.names)), np.nan)
            self._parts.extend(self._fuse(batch, table, rows, cons, score, kept, conformity, size))
            self.tally.add_conformity(conformity)
            self.tally.add_group(batch, table, rows, labels_kr, cons, kept, score, frame_tally)
        for pos, frame in enumerate(chunk.frames):
            tags = chunk.tags(pos)
            if tags:
                merged = merge_tags(frame, tags, self.weights, self.quorum)
                self._tags.extend(merged)
                self.tally.add_tags(frame, tags, merged, frame_tally[pos])
        self.tally.add_frames(np.asarray(chunk.frames, dtype=np.int64), frame_tally)

    # -- geometry -------------------------------------------------------------------------------

    @staticmethod
    def _cached_runs(batch: ReplicaBatch, rows: IntArray) -> MemberRuns | None:
        """The matching's runs of batch ``rows`` (by position) when the batch still has them."""
        if len(batch.runs_cache) != 1:
            return None
        (runs,) = batch.runs_cache.values()
        return lambda idx: runs.take(rows[idx])

    def _attributes(
        self, batch: ReplicaBatch, rows_k: IntArray, cons_k: IntArray, w: FloatArray
    ) -> tuple[tuple[Attribute, ...], ...] | None:
        """Per kept cluster, the weighted attribute vote of the members carrying the consensus label."""
        has_attr = (batch.attr_key[np.maximum(rows_k, 0)] != 0) & (rows_k >= 0)
        if not has_attr.any():
            return None
        out: list[tuple[Attribute, ...]] = []
        for j in range(rows_k.shape[0]):
            if not has_attr[j].any():
                out.append(())
                continue
            same = [
                (r, batch.shape(i)) for r, i in enumerate(rows_k[j].tolist()) if i >= 0 and batch.label[i] == cons_k[j]
            ]
            out.append(vote_attributes([sh for _, sh in same], [float(w[r]) for r, _ in same]))
        return tuple(out)

    def _fuse(
        self,
        batch: ReplicaBatch,
        table: ClusterTable,
        rows: IntArray,
        cons: IntArray,
        score: FloatArray,
        kept: BoolArray,
        conformity: FloatArray,
        size: FloatArray,
    ) -> list[MergedColumns | list[Shape]]:
        """Fused objects of the kept clusters; ``conformity (K_kept, R)`` receives each member's
        similarity to its fused object."""
        idx = np.flatnonzero(kept)
        w = self.weights if self.settings.method == "nearest" else self.model.weights_for(batch.family)
        frames = batch.frames[table.frame_pos[idx]]
        rows_k = rows.take(idx, axis=0)  # take: ~8x a 2-D fancy index
        attrs = self._attributes(batch, rows_k, cons[idx], w)
        present_k = rows_k >= 0
        safe = np.maximum(rows_k, 0)
        # (K, R) per-cluster weights: the annotators' inverse noise variance at the cluster's size
        wk = (
            np.broadcast_to(w[None, :], rows_k.shape)
            if self.settings.method == "nearest"
            else self.model.member_weights(batch.family, size[idx])
        )
        # the families whose split clusters fitted a lone pool (keypoint families)
        wk = self._unlinked_weights(batch.family, wk, table.pair_sim[idx])
        weight = wk * present_k
        occluded = row_sum(weight * batch.occluded[safe]) > 0.5 * row_sum(weight)
        ref = np.where(present_k, w[None, :], -1.0).argmax(axis=1)
        z_order = batch.z_order[rows_k[np.arange(idx.size), ref]] if idx.size else np.zeros(0, dtype=np.int64)
        method = self.settings.method
        family = batch.family
        if family == "rectangle" and method != "nearest":
            member_xyxy = batch.xyxy.take(safe, axis=0)  # take: ~8x a 2-D fancy index
            boxes, angles = fuse_boxes(member_xyxy, batch.rotation[safe], weight)
            conformity[:] = box_conformity(member_xyxy, batch.rotation[safe], present_k, boxes, angles)
            return [MergedColumns(frames, cons[idx], score[idx], occluded, z_order, attrs, xyxy=boxes, rotation=angles)]
        out: list[MergedColumns | list[Shape]] = []
        rest = np.arange(idx.size)

        def columns(sel: IntArray, **geometry: Any) -> MergedColumns:
            """The kept clusters ``sel`` (positions in ``idx``) with their fused ``geometry``."""
            chosen = None if attrs is None else tuple(attrs[j] for j in sel.tolist())
            return MergedColumns(
                frames[sel], cons[idx[sel]], score[idx[sel]], occluded[sel], z_order[sel], chosen, **geometry
            )

        if family == "segment" and method == "wbf" and batch.shapes is not None:
            # clusters of masks only: one run-level vote for all of them
            is_mask = batch.type_code == _MASK_CODE
            all_masks = np.where(present_k, is_mask[safe], True).all(axis=1)
            sel = np.flatnonzero(all_masks)
            member_j, member_r = np.nonzero(present_k[sel])
            member_rows = rows_k[sel][member_j, member_r]
            masks = MaskView(batch.mask, member_rows, batch.mask_rles)  # read when used: a dominant lead's only
            # IoU with the heaviest member, known from the matching where the two are linked
            lead_r = np.where(present_k[sel], wk[sel], -1.0).argmax(axis=1)[member_j]
            pair_of = pair_index(len(w))
            lead_iou = table.pair_sim[idx[sel[member_j]], pair_of[member_r, lead_r]]
            lead_iou[member_r == lead_r] = 1.0
            ltrb, counts, member_iou = vote_masks(
                masks,
                member_j,
                wk[sel][member_j, member_r],
                sel.size,
                self.settings.mask_vote_thr,
                lead_iou,
                self._cached_runs(batch, member_rows),
            )
            voted = np.array([c is not None for c in counts], dtype=bool)
            got = sel[voted]
            on = voted[member_j]
            conformity[got[np.searchsorted(got, sel[member_j[on]])], member_r[on]] = member_iou[on]
            out.append(columns(got, mask_ltrb=ltrb[voted], mask_counts=[c for c in counts if c is not None]))
            rest = np.setdiff1d(rest, got)
        if family == "skeleton" and method != "nearest" and batch.shapes is not None:
            fused = self._fuse_skeletons(batch, rows_k[rest], wk[rest])
            if fused is not None:
                kp_label, (kp_xy, kp_outside, kp_occluded, kp_present), (xy, visible) = fused
                params = self.params(int(frames[0])) if frames.size else self.params(0)
                sigmas = _kp_sigmas(params, kp_label)
                wh = params.image_wh
                conformity[rest] = keypoint_conformity(
                    xy, visible, rows_k[rest] >= 0, kp_xy, kp_present & ~kp_outside, sigmas, float(wh[0] * wh[1]) or 1.0
                )
                out.append(
                    columns(
                        rest,
                        kp_label=kp_label,
                        kp_xy=kp_xy,
                        kp_outside=kp_outside,
                        kp_occluded=kp_occluded,
                        kp_present=kp_present,
                    )
                )
                return out
        if family == "segment" and rest.size:
            sub = np.full((rest.size, conformity.shape[1]), np.nan)
            polygons = fuse_polygon_clusters(
                batch,
                rows_k[rest],
                wk[rest],
                table.pair_sim[idx[rest]],
                frames[rest],
                method,
                self.settings.mask_vote_thr,
                self.params,
                sub,
            )
            if polygons is not None:
                conformity[rest] = sub
                out.append(columns(rest, poly_xy=polygons.xy, poly_start=polygons.start))
                return out
        pick: IntArray | None = None
        if method == "nearest":
            pick = nearest_to_mean(batch.xyxy.take(safe, axis=0), present_k)
        elif family not in ("segment", "skeleton") and not (family in _FUSED_BY_NOISE and self._noise_weighted(family)):
            pick = weighted_medoid(table.pair_sim[idx], present_k, w)
        if pick is not None and family == "rectangle" and idx.size:
            chosen = rows_k[np.arange(idx.size), pick]
            conformity[:] = box_conformity(
                batch.xyxy.take(safe, axis=0),
                batch.rotation[safe],
                present_k,
                batch.xyxy.take(chosen, axis=0),
                batch.rotation[chosen],
            )
        shapes: list[Shape] = []
        to_compare: list[tuple[int, list[tuple[int, Shape]], Shape, FloatArray]] = []
        for j in rest.tolist():
            k = int(idx[j])
            common: dict[str, Any] = {
                "frame": int(frames[j]),
                "label_id": int(cons[k]),
                "source": SOURCE,
                "score": round(float(score[k]), 4),
                "attributes": attrs[j] if attrs is not None else (),
                "occluded": bool(occluded[j]),
                "z_order": int(z_order[j]),
            }
            members = [(r, batch.shape(i)) for r, i in enumerate(rows_k[j].tolist()) if i >= 0]
            if pick is not None:
                shape: Shape | None = _copy_geometry(batch.shape(int(rows_k[j, pick[j]])), common)
            else:
                shape = self._fuse_members(members, wk[j], common)
            if shape is None:
                continue
            shapes.append(shape)
            if not (pick is not None and family == "rectangle"):
                to_compare.append((j, members, shape, table.pair_sim[k]))
        shape_conformity(to_compare, lambda fused: self.params(fused.frame), conformity)
        out.append(shapes)
        return out

    def _fuse_skeletons(
        self, batch: ReplicaBatch, rows_k: IntArray, w: FloatArray
    ) -> tuple[IntArray, tuple[FloatArray, BoolArray, BoolArray, BoolArray], tuple[FloatArray, BoolArray]] | None:
        """Columnar keypoint fusion of kept skeleton clusters (``w (K, R)`` member weights); None
        when an element carries attributes (the per-cluster path votes them)."""
        member_rows = rows_k[rows_k >= 0].tolist()
        if any(e.attributes for i in member_rows for e in batch.shape(i).elements):
            return None
        kp_label, xy, fl = keypoint_columns(batch, rows_k)
        present = rows_k >= 0
        weight = w * present
        vote = self._visibility_vote(batch.family)
        if vote is not None:  # the annotator model's noise: inverse-variance mean, flip-rate vote
            fused_xy, outside, occluded = fuse_keypoints_iv(xy, fl[..., 0], fl[..., 1], fl[..., 2], weight, *vote)
        else:
            fused_xy, outside, occluded = fuse_keypoints(xy, fl[..., 0], fl[..., 1], fl[..., 2], weight)
        has_any = np.asarray(fl[..., 0].any(axis=1), dtype=bool)
        return kp_label, (fused_xy, outside, occluded, has_any), (xy, fl[..., 0] & fl[..., 1])

    def _unlinked_weights(self, family: str, weight: FloatArray, pair_sim: FloatArray) -> FloatArray:
        """(K, R) the fusion weights ``weight (K, R)`` of clusters with pair similarities ``pair_sim
        (K, P)`` (NaN: not linked), divided by the family's :attr:`AnnotatorModel.unlinked_scale` for
        a member linked to none of the others where some of them did link (a lone drawing the split
        clusters joined beside them): its offset is wider than its fitted variance by that factor."""
        am = self.model.annotator_model
        scale = None if am is None or self.settings.method == "nearest" else am.unlinked_scale.get(family)
        if scale is None:
            return weight
        wide = unlinked_beside_linked(pair_sim, weight.shape[1])
        return np.asarray(np.where(wide, weight / scale, weight), dtype=np.float64)

    def _noise_weighted(self, family: str) -> bool:
        """True when the merge weighs ``family``'s members by the annotator model's inverse variance."""
        am = self.model.annotator_model
        return am is not None and self.settings.method != "nearest" and am.noise_weighted(family)

    def _visibility_vote(self, family: str) -> tuple[FloatArray, float] | None:
        """The annotator model's visibility vote of a keypoint family (None: not fitted, or the
        merge does not use the model)."""
        am = self.model.annotator_model
        return None if am is None or self.settings.method == "nearest" else am.visibility_vote(family)

    def _fuse_members(
        self, members: list[tuple[int, Shape]], weights: FloatArray, common: dict[str, Any]
    ) -> Shape | None:
        w = np.array([weights[r] for r, _ in members])
        shapes = [sh for _, sh in members]
        method = self.settings.method
        if shapes[0].type is ShapeType.SKELETON:
            model_vote = self._visibility_vote(shapes[0].type.value)
            vote = None if model_vote is None else (model_vote[0][[r for r, _ in members]], model_vote[1])
            elements = fuse_skeleton(shapes, w, vote)
            return Shape(type=ShapeType.SKELETON, points=np.zeros((0, 2)), elements=elements, **common)
        if all(sh.type is ShapeType.ELLIPSE for sh in shapes):
            cxcy_rxry = np.array([sh.ellipse_cxcy_rxry for sh in shapes])
            (cx, cy, rx, ry), angle = fuse_ellipses(cxcy_rxry, np.array([sh.rotation for sh in shapes]), w)
            return Shape(type=ShapeType.ELLIPSE, points=np.array([cx, cy, cx + rx, cy - ry]), rotation=angle, **common)
        if all(sh.type is ShapeType.POINTS for sh in shapes):
            points = fuse_points([sh.points for sh in shapes], w)
            if points is not None:
                return Shape(type=ShapeType.POINTS, points=points, **common)
        if all(sh.type is ShapeType.POLYGON for sh in shapes):
            poly = fuse_polygons([sh.points for sh in shapes], w, method, self.settings.mask_vote_thr)
            if poly is not None:
                return Shape(type=ShapeType.POLYGON, points=poly, **common)
        elif all(sh.mask is not None for sh in shapes):
            rle = fuse_masks([sh.mask for sh in shapes if sh.mask is not None], w, method, self.settings.mask_vote_thr)
            if rle is not None:
                return Shape(type=ShapeType.MASK, points=np.zeros((0, 2)), mask=rle, **common)
        # mixed polygon/mask clusters or an empty vote: the most trusted member's geometry
        return _copy_geometry(shapes[int(np.argmax(w))], common)


def unlinked_beside_linked(pair_sim: FloatArray, n_annotators: int) -> BoolArray:
    """(K, R) the members of clusters with pair similarities ``pair_sim (K, P)`` (NaN: not linked)
    that linked to none of the others where some two of them did link; a cluster none of whose
    members linked (a joined split pair) has none."""
    linked = np.isfinite(pair_sim).astype(np.float64) @ pair_design(n_annotators) > 0
    some = np.asarray(linked.any(axis=1), dtype=bool)
    return np.asarray(~linked & some[:, None], dtype=bool)


def _kp_sigmas(params: SimilarityParams, kp_label: IntArray) -> float | FloatArray:
    """The OKS sigmas of keypoints ``kp_label (P,)`` under ``params``."""
    if params.element_sigmas is None:
        return params.oks_sigma
    return np.array([params.element_sigmas.get(i, params.oks_sigma) for i in kp_label.tolist()], dtype=np.float64)


def _copy_geometry(base: Shape, common: dict[str, Any]) -> Shape:
    """A member's geometry as a new consensus object (no id, no group)."""
    elements = tuple(dataclasses.replace(e, id=None, source=SOURCE) for e in base.elements)
    return dataclasses.replace(base, id=None, group=0, elements=elements, **common)
