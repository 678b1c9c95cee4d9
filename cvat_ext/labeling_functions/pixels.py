"""Colour statistics of candidates' pixels, computed per frame in one vectorised pass.

Input: one frame ``rgb (H, W, 3) uint8`` and its N candidates' boxes ``xyxy (N, 4)`` in absolute
pixels, optionally a bool mask per candidate covering its rounded box (polygons, CVAT masks: the
statistics are then over the shape's own pixels). Output: ``(N, P)`` float64, one column per name
in :data:`PIXEL_COLUMNS`:

* ``red green blue``: mean RGB 0..255;
* ``lab_l lab_a lab_b`` mean CIELAB (L 0..100, a/b about -128..127) and ``*_std`` their standard
  deviations (texture: a uniform region has small std);
* ``hsv_s hsv_v`` mean HSV saturation and value 0..1, ``*_std`` their standard deviations (hue
  has no meaningful mean: it is circular, see the hue bins);
* ``frac_dark`` (V < 0.2), ``frac_white`` (S < 0.25, V >= 0.8), ``frac_grey`` (the other
  unsaturated pixels): shares of the candidate's pixels, 0..1;
* ``hue_00 .. hue_11``: share of the candidate's pixels that are saturated (S >= 0.25, V >= 0.2)
  with a hue in the 30-degree bin centred on ``30 * k`` degrees (bin 0 = red, 345..15 degrees).
  The shares of dark, white, grey and the 12 bins sum to 1.

:func:`partition_stats` does the same for a partition of the frame (every pixel in one region,
e.g. joined superpixels) with one ``bincount`` per channel.

Boxes use summed-area tables (two multi-channel ``cv2.integral`` over the frame: every box costs
four lookups, whatever its size or the number of boxes); only masked candidates are visited one by one. The frame
is first shrunk (area interpolation) to ``max_side`` pixels on its longer side: statistics do not
need full resolution, and a 1080p frame then costs well under a tenth of a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "HUE_BINS",
    "NAMED_HUES",
    "PIXEL_COLUMNS",
    "hue_bins_between",
    "partition_moments",
    "partition_stats",
    "pixel_box",
    "pixel_stats",
    "stats_from_moments",
]

HUE_BINS = 12
_MEAN_CHANNELS = ("red", "green", "blue", "lab_l", "lab_a", "lab_b", "hsv_s", "hsv_v")
_STD_CHANNELS = ("lab_l", "lab_a", "lab_b", "hsv_s", "hsv_v")
_CLASSES = ("frac_dark", "frac_white", "frac_grey", *(f"hue_{k:02d}" for k in range(HUE_BINS)))
PIXEL_COLUMNS: tuple[str, ...] = (*_MEAN_CHANNELS, *(f"{c}_std" for c in _STD_CHANNELS), *_CLASSES)

#: colour name -> hue bins (centres 30 * k degrees) whose share it sums
NAMED_HUES: dict[str, tuple[int, ...]] = {
    "frac_red": (0,),
    "frac_orange": (1,),
    "frac_yellow": (2,),
    "frac_green": (3, 4, 5),
    "frac_cyan": (6,),
    "frac_blue": (7, 8),
    "frac_purple": (9, 10, 11),
    "frac_chromatic": tuple(range(HUE_BINS)),
}

_SAT_MIN, _VAL_MIN, _WHITE_VAL = 0.25, 0.2, 0.8


def hue_bins_between(lo_deg: float, hi_deg: float) -> npt.NDArray[np.int64]:
    """Indices of the hue bins whose centre lies in ``[lo_deg, hi_deg)`` (wrapping when lo > hi)."""
    centres = np.arange(HUE_BINS) * (360.0 / HUE_BINS)
    lo, hi = lo_deg % 360.0, hi_deg % 360.0
    if hi_deg - lo_deg >= 360.0:
        inside = np.ones(HUE_BINS, dtype=bool)
    elif lo <= hi:
        inside = (centres >= lo) & (centres < hi)
    else:
        inside = (centres >= lo) | (centres < hi)
    return np.flatnonzero(inside)


def pixel_box(xyxy: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """The pixels a box covers: ``floor(x0), floor(y0), ceil(x1), ceil(y1)`` clipped to the frame
    (half-open); a candidate's mask for :func:`pixel_stats` covers exactly this."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    return (
        int(np.clip(np.floor(x0), 0, width)),
        int(np.clip(np.floor(y0), 0, height)),
        int(np.clip(np.ceil(x1), 0, width)),
        int(np.clip(np.ceil(y1), 0, height)),
    )


def _channels(rgb: npt.NDArray[np.uint8]) -> tuple[dict[str, npt.NDArray[np.float32]], npt.NDArray[np.int64]]:
    """Per-pixel float32 channels by name, and the (H, W) colour class (index into ``_CLASSES``)."""
    import cv2

    unit = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    lab = np.asarray(cv2.cvtColor(unit, cv2.COLOR_RGB2Lab), dtype=np.float32)
    hsv = np.asarray(cv2.cvtColor(unit, cv2.COLOR_RGB2HSV), dtype=np.float32)  # H 0..360, S, V 0..1
    sat, val = hsv[..., 1], hsv[..., 2]
    chans: dict[str, npt.NDArray[np.float32]] = {
        "red": rgb[..., 0].astype(np.float32),
        "green": rgb[..., 1].astype(np.float32),
        "blue": rgb[..., 2].astype(np.float32),
        "lab_l": lab[..., 0],
        "lab_a": lab[..., 1],
        "lab_b": lab[..., 2],
        "hsv_s": sat,
        "hsv_v": val,
    }
    hue_bin = (((hsv[..., 0] + 180.0 / HUE_BINS) % 360.0) // (360.0 / HUE_BINS)).astype(np.int64) % HUE_BINS
    dark = val < _VAL_MIN
    grey_or_white = ~dark & (sat < _SAT_MIN)
    cls = np.where(dark, 0, np.where(grey_or_white, np.where(val >= _WHITE_VAL, 1, 2), 3 + hue_bin))
    return chans, np.asarray(cls, dtype=np.int64)


def _box_sums(table: npt.NDArray[np.generic], ltrb: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """(N, C) sums over half-open boxes ``ltrb`` from a summed-area table (H+1, W+1, C)."""
    left, top, right, bottom = ltrb.T
    sums = table[bottom, right].astype(np.float64) - table[top, right] - table[bottom, left] + table[top, left]
    return np.asarray(sums, dtype=np.float64).reshape(len(ltrb), -1)


def stats_from_moments(moments: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(N, len(PIXEL_COLUMNS)) statistics from (N, MOMENTS) sums: pixel count, the sums of the
    mean channels, the sums of squares of the std channels, the colour class counts. Moments
    add up: the moments of a union of disjoint regions are the sum of theirs."""
    k, j = len(_MEAN_CHANNELS), len(_STD_CHANNELS)
    counts = moments[:, 0]
    n = np.maximum(counts, 1.0)[:, None]
    means = moments[:, 1 : 1 + k] / n
    std_of = [1 + _MEAN_CHANNELS.index(c) for c in _STD_CHANNELS]
    squares = moments[:, 1 + k : 1 + k + j] / n
    std = np.sqrt(np.clip(squares - (moments[:, std_of] / n) ** 2, 0.0, None))
    result = np.concatenate([means, std, moments[:, 1 + k + j :] / n], axis=1)
    result[counts <= 0] = np.nan
    return result


def _shrink(rgb: npt.NDArray[np.uint8], max_side: int) -> npt.NDArray[np.uint8]:
    import cv2

    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def partition_moments(
    rgb: npt.NDArray[np.uint8], region: npt.NDArray[np.integer], n_regions: int, *, max_side: int = 1280
) -> npt.NDArray[np.float64]:
    """(n_regions, MOMENTS) moments (:func:`stats_from_moments`) of the regions of a partition of
    the frame: ``region`` (H, W) gives every pixel's region id ``0 .. n_regions-1`` (e.g.
    superpixels). One ``bincount`` per channel: each region counts its own pixels."""
    import cv2

    small = _shrink(rgb, max_side)
    ids = np.asarray(region)
    if small.shape[:2] != ids.shape:
        ids = cv2.resize(ids.astype(np.int32), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
    flat = ids.reshape(-1).astype(np.int64)
    chans, cls = _channels(small)

    def weighted(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        return np.asarray(np.bincount(flat, weights=values.reshape(-1), minlength=n_regions), dtype=np.float64)

    columns = [np.bincount(flat, minlength=n_regions).astype(np.float64)]
    columns += [weighted(chans[c]) for c in _MEAN_CHANNELS]
    columns += [weighted(np.square(chans[c], dtype=np.float64)) for c in _STD_CHANNELS]
    pair = flat * len(_CLASSES) + cls.reshape(-1)
    class_counts = np.bincount(pair, minlength=n_regions * len(_CLASSES)).reshape(n_regions, len(_CLASSES))
    return np.concatenate([np.stack(columns, axis=1), class_counts.astype(np.float64)], axis=1)


def partition_stats(
    rgb: npt.NDArray[np.uint8], region: npt.NDArray[np.integer], n_regions: int, *, max_side: int = 1280
) -> npt.NDArray[np.float64]:
    """(n_regions, len(PIXEL_COLUMNS)) colour statistics of the regions of a partition."""
    return stats_from_moments(partition_moments(rgb, region, n_regions, max_side=max_side))


def pixel_stats(
    rgb: npt.NDArray[np.uint8],
    xyxy: npt.ArrayLike,
    masks: Sequence[npt.NDArray[np.bool_] | None] | None = None,
    *,
    max_side: int = 1280,
) -> npt.NDArray[np.float64]:
    """(N, len(PIXEL_COLUMNS)) colour statistics of N candidates on one frame (module header).

    ``masks[i]`` (optional) is a bool array covering candidate i's box rounded outwards
    (``floor(x0), floor(y0) .. ceil(x1), ceil(y1)``, clipped to the frame); None = the whole box.
    A candidate with no pixel inside the frame gets NaN everywhere.
    """
    import cv2

    boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    n = boxes.shape[0]
    out = np.full((n, len(PIXEL_COLUMNS)), np.nan)
    if n == 0:
        return out
    height, width = rgb.shape[:2]
    small = _shrink(rgb, max_side)
    sh, sw = small.shape[:2]
    full = np.stack(
        [
            np.clip(np.floor(boxes[:, 0]), 0, width),
            np.clip(np.floor(boxes[:, 1]), 0, height),
            np.clip(np.ceil(boxes[:, 2]), 0, width),
            np.clip(np.ceil(boxes[:, 3]), 0, height),
        ],
        axis=1,
    ).astype(np.int64)
    # the same box on the shrunk frame, at least one pixel wide where the box has any pixel
    ltrb = np.floor(full * np.array([sw / width, sh / height, sw / width, sh / height])).astype(np.int64)
    ltrb[:, 2] = np.clip(np.maximum(ltrb[:, 2], ltrb[:, 0] + 1), 0, sw)
    ltrb[:, 3] = np.clip(np.maximum(ltrb[:, 3], ltrb[:, 1] + 1), 0, sh)
    ltrb[:, 0] = np.minimum(ltrb[:, 0], sw - 1)
    ltrb[:, 1] = np.minimum(ltrb[:, 1], sh - 1)
    has_pixels = (full[:, 2] > full[:, 0]) & (full[:, 3] > full[:, 1])
    chans, cls = _channels(small)

    masked = np.zeros(n, dtype=bool) if masks is None else np.array([m is not None for m in masks], dtype=bool)
    boxed = np.flatnonzero(has_pixels & ~masked)
    if boxed.size:
        sel = ltrb[boxed]
        counts = ((sel[:, 2] - sel[:, 0]) * (sel[:, 3] - sel[:, 1])).astype(np.float64)
        # one multi-channel summed-area table for the values and their squares (float64 sums),
        # one for the colour classes (exact int32 counts)
        planes = np.stack([chans[c] for c in _MEAN_CHANNELS] + [np.square(chans[c]) for c in _STD_CHANNELS], axis=-1)
        value_sums = _box_sums(cv2.integral(planes, sdepth=cv2.CV_64F), sel)
        one_hot = np.eye(len(_CLASSES), dtype=np.uint8)[cls]
        class_counts = _box_sums(cv2.integral(one_hot, sdepth=cv2.CV_32S), sel)
        out[boxed] = stats_from_moments(np.concatenate([counts[:, None], value_sums, class_counts], axis=1))
    # shapes with their own mask: only their pixels count (one small crop each)
    for i in np.flatnonzero(has_pixels & masked).tolist():
        assert masks is not None
        mask: npt.NDArray[np.bool_] = np.asarray(masks[i], dtype=np.bool_)
        left, top, right, bottom = (int(v) for v in ltrb[i])
        fw, fh = int(full[i, 2] - full[i, 0]), int(full[i, 3] - full[i, 1])
        if mask.shape != (fh, fw):
            raise ValueError(f"candidate {i}: mask shape {mask.shape}, expected ({fh}, {fw}) for its box")
        if (right - left, bottom - top) != (fw, fh):
            shrunk = cv2.resize(mask.astype(np.uint8), (right - left, bottom - top), interpolation=cv2.INTER_NEAREST)
            mask = np.asarray(shrunk, dtype=np.uint8) > 0
        crop = {c: chans[c][top:bottom, left:right][mask].astype(np.float64) for c in _MEAN_CHANNELS}
        klass = np.bincount(cls[top:bottom, left:right][mask], minlength=len(_CLASSES)).astype(np.float64)
        moments = [float(mask.sum()), *(crop[c].sum() for c in _MEAN_CHANNELS)]
        moments += [np.square(crop[c]).sum() for c in _STD_CHANNELS]
        out[i] = stats_from_moments(np.array([[*moments, *klass]]))[0]
    return out
