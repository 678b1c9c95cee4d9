"""Mask -> polygon, for detector items that CVAT may convert (``conv_mask_to_poly``)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_ext.models.detections import MaskCrop


def mask_polygon(mask: MaskCrop, *, tolerance_px: float = 1.0) -> npt.NDArray[np.float64] | None:
    """The outer contour of the mask's largest blob as a (K, 2) XY polygon in image pixels.

    Simplified with Douglas-Peucker at ``tolerance_px``; None when it has fewer than 3 vertices.
    """
    cv2: Any = importlib.import_module("cv2")
    bits = np.ascontiguousarray(mask.bitmap, dtype=np.uint8)
    contours, _ = cv2.findContours(bits, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea)
    approx = cv2.approxPolyDP(largest, tolerance_px, True).reshape(-1, 2)
    if approx.shape[0] < 3:
        return None
    return approx.astype(np.float64) + np.array([mask.left, mask.top], dtype=np.float64)
