"""The per-frame columnar view every rule reads: one row per visible object on the frame.

Built once per frame by the engine and shared by all rules, so each rule is a handful of numpy
operations over (N,) / (N, 4) columns instead of a Python loop over shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import FloatArray, FrameAnnotations, IntArray, LabelSet, Shape, ShapeType, Tag

#: shape types in a fixed order: ``FrameView.type_code`` indexes this
TYPE_ORDER: tuple[ShapeType, ...] = tuple(ShapeType)
_TYPE_CODE = {t: i for i, t in enumerate(TYPE_ORDER)}
_TYPE_NAMES = np.array([t.value for t in TYPE_ORDER], dtype="<U9")
BoolArray = npt.NDArray[np.bool_]


def type_lut(types: Iterable[str]) -> BoolArray:
    """(T,) bool table over ``TYPE_ORDER``: ``lut[view.type_code]`` selects rows of these types."""
    wanted = {ShapeType(t) for t in types}
    return np.array([t in wanted for t in TYPE_ORDER], dtype=bool)


@dataclass(frozen=True)
class LabelIndex:
    """Label ids -> names and a dense index, so "is this row's label in the set" is a table lookup
    (``lut[view.label_idx]``) instead of ``np.isin`` on every frame. Unknown ids get index ``L``."""

    names: Mapping[int, str]
    dense: Mapping[int, int]

    @classmethod
    def from_labels(cls, labels: LabelSet) -> LabelIndex:
        ids = sorted(labels.by_id)
        return cls(
            names={i: labels.by_id[i].name for i in ids},
            dense={label_id: k for k, label_id in enumerate(ids)},
        )

    def lut(self, label_ids: Iterable[int]) -> BoolArray:
        """(L + 1,) bool table, True at the dense index of each of ``label_ids``."""
        table = np.zeros(len(self.dense) + 1, dtype=bool)
        for label_id in label_ids:
            if label_id in self.dense:
                table[self.dense[label_id]] = True
        return table


@dataclass(frozen=True, eq=False)
class FrameView:
    """Visible objects of one frame (``outside`` shapes dropped) as parallel columns.

    * ``xyxy`` (N, 4): the axis-aligned extent in pixels, rotation included (what overlaps and
      image-bounds checks use);
    * ``width``, ``height`` (N,): the object's own size (rectangles/ellipses before rotation,
      otherwise the extent), pixels;
    * ``area`` (N,): rectangle w*h, ellipse pi*rx*ry, polygon shoelace area, mask pixel count,
      other types the extent area; pixels^2;
    * ``rotation`` (N,) degrees (rectangles, ellipses; 0 otherwise);
    * ``label_id`` (N,) int64, ``label_idx`` (N,) dense label index (:class:`LabelIndex`),
      ``type_name`` (N,) str, ``type_code`` (N,) index into :data:`TYPE_ORDER`;
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
    rotation: FloatArray
    label_id: IntArray
    label_idx: IntArray
    type_name: npt.NDArray[np.str_]
    type_code: IntArray
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
    twice = x[:-1] @ y[1:] - y[:-1] @ x[1:] + x[-1] * y[0] - y[-1] * x[0]
    return float(abs(twice) / 2)


def build_frame_view(frame: FrameAnnotations, frame_wh: tuple[int, int], index: LabelIndex) -> FrameView:
    """Columns for the visible shapes of ``frame`` (shapes with ``outside=True`` are not there)."""
    track_ids_all: Sequence[int | None] = frame.track_ids or (None,) * len(frame.shapes)
    keep = [i for i, s in enumerate(frame.shapes) if not s.outside]
    shapes = tuple(frame.shapes[i] for i in keep)
    track_ids = tuple(track_ids_all[i] for i in keep)
    n = len(shapes)
    dense, unknown = index.dense, len(index.dense)
    # one pass over the shapes for the per-row scalars; geometry is then vectorised per type
    label_id = np.empty(n, dtype=np.int64)
    label_idx = np.empty(n, dtype=np.int64)
    type_code = np.empty(n, dtype=np.int64)
    rotation = np.empty(n, dtype=np.float64)
    for i, s in enumerate(shapes):
        label_id[i] = s.label_id
        label_idx[i] = dense.get(s.label_id, unknown)
        type_code[i] = _TYPE_CODE[s.type]
        rotation[i] = s.rotation
    xyxy = np.zeros((n, 4), dtype=np.float64)
    width = np.zeros(n, dtype=np.float64)
    height = np.zeros(n, dtype=np.float64)
    area = np.zeros(n, dtype=np.float64)
    is_rect = type_code == _TYPE_CODE[ShapeType.RECTANGLE]
    rect_rows = np.flatnonzero(is_rect)
    if rect_rows.size:
        points = np.stack([shapes[i].points for i in rect_rows])
        extent, rect_w, rect_h = _rect_columns(points, rotation[rect_rows])
        xyxy[rect_rows], width[rect_rows], height[rect_rows] = extent, rect_w, rect_h
        area[rect_rows] = rect_w * rect_h
    for row in np.flatnonzero(~is_rect):
        xyxy[row], width[row], height[row], area[row] = _other_geometry(shapes[row])
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
        rotation=rotation,
        label_id=label_id,
        label_idx=label_idx,
        type_name=_TYPE_NAMES[type_code],
        type_code=type_code,
        _label_names=index.names,
    )
