from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvat_ext.errors import AnnotationFormatError
from cvat_ext.geometry import cuboid2d_iou, cuboid3d_iou, estimate_keypoint_sigmas, oks, rotated_box_iou
from tests.geometry.reference import convex_intersection_area_ref, oks_ref


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 4), st.integers(0, 4), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_oks_matches_reference(n: int, m: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 50, (n, k, 2))
    b = rng.uniform(0, 50, (m, k, 2))
    va = rng.uniform(size=(n, k)) > 0.3
    vb = rng.uniform(size=(m, k)) > 0.3
    sig = rng.uniform(0.02, 0.2, k)
    got = oks(a, va, b, vb, sigmas=sig, fallback_scale=2500.0)
    assert got.shape == (n, m)
    for i in range(n):
        for j in range(m):

            def wh(p: np.ndarray, v: np.ndarray) -> np.ndarray:
                pts = p[v] if v.any() else p
                return pts.max(0) - pts.min(0)

            w = (wh(a[i], va[i]) + wh(b[j], vb[j])) / 2
            scale = w[0] * w[1] if w[0] * w[1] > 0 else 2500.0
            assert got[i, j] == pytest.approx(oks_ref(a[i], va[i], b[j], vb[j], sig, scale), abs=1e-12)
    np.testing.assert_array_equal(got, oks(b, vb, a, va, sigmas=sig, fallback_scale=2500.0).T)
    assert np.all((got >= 0) & (got <= 1))


@pytest.mark.parametrize(
    ("va", "vb", "expected"),
    [
        ([1, 1, 1], [1, 1, 1], 1.0),
        ([1, 1, 0], [1, 1, 0], 1.0),  # invisible in both: ignored
        ([1, 1, 0], [1, 1, 1], 2 / 3),  # visible in one only: a miss
        ([0, 0, 0], [0, 0, 0], 0.0),  # nothing visible
    ],
)
def test_oks_visibility_table(va: list[int], vb: list[int], expected: float) -> None:
    kp = np.array([[[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]]])
    assert oks(kp, [va], kp, [vb])[0, 0] == pytest.approx(expected)


def test_oks_single_points_use_fallback_scale_and_shape_errors() -> None:
    p = np.array([[[5.0, 5.0]]])
    assert oks(p, None, p, None)[0, 0] == 1.0
    assert 0 < oks(p, None, p + 3, None, fallback_scale=640 * 480)[0, 0] < 1
    with pytest.raises(AnnotationFormatError, match="keypoints"):
        oks(np.zeros((1, 3, 2)), None, np.zeros((1, 4, 2)), None)


def test_estimate_keypoint_sigmas_recovers_spread() -> None:
    rng = np.random.default_rng(7)
    true_sigma = np.array([0.02, 0.05, 0.1])
    n, r, area = 400, 3, 10_000.0
    truth = rng.uniform(0, 500, (n, 3, 2))
    # per-axis std so that the RMS distance to the truth is sigma * sqrt(area)
    noise = rng.normal(size=(r, n, 3, 2)) * (true_sigma * np.sqrt(area) / np.sqrt(2))[None, None, :, None]
    est = estimate_keypoint_sigmas(truth[None] + noise, areas=np.full(n, area))
    np.testing.assert_allclose(est, true_sigma, rtol=0.08)
    vis = np.ones((r, n, 3), dtype=bool)
    vis[1:, :, 2] = False  # keypoint 2 seen once per object: no information
    est2 = estimate_keypoint_sigmas(truth[None] + noise, vis, areas=np.full(n, area), default=0.33)
    assert est2[2] == 0.33
    same = np.repeat(truth[None], 2, axis=0)
    assert np.all(estimate_keypoint_sigmas(same, default=0.09) == 0.09)  # no spread: default, never 0


def test_cuboid2d_is_hull_iou() -> None:
    front = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    cub = np.concatenate([front, front + 4])  # hull: hexagon
    assert cuboid2d_iou([cub], [cub])[0, 0] == 1.0
    flat = np.concatenate([front, front])  # back face on the front face: hull is the square
    moved = flat + np.array([5.0, 0.0])
    assert cuboid2d_iou([flat], [moved])[0, 0] == pytest.approx(1 / 3)
    assert cuboid2d_iou([flat], [flat + 100])[0, 0] == 0.0
    point = np.zeros((8, 2))
    assert cuboid2d_iou([point], [point])[0, 0] == 0.0
    assert cuboid2d_iou(np.zeros((0, 8, 2)), [cub]).shape == (0, 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_cuboid3d_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ca, cb = rng.uniform(0, 6, (3, 3)), rng.uniform(0, 6, (4, 3))
    sa, sb = rng.uniform(0, 4, (3, 3)), rng.uniform(0, 4, (4, 3))
    ya, yb = rng.uniform(-np.pi, np.pi, 3), rng.uniform(-np.pi, np.pi, 4)
    got = cuboid3d_iou(ca, sa, ya, cb, sb, yb)

    def corners(c: np.ndarray, s: np.ndarray, yaw: float) -> list[tuple[float, float]]:
        out = []
        for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            x, y = dx * s[0] / 2, dy * s[1] / 2
            out.append((c[0] + x * np.cos(yaw) - y * np.sin(yaw), c[1] + x * np.sin(yaw) + y * np.cos(yaw)))
        return out

    for i in range(3):
        for j in range(4):
            bev = convex_intersection_area_ref(corners(ca[i], sa[i], ya[i]), corners(cb[j], sb[j], yb[j]))
            dz = max(
                0.0,
                min(ca[i, 2] + sa[i, 2] / 2, cb[j, 2] + sb[j, 2] / 2)
                - max(ca[i, 2] - sa[i, 2] / 2, cb[j, 2] - sb[j, 2] / 2),
            )
            inter = bev * dz
            union = sa[i].prod() + sb[j].prod() - inter
            assert got[i, j] == pytest.approx(inter / union if union > 0 else 0.0, abs=1e-7)
    np.testing.assert_array_equal(got, cuboid3d_iou(cb, sb, yb, ca, sa, ya).T)


def test_cuboid3d_yaw_matches_rotated_box_and_height() -> None:
    # zero yaw, equal heights: 3D IoU equals the BEV box IoU; half the height overlap lowers it
    iou_3d = cuboid3d_iou([[0, 0, 0]], [[4, 2, 2]], [0.3], [[1, 0.5, 0]], [[4, 2, 2]], [-0.2])[0, 0]
    # rotated_box_iou rotates clockwise on screen = counter-clockwise in y-up axes: same matrix
    bev = rotated_box_iou([[-2, -1, 2, 1]], [np.degrees(0.3)], [[-1, -0.5, 3, 1.5]], [np.degrees(-0.2)])[0, 0]
    assert iou_3d == pytest.approx(bev)
    half = cuboid3d_iou([[0, 0, 0]], [[4, 2, 2]], [0.0], [[0, 0, 1]], [[4, 2, 2]], [0.0])[0, 0]
    assert half == pytest.approx(1 / 3)
    assert cuboid3d_iou([[0, 0, 0]], [[4, 2, 0]], [0.0], [[0, 0, 0]], [[4, 2, 0]], [0.0])[0, 0] == 0.0
