"""Simulated annotator clicks for measuring an interactor against a ground-truth mask.

The protocol of the interactive-segmentation literature (the "NoC" evaluation): the first click
is positive, at the ground-truth pixel farthest from the mask boundary; every next click goes to
the pixel farthest from the boundary of the larger error region, positive when that region is a
miss (ground truth not filled), negative when it is a spill (filled, not ground truth). It is
deterministic, so a figure measured with it can be compared between runs and between tools.

Masks are full-frame (H, W) bool arrays; points are ``(x, y)`` pixel centres.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Click", "farthest_inside", "iou", "next_click", "run_clicks"]

BoolMask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Click:
    """One click: ``xy`` pixel centre, ``positive`` True for an add, False for a remove."""

    x: float
    y: float
    positive: bool


def iou(a: BoolMask, b: BoolMask) -> float:
    """Intersection over union of two (H, W) masks; 1.0 when both are empty."""
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def farthest_inside(region: BoolMask) -> tuple[tuple[float, float], float]:
    """The pixel of ``region`` farthest from its boundary (``(x, y)`` centre) and that distance."""
    import cv2

    # pad so the frame edge counts as boundary too
    padded = np.pad(region.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    flat = int(np.argmax(dist))
    row, col = divmod(flat, region.shape[1])
    return (col + 0.5, row + 0.5), float(dist[row, col])


def next_click(gt: BoolMask, pred: BoolMask | None) -> Click | None:
    """The next click after prediction ``pred`` (None before the first click); None when perfect."""
    if pred is None:
        (x, y), _ = farthest_inside(gt)
        return Click(x, y, True)
    miss, spill = gt & ~pred, pred & ~gt
    if not miss.any() and not spill.any():
        return None
    (mx, my), miss_d = farthest_inside(miss) if miss.any() else ((0.0, 0.0), -1.0)
    (sx, sy), spill_d = farthest_inside(spill) if spill.any() else ((0.0, 0.0), -1.0)
    return Click(mx, my, True) if miss_d >= spill_d else Click(sx, sy, False)


def run_clicks(gt: BoolMask, predict: Callable[[list[Click]], BoolMask], n_clicks: int) -> list[float]:
    """IoU after each of ``n_clicks`` simulated clicks; ``predict(clicks)`` gives the (H, W) fill."""
    clicks: list[Click] = []
    pred: BoolMask | None = None
    ious: list[float] = []
    for _ in range(n_clicks):
        click = next_click(gt, pred)
        if click is None:  # perfect already: further clicks keep it
            ious.append(1.0)
            continue
        clicks.append(click)
        pred = predict(clicks)
        ious.append(iou(pred, gt))
    return ious
