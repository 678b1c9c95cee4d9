"""The columnar view every rule reads: one row per visible object, over a batch of frames.

The engine streams a job frame by frame and packs consecutive frames into a :class:`FrameBatch`
(a few thousand rows at a time), shared by all rules. Row-wise rules (sizes, bounds, attributes,
validity, expressions) are then a handful of numpy operations over (N,) / (N, 4) columns for the
whole batch; frame-wise rules (duplicates, overlaps, counts, tags) walk the batch's frames through
``starts`` and work on each frame's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import (
    Attribute,
    FloatArray,
    FrameAnnotations,
    IntArray,
    LabelSet,
    Shape,
    ShapeType,
    Tag,
)
from cvat_ext.annotations.table import LazyShapes, ShapeTable

#: shape types in a fixed order: ``FrameBatch.type_code`` indexes this
TYPE_ORDER: tuple[ShapeType, ...] = tuple(ShapeType)
_TYPE_CODE = {t: i for i, t in enumerate(TYPE_ORDER)}
_TYPE_NAMES = np.array([t.value for t in TYPE_ORDER], dtype="<U9")
BoolArray = npt.NDArray[np.bool_]


def type_lut(types: Iterable[str]) -> BoolArray:
    """(T,) bool table over ``TYPE_ORDER``: ``lut[batch.type_code]`` selects rows of these types."""
    wanted = {ShapeType(t) for t in types}
    return np.array([t in wanted for t in TYPE_ORDER], dtype=bool)


@dataclass(frozen=True)
class LabelIndex:
    """Label ids -> names and a dense index, so "is this row's label in the set" is a table lookup
    (``lut[batch.label_idx]``) instead of ``np.isin``. Unknown ids get index ``L``."""

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
class FrameBatch:
    """Visible objects (``outside`` shapes dropped) of F consecutive frames as N parallel rows.

    Per frame k (F,): ``frames[k]`` task frame index, ``frame_wh[k]`` image (width, height) or
    ``(0, 0)`` when the job meta cannot size it, ``tags[k]``, and its rows ``starts[k]:starts[k+1]``.

    Per row (N,):

    * ``frame_pos`` index into the frames, ``frame`` the task frame index, ``frame_w``/``frame_h``;
    * ``xyxy`` (N, 4): the axis-aligned extent in pixels, rotation included (what overlaps and
      image-bounds checks use);
    * ``width``, ``height``: the object's own size (rectangles/ellipses before rotation, otherwise
      the extent), pixels;
    * ``area``: rectangle w*h, ellipse pi*rx*ry, polygon shoelace area, mask pixel count, other types
      the extent area; pixels^2;
    * ``rotation`` degrees (rectangles, ellipses; 0 otherwise);
    * ``label_id`` int64, ``label_idx`` dense label index (:class:`LabelIndex`), ``type_name`` str,
      ``type_code`` index into :data:`TYPE_ORDER`; ``score``, ``occluded``; ``shapes``/``track_ids``
      the objects themselves (built on first use when the batch was cut from a table: read
      attributes through :meth:`row_attributes`).
    """

    frames: IntArray
    frame_wh: IntArray
    tags: tuple[tuple[Tag, ...], ...]
    starts: IntArray
    shapes: tuple[Shape, ...] | LazyShapes
    track_ids: tuple[int | None, ...]
    frame_pos: IntArray
    frame: IntArray
    frame_w: FloatArray
    frame_h: FloatArray
    xyxy: FloatArray
    width: FloatArray
    height: FloatArray
    area: FloatArray
    rotation: FloatArray
    label_id: IntArray
    label_idx: IntArray
    type_name: npt.NDArray[np.str_]
    type_code: IntArray
    score: FloatArray
    occluded: BoolArray
    _label_names: Mapping[int, str] = field(repr=False)

    def __len__(self) -> int:
        return len(self.shapes)

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    def frame_rows(self, k: int) -> slice:
        """Rows of the batch's k-th frame."""
        return slice(int(self.starts[k]), int(self.starts[k + 1]))

    def size_known(self) -> BoolArray:
        """(N,) rows whose frame size is known."""
        result: BoolArray = (self.frame_w > 0) & (self.frame_h > 0)
        return result

    def row_attributes(self, row: int) -> tuple[Attribute, ...]:
        """The attribute values of ``row`` (from a table without building its object)."""
        if isinstance(self.shapes, LazyShapes):
            return self.shapes.attributes(row)
        return self.shapes[row].attributes

    def row_frame_wh(self, row: int) -> tuple[int, int]:
        return int(self.frame_w[row]), int(self.frame_h[row])

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


def build_frame_batch(
    frames: Sequence[FrameAnnotations], frame_wh: Sequence[tuple[int, int]], index: LabelIndex
) -> FrameBatch:
    """Columns for the visible shapes of ``frames`` (shapes with ``outside=True`` are not there).

    ``frame_wh[k]`` is the image size of ``frames[k]``, ``(0, 0)`` when unknown.
    """
    shapes_l: list[Shape] = []
    track_l: list[int | None] = []
    counts = np.zeros(len(frames), dtype=np.int64)
    for k, fa in enumerate(frames):
        track_ids_all: Sequence[int | None] = fa.track_ids or (None,) * len(fa.shapes)
        before = len(shapes_l)
        for s, t in zip(fa.shapes, track_ids_all, strict=True):
            if not s.outside:
                shapes_l.append(s)
                track_l.append(t)
        counts[k] = len(shapes_l) - before
    n = len(shapes_l)
    # one pass over the shapes for the per-row scalars; geometry is then vectorised per type
    label_id = np.empty(n, dtype=np.int64)
    type_code = np.empty(n, dtype=np.int64)
    rotation = np.empty(n, dtype=np.float64)
    score = np.empty(n, dtype=np.float64)
    occluded = np.empty(n, dtype=bool)
    for i, s in enumerate(shapes_l):
        label_id[i] = s.label_id
        type_code[i] = _TYPE_CODE[s.type]
        rotation[i] = s.rotation
        score[i] = s.score
        occluded[i] = s.occluded
    geometry = _Geometry.empty(n)
    is_rect = type_code == _TYPE_CODE[ShapeType.RECTANGLE]
    rect_rows = np.flatnonzero(is_rect)
    if rect_rows.size:
        geometry.set_rectangles(rect_rows, np.stack([shapes_l[i].points for i in rect_rows]), rotation[rect_rows])
    for row in np.flatnonzero(~is_rect).tolist():
        extent, width, height, area = _other_geometry(shapes_l[row])
        geometry.set_row(row, extent, width, height, area)
    return _batch(
        np.array([fa.frame for fa in frames], dtype=np.int64),
        frame_wh,
        tuple(fa.tags for fa in frames),
        counts,
        _Rows(tuple(shapes_l), tuple(track_l), label_id, type_code, rotation, score, occluded, geometry),
        index,
    )


def build_table_batch(
    table: ShapeTable,
    rows: IntArray,
    frames: IntArray,
    counts: IntArray,
    tags: Sequence[tuple[Tag, ...]],
    frame_wh: Sequence[tuple[int, int]],
    index: LabelIndex,
) -> FrameBatch:
    """The same batch from a :class:`ShapeTable`: ``rows`` the visible rows of ``frames (F,)``,
    frame by frame (``counts (F,)`` rows each), ``tags[k]`` the tags of ``frames[k]``.

    Nothing is built per shape: ``FrameBatch.shapes`` builds an object when a checker asks for
    one (a finding names it, or a kernel needs its polygon or mask). The table has no tracks.
    """
    rows = np.asarray(rows, dtype=np.int64)
    type_code = table.type_code[rows].astype(np.int64)
    rotation = table.rotation[rows].astype(np.float64)
    shapes = LazyShapes(table, rows)
    return _batch(
        np.asarray(frames, dtype=np.int64),
        frame_wh,
        tuple(tags),
        np.asarray(counts, dtype=np.int64),
        _Rows(
            shapes,
            (None,) * rows.size,
            table.label_id[rows].astype(np.int64),
            type_code,
            rotation,
            table.score[rows].astype(np.float64),
            table.occluded[rows].astype(bool),
            _table_geometry(table, rows, type_code, rotation, shapes),
        ),
        index,
    )


@dataclass(frozen=True)
class _Geometry:
    """Per-row geometry of a batch (see :class:`FrameBatch`): extent ``xyxy (N, 4)``, own
    ``width``, ``height`` and ``area``."""

    xyxy: FloatArray
    width: FloatArray
    height: FloatArray
    area: FloatArray

    @classmethod
    def empty(cls, n: int) -> _Geometry:
        return cls(np.zeros((n, 4)), np.zeros(n), np.zeros(n), np.zeros(n))

    def set_rectangles(self, rows: IntArray, points: FloatArray, rotation: FloatArray) -> None:
        extent, width, height = _rect_columns(points, rotation)
        self.xyxy[rows], self.width[rows], self.height[rows] = extent, width, height
        self.area[rows] = width * height

    def set_row(self, row: int, extent: FloatArray, width: float, height: float, area: float) -> None:
        self.xyxy[row], self.width[row], self.height[row], self.area[row] = extent, width, height, area


def _table_geometry(
    table: ShapeTable, rows: IntArray, type_code: IntArray, rotation: FloatArray, shapes: LazyShapes
) -> _Geometry:
    """:class:`_Geometry` of table ``rows`` from the columns, with the values ``_other_geometry``
    gives for an object: rectangles, ellipses and masks vectorised, polygons one shoelace per row
    on the row's coordinates, skeletons from their objects (their extent needs the elements)."""
    geometry = _Geometry.empty(rows.size)
    start = table.coord_start[rows]
    stop = table.coord_start[rows + 1]

    def where(t: ShapeType) -> IntArray:
        return np.flatnonzero(type_code == _TYPE_CODE[t])

    rect = where(ShapeType.RECTANGLE)
    if rect.size:
        points = table.coords[start[rect][:, None] + np.arange(4)].astype(np.float64)
        geometry.set_rectangles(rect, points, rotation[rect])
    ell = where(ShapeType.ELLIPSE)
    if ell.size:
        cx, cy, x_right, y_top = table.coords[start[ell][:, None] + np.arange(4)].astype(np.float64).T
        rx, ry = np.abs(x_right - cx), np.abs(cy - y_top)
        rad = np.deg2rad(rotation[ell])
        half_x = np.hypot(rx * np.cos(rad), ry * np.sin(rad))
        half_y = np.hypot(rx * np.sin(rad), ry * np.cos(rad))
        geometry.xyxy[ell] = np.stack([cx - half_x, cy - half_y, cx + half_x, cy + half_y], axis=1)
        geometry.width[ell], geometry.height[ell], geometry.area[ell] = 2 * rx, 2 * ry, np.pi * rx * ry
    rest = np.flatnonzero(
        (type_code != _TYPE_CODE[ShapeType.RECTANGLE])
        & (type_code != _TYPE_CODE[ShapeType.ELLIPSE])
        & (type_code != _TYPE_CODE[ShapeType.SKELETON])
    )
    if rest.size:
        extent = table.take(rows[rest]).xyxy()
        geometry.xyxy[rest] = extent
        geometry.width[rest] = extent[:, 2] - extent[:, 0]
        geometry.height[rest] = extent[:, 3] - extent[:, 1]
        geometry.area[rest] = geometry.width[rest] * geometry.height[rest]
    mask = where(ShapeType.MASK)
    if mask.size:
        # foreground pixels: the odd runs of the RLE (the row's numbers before its 4 ltrb values)
        counts_len = (stop[mask] - start[mask] - 4).astype(np.int64)
        within = _ranges(counts_len)
        runs = table.coords[np.repeat(start[mask], counts_len) + within].astype(np.float64)
        owner = np.repeat(np.arange(mask.size), counts_len)
        geometry.area[mask] = np.bincount(owner, weights=runs * (within % 2), minlength=mask.size)
    for i in where(ShapeType.POLYGON).tolist():
        flat = table.coords[int(start[i]) : int(stop[i])].astype(np.float64)
        geometry.area[i] = polygon_area(flat.reshape(-1, 2))
    for i in where(ShapeType.SKELETON).tolist():
        geometry.set_row(i, *_other_geometry(shapes[i]))
    return geometry


def _ranges(lengths: IntArray) -> IntArray:
    """``0..n-1`` for each ``n`` of ``lengths``, concatenated."""
    total = int(lengths.sum())
    firsts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return np.arange(total, dtype=np.int64) - np.repeat(firsts, lengths)


@dataclass(frozen=True)
class _Rows:
    """The per-row inputs of a batch, whichever source they came from."""

    shapes: tuple[Shape, ...] | LazyShapes
    track_ids: tuple[int | None, ...]
    label_id: IntArray
    type_code: IntArray
    rotation: FloatArray
    score: FloatArray
    occluded: BoolArray
    geometry: _Geometry


def _batch(
    frame_arr: IntArray,
    frame_wh: Sequence[tuple[int, int]],
    tags: tuple[tuple[Tag, ...], ...],
    counts: IntArray,
    rows: _Rows,
    index: LabelIndex,
) -> FrameBatch:
    starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    frame_pos = np.repeat(np.arange(frame_arr.shape[0], dtype=np.int64), counts)
    wh = np.array(frame_wh, dtype=np.int64).reshape(frame_arr.shape[0], 2)
    dense_ids = np.fromiter(index.dense, dtype=np.int64, count=len(index.dense))
    label_idx = _dense_index(rows.label_id, dense_ids, np.fromiter(index.dense.values(), np.int64, len(index.dense)))
    return FrameBatch(
        frames=frame_arr,
        frame_wh=wh,
        tags=tags,
        starts=starts,
        shapes=rows.shapes,
        track_ids=rows.track_ids,
        frame_pos=frame_pos,
        frame=frame_arr[frame_pos],
        frame_w=wh[frame_pos, 0].astype(np.float64),
        frame_h=wh[frame_pos, 1].astype(np.float64),
        xyxy=rows.geometry.xyxy,
        width=rows.geometry.width,
        height=rows.geometry.height,
        area=rows.geometry.area,
        rotation=rows.rotation,
        label_id=rows.label_id,
        label_idx=label_idx,
        type_name=_TYPE_NAMES[rows.type_code],
        type_code=rows.type_code,
        score=rows.score,
        occluded=rows.occluded,
        _label_names=index.names,
    )


def _dense_index(label_id: IntArray, ids: IntArray, dense: IntArray) -> IntArray:
    """(N,) the dense index of each label id (``len(ids)`` for ids the label set lacks)."""
    out = np.full(label_id.shape[0], ids.shape[0], dtype=np.int64)
    if ids.size == 0 or label_id.size == 0:
        return out
    order = np.argsort(ids)
    pos = np.clip(np.searchsorted(ids[order], label_id), 0, ids.size - 1)
    hit = ids[order][pos] == label_id
    out[hit] = dense[order][pos[hit]]
    return out
