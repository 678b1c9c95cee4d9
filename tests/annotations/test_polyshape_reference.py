"""tracks.py's vectorised polygon/polyline interpolation against a plain-loop reference of the
CVAT algorithm (arc-length vertex matching, then vertex reduction), on random shapes."""

from __future__ import annotations

import itertools
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cvat_ext.annotations.model import ShapeType, Track, TrackShape
from cvat_ext.annotations.tracks import expand_track

Point = tuple[float, float]


def _dist(a: Point, b: Point) -> float:
    return math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2)  # CVAT's arithmetic, for exact ties


def _positions(curve: list[Point]) -> list[float]:
    acc = [0.0]
    for a, b in itertools.pairwise(curve):
        acc.append(acc[-1] + _dist(a, b))
    total = acc[-1]
    return [v / total if total > 0 else 0.0 for v in acc]


def _nearest(value: float, candidates: list[float]) -> int:
    best = 0
    for i in range(1, len(candidates)):
        if abs(value - candidates[i]) < abs(value - candidates[best]):
            best = i
    return best


def _length(curve: list[Point]) -> float:
    total = 0.0
    for a, b in itertools.pairwise(curve):
        total += _dist(a, b)
    return total


def reference(left: list[Point], right: list[Point], t: float, closed: bool) -> list[Point]:
    if closed:
        left, right = [*left, left[0]], [*right, right[0]]
    pos_l, pos_r = _positions(left), _positions(right)
    pairs = [[_nearest(p, pos_r)] for p in pos_l]
    taken = {p[0] for p in pairs}
    for j in range(len(right)):
        if j not in taken:
            pairs[_nearest(pos_r[j], pos_l)].append(j)
    pairs = [sorted(p) for p in pairs]
    points: list[Point] = []
    first: list[int] = []
    for i, p in enumerate(pairs):
        first.append(len(points))
        for j in p:
            points.append((left[i][0] + (right[j][0] - left[i][0]) * t, left[i][1] + (right[j][1] - left[i][1]) * t))

    out: list[Point] = []

    def thin(length: float, n: int, a: int, b: int) -> None:
        limit = length / (2 * n)
        kept, last = [points[a]], a
        for k in range(a + 1, b):
            if _dist(points[last], points[k]) >= limit:
                kept.append(points[k])
                last = k
        kept.append(points[b])
        if len(kept) == 2 and _dist(points[a], points[b]) < limit:
            kept = [((points[a][0] + points[b][0]) / 2, (points[a][1] + points[b][1]) / 2)]
        out.extend(kept)

    def run_of_left(i0: int, i1: int) -> None:
        if first[i0] == first[i1]:
            out.append(points[first[i0]])
        else:
            thin(_length(left[i0 : i1 + 1]), i1 - i0 + 1, first[i0], first[i1])

    open_at = None
    for i, p in enumerate(pairs):
        if len(p) > 1:
            if open_at is not None:
                run_of_left(open_at, i - 1)
                open_at = None
            thin(_length(right[p[0] : p[-1] + 1]), p[-1] - p[0] + 1, first[i], first[i] + len(p) - 1)
        elif open_at is None:
            open_at = i
        elif p[0] != pairs[open_at][0]:
            run_of_left(open_at, i - 1)
            open_at = i
    if open_at is not None:
        run_of_left(open_at, len(pairs) - 1)
    return out[:-1] if closed else out


coords = st.integers(0, 100).map(float)
curves = st.lists(st.tuples(coords, coords), min_size=3, max_size=12)


@settings(max_examples=150, deadline=None)
@given(curves, curves, st.sampled_from([ShapeType.POLYGON, ShapeType.POLYLINE]), st.integers(2, 6))
def test_polyshape_matches_reference(left: list[Point], right: list[Point], kind: ShapeType, gap: int) -> None:
    track = Track(
        frame=0,
        label_id=1,
        shapes=(
            TrackShape(type=kind, frame=0, points=np.array(left)),
            TrackShape(type=kind, frame=gap, points=np.array(right)),
        ),
    )
    shapes = expand_track(track)
    assert [s.frame for s in shapes] == list(range(gap + 1))
    for s in shapes[1:-1]:
        expected = reference(left, right, s.frame / gap, closed=kind is ShapeType.POLYGON)
        if len(expected) < (3 if kind is ShapeType.POLYGON else 2):
            continue  # CVAT's reduction left too few vertices; tracks.py keeps all (documented)
        np.testing.assert_allclose(s.points, np.array(expected).reshape(-1, 2), atol=1e-9)
