"""Scanline rasterisers (polygons, ellipses, buffered lines) against dense per-pixel references."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from cvat_ext.geometry import (
    ellipse_iou,
    ellipse_runs,
    line_iou,
    polygon_iou,
    polygon_runs,
    polyline_runs,
    rotated_box_iou,
)
from tests.geometry.reference import (
    ellipse_dense_ref,
    mask_iou_dense_ref,
    polygon_dense_ref,
    polyline_dense_ref,
    runs_to_dense,
)

WINDOW = (-40, -40, 140, 140)  # inclusive ltrb covering every random shape below


def random_polygon(rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(3, 9))
    centre = rng.uniform(0, 100, 2)
    return centre + rng.uniform(-30, 30, (k, 2))  # unordered vertices: often self-intersecting


@pytest.mark.parametrize("seed", range(8))
def test_polygon_runs_match_even_odd_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    polys = [random_polygon(rng) for _ in range(6)]
    runs = polygon_runs(polys)
    for i, poly in enumerate(polys):
        np.testing.assert_array_equal(runs_to_dense(runs, i, WINDOW), polygon_dense_ref(poly, WINDOW))
    dense = [polygon_dense_ref(p, WINDOW) for p in polys]
    got = polygon_iou(polys[:3], polys[3:])
    expect = np.array([[mask_iou_dense_ref(a, b) for b in dense[3:]] for a in dense[:3]])
    np.testing.assert_allclose(got, expect, atol=1e-12)
    np.testing.assert_array_equal(got, polygon_iou(polys[3:], polys[:3]).T)


@pytest.mark.parametrize(
    ("poly", "area"),
    [
        ([[0, 0], [10, 0], [10, 10], [0, 10]], 100),
        ([[0, 0], [10, 10], [10, 0], [0, 10]], 50),  # bow tie: self-intersecting, no crash
        ([[0, 0], [10, 0], [20, 0]], 0),  # collinear
        ([[5, 5], [5, 5], [5, 5]], 0),  # one point thrice
        ([[-10, -10], [-5, -10], [-5, -5]], 15),  # out of frame, unclipped; centres on the hypotenuse count
    ],
)
def test_polygon_degenerate_table(poly: list[list[float]], area: int) -> None:
    runs = polygon_runs([np.array(poly, dtype=float)])
    assert int(runs.area[0]) == area
    iou = polygon_iou([poly], [poly])
    assert iou[0, 0] == (1.0 if area else 0.0)


def test_polygon_clip_to_frame() -> None:
    square = [[-10, -10], [10, -10], [10, 10], [-10, 10]]
    assert int(polygon_runs([square], clip_wh=(100, 100)).area[0]) == 100
    assert int(polygon_runs([square]).area[0]) == 400


def test_polygon_iou_close_to_area_iou_for_large_shapes() -> None:
    a = rotated_box_iou([[100, 100, 400, 300]], [20], [[150, 120, 420, 330]], [-10])[0, 0]
    from cvat_ext.geometry import box_corners

    pa = box_corners([[100, 100, 400, 300]], [20])[0]
    pb = box_corners([[150, 120, 420, 330]], [-10])[0]
    assert polygon_iou([pa], [pb])[0, 0] == pytest.approx(a, abs=0.01)
    assert polygon_iou([pa], [pb], scale=4)[0, 0] == pytest.approx(a, abs=0.003)


@pytest.mark.parametrize("seed", range(4))
def test_polygon_iou_close_to_pycocotools(seed: int) -> None:
    rng = np.random.default_rng(seed)
    w, h = 160, 160
    polys = [
        rng.uniform(20, 140, 2) + 40 * np.stack([np.cos(t), np.sin(t)], 1) * rng.uniform(0.6, 1, (12, 1))
        for t in [np.sort(rng.uniform(0, 2 * np.pi, 12)) for _ in range(4)]
    ]
    enc = coco_mask.frPyObjects([p.ravel().tolist() for p in polys], h, w)
    coco = coco_mask.iou(enc[:2], enc[2:], [0, 0])
    np.testing.assert_allclose(polygon_iou(polys[:2], polys[2:], clip_wh=(w, h)), coco, atol=0.03)


@pytest.mark.parametrize("seed", range(6))
def test_ellipse_runs_match_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    e = np.column_stack([rng.uniform(10, 90, (5, 2)), rng.uniform(0.3, 35, (5, 2))])
    rot = rng.uniform(-180, 180, 5)
    runs = ellipse_runs(e, rot)
    for i in range(5):
        ref = ellipse_dense_ref(*e[i], rot[i], WINDOW)
        got = runs_to_dense(runs, i, WINDOW)
        assert (got != ref).sum() <= 1  # boundary pixel centres may round either way
    got = ellipse_iou(e[:2], rot[:2], e[2:], rot[2:])
    np.testing.assert_array_equal(got, ellipse_iou(e[2:], rot[2:], e[:2], rot[:2]).T)


def test_ellipse_rotation_and_degenerate() -> None:
    wide = [[50, 50, 30, 10]]
    tall = [[50, 50, 10, 30]]
    assert ellipse_iou(wide, [90], tall, [0])[0, 0] == 1.0
    assert ellipse_iou(wide, [0], tall, [0])[0, 0] < 0.5
    assert ellipse_iou([[5, 5, 0, 4]], [0], [[5, 5, 0, 4]], [0])[0, 0] == 0.0
    assert ellipse_iou(np.zeros((0, 4)), [], wide, [0]).shape == (0, 1)


@pytest.mark.parametrize("seed", range(6))
def test_polyline_runs_match_distance_reference(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    lines = [rng.uniform(0, 100, (int(rng.integers(1, 6)), 2)) for _ in range(5)]
    radius = float(rng.uniform(0.5, 8))
    runs = polyline_runs(lines, radius)
    for i, line in enumerate(lines):
        ref = polyline_dense_ref(line, radius, WINDOW)
        got = runs_to_dense(runs, i, WINDOW)
        assert (got != ref).sum() <= 2


def test_line_iou_properties() -> None:
    line = np.array([[10.0, 10.0], [60.0, 40.0], [90.0, 10.0]])
    assert line_iou([line], [line[::-1]], 3)[0, 0] == 1.0  # direction ignored
    assert line_iou([line], [line + 50], 3)[0, 0] == 0.0
    near = line_iou([line], [line + np.array([0, 2])], 5)[0, 0]
    far = line_iou([line], [line + np.array([0, 6])], 5)[0, 0]
    assert 1 > near > far > 0
    assert line_iou([line], [line], 0)[0, 0] == 0.0  # zero radius: empty buffers


@pytest.mark.parametrize("seed", range(5))
def test_line_point_similarity_matches_reference(seed: int) -> None:
    from cvat_ext.geometry import line_point_similarity
    from tests.geometry.reference import line_point_similarity_ref

    rng = np.random.default_rng(300 + seed)
    base = [rng.uniform(0, 200, (int(rng.integers(1, 6)), 2)) for _ in range(4)]
    lines_a = base[:2] + [p + rng.normal(0, 3, p.shape) for p in base[2:]]
    lines_b = [p[::-1] + rng.normal(0, 3, p.shape) for p in base] + [rng.uniform(0, 200, (3, 2))]
    scale = 640 * 480
    got = line_point_similarity(lines_a, lines_b, scale=scale, torso_r=0.01)
    for i, a in enumerate(lines_a):
        for j, b in enumerate(lines_b):
            assert got[i, j] == pytest.approx(line_point_similarity_ref(a, b, scale, 0.01), abs=1e-9)
    np.testing.assert_array_equal(got, line_point_similarity(lines_b, lines_a, scale=scale, torso_r=0.01).T)
    assert np.all((got >= 0) & (got <= 1))


def test_line_point_similarity_orientation_and_gate() -> None:
    from cvat_ext.geometry import line_point_similarity

    line = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 50.0]])
    assert line_point_similarity([line], [line[::-1]], scale=1e4)[0, 0] == pytest.approx(1.0)
    assert line_point_similarity([line], [line[::-1]], scale=1e4, oriented=True)[0, 0] < 0.5
    assert line_point_similarity([line], [line + 1000], scale=1e4)[0, 0] == 0.0
    assert line_point_similarity([], [line], scale=1e4).shape == (0, 1)


@pytest.mark.parametrize("seed", range(4))
def test_ellipse_pixel_area_within_documented_bound(seed: int) -> None:
    rng = np.random.default_rng(400 + seed)
    e = np.column_stack([rng.uniform(100, 200, (20, 2)), rng.uniform(5, 80, (20, 2))])
    rot = rng.uniform(-90, 90, 20)
    area_px = ellipse_runs(e, rot).area
    rx, ry = e[:, 2], e[:, 3]
    exact = np.pi * rx * ry
    h = ((rx - ry) / (rx + ry)) ** 2
    perimeter = np.pi * (rx + ry) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h)))  # Ramanujan
    # boundary discretisation: the error is a fraction of the boundary pixels, well under perimeter / area
    assert np.all(np.abs(area_px - exact) / exact <= perimeter / exact)
    assert np.all(np.abs(area_px - exact) <= 0.25 * perimeter + 4)


def test_absurd_coordinates_raise_or_clip() -> None:
    from cvat_ext.errors import AnnotationFormatError

    tall = [[0.0, -1e9], [10.0, -1e9], [10.0, 1e9]]
    with pytest.raises(AnnotationFormatError, match="image_wh"):
        polygon_runs([tall])
    assert int(polygon_runs([tall], clip_wh=(100, 100)).area[0]) > 0
