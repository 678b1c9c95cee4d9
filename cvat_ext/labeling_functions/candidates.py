"""Candidate objects that labeling functions vote on: a frozen columnar table of N objects.

Columns (all (N,) unless said otherwise):

* ``frame`` int64 frame index; ``xyxy`` (N, 4) float64 absolute pixels;
* ``image_wh`` (N, 2) float64 width and height of the object's frame;
* ``shape_area`` float64: the object's own area in pixels (polygon / mask area; the box area for
  rectangles and for whole images);
* ``det_label`` int64 index into ``det_names`` (the class a detector or an annotator gave it,
  -1 = none) and ``det_score`` float64 in [0, 1] (NaN = none);
* ``mean_rgb`` (N, 3) float64 mean colour 0..255 (NaN when pixels were not read);
* ``pixels`` (N, P) float64 colour statistics of the candidate's pixels, one column per
  :data:`~cvat_ext.labeling_functions.pixels.PIXEL_COLUMNS` (NaN when pixels were not read;
  computed per frame by :func:`~cvat_ext.labeling_functions.pixels.pixel_stats`). When given
  without ``mean_rgb``, the mean colour is taken from it.

Derived features (:meth:`Candidates.feature`, computed once, vectorised): ``width``, ``height``,
``area`` (box), ``aspect`` (width / height), ``fill`` (shape_area / box area: 1.0 for a rectangle,
~0.785 for an ellipse), ``rel_area`` (box area / image area), ``cx``/``cy`` (box centre relative to
the image, 0..1), ``det_score``, ``brightness`` (mean of mean_rgb), ``red``/``green``/``blue``, and
the colour statistics (:data:`PIXEL_FEATURES`: CIELAB and HSV means and standard deviations, shares
of dark / white / grey pixels and of named hues). :meth:`Candidates.hue_fraction` gives the share
of saturated pixels in any hue range (30-degree resolution).
A whole image (for tags) is one candidate whose box is the frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import AnnotationFormatError
from cvat_ext.labeling_functions.pixels import NAMED_HUES, PIXEL_COLUMNS, hue_bins_between
from cvat_ext.models.detections import xyxy_rows

__all__ = ["FEATURES", "PIXEL_FEATURES", "Candidates"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: feature name -> what it is (for docs, YAML validation and error messages)
FEATURES: dict[str, str] = {
    "width": "box width, pixels",
    "height": "box height, pixels",
    "area": "box area, pixels",
    "aspect": "box width / height",
    "fill": "shape area / box area (1 = rectangle)",
    "rel_area": "box area / image area",
    "cx": "box centre x / image width",
    "cy": "box centre y / image height",
    "det_score": "detector score (NaN = none)",
    "brightness": "mean colour value 0..255 (NaN = pixels not read)",
    "red": "mean red 0..255",
    "green": "mean green 0..255",
    "blue": "mean blue 0..255",
}

#: colour statistics of the candidate's pixels (NaN = pixels not read)
PIXEL_FEATURES: dict[str, str] = {
    "lab_l": "mean CIELAB lightness 0..100",
    "lab_a": "mean CIELAB a (green -, red +)",
    "lab_b": "mean CIELAB b (blue -, yellow +)",
    "lab_l_std": "standard deviation of lightness (texture)",
    "lab_a_std": "standard deviation of CIELAB a",
    "lab_b_std": "standard deviation of CIELAB b",
    "hsv_s": "mean HSV saturation 0..1",
    "hsv_v": "mean HSV value 0..1",
    "hsv_s_std": "standard deviation of saturation",
    "hsv_v_std": "standard deviation of value",
    "frac_dark": "share of dark pixels (V < 0.2)",
    "frac_white": "share of white pixels (S < 0.25, V >= 0.8)",
    "frac_grey": "share of other unsaturated pixels",
    "frac_red": "share of saturated pixels with hue 345..15 degrees",
    "frac_orange": "share with hue 15..45",
    "frac_yellow": "share with hue 45..75",
    "frac_green": "share with hue 75..165",
    "frac_cyan": "share with hue 165..195",
    "frac_blue": "share with hue 195..255",
    "frac_purple": "share with hue 255..345",
    "frac_chromatic": "share of saturated pixels (any hue)",
}
FEATURES.update(PIXEL_FEATURES)
_COLUMN = {name: k for k, name in enumerate(PIXEL_COLUMNS)}
_HUE0 = _COLUMN["hue_00"]


def _column(value: Any, n: int, name: str, dtype: Any, fill: float | int) -> np.ndarray:
    if value is None:
        return np.full(n, fill, dtype=dtype)
    arr = np.asarray(value, dtype=dtype).reshape(-1)
    if arr.shape != (n,):
        raise AnnotationFormatError(f"candidates: expected {name} shape ({n},), got {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Candidates:
    """N candidate objects (see the module header for the columns)."""

    frame: IntArray
    xyxy: FloatArray
    image_wh: FloatArray
    shape_area: FloatArray | None = None
    det_label: IntArray | None = None
    det_names: tuple[str, ...] = ()
    det_score: FloatArray | None = None
    mean_rgb: FloatArray | None = None
    pixels: FloatArray | None = None
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        xyxy = xyxy_rows(self.xyxy, what="candidates")
        n = xyxy.shape[0]
        wh = np.asarray(self.image_wh, dtype=np.float64)
        wh = np.broadcast_to(wh, (n, 2)) if wh.shape == (2,) else wh
        if wh.shape != (n, 2):
            raise AnnotationFormatError(f"candidates: expected image_wh shape ({n}, 2) or (2,), got {wh.shape}")
        box_area = np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)
        pixels = (
            np.full((n, len(PIXEL_COLUMNS)), np.nan)
            if self.pixels is None
            else np.asarray(self.pixels, dtype=np.float64)
        )
        if pixels.shape != (n, len(PIXEL_COLUMNS)):
            raise AnnotationFormatError(
                f"candidates: expected pixels shape ({n}, {len(PIXEL_COLUMNS)}), got {pixels.shape}"
            )
        if self.mean_rgb is not None:
            rgb = np.asarray(self.mean_rgb, dtype=np.float64)
        else:
            rgb = pixels[:, [_COLUMN["red"], _COLUMN["green"], _COLUMN["blue"]]]
        if rgb.shape != (n, 3):
            raise AnnotationFormatError(f"candidates: expected mean_rgb shape ({n}, 3), got {rgb.shape}")
        det_label = _column(self.det_label, n, "det_label", np.int64, -1)
        if det_label.size and det_label.max() >= len(self.det_names):
            raise AnnotationFormatError(
                f"candidates: det_label {int(det_label.max())} has no name ({len(self.det_names)} det_names)"
            )
        for name, value in (
            ("frame", _column(self.frame, n, "frame", np.int64, 0)),
            ("xyxy", xyxy),
            ("image_wh", np.ascontiguousarray(wh)),
            (
                "shape_area",
                box_area if self.shape_area is None else _column(self.shape_area, n, "shape_area", np.float64, 0),
            ),
            ("det_label", det_label),
            ("det_score", _column(self.det_score, n, "det_score", np.float64, np.nan)),
            ("mean_rgb", rgb),
            ("pixels", pixels),
            ("det_names", tuple(self.det_names)),
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def whole_images(cls, frames: Sequence[int], image_wh: npt.ArrayLike, **columns: Any) -> Candidates:
        """One candidate per frame covering the whole image (for image-level tags)."""
        wh = np.broadcast_to(np.asarray(image_wh, dtype=np.float64), (len(frames), 2))
        xyxy = np.concatenate([np.zeros((len(frames), 2)), wh], axis=1)
        return cls(np.asarray(frames, dtype=np.int64), xyxy, wh, **columns)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @property
    def det_ids(self) -> IntArray:
        """``det_label`` after validation (never None)."""
        assert self.det_label is not None
        return self.det_label

    @property
    def rgb(self) -> FloatArray:
        """``mean_rgb`` after validation (never None; NaN where unknown)."""
        assert self.mean_rgb is not None
        return self.mean_rgb

    @property
    def pixel_table(self) -> FloatArray:
        """``pixels`` after validation (never None; NaN rows where pixels were not read)."""
        assert self.pixels is not None
        return self.pixels

    def hue_fraction(self, lo_deg: float, hi_deg: float) -> FloatArray:
        """(N,) share of each candidate's pixels that are saturated with a hue in ``[lo_deg,
        hi_deg)`` degrees (wraps past 360; resolution: 30-degree bins, counted by their centre)."""
        bins = hue_bins_between(lo_deg, hi_deg)
        return np.asarray(self.pixel_table[:, _HUE0 + bins].sum(axis=1), dtype=np.float64)

    def feature(self, name: str) -> FloatArray:
        """The (N,) float64 column of a feature in :data:`FEATURES` (KeyError names the known ones)."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        x0, y0, x1, y1 = self.xyxy.T
        w, h = np.clip(x1 - x0, 0, None), np.clip(y1 - y0, 0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = {
                "width": lambda: w,
                "height": lambda: h,
                "area": lambda: w * h,
                "aspect": lambda: np.where(h > 0, w / np.where(h > 0, h, 1), np.inf),
                "fill": lambda: np.where(w * h > 0, self.shape_area / np.where(w * h > 0, w * h, 1), 0.0),
                "rel_area": lambda: w * h / (self.image_wh[:, 0] * self.image_wh[:, 1]),
                "cx": lambda: (x0 + x1) / 2 / self.image_wh[:, 0],
                "cy": lambda: (y0 + y1) / 2 / self.image_wh[:, 1],
                "det_score": lambda: self.det_score,
                "brightness": lambda: self.rgb.mean(axis=1),
                "red": lambda: self.rgb[:, 0],
                "green": lambda: self.rgb[:, 1],
                "blue": lambda: self.rgb[:, 2],
            }.get(name)
            if value is None and name in _COLUMN:
                column_index = _COLUMN[name]
                value = lambda: self.pixel_table[:, column_index]  # noqa: E731
            elif value is None and name in NAMED_HUES:
                bins = np.asarray(NAMED_HUES[name], dtype=np.int64)
                value = lambda: self.pixel_table[:, _HUE0 + bins].sum(axis=1)  # noqa: E731
            if value is None:
                raise KeyError(f"unknown feature {name!r}; known: {', '.join(FEATURES)}")
            column = np.asarray(value(), dtype=np.float64)
        self._cache[name] = column
        return column

    def det_is(self, *names: str) -> npt.NDArray[np.bool_]:
        """(N,) True where the detector's / annotator's class is one of ``names``."""
        wanted = [i for i, n in enumerate(self.det_names) if n in names]
        return np.isin(self.det_ids, wanted)
