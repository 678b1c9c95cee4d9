"""How close each annotator's drawing is to the merged object of its cluster (IoU, or OKS for
keypoints): the per-annotator "geometric agreement with the consensus" of the report.

Every function returns ``(K, R)`` float64 for K kept clusters and R annotators, NaN where the
annotator has no member; the fused geometry is what the merge produced, compared with the
geometry's own kernels (paired forms: member i against the fused object of its own cluster only).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cvat_ext.annotations.model import MaskRle, Shape
from cvat_ext.consensus.batch import BoolArray, FloatArray, IntArray
from cvat_ext.geometry import (
    SimilarityParams,
    box_iou_pairs,
    oks_paired,
    rle_to_runs,
    rotated_box_iou,
    runs_iou_paired,
    similarity_matrix,
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
        out[kk, rr] = box_iou_pairs(member_xyxy[kk, rr], fused_xyxy[kk])
        return out
    for j, q in zip(kk.tolist(), rr.tolist(), strict=True):  # rotated boxes: rare, exact clipping
        out[j, q] = rotated_box_iou(
            member_xyxy[j, q][None], member_rot[j, q][None], fused_xyxy[j][None], fused_rot[j][None]
        )[0, 0]
    return out


def mask_conformity(
    members: Sequence[MaskRle], member_k: IntArray, member_r: IntArray, fused: Sequence[MaskRle], shape: tuple[int, int]
) -> FloatArray:
    """Member masks (M,) of clusters ``member_k`` (positions in ``fused``) and annotators
    ``member_r`` against the fused masks -> ``shape`` (K, R)."""
    out = np.full(shape, np.nan)
    if len(members):
        iou = runs_iou_paired(rle_to_runs(members), rle_to_runs([fused[k] for k in member_k.tolist()]))
        out[member_k, member_r] = iou
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
    members: Sequence[tuple[int, Shape]], fused: Shape, params: SimilarityParams, out: FloatArray
) -> None:
    """One cluster's members ``(annotator, shape)`` against its fused shape, into ``out (R,)``."""
    if not members:
        return
    sim = similarity_matrix([sh for _, sh in members], [fused], params)[:, 0]
    out[[r for r, _ in members]] = sim
