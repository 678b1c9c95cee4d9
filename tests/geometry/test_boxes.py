from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvat_ext.geometry import box_iou, box_iou_batched, rotated_box_iou
from tests.geometry.reference import box_iou_ref, rotated_iou_ref

coord = st.floats(-50, 150, allow_nan=False, width=32)
box = st.tuples(coord, coord, coord, coord).map(list)
boxes = st.lists(box, min_size=0, max_size=6)
angle = st.floats(-360, 360, allow_nan=False, width=32)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching edge
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),  # disjoint
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # both zero area: 0/0 -> 0
        ([5, 5, 5, 10], [0, 0, 10, 10], 0.0),  # zero-width line inside a box
        ([10, 10, 0, 0], [0, 0, 10, 10], 1.0),  # inverted corners are normalised
        ([-20, -20, -10, -10], [-15, -15, -5, -5], 25 / 175),  # out of frame
        ([0, 0, 1e9, 1e9], [0, 0, 1e9, 1e9], 1.0),
    ],
)
def test_box_iou_table(a: list[float], b: list[float], expected: float) -> None:
    got = box_iou([a], [b])
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("n", "m"), [(0, 0), (0, 3), (3, 0)])
def test_box_iou_empty_shapes(n: int, m: int) -> None:
    assert box_iou(np.zeros((n, 4)), np.ones((m, 4))).shape == (n, m)
    assert rotated_box_iou(np.zeros((n, 4)), np.zeros(n), np.ones((m, 4)), np.zeros(m)).shape == (n, m)


@settings(max_examples=150, deadline=None)
@given(boxes, boxes)
def test_box_iou_matches_reference_and_is_symmetric(a: list[list[float]], b: list[list[float]]) -> None:
    got = box_iou(np.array(a).reshape(-1, 4), np.array(b).reshape(-1, 4))
    assert got.shape == (len(a), len(b))
    for i, ba in enumerate(a):
        for j, bb in enumerate(b):
            assert got[i, j] == pytest.approx(box_iou_ref(ba, bb), abs=1e-9)
    np.testing.assert_array_equal(got, box_iou(np.array(b).reshape(-1, 4), np.array(a).reshape(-1, 4)).T)
    assert np.all((got >= 0) & (got <= 1))


@settings(max_examples=60, deadline=None)
@given(boxes, st.integers(-10_000, 10_000), st.integers(-10_000, 10_000))
def test_box_iou_translation_invariant(a: list[list[float]], dx: int, dy: int) -> None:
    # coordinates on a 1/64 grid so the shift is exact in float64
    arr = np.round(np.array(a).reshape(-1, 4) * 64) / 64
    moved = arr + np.array([dx, dy, dx, dy])
    np.testing.assert_allclose(box_iou(arr, arr), box_iou(moved, moved), atol=1e-6)


def test_box_iou_batched_matches_per_frame() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (5, 7, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 30, (5, 7, 2))], -1)
    xy = rng.uniform(0, 100, (5, 4, 2))
    b = np.concatenate([xy, xy + rng.uniform(1, 30, (5, 4, 2))], -1)
    valid_a = rng.uniform(size=(5, 7)) > 0.3
    valid_b = rng.uniform(size=(5, 4)) > 0.3
    got = box_iou_batched(a, valid_a, b, valid_b)
    assert got.shape == (5, 7, 4)
    for f in range(5):
        expect = box_iou(a[f], b[f]) * valid_a[f][:, None] * valid_b[f][None, :]
        np.testing.assert_array_equal(got[f], expect)
    assert box_iou_batched(np.zeros((0, 3, 4)), None, np.zeros((0, 2, 4)), None).shape == (0, 3, 2)


@pytest.mark.parametrize(
    ("a", "ra", "b", "rb", "expected"),
    [
        ([0, 0, 10, 10], 45, [0, 0, 10, 10], 45, 1.0),
        ([0, 0, 10, 10], 0, [0, 0, 10, 10], 90, 1.0),  # a square turned by 90° is itself
        ([0, 0, 20, 10], 0, [0, 0, 20, 10], 90, 100 / 300),  # cross: 10x10 common centre square
        ([0, 0, 10, 10], 45, [0, 0, 10, 10], 0, 2 * (2**0.5 - 1) * 100 / (200 - 2 * (2**0.5 - 1) * 100)),
        ([0, 0, 10, 10], 30, [100, 100, 110, 110], 30, 0.0),  # disjoint
        ([0, 0, 10, 0], 30, [0, 0, 10, 0], 30, 0.0),  # zero area
        ([0, 0, 10, 10], 360, [0, 0, 10, 10], 0, 1.0),
        ([0, 0, 1.5e-10, 78], 1, [0, 0, 1.5e-10, 78], 1, 1.0),  # a sliver is still identical to itself
        ([0, 0, 1.5e-10, 78], 2, [0, 0, 0, 78], 2, 0.0),  # zero area: no clipping noise leaks through
    ],
)
def test_rotated_box_iou_table(a: list[float], ra: float, b: list[float], rb: float, expected: float) -> None:
    got = rotated_box_iou([a], [ra], [b], [rb])
    assert got[0, 0] == pytest.approx(expected, abs=1e-9)


def test_rotation_is_clockwise_on_screen_about_centre() -> None:
    # a tall thin box turned by +90° becomes wide; compare with the wide upright box it must equal
    tall = [[9, 0, 11, 20]]
    wide = [[0, 9, 20, 11]]
    assert rotated_box_iou(tall, [90], wide, [0])[0, 0] == pytest.approx(1.0)
    # +30 and -30 differ for an off-axis neighbour
    r_pos = rotated_box_iou([[0, 0, 40, 4]], [30], [[20, 10, 40, 30]], [0])[0, 0]
    r_neg = rotated_box_iou([[0, 0, 40, 4]], [-30], [[20, 10, 40, 30]], [0])[0, 0]
    assert r_pos > 0 and r_neg == 0  # clockwise on screen (y down) swings the right end downwards


# sub-pixel annotations: coordinates on a 1/64 px grid (slivers 1e-10 px wide drown in float noise)
grid_box = box.map(lambda b: [round(v * 64) / 64 for v in b])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(grid_box, angle), max_size=5), st.lists(st.tuples(grid_box, angle), max_size=5))
def test_rotated_matches_reference(a: list[tuple[list[float], float]], b: list[tuple[list[float], float]]) -> None:
    xa = np.array([x for x, _ in a]).reshape(-1, 4)
    xb = np.array([x for x, _ in b]).reshape(-1, 4)
    ra = np.array([r for _, r in a])
    rb = np.array([r for _, r in b])
    got = rotated_box_iou(xa, ra, xb, rb)
    assert got.shape == (len(a), len(b))
    for i, (ba, ang_a) in enumerate(a):
        for j, (bb, ang_b) in enumerate(b):
            nb_a = [min(ba[0], ba[2]), min(ba[1], ba[3]), max(ba[0], ba[2]), max(ba[1], ba[3])]
            nb_b = [min(bb[0], bb[2]), min(bb[1], bb[3]), max(bb[0], bb[2]), max(bb[1], bb[3])]
            assert got[i, j] == pytest.approx(rotated_iou_ref(nb_a, ang_a, nb_b, ang_b), abs=1e-6)
    np.testing.assert_array_equal(got, rotated_box_iou(xb, rb, xa, ra).T)
    assert np.all((got >= 0) & (got <= 1)) and not np.isnan(got).any()
