"""How close each annotator's drawing is to the merged object of its cluster (IoU, or OKS for
keypoints): the per-annotator "geometric agreement with the consensus" of the report.

Every function returns ``(K, R)`` float64 for K kept clusters and R annotators, NaN where the
annotator has no member; the fused geometry is what the merge produced, compared with the
geometry's own kernels (paired forms: member i against the fused object of its own cluster only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cvat_ext.annotations.model import Shape, ShapeType
from cvat_ext.consensus.batch import BoolArray, FloatArray
from cvat_ext.consensus.matching import annotator_pairs
from cvat_ext.geometry import (
    SimilarityParams,
    box_iou_pairs,
    oks_paired,
    rotated_box_iou,
    runs_iou_paired,
    segment_runs,
    similarity_matrix,
    take_runs,
)


def box_conformity(
    member_xyxy: FloatArray, member_rot: FloatArray, present: BoolArray, fused_xyxy: FloatArray, fused_rot: FloatArray
) -> FloatArray:
    """Members ``(K, R, 4)`` / ``(K, R)`` degrees against fused boxes ``(K, 4)`` / ``(K,)``."""
    k, r = present.shape
    out = np.full((k, r), np.nan)
    kk, rr = np.nonzero(present)
    if kk.size == 0:
        return out
    if not np.any(np.mod(member_rot[kk, rr], 180.0)) and not np.any(np.mod(fused_rot, 180.0)):
        # one flat index per (cluster, member): NumPy's 2-D fancy indexing is ~8x slower than take
        flat = kk * r + rr
        iou = box_iou_pairs(member_xyxy.reshape(-1, 4).take(flat, axis=0), fused_xyxy.take(kk, axis=0))
        out.reshape(-1)[flat] = iou
        return out
    for j, q in zip(kk.tolist(), rr.tolist(), strict=True):  # rotated boxes: rare, exact clipping
        out[j, q] = rotated_box_iou(
            member_xyxy[j, q][None], member_rot[j, q][None], fused_xyxy[j][None], fused_rot[j][None]
        )[0, 0]
    return out


def keypoint_conformity(
    xy: FloatArray,
    visible: BoolArray,
    present: BoolArray,
    fused_xy: FloatArray,
    fused_visible: BoolArray,
    sigmas: float | FloatArray,
    fallback_scale: float,
) -> FloatArray:
    """Member keypoints ``(K, R, P, 2)`` with visibility ``(K, R, P)`` against the fused skeletons
    ``(K, P, 2)`` / ``(K, P)`` -> OKS (K, R)."""
    k, r = present.shape
    out = np.full((k, r), np.nan)
    kk, rr = np.nonzero(present)
    if kk.size:
        out[kk, rr] = oks_paired(
            xy[kk, rr], visible[kk, rr], fused_xy[kk], fused_visible[kk], sigmas=sigmas, fallback_scale=fallback_scale
        )
    return out


def shape_conformity(
    items: Sequence[tuple[int, Sequence[tuple[int, Shape]], Shape, FloatArray]],
    params: Callable[[Shape], SimilarityParams],
    out: FloatArray,
) -> None:
    """Clusters ``(row in out, members (annotator, shape), fused shape)`` -> ``out (K, R)``.

    Polygons and masks (one family) go through one rasterisation and one paired run join per
    frame size; other types through :func:`similarity_matrix` per cluster. Each item also carries
    its cluster's ``pair_sim (P,)``: when the fused shape is a member's own drawing, the others'
    similarity to it is already known from the matching wherever the pair was linked."""
    pair_of = {pq: p for p, pq in enumerate(annotator_pairs(out.shape[1]))}
    # per frame size: member pairs (row, annotator, member) and the fused shapes they compare with
    segments: dict[tuple[int, int], tuple[list[tuple[int, int, Shape]], list[int], list[Shape]]] = {}
    for j, members, fused, pair_sim in items:
        lead = next((r for r, sh in members if _same_geometry(sh, fused)), None)
        if lead is not None:  # the fused shape is this member's drawing
            out[j, lead] = 1.0
            for r, _ in members:
                if r != lead:
                    out[j, r] = pair_sim[pair_of[(min(r, lead), max(r, lead))]]
            members = [(r, sh) for r, sh in members if not np.isfinite(out[j, r])]
            if not members:
                continue
        if fused.type in (ShapeType.POLYGON, ShapeType.MASK) and all(
            sh.type in (ShapeType.POLYGON, ShapeType.MASK) for _, sh in members
        ):
            pairs, fused_of, fused_list = segments.setdefault(params(fused).image_wh, ([], [], []))
            for r, sh in members:
                pairs.append((j, r, sh))
                fused_of.append(len(fused_list))
            fused_list.append(fused)
        elif members:
            sim = similarity_matrix([sh for _, sh in members], [fused], params(fused))[:, 0]
            out[j, [r for r, _ in members]] = sim
    for pairs, fused_of, fused_list in segments.values():
        if not pairs:
            continue
        p = params(fused_list[0])
        fused_runs = take_runs(segment_runs(fused_list, p), np.asarray(fused_of, dtype=np.int64))
        iou = runs_iou_paired(segment_runs([sh for *_, sh in pairs], p), fused_runs)
        out[[j for j, *_ in pairs], [r for _, r, _ in pairs]] = iou


def _same_geometry(a: Shape, b: Shape) -> bool:
    """True when ``b`` is ``a``'s drawing (skeletons never: their fusion is per keypoint)."""
    if a.type is not b.type or a.elements or b.elements:
        return False
    if a.mask is not None and b.mask is not None:
        return a.mask.ltrb == b.mask.ltrb and np.array_equal(a.mask.counts, b.mask.counts)
    return a.points.shape == b.points.shape and bool(np.array_equal(a.points, b.points))
