"""The vectorised self-intersection test against a plain double loop over edge pairs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvat_ext.rules.kinds.validity import self_intersections


def _orient(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
    return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])


def _within(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> bool:
    return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])


def segments_meet(a: tuple, b: tuple, c: tuple, d: tuple) -> bool:
    d1, d2, d3, d4 = _orient(c, d, a), _orient(c, d, b), _orient(a, b, c), _orient(a, b, d)
    if ((d1 > 0 and d2 < 0) or (d1 < 0 and d2 > 0)) and ((d3 > 0 and d4 < 0) or (d3 < 0 and d4 > 0)):
        return True
    return (
        (d1 == 0 and _within(c, d, a))
        or (d2 == 0 and _within(c, d, b))
        or (d3 == 0 and _within(a, b, c))
        or (d4 == 0 and _within(a, b, d))
    )


def naive(points: list[tuple[int, int]]) -> set[tuple[int, int]]:
    k = len(points)
    found = set()
    for i in range(k):
        for j in range(i + 1, k):
            if j == i + 1 or (i == 0 and j == k - 1):
                continue
            if segments_meet(points[i], points[(i + 1) % k], points[j], points[(j + 1) % k]):
                found.add((i, j))
    return found


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        ([(0, 0), (10, 0), (10, 10), (0, 10)], set()),
        ([(0, 0), (10, 10), (10, 0), (0, 10)], {(0, 2)}),  # bow tie
        ([(0, 0), (4, 0), (4, 4), (2, 0), (0, 4)], {(0, 2), (0, 3)}),  # vertex 3 touches edge 0
        ([(0, 0), (3, 0), (0, 3)], set()),  # triangles cannot self-intersect
    ],
)
def test_known_polygons(points: list[tuple[int, int]], expected: set[tuple[int, int]]) -> None:
    got = {tuple(int(v) for v in pair) for pair in self_intersections(np.array(points, dtype=float))}
    assert got == expected == naive(points)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=4, max_size=12))
def test_matches_naive_on_random_grid_polygons(points: list[tuple[int, int]]) -> None:
    # a small integer grid makes collinear and touching edges frequent
    got = {tuple(int(v) for v in pair) for pair in self_intersections(np.array(points, dtype=float))}
    assert got == naive(points)


def test_recorded_self_intersecting_polygon_is_real() -> None:
    # person polygon 4423 in the merged parent job (72_consensus_parent_after_merge.json): edges 2 and 4 cross
    from tests.rules.recorded import recorded_job

    ann, _, _ = recorded_job("72_consensus_parent_after_merge.json")
    (poly,) = [s for s in ann.shapes if s.id == 4423]
    points = [tuple(p) for p in poly.points.tolist()]
    assert (2, 4) in naive(points)
    assert {tuple(int(v) for v in p) for p in self_intersections(poly.points)} == naive(points)


def test_batched_polygons_match_one_by_one() -> None:
    """Several polygons per (E, E) batch, batches split by max_edges, and a 600-vertex polygon whose
    rows are processed in chunks: same pairs as the naive loop for each polygon."""
    from cvat_ext.rules.kinds.validity import polygon_crossings

    rng = np.random.default_rng(3)
    polygons = [rng.integers(0, 8, size=(int(k), 2)).astype(float) for k in rng.integers(3, 14, size=25)]
    polygons.append(rng.uniform(0, 100, size=(600, 2)))
    for max_edges in (16, 512, 5000):
        got = polygon_crossings(polygons, max_edges=max_edges)
        for points, pairs in zip(polygons, got, strict=True):
            expected = naive([tuple(p) for p in points.tolist()])
            assert {tuple(int(v) for v in pair) for pair in pairs} == expected


@pytest.mark.parametrize(
    ("points", "convex"),
    [
        ([(0, 0), (10, 0), (10, 10), (0, 10)], True),
        ([(0, 10), (10, 10), (10, 0), (0, 0)], True),  # clockwise
        ([(0, 0), (10, 10), (10, 0), (0, 10)], False),  # bow tie
        ([(0, 0), (10, 0), (5, 3), (10, 10), (0, 10)], False),  # concave
        ([(0, 0), (5, 0), (10, 0), (10, 10), (0, 10)], False),  # collinear vertex: left to the full test
        ([(0, 10), (6, -8), (-10, 3), (10, 3), (-6, -8)], False),  # pentagram: winds twice
    ],
)
def test_strictly_convex(points: list[tuple[int, int]], convex: bool) -> None:
    from cvat_ext.rules.kinds.validity import strictly_convex

    assert strictly_convex([np.array(points, dtype=float)]).tolist() == [convex]
