"""The object table: a job's shapes as parallel columns, the form the engines read.

A :class:`ShapeTable` holds ``M`` shapes (rows), one numpy column per scalar field and the
geometry ragged in one flat array:

* ``frame (M,)``, ``label_id (M,)``, ``type_code (M,)`` (position in :data:`SHAPE_TYPES`),
  ``occluded (M,)``, ``outside (M,)``, ``z_order (M,)``, ``group (M,)``, ``rotation (M,)`` degrees,
  ``score (M,)``, ``obj_id (M,)`` with ``has_id (M,)`` (CVAT's ``id`` may be null), ``source_code
  (M,)`` into ``sources``;
* ``coords (C,)`` float64 (uint16 or float32 when every number is exactly one) and
  ``coord_start (M+1,)``: row ``i``'s numbers are ``coords[coord_start[i]:coord_start[i+1]]``,
  exactly CVAT's flat ``points``: rectangle/ellipse 4 numbers, polygon/polyline/points XY pairs,
  cuboid 16, mask ``counts... + [left, top, right, bottom]`` (CVAT RLE, inclusive box), skeleton
  none;
* the rare parts sparse, by row: ``attributes`` (row -> attribute values) and ``elements``
  (skeleton row -> its keypoint :class:`Shape` s).

The table is built once at the boundary (:mod:`cvat_ext.annotations.columnar_json`) and validated
there; :meth:`ShapeTable.shape` builds a :class:`Shape` on demand for code that edits or inspects a
few objects. Rows keep the order they were given in.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, SupportsIndex, TypeVar, overload

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import Attribute, MaskRle, Shape, ShapeType

__all__ = ["SHAPE_TYPES", "TYPE_CODE", "LazyShapes", "ShapeTable", "TableBuilder", "compact_coords", "compact_ints"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: shape types by code (``ShapeTable.type_code``)
SHAPE_TYPES: tuple[ShapeType, ...] = tuple(ShapeType)
TYPE_CODE: dict[ShapeType, int] = {t: i for i, t in enumerate(SHAPE_TYPES)}
_RECT, _ELLIPSE, _MASK, _SKELETON, _CUBOID = (
    TYPE_CODE[t] for t in (ShapeType.RECTANGLE, ShapeType.ELLIPSE, ShapeType.MASK, ShapeType.SKELETON, ShapeType.CUBOID)
)
_FLAT_TYPES = frozenset({_RECT, _ELLIPSE})


@dataclass(frozen=True, eq=False)
class ShapeTable:
    """``M`` shapes as columns (see the module docstring for the layout and units)."""

    frame: IntArray
    label_id: IntArray
    type_code: IntArray
    occluded: BoolArray
    outside: BoolArray
    z_order: IntArray
    group: IntArray
    rotation: FloatArray
    score: FloatArray
    obj_id: IntArray
    has_id: BoolArray
    source_code: IntArray
    sources: tuple[str, ...]
    coords: npt.NDArray[Any]
    coord_start: IntArray
    attributes: Mapping[int, tuple[Attribute, ...]] = field(default_factory=dict)
    elements: Mapping[int, tuple[Shape, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = self.frame.shape[0]
        for name in ("label_id", "type_code", "occluded", "outside", "z_order", "group", "rotation", "score"):
            if getattr(self, name).shape != (m,):
                raise ValueError(f"{name}: expected shape ({m},), got {getattr(self, name).shape}")
        for name in ("obj_id", "has_id", "source_code"):
            if getattr(self, name).shape != (m,):
                raise ValueError(f"{name}: expected shape ({m},), got {getattr(self, name).shape}")
        if self.coord_start.shape != (m + 1,) or (m and int(self.coord_start[-1]) != self.coords.shape[0]):
            raise ValueError(f"coord_start: expected ({m + 1},) ending at {self.coords.shape[0]}")

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    # ------------------------------------------------------------------------------------------
    # building

    @classmethod
    def empty(cls) -> ShapeTable:
        return cls.from_shapes(())

    @classmethod
    def from_shapes(cls, shapes: Sequence[Shape]) -> ShapeTable:
        """Shapes already built (the slow path, tracks, tests) -> a table in the same order."""
        n = len(shapes)
        sources = tuple(dict.fromkeys(s.source for s in shapes))
        source_of = {name: i for i, name in enumerate(sources)}
        flat = [_flat_points(s) for s in shapes]
        lengths = np.fromiter(map(len, flat), dtype=np.int64, count=n)
        return cls(
            frame=np.fromiter((s.frame for s in shapes), np.int64, n),
            label_id=np.fromiter((s.label_id for s in shapes), np.int64, n),
            type_code=np.fromiter((TYPE_CODE[s.type] for s in shapes), np.int64, n),
            occluded=np.fromiter((s.occluded for s in shapes), np.bool_, n),
            outside=np.fromiter((s.outside for s in shapes), np.bool_, n),
            z_order=np.fromiter((s.z_order for s in shapes), np.int64, n),
            group=np.fromiter((s.group for s in shapes), np.int64, n),
            rotation=np.fromiter((s.rotation for s in shapes), np.float64, n),
            score=np.fromiter((s.score for s in shapes), np.float64, n),
            obj_id=np.fromiter((0 if s.id is None else s.id for s in shapes), np.int64, n),
            has_id=np.fromiter((s.id is not None for s in shapes), np.bool_, n),
            source_code=np.fromiter((source_of[s.source] for s in shapes), np.int64, n),
            sources=sources,
            coords=np.concatenate([np.zeros(0), *flat]).astype(np.float64),
            coord_start=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
            attributes={i: s.attributes for i, s in enumerate(shapes) if s.attributes},
            elements={i: s.elements for i, s in enumerate(shapes) if s.elements},
        )

    @staticmethod
    def concat(tables: Sequence[ShapeTable]) -> ShapeTable:
        """The rows of ``tables`` one after the other."""
        if len(tables) == 1:
            return tables[0]
        builder = TableBuilder(sum(len(t) for t in tables))
        for t in tables:
            builder.add(t)
        return builder.build()

    def take(self, rows: IntArray) -> ShapeTable:
        """The table of ``rows`` (positions, in the order given)."""
        rows = np.asarray(rows, dtype=np.int64)
        coords, start = self.flat_points(rows)
        renumber = {int(r): i for i, r in enumerate(rows.tolist())} if (self.attributes or self.elements) else {}
        return ShapeTable(
            frame=self.frame[rows],
            label_id=self.label_id[rows],
            type_code=self.type_code[rows],
            occluded=self.occluded[rows],
            outside=self.outside[rows],
            z_order=self.z_order[rows],
            group=self.group[rows],
            rotation=self.rotation[rows],
            score=self.score[rows],
            obj_id=self.obj_id[rows],
            has_id=self.has_id[rows],
            source_code=self.source_code[rows],
            sources=self.sources,
            coords=coords,
            coord_start=start,
            attributes={renumber[r]: a for r, a in self.attributes.items() if r in renumber},
            elements={renumber[r]: e for r, e in self.elements.items() if r in renumber},
        )

    def span(self, lo: int, hi: int) -> ShapeTable:
        """The table of rows ``lo:hi``: views of the columns (no copy), as ``take(arange(lo, hi))``."""
        start = self.coord_start[lo : hi + 1]  # 0 <= lo <= hi <= M: at least one entry
        first = int(start[0])
        sparse = bool(self.attributes or self.elements)
        return ShapeTable(
            **{name: getattr(self, name)[lo:hi] for name in _SCALARS},
            source_code=self.source_code[lo:hi],
            sources=self.sources,
            coords=self.coords[first : int(start[-1])],
            coord_start=start - first,
            attributes={r - lo: a for r, a in self.attributes.items() if lo <= r < hi} if sparse else {},
            elements={r - lo: e for r, e in self.elements.items() if lo <= r < hi} if sparse else {},
        )

    # ------------------------------------------------------------------------------------------
    # columns the engines need

    def flat_points(self, rows: IntArray) -> tuple[npt.NDArray[Any], IntArray]:
        """CVAT's flat ``points`` of ``rows`` (positions, in the order given), one after the other:
        ``coords (C',)`` in the table's coordinate type and ``coord_start (len(rows) + 1,)``."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = np.diff(self.coord_start)[rows]
        start = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        gather = np.repeat(self.coord_start[rows] - start[:-1], lengths) + np.arange(int(start[-1]), dtype=np.int64)
        return self.coords[gather], start

    def xyxy(self) -> FloatArray:
        """(M, 4) axis-aligned extent of every row, as :attr:`Shape.xyxy` (rectangles: the box)."""
        m = len(self)
        out = np.zeros((m, 4))
        start, stop = self.coord_start[:-1], self.coord_start[1:]
        code = self.type_code
        if np.all(code == _RECT):  # rectangles only: their points as they are (no masked copy)
            return self.coords[start[:, None] + np.arange(4)].astype(np.float64)
        flat = np.isin(code, list(_FLAT_TYPES))
        if flat.any():
            four = self.coords[start[flat][:, None] + np.arange(4)].astype(np.float64)
            ell = code[flat] == _ELLIPSE
            if ell.any():
                cx, cy, x_right, y_top = four[ell].T
                rx, ry = np.abs(x_right - cx), np.abs(cy - y_top)
                four[ell] = np.stack([cx - rx, cy - ry, cx + rx, cy + ry], axis=1)
            out[flat] = four
        mask = code == _MASK
        if mask.any():
            ltrb = self.coords[stop[mask][:, None] - 4 + np.arange(4)].astype(np.float64)
            out[mask] = ltrb + np.array([0.0, 0.0, 1.0, 1.0])
        pairs = ~flat & ~mask & (code != _SKELETON) & (stop > start)
        if pairs.any():
            # XY pairs: per-row min/max over a contiguous run of the flat x and y arrays
            rows = np.flatnonzero(pairs)
            n_pts = (stop[rows] - start[rows]) // 2
            first = np.concatenate(([0], np.cumsum(n_pts)[:-1]))
            pick = np.repeat(start[rows] - 2 * first, n_pts) + 2 * np.arange(int(n_pts.sum()))
            x, y = self.coords[pick].astype(np.float64), self.coords[pick + 1].astype(np.float64)
            out[rows] = np.stack(
                [
                    np.minimum.reduceat(x, first),
                    np.minimum.reduceat(y, first),
                    np.maximum.reduceat(x, first),
                    np.maximum.reduceat(y, first),
                ],
                axis=1,
            )
        for i in np.flatnonzero(code == _SKELETON).tolist():
            out[i] = self.shape(i).xyxy
        return out

    def attr_key(self) -> IntArray:
        """(M,) order-free hash of each row's attribute values, 0 for rows without any."""
        out = np.zeros(len(self), dtype=np.int64)
        for row, attrs in self.attributes.items():
            out[row] = hash(frozenset(attrs))
        return out

    # ------------------------------------------------------------------------------------------
    # objects on demand

    def shape(self, row: int) -> Shape:
        """Row ``row`` as a :class:`Shape` (the one :func:`~cvat_ext.annotations.cvat_json.parse_shape`
        gives for the CVAT dict it was read from). The row was validated when the table was read,
        so the object is assembled without checking it again (read-only arrays, as the checked
        constructor leaves them)."""
        code = int(self.type_code[row])
        shape_type = SHAPE_TYPES[code]
        flat = self.coords[int(self.coord_start[row]) : int(self.coord_start[row + 1])]
        mask = None
        if code == _MASK:
            mask = _mask_of(flat)
            points: FloatArray = np.zeros((0, 2))
        elif code == _CUBOID:
            points = flat.astype(np.float64).reshape(8, 2)
        elif code in _FLAT_TYPES:
            points = flat.astype(np.float64)
        else:
            points = flat.astype(np.float64).reshape(-1, 2)
        points.setflags(write=False)
        return _assembled(
            Shape,
            type=shape_type,
            frame=int(self.frame[row]),
            label_id=int(self.label_id[row]),
            points=points,
            mask=mask,
            rotation=float(self.rotation[row]),
            id=int(self.obj_id[row]) if self.has_id[row] else None,
            occluded=bool(self.occluded[row]),
            outside=bool(self.outside[row]),
            z_order=int(self.z_order[row]),
            group=int(self.group[row]),
            source=self.sources[int(self.source_code[row])],
            score=float(self.score[row]),
            attributes=self.attributes.get(row, ()),
            elements=self.elements.get(row, ()),
        )

    def mask(self, row: int) -> MaskRle:
        """The :class:`MaskRle` of mask row ``row``, without its :class:`Shape`."""
        if int(self.type_code[row]) != _MASK:
            raise ValueError(f"row {row} is a {SHAPE_TYPES[int(self.type_code[row])].value}, not a mask")
        return _mask_of(self.coords[int(self.coord_start[row]) : int(self.coord_start[row + 1])])

    def shapes(self) -> Iterator[Shape]:
        """Every row as a :class:`Shape`, in order."""
        return map(self.shape, range(len(self)))


T = TypeVar("T")


def _assembled(cls: type[T], **fields: Any) -> T:
    """A frozen dataclass instance from fields already checked (its ``__post_init__`` skipped)."""
    obj = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


def _mask_of(flat: npt.NDArray[Any]) -> MaskRle:
    """A mask's flat CVAT points (RLE counts, then inclusive ``ltrb``), validated when read."""
    whole = flat.astype(np.int64)
    whole.setflags(write=False)
    ltrb = (int(whole[-4]), int(whole[-3]), int(whole[-2]), int(whole[-1]))
    return _assembled(MaskRle, counts=whole[:-4], ltrb=ltrb)


def _flat_points(s: Shape) -> FloatArray:
    if s.mask is not None:
        return np.concatenate([s.mask.counts.astype(np.float64), np.asarray(s.mask.ltrb, dtype=np.float64)])
    return np.asarray(s.points, dtype=np.float64).ravel()


def compact_coords(coords: FloatArray, block: int = 1 << 20) -> npt.NDArray[Any]:
    """``coords`` in the smallest type that holds every number exactly: uint16 (mask RLE counts
    and boxes of small non-negative integers: a quarter of the memory), float32, else unchanged.
    Readers widen to float64 (or int64) on use."""
    small_ints = exact32 = True
    for lo in range(0, coords.shape[0], block):
        part = coords[lo : lo + block]
        if small_ints:
            small_ints = bool(part.min() >= 0 and part.max() <= 65535 and np.array_equal(np.floor(part), part))
        if not small_ints:
            exact32 = exact32 and np.array_equal(part.astype(np.float32), part)
            if not exact32:
                return coords
    return coords.astype(np.uint16 if small_ints else np.float32)


#: integer columns kept as int32 when every value fits (frame indices, label ids, z order, group:
#: 16 bytes a row saved on a 100,000-frame job's 6.6 million rows); readers take any integer type
_NARROW = ("frame", "label_id", "z_order", "group", "source_code")
_I32 = np.iinfo(np.int32)


def compact_ints(table: ShapeTable) -> ShapeTable:
    """``table`` with its type codes as int8 and the :data:`_NARROW` columns as int32 where every
    value fits (the values are unchanged)."""
    narrow: dict[str, Any] = {"type_code": table.type_code.astype(np.int8)}
    for name in _NARROW:
        column = getattr(table, name)
        if column.dtype != np.int32 and (not column.size or (column.min() >= _I32.min and column.max() <= _I32.max)):
            narrow[name] = column.astype(np.int32)
    return dataclasses.replace(table, **narrow)


#: the scalar columns, copied as they are by :class:`TableBuilder`
_SCALARS = (
    "frame", "label_id", "type_code", "occluded", "outside", "z_order", "group", "rotation", "score", "obj_id",
    "has_id",
)  # fmt: skip


class TableBuilder:
    """Tables appended into scalar columns allocated once for ``rows`` rows, their coordinates
    kept block by block in their compact types and joined once: a long job's blocks are joined
    without holding them twice."""

    def __init__(self, rows: int) -> None:
        dtypes = {"occluded": np.bool_, "outside": np.bool_, "has_id": np.bool_, "rotation": np.float64}
        dtypes["score"] = np.float64
        self._columns: dict[str, npt.NDArray[Any]] = {
            name: np.zeros(rows, dtype=dtypes.get(name, np.int64)) for name in _SCALARS
        }
        self._source_code = np.zeros(rows, dtype=np.int64)
        self._coords: list[npt.NDArray[Any]] = []
        self._coord_start = np.zeros(rows + 1, dtype=np.int64)
        self._sources: dict[str, int] = {}
        self._attributes: dict[int, tuple[Attribute, ...]] = {}
        self._elements: dict[int, tuple[Shape, ...]] = {}
        self._rows = 0

    def add(self, table: ShapeTable) -> None:
        lo, hi = self._rows, self._rows + len(table)
        if hi > self._source_code.shape[0]:
            raise ValueError(f"table builder: {hi} rows, allocated {self._source_code.shape[0]}")
        for name, column in self._columns.items():
            column[lo:hi] = getattr(table, name)
        codes = np.array([self._sources.setdefault(s, len(self._sources)) for s in table.sources], dtype=np.int64)
        self._source_code[lo:hi] = codes[table.source_code] if hi > lo else 0
        base = int(self._coord_start[lo])
        self._coords.append(table.coords)
        self._coord_start[lo + 1 : hi + 1] = table.coord_start[1:] + base
        self._attributes.update((lo + i, a) for i, a in table.attributes.items())
        self._elements.update((lo + i, e) for i, e in table.elements.items())
        self._rows = hi

    def build(self) -> ShapeTable:
        n = self._rows
        cols = {name: column[:n] for name, column in self._columns.items()}
        # the common type of the blocks' compact types holds every number exactly (uint16 and
        # float32 widen exactly), so the join needs no second look at the values
        coords = np.concatenate(self._coords) if self._coords else np.zeros(0)
        self._coords = []
        return ShapeTable(
            **cols,
            source_code=self._source_code[:n],
            sources=tuple(self._sources),
            coords=coords,
            coord_start=self._coord_start[: n + 1],
            attributes=self._attributes,
            elements=self._elements,
        )


class LazyShapes(Sequence[Shape]):
    """Rows ``rows`` of a table as a sequence of :class:`Shape` s, each built on first use and kept
    (what :class:`~cvat_ext.consensus.batch.ReplicaBatch` hands to the kernels that need objects)."""

    def __init__(self, table: ShapeTable, rows: IntArray) -> None:
        self._table = table
        self._row_array = np.asarray(rows, dtype=np.int64)
        self._built: dict[int, Shape] = {}

    @functools.cached_property
    def _rows(self) -> list[int]:
        """The rows as Python integers, made on first use (a batch of boxes never asks)."""
        return self._row_array.tolist()

    def flat_points(self, positions: IntArray) -> tuple[npt.NDArray[Any], IntArray]:
        """:meth:`ShapeTable.flat_points` of the shapes at ``positions`` of this sequence, read
        from the columns (no :class:`Shape` built): for kernels that take geometry as columns."""
        return self._table.flat_points(self._row_array[np.asarray(positions, dtype=np.int64)])

    def mask(self, i: int) -> MaskRle:
        """The mask of mask shape ``i`` (its :class:`Shape` is not built when it was not yet)."""
        shape = self._built.get(i)
        if shape is not None and shape.mask is not None:
            return shape.mask
        return self._table.mask(self._rows[i])

    def __len__(self) -> int:
        return int(self._row_array.shape[0])

    def attributes(self, i: SupportsIndex) -> tuple[Attribute, ...]:
        """The attribute values of the ``i``-th shape, without building it."""
        return self._table.attributes.get(self._rows[operator.index(i)], ())

    @overload
    def __getitem__(self, i: SupportsIndex) -> Shape: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Shape]: ...
    def __getitem__(self, i: SupportsIndex | slice) -> Shape | Sequence[Shape]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        at = operator.index(i)  # NumPy integers too (the rules index with them)
        shape = self._built.get(at)
        if shape is None:
            shape = self._built[at] = self._table.shape(self._rows[at])
        return shape
