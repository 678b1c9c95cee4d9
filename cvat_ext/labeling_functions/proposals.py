"""Object proposals of one frame by hierarchical grouping of superpixels (selective-search style).

Start from the S superpixels of a :class:`~cvat_ext.models.superpixels.SuperpixelMap` (nodes) and
their 4-neighbour edges. Repeatedly merge the most similar pair of neighbouring regions until one
region is left; every region ever formed (the S superpixels and the S-1 merges) is a proposal,
so an object of several colours or textures still appears as one region at some level. The
similarity of regions a and b (image area A, sizes in pixels, boxes over both) is::

    colour = exp(-|lab_a - lab_b| / colour_scale)         # mean CIELAB distance
    size   = 1 - (size_a + size_b) / A                    # small regions merge first
    fill   = 1 - (box_area(a U b) - size_a - size_b) / A  # regions that fill each other's gaps

summed with ``weights``. Several ``strategies`` (weightings) each give their own hierarchy; their
regions are pooled. Boxes come out as ``ltrb`` with exclusive right/bottom (xyxy pixels); near-
duplicate boxes (IoU >= ``dedupe_iou``, the larger region kept) are dropped.

:func:`colour_regions` is the simpler method it replaced in the pre-label detector (connected
components of the superpixel graph over edges with a CIELAB step below ``edge_lab``), kept as the
baseline ``bench/labeling_functions.py`` measures against.

Cost: O(S log S) heap operations in Python per strategy (S is about 2000 per megapixel of the
superpixel scale's work frame); a 1080p frame cut into coarse superpixels takes tens of
milliseconds per strategy after the superpixels themselves.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from cvat_ext.models.superpixels import SuperpixelMap

if TYPE_CHECKING:
    from scipy import sparse

__all__ = ["STRATEGIES", "GroupingStrategy", "Proposals", "colour_regions", "hierarchical_proposals"]


@dataclass(frozen=True)
class GroupingStrategy:
    """Weights of the colour, size and fill similarities; ``colour_scale`` in CIELAB units."""

    colour: float = 1.0
    size: float = 1.0
    fill: float = 1.0
    colour_scale: float = 10.0


#: colour + size + fill, and colour + size (selective search's diversification, two of its strategies)
STRATEGIES: tuple[GroupingStrategy, ...] = (GroupingStrategy(), GroupingStrategy(fill=0.0))


@dataclass(frozen=True)
class Proposals:
    """R proposals: ``xyxy`` (R, 4) float64 pixels (exclusive right/bottom), ``area`` (R,) pixels
    of the region itself, ``members`` per proposal the superpixel ids it covers (for its pixels),
    ``contrast`` (R,) the CIELAB distance to the region it was merged with (inf: never merged)."""

    xyxy: npt.NDArray[np.float64]
    area: npt.NDArray[np.float64]
    members: tuple[npt.NDArray[np.int64], ...]
    contrast: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def membership(self, n_superpixels: int) -> sparse.csr_matrix:
        """(R, S) 0/1 sparse matrix: row r marks the superpixels of proposal r (sums over members
        as one product, e.g. colour moments)."""
        from scipy import sparse

        lengths = np.array([len(m) for m in self.members], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        indices = np.concatenate(self.members) if self.members else np.zeros(0, dtype=np.int64)
        data = np.ones(indices.shape[0], dtype=np.float64)
        return sparse.csr_matrix((data, indices, indptr), shape=(len(self), n_superpixels))


def _in_range(
    xyxy: npt.NDArray[np.float64], area: npt.NDArray[np.float64], spx: SuperpixelMap, lo: float, hi: float
) -> npt.NDArray[np.intp]:
    rel = np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1) / float(spx.width * spx.height)
    return np.flatnonzero((rel >= lo) & (rel <= hi) & (area > 0))


def colour_regions(
    spx: SuperpixelMap, *, edge_lab: float = 8.0, min_rel_area: float = 0.001, max_rel_area: float = 0.5
) -> Proposals:
    """Connected regions of superpixels joined where neighbours differ by less than ``edge_lab``
    CIELAB units, boxes covering ``min_rel_area .. max_rel_area`` of the frame (the baseline)."""
    from scipy import sparse
    from scipy.sparse import csgraph

    s = len(spx)
    a, b = spx.edges[:, 0], spx.edges[:, 1]
    close = np.linalg.norm(spx.mean_lab[a] - spx.mean_lab[b], axis=1) < edge_lab
    graph = sparse.csr_matrix((np.ones(int(close.sum()), dtype=np.int8), (a[close], b[close])), shape=(s, s))
    n_regions, region = csgraph.connected_components(graph, directed=False)
    area = np.bincount(region, weights=spx.area, minlength=n_regions).astype(np.float64)
    xyxy = np.stack(
        [
            np.full(n_regions, np.inf),
            np.full(n_regions, np.inf),
            np.full(n_regions, -np.inf),
            np.full(n_regions, -np.inf),
        ],
        axis=1,
    )
    np.minimum.at(xyxy[:, 0], region, spx.ltrb[:, 0])
    np.minimum.at(xyxy[:, 1], region, spx.ltrb[:, 1])
    np.maximum.at(xyxy[:, 2], region, spx.ltrb[:, 2] + 1)
    np.maximum.at(xyxy[:, 3], region, spx.ltrb[:, 3] + 1)
    keep = _in_range(xyxy, area, spx, min_rel_area, max_rel_area)
    order = np.argsort(region, kind="stable")
    starts = np.searchsorted(region[order], np.arange(n_regions + 1))
    members = tuple(order[starts[r] : starts[r + 1]].astype(np.int64) for r in keep.tolist())
    return Proposals(xyxy[keep], area[keep], members, np.full(len(keep), np.inf))


def _hierarchy(
    spx: SuperpixelMap, strategy: GroupingStrategy
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], list[npt.NDArray[np.int64]], npt.NDArray[np.float64]]:
    """Boxes (2S-1, 4 as l, t, r+1, b+1), areas, members and contrast of every region of one hierarchy."""
    s = len(spx)
    image_area = float(spx.width * spx.height)
    ltrb = np.zeros((2 * s, 4))
    ltrb[:s, :2] = spx.ltrb[:, :2]
    ltrb[:s, 2:] = spx.ltrb[:, 2:] + 1
    size = np.zeros(2 * s)
    size[:s] = spx.area
    lab = np.zeros((2 * s, 3))
    lab[:s] = spx.mean_lab
    neighbours: list[set[int]] = [set() for _ in range(2 * s)]
    for a, b in spx.edges.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    members: list[npt.NDArray[np.int64]] = [np.array([i], dtype=np.int64) for i in range(s)]
    alive = np.zeros(2 * s, dtype=bool)
    alive[:s] = spx.area > 0
    contrast = np.full(2 * s, np.inf)

    def similarity(a: int, b: int) -> float:
        colour = float(np.exp(-np.linalg.norm(lab[a] - lab[b]) / strategy.colour_scale))
        both = size[a] + size[b]
        union = (max(ltrb[a, 2], ltrb[b, 2]) - min(ltrb[a, 0], ltrb[b, 0])) * (
            max(ltrb[a, 3], ltrb[b, 3]) - min(ltrb[a, 1], ltrb[b, 1])
        )
        return (
            strategy.colour * colour
            + strategy.size * (1.0 - both / image_area)
            + strategy.fill * (1.0 - (union - both) / image_area)
        )

    heap = [(-similarity(a, b), a, b) for a, b in spx.edges.tolist() if alive[a] and alive[b]]
    heapq.heapify(heap)
    nxt = s
    while heap:
        _, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue  # a stale pair: one side was merged already
        new = nxt
        nxt += 1
        alive[a] = alive[b] = False
        alive[new] = True
        contrast[a] = contrast[b] = float(np.linalg.norm(lab[a] - lab[b]))
        size[new] = size[a] + size[b]
        lab[new] = (lab[a] * size[a] + lab[b] * size[b]) / size[new]
        ltrb[new, :2] = np.minimum(ltrb[a, :2], ltrb[b, :2])
        ltrb[new, 2:] = np.maximum(ltrb[a, 2:], ltrb[b, 2:])
        members.append(np.concatenate([members[a], members[b]]))
        around = (neighbours[a] | neighbours[b]) - {a, b}
        neighbours[new] = around
        for n in around:
            neighbours[n].discard(a)
            neighbours[n].discard(b)
            neighbours[n].add(new)
            heapq.heappush(heap, (-similarity(new, n), new, n))
    return ltrb[:nxt], size[:nxt], members, contrast[:nxt]


def _dedupe(xyxy: npt.NDArray[np.float64], area: npt.NDArray[np.float64], iou_thr: float) -> npt.NDArray[np.intp]:
    """Indices kept after dropping boxes with IoU >= iou_thr to a kept one (larger regions first)."""
    order = np.argsort(-area, kind="stable")
    box_area = np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1)
    kept: list[int] = []
    suppressed = np.zeros(len(xyxy), dtype=bool)
    for i in order.tolist():
        if suppressed[i]:
            continue
        kept.append(i)
        lt = np.maximum(xyxy[i, :2], xyxy[:, :2])
        rb = np.minimum(xyxy[i, 2:], xyxy[:, 2:])
        inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
        iou = inter / np.maximum(box_area[i] + box_area - inter, 1e-9)
        suppressed |= iou >= iou_thr
    return np.asarray(sorted(kept), dtype=np.intp)


def hierarchical_proposals(
    spx: SuperpixelMap,
    *,
    strategies: Sequence[GroupingStrategy] = STRATEGIES,
    min_rel_area: float = 0.001,
    max_rel_area: float = 0.9,
    dedupe_iou: float = 0.9,
    min_contrast: float = 0.0,
) -> Proposals:
    """Proposals of every strategy's hierarchy, boxes covering ``min_rel_area .. max_rel_area`` of
    the frame, near-duplicates dropped (module header). ``min_contrast`` (CIELAB units) keeps only
    regions that differ that much from what they were merged into: an object stands out from its
    surroundings, a fragment of a smooth background does not."""
    boxes, areas, members, contrasts = [], [], [], []
    for strategy in strategies:
        ltrb, size, regions, contrast = _hierarchy(spx, strategy)
        boxes.append(ltrb)
        areas.append(size)
        members += regions
        contrasts.append(contrast)
    xyxy, area, contrast = np.concatenate(boxes), np.concatenate(areas), np.concatenate(contrasts)
    inside = _in_range(xyxy, area, spx, min_rel_area, max_rel_area)
    inside = inside[contrast[inside] >= min_contrast]
    keep = inside[_dedupe(xyxy[inside], area[inside], dedupe_iou)]
    return Proposals(xyxy[keep], area[keep], tuple(members[i] for i in keep.tolist()), contrast[keep])
