"""Validity family: ``polygon_validity`` and ``mask_validity``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from cvat_ext.annotations.model import FloatArray, MaskRle, ShapeType
from cvat_ext.qa.findings import Finding
from cvat_ext.rules.frame_batch import FrameBatch
from cvat_ext.rules.kinds.base import Checker, fmt
from cvat_ext.rules.schema import MaskValidityRule, PolygonValidityRule


def _orientation(p: FloatArray, q: FloatArray, r: FloatArray) -> FloatArray:
    """Sign-carrying cross product (q - p) x (r - p), broadcast over leading axes of (..., 2) inputs."""
    result: FloatArray = (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (
        r[..., 0] - p[..., 0]
    )
    return result


def _on_segment(p: FloatArray, q: FloatArray, r: FloatArray) -> npt.NDArray[np.bool_]:
    """For collinear p, q, r: is r within the bounding box of segment pq."""
    return (
        (np.minimum(p[..., 0], q[..., 0]) <= r[..., 0])
        & (r[..., 0] <= np.maximum(p[..., 0], q[..., 0]))
        & (np.minimum(p[..., 1], q[..., 1]) <= r[..., 1])
        & (r[..., 1] <= np.maximum(p[..., 1], q[..., 1]))
    )


def strictly_convex(polygons: Sequence[FloatArray]) -> npt.NDArray[np.bool_]:
    """(P,) bool: the closed polygon turns the same way at every vertex (no collinear vertex) and
    winds exactly once, i.e. it is convex and simple. All polygons are tested in one pass."""
    if not polygons:
        return np.zeros(0, dtype=bool)
    sizes = np.array([p.shape[0] for p in polygons])
    pts = np.concatenate(polygons)
    owner = np.repeat(np.arange(len(polygons)), sizes)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    local = np.arange(pts.shape[0]) - starts[owner]
    nxt = starts[owner] + (local + 1) % sizes[owner]
    edge = pts[nxt] - pts  # edge k: vertex k -> k+1
    edge_next = edge[nxt]
    cross = edge[:, 0] * edge_next[:, 1] - edge[:, 1] * edge_next[:, 0]
    dot = (edge * edge_next).sum(axis=1)
    turn = np.arctan2(cross, dot)
    positive = np.add.reduceat((cross > 0).astype(np.int64), starts)
    negative = np.add.reduceat((cross < 0).astype(np.int64), starts)
    winding = np.add.reduceat(turn, starts) / (2 * np.pi)
    one_way = (positive == sizes) | (negative == sizes)
    result: npt.NDArray[np.bool_] = one_way & (np.abs(np.abs(winding) - 1) < 1e-6)
    return result


def polygon_crossings(polygons: Sequence[FloatArray], max_edges: int = 512) -> list[npt.NDArray[np.intp]]:
    """For each closed (K, 2) polygon, the pairs ``(i, j)``, i < j, of non-adjacent edges that intersect
    or touch (edge i runs from vertex i to vertex (i + 1) % K); each result is (P, 2).

    The edges of several polygons are tested together in one (E, E) orientation-sign computation
    (the classic segment test, collinear touching included), masked to pairs within one polygon;
    rows are processed in chunks so a polygon with thousands of vertices stays within memory.
    """
    out: list[npt.NDArray[np.intp]] = [np.zeros((0, 2), dtype=np.intp)] * len(polygons)
    batch: list[int] = []
    edges = 0
    convex = strictly_convex(polygons)
    for i, points in enumerate(polygons):
        if points.shape[0] < 4 or convex[i]:  # triangles: all edges adjacent; convex: nothing crosses
            continue
        if batch and edges + points.shape[0] > max_edges:
            _test_batch(polygons, batch, out)
            batch, edges = [], 0
        batch.append(i)
        edges += points.shape[0]
    if batch:
        _test_batch(polygons, batch, out)
    return out


def _test_batch(
    polygons: Sequence[FloatArray], batch: list[int], out: list[npt.NDArray[np.intp]], chunk: int = 256
) -> None:
    polys = [polygons[i] for i in batch]
    sizes = np.array([p.shape[0] for p in polys])
    a = np.concatenate(polys)
    owner = np.repeat(np.arange(len(polys)), sizes)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    local = np.arange(a.shape[0]) - starts[owner]
    k_of = sizes[owner]
    b = a[starts[owner] + (local + 1) % k_of]  # each edge's end vertex, wrapping within its polygon
    scale = max(float(np.ptp(a)), 1.0)
    eps = 1e-12 * scale * scale
    hits_rows: list[npt.NDArray[np.intp]] = []
    for r0 in range(0, a.shape[0], chunk):
        r1 = min(r0 + chunk, a.shape[0])
        gap = (local[None, :] - local[r0:r1, None]) % k_of[r0:r1, None]
        candidates = (
            (owner[r0:r1, None] == owner[None, :])
            & (np.arange(r0, r1)[:, None] < np.arange(a.shape[0])[None, :])
            & (gap != 1)
            & (gap != k_of[r0:r1, None] - 1)
        )
        if not candidates.any():
            continue
        a1, b1 = a[r0:r1, None, :], b[r0:r1, None, :]
        a2, b2 = a[None, :, :], b[None, :, :]
        s1, s2, s3, s4 = (
            np.where(np.abs(d) <= eps, 0.0, np.sign(d))
            for d in (
                _orientation(a2, b2, a1),
                _orientation(a2, b2, b1),
                _orientation(a1, b1, a2),
                _orientation(a1, b1, b2),
            )
        )
        proper = (s1 * s2 < 0) & (s3 * s4 < 0)
        touching = (
            ((s1 == 0) & _on_segment(a2, b2, a1))
            | ((s2 == 0) & _on_segment(a2, b2, b1))
            | ((s3 == 0) & _on_segment(a1, b1, a2))
            | ((s4 == 0) & _on_segment(a1, b1, b2))
        )
        found = np.argwhere((proper | touching) & candidates)
        found[:, 0] += r0
        hits_rows.append(found)
    if not hits_rows:
        return
    hits = np.concatenate(hits_rows)
    for k, poly_idx in enumerate(batch):
        mine = hits[owner[hits[:, 0]] == k]
        if mine.size:
            out[poly_idx] = np.stack([local[mine[:, 0]], local[mine[:, 1]]], axis=1).astype(np.intp)


def self_intersections(points: FloatArray) -> npt.NDArray[np.intp]:
    """Crossing non-adjacent edge pairs of one closed (K, 2) polygon: (P, 2), see :func:`polygon_crossings`."""
    return polygon_crossings([points])[0]


class PolygonValidityChecker(Checker[PolygonValidityRule]):
    kind = "polygon_validity"

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        rows = np.flatnonzero(self.in_scope(batch) & (batch.type_name == ShapeType.POLYGON.value))
        if rows.size == 0:
            return
        polygons = [batch.shapes[row].points for row in rows]
        crossings_of = polygon_crossings(polygons) if not self.rule.allow_self_intersection else None
        for k, row in enumerate(rows):
            points = polygons[k]
            problems = []
            if points.shape[0] < self.rule.min_vertices:
                problems.append(f"{points.shape[0]} vertices < min_vertices {self.rule.min_vertices}")
            if batch.area[row] <= self.rule.min_area:
                problems.append(f"area {fmt(batch.area[row])} px² <= min_area {fmt(self.rule.min_area)} px²")
            if crossings_of is not None:
                crossings = crossings_of[k]
                if len(crossings):
                    i, j = (int(v) for v in crossings[0])
                    problems.append(f"self-intersects: edge {i} crosses edge {j} ({len(crossings)} crossing(s))")
            if problems:
                yield self.object_finding(batch, int(row), "; ".join(problems))


def mask_fragments(mask: MaskRle, connectivity: int = 8) -> int:
    """Number of connected foreground pieces of the mask (4- or 8-connectivity)."""
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    _, count = ndimage.label(mask.to_bitmap(), structure=structure)
    return int(count)


class MaskValidityChecker(Checker[MaskValidityRule]):
    kind = "mask_validity"

    def check_batch(self, batch: FrameBatch) -> Iterator[Finding]:
        rows = self.in_scope(batch) & (batch.type_name == ShapeType.MASK.value)
        for row in np.flatnonzero(rows):
            mask = batch.shapes[row].mask
            assert mask is not None
            problems = []
            pixels = mask.area
            if pixels < self.rule.min_pixels:
                problems.append(f"{pixels} foreground pixels < min_pixels {self.rule.min_pixels}")
            if self.rule.max_fragments is not None and pixels:
                fragments = mask_fragments(mask, self.rule.connectivity)
                if fragments > self.rule.max_fragments:
                    problems.append(
                        f"{fragments} fragments > max_fragments {self.rule.max_fragments} "
                        f"({self.rule.connectivity}-connected)"
                    )
            if problems:
                yield self.object_finding(batch, int(row), "; ".join(problems))
