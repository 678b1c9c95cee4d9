"""Throughput of the geometry kernels: pairs/s and calls/s per kernel, one core.

Run: ``python3 bench/geometry_kernels.py [--quick]``. Figures depend on the machine; compare rows
of one run with each other (e.g. per-frame vs batched boxes), not with numbers from elsewhere.

The raster rows ("raster: ...", objects/s) rasterise one matching block (8 frames x 60 objects)
side by side: polygons by OpenCV ``fillPoly`` per object into its own crop (the baseline), by the
previous scanline kernel (crossings paired after a three-key lexsort, one ``np.roll`` per
polygon) and by ``polygon_runs_flat`` (one sorted int64 key, flat vertex columns); masks from
:class:`MaskRle` objects and from the table's flat columns; a mixed block from ``Shape`` objects
read from a :class:`ShapeTable` through ``Shape`` objects built on demand (the matching before)
and as flat CVAT points (``segment_runs_flat``, the matching now). The raster rows are timed in
CPU seconds of this process (best of 7 windows), which a busy shared machine disturbs less.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from results_io import BenchResults

from cvat_ext.annotations.model import MaskRle, Shape, ShapeType
from cvat_ext.annotations.table import TYPE_CODE, LazyShapes, ShapeTable, compact_coords
from cvat_ext.geometry import (
    SimilarityParams,
    box_iou,
    box_iou_batched,
    box_iou_pairs,
    cuboid2d_iou,
    cuboid3d_iou,
    ellipse_iou,
    line_iou,
    line_point_similarity,
    mask_iou,
    oks,
    polygon_iou,
    polygon_runs_flat,
    rle_flat_to_runs,
    rle_to_runs,
    rotated_box_iou,
    runs_iou,
    runs_iou_sparse,
    segment_runs,
    segment_runs_flat,
    similarity_matrices,
    similarity_matrix,
    similarity_sparse,
)


def timeit(
    fn: Callable[[], object], min_time: float, repeats: int = 5, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Seconds per call: the best of ``repeats`` batches (a shared machine only ever adds time)."""
    fn()
    start = clock()
    fn()
    per_call = max(clock() - start, 1e-7)
    calls = max(1, int(min_time / repeats / per_call))
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        for _ in range(calls):
            fn()
        best = min(best, (clock() - start) / calls)
    return best


def boxes(rng: np.random.Generator, n: int, w: int = 640, h: int = 480) -> np.ndarray:
    xy = rng.uniform(0, [w - 60, h - 60], (n, 2))
    return np.concatenate([xy, xy + rng.uniform(10, 60, (n, 2))], 1)


def masks(rng: np.random.Generator, n: int) -> list[MaskRle]:
    out = []
    for _ in range(n):
        hh, ww = rng.integers(40, 120, 2)
        yy, xx = np.mgrid[:hh, :ww]
        bits = ((xx - ww / 2) / (ww / 2)) ** 2 + ((yy - hh / 2) / (hh / 2)) ** 2 <= 1
        left, top = rng.integers(0, 640 - ww), rng.integers(0, 480 - hh)
        out.append(MaskRle.from_bitmap(bits, int(left), int(top)))
    return out


def star_polygons(rng: np.random.Generator, n: int, w: int = 1280, h: int = 720) -> list[np.ndarray]:
    """``n`` 6-10-gons of radius 10-60 px, jittered (some self-intersecting), inside a w x h frame."""
    out = []
    for _ in range(n):
        k = int(rng.integers(6, 11))
        angle = np.sort(rng.uniform(0, 2 * np.pi, k))
        radius = rng.uniform(10, 60) * rng.uniform(0.6, 1.0, k)
        centre = rng.uniform(60, [w - 60, h - 60])
        out.append(centre + radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1))
    return out


def polygon_runs_lexsort(polys: list[np.ndarray], clip_wh: tuple[int, int]) -> object:
    """The previous polygon scanline (for the before/after rows): one ``np.roll`` per polygon,
    crossings ordered by a three-key lexsort."""
    from cvat_ext.geometry.masks import RowRuns, expand_rows

    pts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polys]
    v0 = np.concatenate(pts)
    v1 = np.concatenate([np.roll(p, -1, axis=0) for p in pts])
    owner = np.repeat(np.arange(len(pts)), [len(p) for p in pts])
    r_lo = np.ceil(np.minimum(v0[:, 1], v1[:, 1]) - 0.5)
    r_hi = np.ceil(np.maximum(v0[:, 1], v1[:, 1]) - 0.5)
    edge, row = expand_rows(r_lo, r_hi, clip_wh, 1.0)
    x0, y0, x1, y1 = v0[edge, 0], v0[edge, 1], v1[edge, 0], v1[edge, 1]
    x = x0 + (row + 0.5 - y0) * (x1 - x0) / (y1 - y0)
    own = owner[edge]
    order = np.lexsort((x, row, own))
    x, row, own = x[order], row[order], own[order]
    start = np.maximum(np.ceil(x[0::2] - 0.5).astype(np.int64), 0)
    end = np.minimum(np.ceil(x[1::2] - 0.5).astype(np.int64), clip_wh[0])
    keep = end > start
    return RowRuns(row[0::2][keep], start[keep], end[keep], own[0::2][keep], len(polys))


def polygons_fillpoly(polys: list[np.ndarray]) -> object:
    """OpenCV per object: each polygon filled into its own bounding-box crop (pixel centres)."""
    import cv2

    out = []
    for poly in polys:
        x0, y0 = np.floor(poly.min(axis=0))
        x1, y1 = np.ceil(poly.max(axis=0))
        crop = np.zeros((int(y1 - y0) + 1, int(x1 - x0) + 1), dtype=np.uint8)
        pts = np.round((poly - (x0, y0) - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(crop, [pts], 1, lineType=cv2.LINE_8, shift=4)
        out.append(crop)
    return out


def raster_rows(rng: np.random.Generator) -> list[tuple[str, int, Callable[[], object]]]:
    """(name, objects, call) of the raster kernels on one matching block: 8 frames x 60 objects."""
    n, wh = 480, (1280, 720)
    polys = star_polygons(rng, n)
    xy = np.concatenate(polys)
    vertex_start = np.concatenate(([0], np.cumsum([len(p) for p in polys])))
    rles = [m for _ in range(n // 20) for m in masks(rng, 20)]
    sizes = np.array([m.counts.size for m in rles])
    flat_counts = np.concatenate([m.counts for m in rles]).astype(np.uint16)  # as the table keeps them
    ltrb = np.array([m.ltrb for m in rles])
    shapes: list[Shape] = []
    for i in range(n):  # a mixed block: masks and polygons, every other object
        if i % 2:
            shapes.append(Shape(ShapeType.MASK, 0, 1, np.zeros((0, 2)), mask=rles[i]))
        else:
            shapes.append(Shape(ShapeType.POLYGON, 0, 1, polys[i]))
    table = ShapeTable.from_shapes(shapes)
    table = dataclasses.replace(table, coords=compact_coords(table.coords))
    rows = np.arange(n)
    is_mask = table.type_code == TYPE_CODE[ShapeType.MASK]

    def block_from_shapes() -> object:
        return segment_runs(LazyShapes(table, rows)[:], params)

    def block_from_columns() -> object:
        return segment_runs_flat(is_mask, *table.flat_points(rows), wh)

    params = SimilarityParams(image_wh=wh)
    before, after = polygon_runs_lexsort(polys, wh), polygon_runs_flat(xy, vertex_start, clip_wh=wh)
    same = all(np.array_equal(getattr(before, f), getattr(after, f)) for f in ("row", "start", "end", "owner"))
    print(f"polygon runs before == after: {same}")
    return [
        ("raster: polygons, OpenCV fillPoly per object (baseline)", n, lambda: polygons_fillpoly(polys)),
        ("raster: polygons, scanline + lexsort (before)", n, lambda: polygon_runs_lexsort(polys, wh)),
        ("raster: polygons, polygon_runs_flat (after)", n, lambda: polygon_runs_flat(xy, vertex_start, clip_wh=wh)),
        ("raster: masks, rle_to_runs from MaskRle objects", n, lambda: rle_to_runs(rles)),
        ("raster: masks, rle_flat_to_runs from columns", n, lambda: rle_flat_to_runs(flat_counts, sizes, ltrb)),
        ("raster: mixed block from the table, via Shape objects (before)", n, block_from_shapes),
        ("raster: mixed block from the table, segment_runs_flat (after)", n, block_from_columns),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter timing windows")
    args = parser.parse_args()
    t = 0.2 if args.quick else 1.0
    rng = np.random.default_rng(0)
    n = 20
    a, b = boxes(rng, n), boxes(rng, n)
    rot_a, rot_b = rng.uniform(-90, 90, n), rng.uniform(-90, 90, n)
    frames = 1000
    fa = np.stack([boxes(rng, n) for _ in range(frames)])
    fb = np.stack([boxes(rng, n) for _ in range(frames)])
    valid = np.ones((frames, n), dtype=bool)
    ma, mb = masks(rng, n), masks(rng, n)
    runs_a, runs_b = rle_to_runs(ma), rle_to_runs(mb)
    polys_a = [
        rng.uniform(100, 300, 2) + 40 * np.stack([np.cos(s), np.sin(s)], 1)
        for s in [np.sort(rng.uniform(0, 2 * np.pi, 16)) for _ in range(n)]
    ]
    polys_b = [p + rng.uniform(-10, 10, 2) for p in polys_a]
    ell = np.column_stack([rng.uniform(50, 500, (n, 2)), rng.uniform(5, 60, (n, 2))])
    lines_a = [rng.uniform(0, 480, (5, 2)) for _ in range(n)]
    lines_b = [p + rng.uniform(-5, 5, 2) for p in lines_a]
    kp_a, kp_b = rng.uniform(0, 400, (n, 17, 2)), rng.uniform(0, 400, (n, 17, 2))
    cub_a = np.repeat(rng.uniform(0, 400, (n, 1, 2)), 8, 1) + rng.uniform(-30, 30, (n, 8, 2))
    cub_b = cub_a + rng.uniform(-5, 5, (n, 1, 2))
    c3a, c3b = rng.uniform(0, 20, (n, 3)), rng.uniform(0, 20, (n, 3))
    s3 = rng.uniform(1, 5, (n, 3))
    rect_shapes_a = [Shape(ShapeType.RECTANGLE, 0, 1, x) for x in a]
    rect_shapes_b = [Shape(ShapeType.RECTANGLE, 0, 1, x) for x in b]
    mask_shapes_a = [Shape(ShapeType.MASK, 0, 1, np.zeros((0, 2)), mask=m) for m in ma]
    mask_shapes_b = [Shape(ShapeType.MASK, 0, 1, np.zeros((0, 2)), mask=m) for m in mb]
    params = SimilarityParams(image_wh=(640, 480))
    chunk = 200
    chunk_a = [m for _ in range(chunk // 20) for m in masks(rng, n * 20)]
    chunk_b = [m for _ in range(chunk // 20) for m in masks(rng, n * 20)]
    chunk_frame = np.repeat(np.arange(chunk), n)

    def masks_chunk() -> object:
        return runs_iou_sparse(rle_to_runs(chunk_a), rle_to_runs(chunk_b), chunk_frame, chunk_frame)

    chunk_shapes_a = [Shape(ShapeType.MASK, 0, 1, np.zeros((0, 2)), mask=m) for m in chunk_a]
    chunk_shapes_b = [Shape(ShapeType.MASK, 0, 1, np.zeros((0, 2)), mask=m) for m in chunk_b]

    def masks_sparse_shapes() -> object:
        return similarity_sparse(chunk_shapes_a, chunk_frame, chunk_shapes_b, chunk_frame, params)

    def masks_matrix_per_frame() -> object:
        return [
            similarity_matrix(chunk_shapes_a[f * n : (f + 1) * n], chunk_shapes_b[f * n : (f + 1) * n], params)
            for f in range(chunk)
        ]

    pairs_a, pairs_b = fa.reshape(-1, 4), fb.reshape(-1, 4)
    mask_shapes_c = [Shape(ShapeType.MASK, 0, 1, np.zeros((0, 2)), mask=m) for m in masks(rng, n)]
    three = [mask_shapes_a, mask_shapes_b, mask_shapes_c]

    def three_by_pairs() -> object:
        return [similarity_matrix(three[r], three[s], params) for r, s in ((0, 1), (0, 2), (1, 2))]

    def masks_per_frame() -> object:
        return [mask_iou(chunk_a[f * n : (f + 1) * n], chunk_b[f * n : (f + 1) * n]) for f in range(chunk)]

    rows: list[tuple[str, int, Callable[[], object]]] = [
        ("box_iou 20x20", n * n, lambda: box_iou(a, b)),
        (f"box_iou_batched {frames}x20x20", frames * n * n, lambda: box_iou_batched(fa, valid, fb, valid)),
        (f"box_iou_pairs {frames * n} pairs", frames * n, lambda: box_iou_pairs(pairs_a, pairs_b)),
        ("rotated_box_iou 20x20", n * n, lambda: rotated_box_iou(a, rot_a, b, rot_b)),
        ("mask_iou 20x20 (RLE in)", n * n, lambda: mask_iou(ma, mb)),
        ("runs_iou 20x20 (runs cached)", n * n, lambda: runs_iou(runs_a, runs_b)),
        (f"mask_iou per frame, {chunk} frames x 20x20", chunk * n * n, masks_per_frame),
        (f"runs_iou_sparse {chunk} frames x 20x20", chunk * n * n, masks_chunk),
        (f"similarity_matrix mask per frame, {chunk} frames", chunk * n * n, masks_matrix_per_frame),
        (f"similarity_sparse mask {chunk} frames", chunk * n * n, masks_sparse_shapes),
        ("polygon_iou 20x20 (16-gons)", n * n, lambda: polygon_iou(polys_a, polys_b)),
        ("ellipse_iou 20x20", n * n, lambda: ellipse_iou(ell, rot_a, ell + 3, rot_b)),
        ("line_iou 20x20 (r=5.5)", n * n, lambda: line_iou(lines_a, lines_b, 5.5)),
        ("line_point_similarity 20x20 (cvat)", n * n, lambda: line_point_similarity(lines_a, lines_b, scale=640 * 480)),
        ("oks 20x20 (K=17)", n * n, lambda: oks(kp_a, None, kp_b, None)),
        ("cuboid2d_iou 20x20", n * n, lambda: cuboid2d_iou(cub_a, cub_b)),
        ("cuboid3d_iou 20x20", n * n, lambda: cuboid3d_iou(c3a, s3, rot_a, c3b, s3, rot_b)),
        ("similarity_matrix rect 20x20", n * n, lambda: similarity_matrix(rect_shapes_a, rect_shapes_b, params)),
        ("similarity_matrix mask 20x20", n * n, lambda: similarity_matrix(mask_shapes_a, mask_shapes_b, params)),
        ("3 annotators x 20 masks: 3 similarity_matrix", 3 * n * n, three_by_pairs),
        ("3 annotators x 20 masks: similarity_matrices", 3 * n * n, lambda: similarity_matrices(three, params)),
    ]
    results = BenchResults(__file__, note="one core; best of 5 timing windows per kernel")
    print(f"{'raster kernel (one matching block)':56s} {'objects/s':>12s}")
    for name, objects, fn in raster_rows(rng):
        sec = timeit(fn, t, repeats=7, clock=time.process_time)  # CPU time: the machine is shared
        print(f"{name:56s} {objects / sec:12,.0f}")
        results.add(name, objects / sec, "objects/s")
    print(f"{'kernel':40s} {'calls/s':>12s} {'pairs/s':>14s}")
    for name, pairs, fn in rows:
        sec = timeit(fn, t)
        print(f"{name:40s} {1 / sec:12,.0f} {pairs / sec:14,.0f}")
        results.add(name, pairs / sec, "pairs/s")
    results.write()


if __name__ == "__main__":
    main()
