"""Object keypoint similarity (OKS) for CVAT ``points`` shapes and skeletons, all pairs at once.

For objects ``a`` and ``b`` with K keypoints (COCO / CVAT definition)::

    OKS(a, b) = sum_k [v_a,k & v_b,k] exp(-d_k^2 / (2 s (2 sigma_k)^2)) / sum_k [v_a,k | v_b,k]

``d_k`` pixel distance, ``v`` visibility, ``s`` the object scale (an area, px²). A keypoint
visible in one object only counts in the denominator (a miss); invisible in both, it is ignored;
no keypoint visible anywhere gives 0. The scale is the area of the mean of the two objects'
boxes (CVAT ``point_size_base=group_bbox_size``: ``((w_a + w_b) / 2) * ((h_a + h_b) / 2)``); a
zero scale (single points, collinear points) falls back to ``fallback_scale`` (the image area
when known).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import AnnotationFormatError
from cvat_ext.geometry.boxes import FloatArray

BoolArray = npt.NDArray[np.bool_]


def keypoint_box_wh(keypoints: npt.ArrayLike, visible: npt.ArrayLike | None = None) -> FloatArray:
    """(N, K, 2) keypoints (+ (N, K) visibility) -> (N, 2) width/height of the visible points' box.

    Objects with no visible keypoint use all of their keypoints.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape[0] == 0 or kp.shape[1] == 0:
        return np.zeros((kp.shape[0], 2))
    vis = np.ones(kp.shape[:2], dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    vis = np.where(vis.any(axis=1, keepdims=True), vis, True)
    lo = np.where(vis[..., None], kp, np.inf).min(axis=1)
    hi = np.where(vis[..., None], kp, -np.inf).max(axis=1)
    return hi - lo


def oks(
    kp_a: npt.ArrayLike,
    vis_a: npt.ArrayLike | None,
    kp_b: npt.ArrayLike,
    vis_b: npt.ArrayLike | None,
    *,
    sigmas: float | npt.ArrayLike = 0.09,
    wh_a: npt.ArrayLike | None = None,
    wh_b: npt.ArrayLike | None = None,
    fallback_scale: float = 1.0,
) -> FloatArray:
    """All-pairs OKS.

    ``kp_a`` (N, K, 2) XY pixels, ``vis_a`` (N, K) bool (None = all visible), ``kp_b`` (M, K, 2),
    ``vis_b`` (M, K); ``sigmas`` scalar or (K,); ``wh_a`` (N, 2) / ``wh_b`` (M, 2) object box sizes
    (None = box of the visible keypoints) -> (N, M) float64 in [0, 1].
    """
    a = np.asarray(kp_a, dtype=np.float64)
    b = np.asarray(kp_b, dtype=np.float64)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:] or a.shape[2] != 2:
        raise AnnotationFormatError(f"oks: expected keypoints (N, K, 2) and (M, K, 2), got {a.shape} and {b.shape}")
    n, m, k = a.shape[0], b.shape[0], a.shape[1]
    if n == 0 or m == 0 or k == 0:
        return np.zeros((n, m))
    va = np.ones((n, k), dtype=bool) if vis_a is None else np.asarray(vis_a, dtype=bool)
    vb = np.ones((m, k), dtype=bool) if vis_b is None else np.asarray(vis_b, dtype=bool)
    sig = np.broadcast_to(np.asarray(sigmas, dtype=np.float64), (k,))
    box_a = keypoint_box_wh(a, va) if wh_a is None else np.asarray(wh_a, dtype=np.float64).reshape(n, 2)
    box_b = keypoint_box_wh(b, vb) if wh_b is None else np.asarray(wh_b, dtype=np.float64).reshape(m, 2)
    mean_w = (box_a[:, None, 0] + box_b[None, :, 0]) / 2
    mean_h = (box_a[:, None, 1] + box_b[None, :, 1]) / 2
    scale = mean_w * mean_h
    scale = np.where(scale > 0, scale, fallback_scale)
    diff = a[:, None, :, :] - b[None, :, :, :]
    d2 = diff[..., 0] ** 2 + diff[..., 1] ** 2  # (N, M, K)
    both = va[:, None, :] & vb[None, :, :]
    either = va[:, None, :] | vb[None, :, :]
    e = np.exp(-d2 / (2 * scale[..., None] * (2 * sig) ** 2))
    num = np.where(both, e, 0.0).sum(axis=2)
    den = either.sum(axis=2)
    out = np.zeros((n, m))
    np.divide(num, den, out=out, where=den > 0)
    return out


def estimate_keypoint_sigmas(
    keypoints: npt.ArrayLike,
    visible: npt.ArrayLike | None = None,
    *,
    areas: npt.ArrayLike | None = None,
    default: float = 0.09,
) -> FloatArray:
    """Per-keypoint OKS sigmas from replicas of the same objects (COCO's recipe).

    ``keypoints`` (R, N, K, 2): R annotators' keypoints for the same N objects; ``visible``
    (R, N, K) bool (None = all); ``areas`` (N,) object scales in px² (None = area of the box of
    all replicas' visible keypoints of the object) -> (K,) float64.

    COCO defines sigma_k as the spread of the normalised distance ``d / sqrt(area)`` between an
    annotation and the truth. Without a truth, each object's replica mean stands in for it; the
    squared deviations from that mean sum to ``(v - 1)`` times the expected squared distance to
    the truth for ``v`` replicas, so::

        sigma_k = sqrt( sum_{n, r} |x_rnk - mean_r x_rnk|^2 / area_n  /  sum_n (v_nk - 1) )

    i.e. the RMS normalised distance to the truth, unbiased for the replica mean. Keypoints seen by
    fewer than two replicas of any object get ``default``; objects of zero area are skipped.
    """
    num, dof = keypoint_sigma_moments(keypoints, visible, areas=areas)
    return sigmas_from_moments(num, dof, default=default)


def keypoint_sigma_moments(
    keypoints: npt.ArrayLike, visible: npt.ArrayLike | None = None, *, areas: npt.ArrayLike | None = None
) -> tuple[FloatArray, FloatArray]:
    """The sums behind :func:`estimate_keypoint_sigmas`, additive over batches of objects.

    Same inputs; returns ``num (K,)`` (summed squared normalised deviations from the replica mean)
    and ``dof (K,)`` (summed ``v - 1``). Sum them over chunks, then :func:`sigmas_from_moments`.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 4 or kp.shape[-1] != 2:
        raise AnnotationFormatError(f"keypoint sigmas: expected (R, N, K, 2) keypoints, got {kp.shape}")
    r, n, k = kp.shape[:3]
    vis = np.ones((r, n, k), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    if vis.shape != (r, n, k):
        raise AnnotationFormatError(f"keypoint sigmas: expected visibility {(r, n, k)}, got {vis.shape}")
    if areas is None:
        pts = np.moveaxis(kp, 0, 1).reshape(n, r * k, 2)
        wh = keypoint_box_wh(pts, np.moveaxis(vis, 0, 1).reshape(n, r * k))
        area = wh[:, 0] * wh[:, 1]
    else:
        area = np.asarray(areas, dtype=np.float64).reshape(n)
    count = vis.sum(axis=0)  # (N, K)
    mean = np.where(vis[..., None], kp, 0.0).sum(axis=0) / np.maximum(count, 1)[..., None]
    dev2 = np.where(vis, ((kp - mean[None]) ** 2).sum(axis=-1), 0.0).sum(axis=0)  # (N, K)
    usable = (count >= 2) & (area > 0)[:, None]
    safe_area = np.where(area > 0, area, 1.0)[:, None]
    num = np.where(usable, dev2 / safe_area, 0.0).sum(axis=0)
    dof = np.where(usable, count - 1, 0).sum(axis=0)
    return num.astype(np.float64), dof.astype(np.float64)


def sigmas_from_moments(num: npt.ArrayLike, dof: npt.ArrayLike, *, default: float = 0.09) -> FloatArray:
    """``sqrt(num / dof)`` per keypoint (K,); ``default`` where there is no spread information."""
    num_k = np.asarray(num, dtype=np.float64)
    dof_k = np.asarray(dof, dtype=np.float64)
    out = np.full(num_k.shape[0], float(default))
    np.sqrt(num_k / np.maximum(dof_k, 1), out=out, where=dof_k > 0)
    # identical replicas carry no spread information: keep sigmas positive
    return np.where(out > 0, out, default)


def oks_paired(
    kp_a: npt.ArrayLike,
    vis_a: npt.ArrayLike,
    kp_b: npt.ArrayLike,
    vis_b: npt.ArrayLike,
    *,
    sigmas: float | npt.ArrayLike = 0.09,
    fallback_scale: float = 1.0,
) -> FloatArray:
    """OKS of object ``i`` of A with object ``i`` of B (the diagonal of :func:`oks`, without the
    (N, N) work): ``kp_a``/``kp_b`` (L, K, 2), ``vis_a``/``vis_b`` (L, K) -> (L,) in [0, 1]."""
    a = np.asarray(kp_a, dtype=np.float64)
    b = np.asarray(kp_b, dtype=np.float64)
    if a.ndim != 3 or a.shape != b.shape or a.shape[2] != 2:
        raise AnnotationFormatError(f"oks_paired: expected two (L, K, 2) keypoint arrays, got {a.shape} and {b.shape}")
    va = np.asarray(vis_a, dtype=bool)
    vb = np.asarray(vis_b, dtype=bool)
    n, k = a.shape[:2]
    if n == 0 or k == 0:
        return np.zeros(n)
    sig = np.broadcast_to(np.asarray(sigmas, dtype=np.float64), (k,))
    box_a, box_b = keypoint_box_wh(a, va), keypoint_box_wh(b, vb)
    scale = ((box_a[:, 0] + box_b[:, 0]) / 2) * ((box_a[:, 1] + box_b[:, 1]) / 2)
    scale = np.where(scale > 0, scale, fallback_scale)
    d2 = ((a - b) ** 2).sum(axis=2)
    e = np.exp(-d2 / (2 * scale[:, None] * (2 * sig) ** 2))
    num = np.where(va & vb, e, 0.0).sum(axis=1)
    den = (va | vb).sum(axis=1)
    out = np.zeros(n)
    np.divide(num, den, out=out, where=den > 0)
    return out
