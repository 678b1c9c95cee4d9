"""Existence strata: which clusters are shadowed by a better-supported cluster of their frame."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cvat_ext.consensus.context import SHADOW_COVER, cluster_extents, shadowed


def naive_shadowed(frame_pos: np.ndarray, support: np.ndarray, extents: np.ndarray, cover: float) -> np.ndarray:
    out = np.zeros(len(frame_pos), dtype=bool)
    for i, a in enumerate(extents):
        for j, b in enumerate(extents):
            if frame_pos[i] != frame_pos[j] or support[j] <= support[i]:
                continue
            inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
            out[i] |= inter >= cover * max(smaller, 1e-12)
    return out


def test_a_singleton_on_a_confirmed_object_is_shadowed_one_in_empty_space_is_not() -> None:
    extents = np.array(
        [
            [10, 10, 50, 50],  # frame 0: drawn by 3
            [30, 30, 60, 60],  # frame 0: a singleton on it
            [200, 200, 220, 220],  # frame 0: a singleton in empty space
            [30, 30, 60, 60],  # frame 1: the same box, but nothing else on frame 1
            [12, 12, 52, 52],  # frame 2: two equally supported overlapping clusters
            [10, 10, 50, 50],
        ],
        dtype=float,
    )
    got = shadowed(np.array([0, 0, 0, 1, 2, 2]), np.array([3, 1, 1, 1, 2, 2]), extents)
    assert got.tolist() == [False, True, False, False, False, False]


def test_cover_is_measured_on_the_smaller_extent() -> None:
    big = [0, 0, 100, 100]
    corner = [90, 90, 110, 110]  # a quarter of the small box lies on the big one
    extents = np.array([big, corner], dtype=float)
    assert shadowed(np.array([0, 0]), np.array([2, 1]), extents, cover=0.25).tolist() == [False, True]
    assert shadowed(np.array([0, 0]), np.array([2, 1]), extents, cover=0.26).tolist() == [False, False]


def test_cluster_extent_is_the_mean_of_its_members() -> None:
    xyxy = np.array([[0, 0, 10, 10], [2, 2, 12, 12], [100, 100, 110, 120]], dtype=float)
    rows = np.array([[0, 1, -1], [-1, -1, 2]])
    np.testing.assert_allclose(cluster_extents(xyxy, rows), [[1, 1, 11, 11], [100, 100, 110, 120]])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(1, 3),
            st.floats(0, 90),
            st.floats(0, 90),
            st.floats(0, 40),
            st.floats(0, 40),
        ),
        max_size=25,
    ),
    st.sampled_from([SHADOW_COVER, 0.0, 0.5, 1.0]),
)
def test_vectorised_equals_naive(items: list[tuple[int, int, float, float, float, float]], cover: float) -> None:
    items.sort(key=lambda it: it[0])
    frame_pos = np.array([it[0] for it in items], dtype=np.int64)
    support = np.array([it[1] for it in items], dtype=np.int64)
    extents = np.array([[x, y, x + w, y + h] for _, _, x, y, w, h in items], dtype=float).reshape(-1, 4)
    got = shadowed(frame_pos, support, extents, cover)
    np.testing.assert_array_equal(got, naive_shadowed(frame_pos, support, extents, cover))
