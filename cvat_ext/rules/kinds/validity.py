"""Validity family: ``polygon_validity`` and ``mask_validity``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from cvat_ext.annotations.model import FloatArray, MaskRle, ShapeType
from cvat_ext.rules.findings import Finding
from cvat_ext.rules.frame_view import FrameView
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


def self_intersections(points: FloatArray) -> npt.NDArray[np.intp]:
    """Pairs ``(i, j)``, i < j, of non-adjacent edges of the closed (K, 2) polygon that intersect or touch.

    Edge i runs from vertex i to vertex (i + 1) % K. All K x K edge pairs are tested at once with
    orientation signs (the classic segment test, collinear touching included); returns (P, 2).
    """
    k = points.shape[0]
    if k < 4:
        return np.zeros((0, 2), dtype=np.intp)
    a = points
    b = np.roll(points, -1, axis=0)
    a1, b1 = a[:, None, :], b[:, None, :]  # edge i along axis 0
    a2, b2 = a[None, :, :], b[None, :, :]  # edge j along axis 1
    d1 = _orientation(a2, b2, a1)
    d2 = _orientation(a2, b2, b1)
    d3 = _orientation(a1, b1, a2)
    d4 = _orientation(a1, b1, b2)
    scale = max(float(np.ptp(points)), 1.0)
    eps = 1e-12 * scale * scale
    s1, s2, s3, s4 = (np.where(np.abs(d) <= eps, 0, np.sign(d)) for d in (d1, d2, d3, d4))
    proper = (s1 * s2 < 0) & (s3 * s4 < 0)
    touching = (
        ((s1 == 0) & _on_segment(a2, b2, a1))
        | ((s2 == 0) & _on_segment(a2, b2, b1))
        | ((s3 == 0) & _on_segment(a1, b1, a2))
        | ((s4 == 0) & _on_segment(a1, b1, b2))
    )
    idx = np.arange(k)
    gap = (idx[None, :] - idx[:, None]) % k
    non_adjacent = (gap != 0) & (gap != 1) & (gap != k - 1)
    hits = np.triu((proper | touching) & non_adjacent, k=1)
    return np.argwhere(hits)


class PolygonValidityChecker(Checker[PolygonValidityRule]):
    kind = "polygon_validity"

    def check_frame(self, view: FrameView) -> Iterator[Finding]:
        rows = self.in_scope(view) & (view.type_name == ShapeType.POLYGON.value)
        for row in np.flatnonzero(rows):
            points = view.shapes[row].points
            problems = []
            if points.shape[0] < self.rule.min_vertices:
                problems.append(f"{points.shape[0]} vertices < min_vertices {self.rule.min_vertices}")
            if view.area[row] <= self.rule.min_area:
                problems.append(f"area {fmt(view.area[row])} px² <= min_area {fmt(self.rule.min_area)} px²")
            if not self.rule.allow_self_intersection:
                crossings = self_intersections(points)
                if len(crossings):
                    i, j = (int(v) for v in crossings[0])
                    problems.append(f"self-intersects: edge {i} crosses edge {j} ({len(crossings)} crossing(s))")
            if problems:
                yield self.object_finding(view, int(row), "; ".join(problems))


def mask_fragments(mask: MaskRle, connectivity: int = 8) -> int:
    """Number of connected foreground pieces of the mask (4- or 8-connectivity)."""
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    _, count = ndimage.label(mask.to_bitmap(), structure=structure)
    return int(count)


class MaskValidityChecker(Checker[MaskValidityRule]):
    kind = "mask_validity"

    def check_frame(self, view: FrameView) -> Iterator[Finding]:
        rows = self.in_scope(view) & (view.type_name == ShapeType.MASK.value)
        for row in np.flatnonzero(rows):
            mask = view.shapes[row].mask
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
                yield self.object_finding(view, int(row), "; ".join(problems))
