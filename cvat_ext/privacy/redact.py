"""Redacting regions of an image: grow each box by a margin, merge what overlaps, blur or pixelate.

Boxes are ``xyxy`` (N, 4) float pixels. :func:`merge_regions` returns integer boxes ``ltrb`` (M, 4)
(inclusive-exclusive: ``[left, top, right, bottom)``) that cover the union of the grown boxes:
overlapping or touching grown boxes are replaced by their common bounding box until none overlap
(over-covering is the safe side here). :func:`redact` then replaces every pixel inside them:

* ``gaussian``: a Gaussian blur whose sigma is ``strength`` x the region's shorter side (0.15 by
  default: facial features are gone, the region still reads as "a face");
* ``pixelate``: blocks of ``max(4, strength x shorter side)`` pixels, each one colour (area mean).

The input is not modified; the returned image is a new array.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError

__all__ = ["Method", "merge_regions", "redact"]

Method = Literal["gaussian", "pixelate"]


def merge_regions(xyxy: npt.ArrayLike, size_hw: tuple[int, int], *, margin: float = 0.25) -> npt.NDArray[np.int64]:
    """(M, 4) int ``ltrb`` covering every box grown by ``margin`` x its width/height, clipped to the image."""
    if margin < 0:
        raise ConfigError(f"privacy: margin must be >= 0, got {margin}")
    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    h, w = size_hw
    wh = boxes[:, 2:] - boxes[:, :2]
    grown = np.concatenate([boxes[:, :2] - margin * wh, boxes[:, 2:] + margin * wh], axis=1)
    ltrb = np.concatenate([np.floor(grown[:, :2]), np.ceil(grown[:, 2:])], axis=1)
    ltrb = np.clip(ltrb, 0, [w, h, w, h]).astype(np.int64)
    ltrb = ltrb[(ltrb[:, 2] > ltrb[:, 0]) & (ltrb[:, 3] > ltrb[:, 1])]
    # merge until stable: regions are few per image (faces, plates), so the quadratic pass is cheap
    while ltrb.shape[0] > 1:
        lt = np.maximum(ltrb[:, None, :2], ltrb[None, :, :2])
        rb = np.minimum(ltrb[:, None, 2:], ltrb[None, :, 2:])
        touch = (rb >= lt).all(axis=2)
        np.fill_diagonal(touch, False)
        if not touch.any():
            break
        i, j = np.argwhere(touch)[0]
        merged = np.concatenate([np.minimum(ltrb[i, :2], ltrb[j, :2]), np.maximum(ltrb[i, 2:], ltrb[j, 2:])])
        ltrb = np.vstack([np.delete(ltrb, [i, j], axis=0), merged[None]])
    return ltrb


def redact(
    rgb: npt.NDArray[np.uint8],
    regions_ltrb: npt.NDArray[np.int64],
    *,
    method: Method = "gaussian",
    strength: float = 0.15,
) -> npt.NDArray[np.uint8]:
    """A copy of ``rgb`` (H, W, 3) uint8 with every ``[left, top, right, bottom)`` region redacted."""
    import cv2

    if method not in ("gaussian", "pixelate"):
        raise ConfigError(f"privacy: method must be gaussian or pixelate, got {method!r}")
    if not 0 < strength <= 1:
        raise ConfigError(f"privacy: strength must be in (0, 1], got {strength}")
    out = np.array(rgb, dtype=np.uint8, copy=True)
    for left, top, right, bottom in np.asarray(regions_ltrb, dtype=np.int64).reshape(-1, 4).tolist():
        crop = out[top:bottom, left:right]
        ch, cw = crop.shape[:2]
        if ch == 0 or cw == 0:
            continue
        side = min(ch, cw)
        if method == "gaussian":
            sigma = max(strength * side, 2.0)
            # border reflect inside the crop: pixels outside the region never leak in
            out[top:bottom, left:right] = cv2.GaussianBlur(crop, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
        else:
            block = max(4, round(strength * side))
            small = cv2.resize(crop, (max(cw // block, 1), max(ch // block, 1)), interpolation=cv2.INTER_AREA)
            out[top:bottom, left:right] = cv2.resize(small, (cw, ch), interpolation=cv2.INTER_NEAREST)
    return out
