"""The per-frame columnar view every rule reads: one row per visible object on the frame.

Built once per frame by the engine and shared by all rules, so each rule is a handful of numpy
operations over (N,) / (N, 4) columns instead of a Python loop over shapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import FloatArray, FrameAnnotations, IntArray, Shape, ShapeType, Tag

_EMPTY_F = np.zeros(0, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class FrameView:
    """Visible objects of one frame (``outside`` shapes dropped) as parallel columns.

    * ``xyxy`` (N, 4): the axis-aligned extent in pixels, rotation included (what overlaps and
      image-bounds checks use);
    * ``width``, ``height`` (N,): the object's own size (rectangles/ellipses before rotation,
      otherwise the extent), pixels;
    * ``area`` (N,): rectangle w*h, ellipse pi*rx*ry, polygon shoelace area, mask pixel count,
      other types the extent area; pixels^2;
    * ``label_id`` (N,) int64, ``type_name`` (N,) str, ``object_id``/``track_id`` per row;
    * ``frame_wh``: image (width, height), ``(0, 0)`` when the job meta does not know the frame.
    """

    frame: int
    frame_wh: tuple[int, int]
    shapes: tuple[Shape, ...]
    track_ids: tuple[int | None, ...]
    tags: tuple[Tag, ...]
    xyxy: FloatArray
    width: FloatArray
    height: FloatArray
    area: FloatArray
    label_id: IntArray
    type_name: npt.NDArray[np.str_]
    _label_names: Mapping[int, str] = field(repr=False)

    def __len__(self) -> int:
        return len(self.shapes)

    @property
    def size_known(self) -> bool:
        return self.frame_wh[0] > 0 and self.frame_wh[1] > 0

    def label_names(self) -> npt.NDArray[np.object_]:
        """(N,) label name per row."""
        names = self._label_names
        return np.array([names.get(int(i), f"#{int(i)}") for i in self.label_id], dtype=object)

    def describe(self, index: int) -> str:
        """``car rectangle 4104`` / ``car rectangle (track 42)``: names the object in messages."""
        shape = self.shapes[index]
        label = self._label_names.get(shape.label_id, f"#{shape.label_id}")
        if shape.id is not None:
            return f"{label} {shape.type.value} {shape.id}"
        track_id = self.track_ids[index]
        return (
            f"{label} {shape.type.value} (track {track_id})" if track_id is not None else f"{label} {shape.type.value}"
        )


def _rect_columns(points: FloatArray, rotation: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(R,4) xyxy + (R,) degrees -> extent (R,4), width (R,), height (R,)."""
    width = points[:, 2] - points[:, 0]
    height = points[:, 3] - points[:, 1]
    rad = np.deg2rad(rotation)
    cos, sin = np.abs(np.cos(rad)), np.abs(np.sin(rad))
    half_x = (width * cos + height * sin) / 2
    half_y = (width * sin + height * cos) / 2
    cx = (points[:, 0] + points[:, 2]) / 2
    cy = (points[:, 1] + points[:, 3]) / 2
    extent = np.stack([cx - half_x, cy - half_y, cx + half_x, cy + half_y], axis=1)
    return extent, width, height


def _other_geometry(shape: Shape) -> tuple[FloatArray, float, float, float]:
    """Extent xyxy, own width, own height, area of a non-rectangle shape."""
    if shape.type is ShapeType.ELLIPSE:
        cx, cy, rx, ry = shape.ellipse_cxcy_rxry
        rad = np.deg2rad(shape.rotation)
        half_x = float(np.hypot(rx * np.cos(rad), ry * np.sin(rad)))
        half_y = float(np.hypot(rx * np.sin(rad), ry * np.cos(rad)))
        return np.array([cx - half_x, cy - half_y, cx + half_x, cy + half_y]), 2 * rx, 2 * ry, float(np.pi * rx * ry)
    extent = np.asarray(shape.xyxy, dtype=np.float64)
    width, height = float(extent[2] - extent[0]), float(extent[3] - extent[1])
    if shape.type is ShapeType.POLYGON:
        area = polygon_area(shape.points)
    elif shape.type is ShapeType.MASK:
        assert shape.mask is not None
        area = float(shape.mask.area)
    else:
        area = width * height
    return extent, width, height, area


def polygon_area(points: FloatArray) -> float:
    """Shoelace area of a (K, 2) polygon, pixels^2 (absolute value)."""
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def build_frame_view(frame: FrameAnnotations, frame_wh: tuple[int, int], label_names: Mapping[int, str]) -> FrameView:
    """Columns for the visible shapes of ``frame`` (shapes with ``outside=True`` are not there)."""
    track_ids_all: Sequence[int | None] = frame.track_ids or (None,) * len(frame.shapes)
    keep = [i for i, s in enumerate(frame.shapes) if not s.outside]
    shapes = tuple(frame.shapes[i] for i in keep)
    track_ids = tuple(track_ids_all[i] for i in keep)
    n = len(shapes)
    xyxy = np.zeros((n, 4), dtype=np.float64)
    width = np.zeros(n, dtype=np.float64)
    height = np.zeros(n, dtype=np.float64)
    area = np.zeros(n, dtype=np.float64)
    rect_rows = [i for i, s in enumerate(shapes) if s.type is ShapeType.RECTANGLE]
    if rect_rows:
        points = np.stack([shapes[i].points for i in rect_rows])
        rotation = np.array([shapes[i].rotation for i in rect_rows], dtype=np.float64)
        extent, rect_w, rect_h = _rect_columns(points, rotation)
        xyxy[rect_rows], width[rect_rows], height[rect_rows] = extent, rect_w, rect_h
        area[rect_rows] = rect_w * rect_h
    if len(rect_rows) != n:
        for i, shape in enumerate(shapes):
            if shape.type is not ShapeType.RECTANGLE:
                xyxy[i], width[i], height[i], area[i] = _other_geometry(shape)
    return FrameView(
        frame=frame.frame,
        frame_wh=frame_wh,
        shapes=shapes,
        track_ids=track_ids,
        tags=frame.tags,
        xyxy=xyxy,
        width=width,
        height=height,
        area=area,
        label_id=np.fromiter((s.label_id for s in shapes), dtype=np.int64, count=n),
        type_name=np.array([s.type.value for s in shapes], dtype="<U9") if n else np.zeros(0, dtype="<U9"),
        _label_names=label_names,
    )
