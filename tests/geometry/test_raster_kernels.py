"""The vectorised raster kernels against simple per-object references, run for run.

``polygon_runs`` / ``polygon_runs_flat`` (one sorted key per crossing) against a per-polygon,
per-row scanline loop (:func:`tests.geometry.reference.polygon_runs_loop_ref`) and the dense
pixel-centre test; ``rle_flat_to_runs`` against each mask's dense bitmap; ``segment_runs_flat``
against ``segment_runs`` on :class:`Shape` objects. Random polygons include degenerate,
self-intersecting, off-image, 1-pixel and half-pixel-aligned ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from cvat_ext.annotations.model import MaskRle, Shape, ShapeType
from cvat_ext.geometry import (
    RowRuns,
    SimilarityParams,
    concat_ranges,
    polygon_runs,
    polygon_runs_flat,
    rle_flat_to_runs,
    rle_to_runs,
    segment_runs,
    segment_runs_flat,
)
from cvat_ext.geometry.masks import RLE_BLOCK
from tests.geometry.reference import polygon_dense_ref, polygon_runs_loop_ref, runs_to_dense

KINDS = ("scatter", "half_pixel", "one_pixel", "one_point", "collinear", "off_image", "integer", "few_vertices")


def polygon_of(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One random polygon (K, 2) of the given kind; vertices unordered, so often self-intersecting."""
    k = int(rng.integers(3, 10))
    if kind == "scatter":
        return rng.uniform(-20, 120, (k, 2))
    if kind == "half_pixel":  # vertices and edges through pixel centres and pixel edges: ties
        return np.round(rng.uniform(-5, 105, (k, 2)) * 2) / 2
    if kind == "one_pixel":
        return rng.uniform(0, 1.5, (k, 2)) + rng.integers(0, 100, 2)
    if kind == "one_point":
        return np.repeat(rng.uniform(0, 100, (1, 2)), k, axis=0)
    if kind == "collinear":
        t = rng.uniform(0, 1, (k, 1))
        return rng.uniform(0, 50, 2) + t * rng.uniform(-40, 40, 2)
    if kind == "off_image":
        return rng.uniform(-300, 400, (k, 2))
    if kind == "integer":
        return rng.integers(0, 100, (k, 2)).astype(np.float64)
    return rng.uniform(0, 100, (int(rng.integers(0, 3)), 2))  # 0, 1 or 2 vertices: no area


def assert_same_runs(got: RowRuns, want: RowRuns) -> None:
    assert got.count == want.count
    for name in ("row", "start", "end", "owner", "area", "ltrb"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
        assert getattr(got, name).dtype == np.int64, name


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("scale", "clip_wh"), [(1.0, (0, 0)), (1.0, (100, 80)), (4.0, (0, 0)), (0.5, (37, 90))])
def test_polygon_runs_equal_the_loop_reference(seed: int, scale: float, clip_wh: tuple[int, int]) -> None:
    rng = np.random.default_rng(seed)
    polys = [polygon_of(str(rng.choice(KINDS)), rng) for _ in range(int(rng.integers(1, 14)))]
    got = polygon_runs(polys, scale=scale, clip_wh=clip_wh)
    assert_same_runs(got, polygon_runs_loop_ref(polys, scale=scale, clip_wh=clip_wh))
    vertex_start = np.concatenate(([0], np.cumsum([len(p) for p in polys])))
    flat = polygon_runs_flat(np.concatenate(polys), vertex_start, scale=scale, clip_wh=clip_wh)
    assert_same_runs(flat, got)


@pytest.mark.parametrize("kind", KINDS)
def test_polygon_runs_clipped_match_the_dense_reference(kind: str) -> None:
    """Every kind, clipped to a 60x50 frame, equals the even-odd pixel-centre test on the frame."""
    rng = np.random.default_rng(len(kind))
    polys = [polygon_of(kind, rng) * 0.5 for _ in range(10)]
    frame = (0, 0, 59, 49)
    runs = polygon_runs(polys, clip_wh=(60, 50))
    for i, poly in enumerate(polys):
        want = polygon_dense_ref(poly, frame) if len(poly) else np.zeros((50, 60), dtype=bool)
        np.testing.assert_array_equal(runs_to_dense(runs, i, frame), want)


def test_polygon_runs_far_apart_columns_fall_back_to_lexsort() -> None:
    """Columns ~2e18 apart (times 4 rows) do not fit the packed sort key: the lexsort path gives the same runs."""
    polys = [np.array([[-1e18, 0.2], [1e18, 0.2], [0.0, 3.7]]), np.array([[1.0, 1.0], [5.0, 1.0], [3.0, 4.0]])]
    assert_same_runs(polygon_runs(polys), polygon_runs_loop_ref(polys))


def test_polygon_runs_flat_empty_polygons_keep_their_slots() -> None:
    square = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]])
    runs = polygon_runs_flat(np.concatenate([square, square + 10]), np.array([0, 0, 4, 4, 8, 8]))
    assert runs.count == 5
    np.testing.assert_array_equal(runs.area, [0, 16, 0, 16, 0])
    assert polygon_runs_flat(np.zeros((0, 2)), np.array([0, 0, 0])).count == 2


def random_rle(rng: np.random.Generator) -> MaskRle:
    w, h = (int(v) for v in rng.integers(1, 30, 2))
    density = float(rng.choice([0.0, 0.05, 0.5, 0.95, 1.0]))
    bits = rng.uniform(size=(h, w)) < density
    left, top = (int(v) for v in rng.integers(-10, 200, 2))
    return MaskRle.from_bitmap(bits, left, top)


@pytest.mark.parametrize("seed", range(6))
def test_rle_flat_to_runs_match_each_bitmap(seed: int) -> None:
    """Flat counts of more masks than one decoding block (block edges), as float and uint16 like
    the table stores them: the same runs as ``rle_to_runs``, each equal to its dense crop."""
    rng = np.random.default_rng(seed)
    masks = [random_rle(rng) for _ in range(RLE_BLOCK + int(rng.integers(1, 80)))]
    sizes = np.array([m.counts.size for m in masks])
    ltrb = np.array([m.ltrb for m in masks])
    flat = np.concatenate([m.counts for m in masks])
    want = rle_to_runs(masks)
    for counts in (flat, flat.astype(np.float64), flat.astype(np.uint16)):
        assert_same_runs(rle_flat_to_runs(counts, sizes, ltrb), want)
    # CVAT's flat points (each mask's box after its counts), and gaps of any length, read in place
    points = np.concatenate([np.concatenate([m.counts, m.ltrb]) for m in masks])
    first = np.concatenate(([0], np.cumsum(sizes + 4)[:-1]))
    for counts in (points, points.astype(np.float64), points.astype(np.uint16)):
        assert_same_runs(rle_flat_to_runs(counts, sizes, ltrb, first=first), want)
    gaps = rng.integers(0, 9, len(masks))
    spread = np.full(int(sizes.sum() + gaps.sum()), 7, dtype=np.int64)
    first = np.cumsum(gaps) + np.concatenate(([0], np.cumsum(sizes)[:-1]))
    spread[concat_ranges(first, sizes)] = flat
    before = spread.copy()
    assert_same_runs(rle_flat_to_runs(spread, sizes, ltrb, first=first), want)
    np.testing.assert_array_equal(spread, before)  # the gaps are zeroed in a copy
    for i in rng.choice(len(masks), 12, replace=False).tolist():
        np.testing.assert_array_equal(runs_to_dense(want, i, masks[i].ltrb), masks[i].to_bitmap())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("image_wh", [(0, 0), (120, 90)])
def test_segment_runs_flat_equal_shape_path(seed: int, image_wh: tuple[int, int]) -> None:
    """Polygons and masks in any mix and order: the flat CVAT points give the runs of the shapes."""
    rng = np.random.default_rng(100 + seed)
    shapes: list[Shape] = []
    for _ in range(int(rng.integers(1, 16))):
        if rng.uniform() < 0.5:
            shapes.append(Shape(ShapeType.MASK, 0, 1, np.zeros((0, 2)), mask=random_rle(rng)))
        else:
            shapes.append(Shape(ShapeType.POLYGON, 0, 1, polygon_of(str(rng.choice(KINDS[:7])), rng)))
    flat = [np.concatenate([s.mask.counts, s.mask.ltrb]) if s.mask is not None else s.points.ravel() for s in shapes]
    start = np.concatenate(([0], np.cumsum([len(f) for f in flat])))
    is_mask = np.array([s.type is ShapeType.MASK for s in shapes])
    got = segment_runs_flat(is_mask, np.concatenate(flat), start, image_wh)
    want = segment_runs(shapes, SimilarityParams(image_wh=image_wh))
    assert_same_runs(got, want)
    if not is_mask.any() or is_mask.all():  # one kind: the kernel of that kind, shape by shape
        kernel = rle_to_runs([s.mask for s in shapes if s.mask is not None]) if is_mask.all() else None
        if kernel is None:
            kernel = polygon_runs([s.points for s in shapes], clip_wh=image_wh)
        elif min(image_wh) > 0:
            kernel = kernel.clipped(*image_wh)
        assert_same_runs(got, kernel)


@pytest.mark.parametrize(
    ("first", "lengths", "want"),
    [
        ([5, 0, 9], [2, 0, 3], [5, 6, 9, 10, 11]),
        ([], [], []),
        ([3], [1], [3]),
    ],
)
def test_concat_ranges(first: list[int], lengths: list[int], want: list[int]) -> None:
    np.testing.assert_array_equal(concat_ranges(first, lengths), want)
