"""Columnar replica batches: the objects of R annotators on a chunk of frames, padded per frame.

A :class:`ReplicaBatch` holds the shapes of one *match group* (a shape type, optionally one label)
for ``F`` frames and ``R`` annotators. Objects are flattened into ``M`` rows; ``index (F, R, N)``
maps (frame position, annotator, slot) to a row, ``-1`` for padding, where ``N`` is the largest
number of objects one annotator drew on one frame of the chunk. Rectangles also carry their
geometry columnar (``xyxy (M, 4)``, ``rotation (M,)``) so box kernels run on whole chunks.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import FrameAnnotations, MaskRle, Shape, ShapeType, Tag
from cvat_ext.annotations.table import SHAPE_TYPES, TYPE_CODE, LazyShapes
from cvat_ext.geometry import SHAPE_FAMILY, mask_rle_columns

if TYPE_CHECKING:
    from cvat_ext.consensus.segments import SegmentRuns

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: types matched against each other (as CVAT: polygons and masks are one "segment" family)
MATCH_FAMILY = SHAPE_FAMILY

#: (match family, label id or None when labels are matched against each other)
GroupKey = tuple[str, int | None]


_ATTRS = operator.attrgetter("attributes")
_POINTS = operator.attrgetter("points")
_TYPE = operator.attrgetter("type")

_TYPE_CODE = TYPE_CODE
_FAMILIES = tuple(sorted(set(SHAPE_FAMILY.values())))
#: shape type code -> match family code
_FAMILY_CODE = np.array([_FAMILIES.index(SHAPE_FAMILY[t]) for t in SHAPE_TYPES], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class ReplicaBatch:
    """One match group on a chunk of frames (see module docstring for the layout).

    Rows are ordered by (frame, annotator, slot). ``shapes`` is None for batches built from
    columns (:meth:`from_columns`, rectangles only): everything the box path needs is columnar.
    """

    key: GroupKey
    frames: IntArray  # (F,) task frame indices of the chunk
    shapes: Sequence[Shape] | None  # (M,)
    index: IntArray  # (F, R, N) row or -1
    annotator: IntArray  # (M,) annotator position
    frame_pos: IntArray  # (M,) position in ``frames``
    slot: IntArray  # (M,) slot in ``index``
    label: IntArray  # (M,) label id
    xyxy: FloatArray  # (M, 4) axis-aligned extent (every type; rectangles: the box)
    rotation: FloatArray  # (M,) degrees (0 for types without rotation)
    occluded: BoolArray  # (M,)
    z_order: IntArray  # (M,)
    attr_key: IntArray  # (M,) order-free hash of the attribute values, 0 when the object has none
    type_code: IntArray  # (M,) position in SHAPE_TYPES
    #: polygons/masks: row runs of every row, decoded once by the matching and reused by the mask
    #: vote (:func:`cvat_ext.consensus.segments.segment_rows_runs`); the engine clears it to bound
    #: memory
    runs_cache: dict[bytes, SegmentRuns] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        m = self.label.shape[0]
        if self.shapes is not None and len(self.shapes) != m:
            raise ValueError(f"shapes: expected {m}, got {len(self.shapes)}")
        if self.index.ndim != 3 or self.index.shape[0] != self.frames.shape[0]:
            raise ValueError(f"expected index of shape (F, R, N), got {self.index.shape}")
        for name in ("annotator", "frame_pos", "slot", "rotation", "occluded", "z_order", "attr_key", "type_code"):
            arr = getattr(self, name)
            if arr.shape != (m,):
                raise ValueError(f"{name}: expected shape ({m},), got {arr.shape}")
        if self.xyxy.shape != (m, 4):
            raise ValueError(f"xyxy: expected shape ({m}, 4), got {self.xyxy.shape}")
        if m and np.any(np.diff(self.frame_pos) < 0):
            raise ValueError("rows must be ordered by frame")

    @classmethod
    def from_columns(
        cls,
        frames: IntArray,
        n_annotators: int,
        frame_pos: IntArray,
        annotator: IntArray,
        label: IntArray,
        xyxy: FloatArray,
    ) -> ReplicaBatch:
        """Axis-aligned rectangles given as columns (M,) / (M, 4), in any order."""
        order = np.lexsort((annotator, frame_pos))
        frame_pos, annotator, label, xyxy = frame_pos[order], annotator[order], label[order], xyxy[order]
        m = label.shape[0]
        slot, index = _slots(frame_pos, annotator, len(frames), n_annotators)
        return cls(
            key=("rectangle", None),
            frames=np.asarray(frames, dtype=np.int64),
            shapes=None,
            index=index,
            annotator=annotator,
            frame_pos=frame_pos,
            slot=slot,
            label=label,
            xyxy=np.asarray(xyxy, dtype=np.float64),
            rotation=np.zeros(m),
            occluded=np.zeros(m, dtype=bool),
            z_order=np.zeros(m, dtype=np.int64),
            attr_key=np.zeros(m, dtype=np.int64),
            type_code=np.full(m, _TYPE_CODE[ShapeType.RECTANGLE], dtype=np.int64),
        )

    def shape(self, row: int) -> Shape:
        """The input shape of a row (batches built from shapes only)."""
        if self.shapes is None:
            raise ValueError(f"match group {self.key}: built from columns, no shape objects")
        return self.shapes[row]

    def mask(self, row: int) -> MaskRle:
        """The mask of a mask row, read from the table's columns when the batch was cut from one."""
        if isinstance(self.shapes, LazyShapes):
            return self.shapes.mask(row)
        mask = self.shape(row).mask
        if mask is None:
            raise ValueError(f"match group {self.key}: row {row} is not a mask")
        return mask

    def mask_rles(self, rows: IntArray) -> tuple[list[IntArray], IntArray]:
        """The masks of mask ``rows``, many at once: each one's counts and their ``ltrb (n, 4)``."""
        if isinstance(self.shapes, LazyShapes):
            return self.shapes.mask_rles(rows)
        return mask_rle_columns([self.mask(i) for i in np.asarray(rows).tolist()])

    @property
    def family(self) -> str:
        return self.key[0]

    @property
    def n_frames(self) -> int:
        return int(self.index.shape[0])

    @property
    def n_annotators(self) -> int:
        return int(self.index.shape[1])

    @property
    def n_slots(self) -> int:
        return int(self.index.shape[2])

    @property
    def valid(self) -> BoolArray:
        """(F, R, N) true where a slot holds an object."""
        return self.index >= 0

    def padded(self, values: npt.NDArray[np.generic], fill: float = 0.0) -> npt.NDArray[np.generic]:
        """Scatter a per-row array ``(M, ...)`` into ``(F, R, N, ...)`` with ``fill`` in the padding."""
        out = np.full(self.index.shape + values.shape[1:], fill, dtype=values.dtype)
        out[self.frame_pos, self.annotator, self.slot] = values
        return out

    def frame_shapes(self, frame_pos: int, annotator: int) -> list[Shape]:
        """The shapes of one annotator on one frame of the chunk, in slot order."""
        rows = self.index[frame_pos, annotator]
        return [self.shape(i) for i in rows[rows >= 0].tolist()]


@dataclass(frozen=True)
class ChunkInput:
    """Frames of a chunk: ``frames (F,)`` and per frame the annotators' :class:`FrameAnnotations`
    (``None`` when an annotator has nothing on that frame)."""

    frames: tuple[int, ...]
    per_frame: tuple[tuple[FrameAnnotations | None, ...], ...]
    n_annotators: int

    def tags(self, frame_pos: int) -> list[tuple[int, Tag]]:
        """(annotator, tag) pairs on one frame."""
        out: list[tuple[int, Tag]] = []
        for r, fa in enumerate(self.per_frame[frame_pos]):
            if fa is not None:
                out.extend((r, t) for t in fa.tags)
        return out


def _extent(shape: Shape) -> Sequence[float]:
    if shape.type is ShapeType.RECTANGLE:
        return shape.points  # type: ignore[return-value]
    return shape.xyxy  # type: ignore[return-value]


def build_batches(chunk: ChunkInput, *, match_across_labels: bool = True) -> dict[GroupKey, ReplicaBatch]:
    """Group the chunk's shapes into match groups and pad them per frame and annotator."""
    # gather every shape once, in (frame, annotator) order, then split by group with numpy
    shapes: list[Shape] = []
    blocks: list[tuple[int, int, int]] = []  # (frame position, annotator, object count)
    for pos, per_annot in enumerate(chunk.per_frame):
        for r, fa in enumerate(per_annot):
            if fa is not None and fa.shapes:
                shapes.extend(fa.shapes)
                blocks.append((pos, r, len(fa.shapes)))
    if not shapes:
        return {}
    n_obj = len(shapes)
    block_arr = np.array(blocks, dtype=np.int64).reshape(-1, 3)

    # scalar columns: one C-level pass (attrgetter -> fromiter) per column, no Python loop
    def column(name: str, dtype: type) -> npt.NDArray[Any]:
        return np.fromiter(map(operator.attrgetter(name), shapes), dtype=dtype, count=n_obj)

    def extents(idx: IntArray) -> FloatArray:
        members = [shapes[i] for i in idx.tolist()]
        if MATCH_FAMILY[members[0].type] == "rectangle":
            return np.concatenate(list(map(_POINTS, members)), dtype=np.float64).reshape(-1, 4)
        return np.array([_extent(sh) for sh in members], dtype=np.float64).reshape(-1, 4)

    has_attrs = any(map(_ATTRS, shapes))

    def attr_keys(idx: IntArray) -> IntArray:
        if not has_attrs:
            return np.zeros(idx.size, dtype=np.int64)
        members = (shapes[i] for i in idx.tolist())
        return np.fromiter((hash(frozenset(sh.attributes)) if sh.attributes else 0 for sh in members), np.int64)

    return group_batches(
        np.asarray(chunk.frames, dtype=np.int64),
        chunk.n_annotators,
        ObjectColumns(
            frame_pos=np.repeat(block_arr[:, 0], block_arr[:, 2]),
            annotator=np.repeat(block_arr[:, 1], block_arr[:, 2]),
            type_code=np.fromiter(map(_TYPE_CODE.__getitem__, map(_TYPE, shapes)), np.int64, n_obj),
            label=column("label_id", np.int64),
            rotation=column("rotation", np.float64),
            occluded=column("occluded", np.bool_),
            z_order=column("z_order", np.int64),
            outside=column("outside", np.bool_),
            extents=extents,
            attr_keys=attr_keys,
            shapes=lambda idx: tuple(shapes[i] for i in idx.tolist()) if idx.size < n_obj else tuple(shapes),
        ),
        match_across_labels=match_across_labels,
    )


@dataclass(frozen=True)
class ObjectColumns:
    """A chunk's objects of every annotator as columns (M,), rows in (frame, annotator) order, with
    the parts only some groups need given lazily, by row positions: ``extents`` (M', 4) xyxy,
    ``attr_keys`` (M',) and ``shapes`` (the objects, for the kernels that need them)."""

    frame_pos: IntArray
    annotator: IntArray
    type_code: IntArray
    label: IntArray
    rotation: FloatArray
    occluded: BoolArray
    z_order: IntArray
    outside: BoolArray
    extents: Callable[[IntArray], FloatArray]
    attr_keys: Callable[[IntArray], IntArray]
    shapes: Callable[[IntArray], Sequence[Shape]]


def group_batches(
    frames: IntArray, n_annotators: int, obj: ObjectColumns, *, match_across_labels: bool = True
) -> dict[GroupKey, ReplicaBatch]:
    """Split a chunk's object columns into match groups (outside objects dropped), each padded per
    frame and annotator: the one place a :class:`ReplicaBatch` is cut from columns."""
    family_code = _FAMILY_CODE[obj.type_code]
    keep = ~obj.outside
    label = obj.label
    if not keep.any():
        return {}
    if match_across_labels:
        group = family_code
    else:
        group = family_code * (int(label.max()) - int(label.min()) + 1) + (label - int(label.min()))
    group = np.where(keep, group, -1)
    n_frames = len(frames)
    out: dict[GroupKey, ReplicaBatch] = {}
    for g in np.unique(group[keep]).tolist():
        idx = np.flatnonzero(group == g)  # stays in (frame, annotator) order
        first = int(idx[0])
        family = MATCH_FAMILY[SHAPE_TYPES[int(obj.type_code[first])]]
        key: GroupKey = (family, None if match_across_labels else int(label[first]))
        frame_pos, annotator = obj.frame_pos[idx], obj.annotator[idx]
        slot, index = _slots(frame_pos, annotator, n_frames, n_annotators)
        out[key] = ReplicaBatch(
            key=key,
            frames=frames,
            shapes=obj.shapes(idx),
            index=index,
            annotator=annotator,
            frame_pos=frame_pos,
            slot=slot,
            label=label[idx],
            xyxy=obj.extents(idx),
            rotation=obj.rotation[idx],
            occluded=obj.occluded[idx],
            z_order=obj.z_order[idx],
            attr_key=obj.attr_keys(idx),
            type_code=obj.type_code[idx],
        )
    return out


def _slots(frame_pos: IntArray, annotator: IntArray, n_frames: int, n_annotators: int) -> tuple[IntArray, IntArray]:
    """Slots of rows grouped by (frame, annotator) and the (F, R, N) index of rows."""
    group = frame_pos * n_annotators + annotator
    if group.size == 0:
        return np.zeros(0, dtype=np.int64), np.full((n_frames, n_annotators, 0), -1, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
    lengths = np.diff(np.concatenate((starts, [group.size])))
    slot = np.arange(group.size) - np.repeat(starts, lengths)
    index = np.full((n_frames, n_annotators, int(lengths.max())), -1, dtype=np.int64)
    index[frame_pos, annotator, slot] = np.arange(group.size)
    return slot, index
