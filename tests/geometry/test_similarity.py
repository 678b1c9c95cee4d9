from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.annotations.model import Shape, ShapeType
from cvat_ext.errors import AnnotationFormatError
from cvat_ext.geometry import SimilarityParams, similarity_matrix


def rect(x0: float, y0: float, x1: float, y1: float, rotation: float = 0.0) -> Shape:
    return Shape(ShapeType.RECTANGLE, 0, 1, [x0, y0, x1, y1], rotation=rotation)


def test_rectangles_plain_and_rotated() -> None:
    a = [rect(0, 0, 10, 10), rect(5, 0, 15, 10)]
    b = [rect(0, 0, 10, 10), rect(0, 0, 10, 10, rotation=45)]
    sim = similarity_matrix(a, b, SimilarityParams())
    assert sim.shape == (2, 2)
    assert sim[0, 0] == pytest.approx(1.0)
    assert sim[1, 0] == pytest.approx(1 / 3)
    assert 0.7 < sim[0, 1] < 0.72
    np.testing.assert_array_equal(sim, similarity_matrix(b, a, SimilarityParams()).T)


@pytest.mark.parametrize(("n", "m"), [(0, 0), (2, 0), (0, 2)])
def test_empty(n: int, m: int) -> None:
    a = [rect(0, 0, 1, 1)] * n
    b = [rect(0, 0, 1, 1)] * m
    assert similarity_matrix(a, b, SimilarityParams()).shape == (n, m)


def test_mixed_types_raise() -> None:
    poly = Shape(ShapeType.POLYLINE, 0, 1, [[0, 0], [1, 1]])
    with pytest.raises(AnnotationFormatError, match="polyline"):
        similarity_matrix([rect(0, 0, 1, 1)], [poly], SimilarityParams())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"oks_sigma": 0}, "oks_sigma"),
        ({"line_thickness": -1}, "line_thickness"),
        ({"iou_thr": 2}, "iou_thr"),
        ({"keypoint_sigmas": np.array([0.1, -1])}, "keypoint_sigmas"),
    ],
)
def test_params_validated(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(AnnotationFormatError, match=match):
        SimilarityParams(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# every type through the dispatch


def make_shape(kind: ShapeType, rng: np.random.Generator, dx: float = 0.0, dy: float = 0.0) -> Shape:
    from cvat_ext.annotations.model import MaskRle

    off = np.array([dx, dy])
    c = rng.uniform(100, 300, 2) + off
    if kind is ShapeType.RECTANGLE:
        wh = rng.uniform(5, 80, 2)
        return Shape(kind, 0, 1, [*(c - wh / 2), *(c + wh / 2)], rotation=float(rng.choice([0, 0, 30, -75])))
    if kind is ShapeType.POLYGON:
        t = np.sort(rng.uniform(0, 2 * np.pi, 8))
        return Shape(kind, 0, 1, c + np.stack([np.cos(t), np.sin(t)], 1) * rng.uniform(10, 50))
    if kind is ShapeType.MASK:
        bits = rng.uniform(size=(int(rng.integers(5, 40)), int(rng.integers(5, 40)))) < 0.6
        bits[0, 0] = True
        return Shape(kind, 0, 1, np.zeros((0, 2)), mask=MaskRle.from_bitmap(bits, int(c[0]), int(c[1])))
    if kind is ShapeType.ELLIPSE:
        rx, ry = rng.uniform(3, 60, 2)
        return Shape(kind, 0, 1, [c[0], c[1], c[0] + rx, c[1] - ry], rotation=float(rng.uniform(-90, 90)))
    if kind is ShapeType.POLYLINE:
        return Shape(kind, 0, 1, c + rng.uniform(-60, 60, (int(rng.integers(2, 6)), 2)))
    if kind is ShapeType.POINTS:
        return Shape(kind, 0, 1, c + rng.uniform(-30, 30, (3, 2)))
    if kind is ShapeType.CUBOID:
        front = c + rng.uniform(-30, 30, (4, 2))
        return Shape(kind, 0, 1, np.concatenate([front, front + rng.uniform(-10, 10, 2)]))
    assert kind is ShapeType.SKELETON
    elements = tuple(
        Shape(ShapeType.POINTS, 0, 10 + k, [c + rng.uniform(-30, 30, 2)], outside=bool(rng.uniform() < 0.2))
        for k in rng.permutation(4)
    )
    return Shape(kind, 0, 1, np.zeros((0, 2)), elements=elements)


ALL_TYPES = list(ShapeType)


@pytest.mark.parametrize(
    ("kind", "line_metric"), [(k, "buffer_iou") for k in ShapeType] + [(ShapeType.POLYLINE, "cvat")]
)
def test_invariants_every_type(kind: ShapeType, line_metric: str) -> None:
    rng = np.random.default_rng(list(ShapeType).index(kind))
    params = SimilarityParams(image_wh=(2000, 2000), line_metric=line_metric)
    a = [make_shape(kind, rng) for _ in range(5)]
    b = [make_shape(kind, rng) for _ in range(4)]
    sim = similarity_matrix(a, b, params)
    assert sim.shape == (5, 4) and sim.dtype == np.float64
    assert np.all((sim >= 0) & (sim <= 1)) and not np.isnan(sim).any()
    np.testing.assert_array_equal(sim, similarity_matrix(b, a, params).T)
    np.testing.assert_allclose(np.diag(similarity_matrix(a, a, params)), 1.0, atol=1e-12)
    # integer translation of everything: unchanged
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    base = [make_shape(kind, rng_a) for _ in range(4)]
    moved = [make_shape(kind, rng_b, 300, 200) for _ in range(4)]
    np.testing.assert_allclose(
        similarity_matrix(base, base, params), similarity_matrix(moved, moved, params), atol=1e-9
    )
    # far apart: 0
    rng_c = np.random.default_rng(2)
    far = [make_shape(kind, rng_c, 1500, 1500) for _ in range(3)]
    assert np.all(similarity_matrix(base, far, params) < 1e-6)
    assert similarity_matrix([], far, params).shape == (0, 3)


def test_polygons_and_masks_mix_in_caller_order() -> None:
    from cvat_ext.annotations.model import MaskRle

    square = Shape(ShapeType.POLYGON, 0, 1, [[10, 10], [20, 10], [20, 20], [10, 20]])
    bits = np.ones((10, 10), dtype=bool)
    mask = Shape(ShapeType.MASK, 0, 1, np.zeros((0, 2)), mask=MaskRle.from_bitmap(bits, 10, 10))
    other = Shape(ShapeType.MASK, 0, 1, np.zeros((0, 2)), mask=MaskRle.from_bitmap(bits, 15, 10))
    sim = similarity_matrix([other, square, mask], [square], SimilarityParams(image_wh=(100, 100)))
    np.testing.assert_allclose(sim[:, 0], [1 / 3, 1.0, 1.0])


def test_points_counts_and_sigmas() -> None:
    three = Shape(ShapeType.POINTS, 0, 1, [[0, 0], [10, 0], [0, 10]])
    two = Shape(ShapeType.POINTS, 0, 1, [[0, 0], [10, 0]])
    sim = similarity_matrix([three, two], [two, three], SimilarityParams())
    np.testing.assert_array_equal(sim, [[0.0, 1.0], [1.0, 0.0]])
    moved = Shape(ShapeType.POINTS, 0, 1, [[1, 0], [11, 0], [1, 10]])
    loose = similarity_matrix([three], [moved], SimilarityParams(keypoint_sigmas=np.array([0.5, 0.5, 0.5])))
    tight = similarity_matrix([three], [moved], SimilarityParams(keypoint_sigmas=np.array([0.01, 0.01, 0.01])))
    assert loose[0, 0] > tight[0, 0]
    with pytest.raises(AnnotationFormatError, match="keypoint_sigmas"):
        similarity_matrix([three], [moved], SimilarityParams(keypoint_sigmas=np.array([0.1, 0.1])))


def test_skeletons_align_by_label_id() -> None:
    def skel(order: list[int], outside: frozenset[int] = frozenset()) -> Shape:
        pts = {10: [0, 0], 11: [20, 0], 12: [0, 20]}
        els = tuple(Shape(ShapeType.POINTS, 0, lid, [pts[lid]], outside=lid in outside) for lid in order)
        return Shape(ShapeType.SKELETON, 0, 1, np.zeros((0, 2)), elements=els)

    a = skel([10, 11, 12])
    b = skel([12, 10, 11])  # same keypoints, elements listed in another order
    assert similarity_matrix([a], [b])[0, 0] == pytest.approx(1.0)
    hidden = skel([12, 10, 11], frozenset({12}))
    assert similarity_matrix([a], [hidden])[0, 0] == pytest.approx(2 / 3)
    missing = skel([10, 11])  # element absent = invisible
    assert similarity_matrix([a], [missing])[0, 0] == pytest.approx(2 / 3)
    both_hidden = skel([10, 11, 12], frozenset({12}))
    assert similarity_matrix([both_hidden], [hidden])[0, 0] == pytest.approx(1.0)


def test_polyline_thickness_from_image_size() -> None:
    a = Shape(ShapeType.POLYLINE, 0, 1, [[100, 100], [300, 100]])
    b = Shape(ShapeType.POLYLINE, 0, 1, [[100, 108], [300, 108]])
    small = similarity_matrix([a], [b], SimilarityParams(image_wh=(400, 400)))[0, 0]  # radius 4: disjoint
    large = similarity_matrix([a], [b], SimilarityParams(image_wh=(4000, 4000)))[0, 0]  # radius 40
    assert small == 0.0 and large > 0.7


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_similarity_sparse_matches_per_frame_matrices(kind: ShapeType) -> None:
    from cvat_ext.geometry import similarity_sparse

    rng = np.random.default_rng(50 + list(ShapeType).index(kind))
    params = SimilarityParams(image_wh=(640, 480))
    frames = [3, 7, 8, 12]
    per_a = {f: [make_shape(kind, rng) for _ in range(int(rng.integers(0, 4)))] for f in frames}
    per_b = {f: [make_shape(kind, rng) for _ in range(int(rng.integers(0, 4)))] for f in frames}
    a = [s for f in frames for s in per_a[f]]
    b = [s for f in frames for s in per_b[f]]
    fa = [f for f in frames for _ in per_a[f]]
    fb = [f for f in frames for _ in per_b[f]]
    ia, ib, sim = similarity_sparse(a, fa, b, fb, params)
    got = np.zeros((len(a), len(b)))
    got[ia, ib] = sim
    expect = np.zeros((len(a), len(b)))
    ra = rb = 0
    for f in frames:
        na, nb = len(per_a[f]), len(per_b[f])
        expect[ra : ra + na, rb : rb + nb] = similarity_matrix(per_a[f], per_b[f], params)
        ra, rb = ra + na, rb + nb
    np.testing.assert_allclose(got, expect, atol=1e-12)
    assert np.all(np.diff(ia) >= 0)
    ia2, _, sim2 = similarity_sparse(a, fa, b, fb, params, min_sim=0.5)
    assert np.all(sim2 >= 0.5) and ia2.size == int((expect >= 0.5).sum())


def test_similarity_sparse_checks_frame_ids() -> None:
    from cvat_ext.geometry import similarity_sparse

    with pytest.raises(AnnotationFormatError, match="frame ids"):
        similarity_sparse([rect(0, 0, 1, 1)], [0, 1], [rect(0, 0, 1, 1)], [0])


def test_box_iou_pairs_is_the_diagonal() -> None:
    from cvat_ext.geometry import box_iou, box_iou_pairs

    rng = np.random.default_rng(9)
    xy = rng.uniform(0, 50, (30, 2))
    a = np.concatenate([xy, xy + rng.uniform(0, 20, (30, 2))], 1)
    xy = rng.uniform(0, 50, (30, 2))
    b = np.concatenate([xy, xy + rng.uniform(0, 20, (30, 2))], 1)
    np.testing.assert_array_equal(box_iou_pairs(a, b), np.diag(box_iou(a, b)))
    assert box_iou_pairs(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_similarity_matrices_match_pairwise_calls(kind: ShapeType) -> None:
    from cvat_ext.geometry import similarity_matrices

    rng = np.random.default_rng(70 + list(ShapeType).index(kind))
    params = SimilarityParams(image_wh=(640, 480))
    groups = [[make_shape(kind, rng) for _ in range(int(rng.integers(0, 5)))] for _ in range(3)]
    got = similarity_matrices(groups, params)
    assert sorted(got) == [(0, 1), (0, 2), (1, 2)]
    for (r, s), mat in got.items():
        np.testing.assert_array_equal(mat, similarity_matrix(groups[r], groups[s], params))
