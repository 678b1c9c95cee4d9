"""Our annotation types: one object per CVAT annotation, geometry in our coordinate convention.

Conventions (the whole package speaks these; CVAT JSON is converted once, in ``cvat_json``):

* absolute pixel coordinates, float64;
* ``rectangle``: ``points`` (4,) ``xyxy`` = [x_min, y_min, x_max, y_max]; ``rotation`` in degrees
  (clockwise, about the box centre, as CVAT);
* ``polygon`` / ``polyline`` / ``points``: ``points`` (K, 2) XY;
* ``ellipse``: ``points`` (4,) ``[cx, cy, cx + rx, cy - ry]`` (kept exactly as CVAT stores it so a
  round trip is bit-exact; use :attr:`Shape.ellipse_cxcy_rxry` for centre and radii); ``rotation``;
* ``cuboid``: ``points`` (8, 2) XY, CVAT's 8 projected corners in CVAT's order;
* ``mask``: ``points`` is empty (0, 2); the geometry is ``mask``, a :class:`MaskRle` (CVAT RLE over
  the inclusive ``ltrb`` box, row-major, first run background);
* ``skeleton``: ``points`` is empty (0, 2); keypoints are ``elements`` (each a ``points`` shape of
  (1, 2)); an invisible keypoint has ``outside=True``.

Frame numbers are task-level frame indices (``frame_idx``), as in CVAT.
Internal types are frozen dataclasses validated on construction; untrusted input is parsed at the
boundary (``cvat_json``) into these.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import AnnotationFormatError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ShapeType(StrEnum):
    RECTANGLE = "rectangle"
    POLYGON = "polygon"
    POLYLINE = "polyline"
    POINTS = "points"
    ELLIPSE = "ellipse"
    CUBOID = "cuboid"
    MASK = "mask"
    SKELETON = "skeleton"


#: the values of :class:`ShapeType` as a type (pydantic's and msgspec's decoders check a string
#: against it: one interned string per type, and an unknown type is refused where it is decoded)
ShapeTypeName = Literal["rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton"]


#: expected ``points`` array shape per type; ``None`` = any count of rows (min rows in MIN_VERTICES)
POINTS_SHAPE: dict[ShapeType, tuple[int | None, ...]] = {
    ShapeType.RECTANGLE: (4,),
    ShapeType.ELLIPSE: (4,),
    ShapeType.POLYGON: (None, 2),
    ShapeType.POLYLINE: (None, 2),
    ShapeType.POINTS: (None, 2),
    ShapeType.CUBOID: (8, 2),
    ShapeType.MASK: (0, 2),
    ShapeType.SKELETON: (0, 2),
}

#: the minimum vertex count CVAT's serializer accepts for the variable-length types
MIN_VERTICES: dict[ShapeType, int] = {ShapeType.POLYGON: 3, ShapeType.POLYLINE: 2, ShapeType.POINTS: 1}


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute value on an annotation: ``spec_id`` is the label attribute id, value a string."""

    spec_id: int
    value: str


@dataclass(frozen=True, slots=True, eq=False)
class MaskRle:
    """CVAT's mask RLE.

    ``counts`` (C,) int64: alternating run lengths over the crop ``(bottom-top+1) x (right-left+1)``
    in row-major order, the first run is background (possibly 0). ``ltrb`` is the **inclusive**
    integer pixel box ``(left, top, right, bottom)``. The counts sum to the crop area.
    """

    counts: IntArray
    ltrb: tuple[int, int, int, int]

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts)
        if counts.ndim != 1 or counts.size == 0:
            raise AnnotationFormatError(f"mask RLE: expected a non-empty 1-D counts array, got shape {counts.shape}")
        if not np.issubdtype(counts.dtype, np.integer) and (
            not np.all(np.isfinite(counts)) or np.any(counts != np.round(counts))
        ):
            raise AnnotationFormatError("mask RLE: run lengths must be whole numbers")
        counts = counts.astype(np.int64)
        if np.any(counts < 0):
            raise AnnotationFormatError("mask RLE: negative run length")
        left, top, right, bottom = (int(v) for v in self.ltrb)
        if right < left or bottom < top:
            raise AnnotationFormatError(f"mask RLE: empty box ltrb={self.ltrb}")
        area = (right - left + 1) * (bottom - top + 1)
        if int(counts.sum()) != area:
            raise AnnotationFormatError(
                f"mask RLE: run lengths sum to {int(counts.sum())}, box {self.ltrb} has {area} pixels"
            )
        counts.setflags(write=False)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "ltrb", (left, top, right, bottom))

    @property
    def width(self) -> int:
        return self.ltrb[2] - self.ltrb[0] + 1

    @property
    def height(self) -> int:
        return self.ltrb[3] - self.ltrb[1] + 1

    @property
    def area(self) -> int:
        """Foreground pixel count (sum of the odd-indexed runs)."""
        return int(self.counts[1::2].sum())

    def to_bitmap(self) -> npt.NDArray[np.bool_]:
        """The (height, width) bool crop covering ``ltrb``."""
        values = np.zeros(self.counts.size, dtype=bool)
        values[1::2] = True
        return np.repeat(values, self.counts).reshape(self.height, self.width)

    @classmethod
    def from_bitmap(cls, bitmap: npt.ArrayLike, left: int = 0, top: int = 0) -> MaskRle:
        """Encode a (H, W) bool crop whose top-left pixel is ``(left, top)``.

        The box is kept as given (not tightened); use :meth:`tight` to shrink it to the foreground.
        """
        bits = np.asarray(bitmap, dtype=bool)
        if bits.ndim != 2 or bits.size == 0:
            raise AnnotationFormatError(f"mask bitmap: expected a non-empty 2-D array, got shape {bits.shape}")
        flat = bits.ravel()
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        bounds = np.concatenate(([0], change, [flat.size]))
        runs = np.diff(bounds)
        if flat[0]:
            runs = np.concatenate(([0], runs))
        h, w = bits.shape
        return cls(runs.astype(np.int64), (int(left), int(top), int(left) + w - 1, int(top) + h - 1))

    def tight(self) -> MaskRle:
        """The same mask with its box shrunk to the foreground (as CVAT's UI encodes masks)."""
        bits = self.to_bitmap()
        rows = np.flatnonzero(bits.any(axis=1))
        cols = np.flatnonzero(bits.any(axis=0))
        if rows.size == 0:
            raise AnnotationFormatError(f"mask RLE at {self.ltrb}: empty mask has no tight box")
        crop = bits[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        return MaskRle.from_bitmap(crop, self.ltrb[0] + int(cols[0]), self.ltrb[1] + int(rows[0]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MaskRle):
            return NotImplemented
        return self.ltrb == other.ltrb and np.array_equal(self.counts, other.counts)

    def __hash__(self) -> int:
        return hash((self.ltrb, self.counts.tobytes()))


def _as_points(points: npt.ArrayLike, shape_type: ShapeType) -> FloatArray:
    arr = np.array(points, dtype=np.float64)
    expected = POINTS_SHAPE[shape_type]
    if expected == (0, 2) and arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != len(expected) or any(e is not None and e != a for e, a in zip(expected, arr.shape, strict=True)):
        shown = tuple("K" if e is None else e for e in expected)
        raise AnnotationFormatError(f"{shape_type.value}: expected points of shape {shown}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise AnnotationFormatError(f"{shape_type.value}: points contain NaN or infinity")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    """One 2D/3D shape annotation (CVAT ``LabeledShape``) in our convention (see module docstring)."""

    type: ShapeType
    frame: int
    label_id: int
    points: FloatArray
    mask: MaskRle | None = None
    rotation: float = 0.0
    id: int | None = None
    occluded: bool = False
    outside: bool = False
    z_order: int = 0
    group: int = 0
    source: str = "manual"
    score: float = 1.0
    attributes: tuple[Attribute, ...] = ()
    elements: tuple[Shape, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", ShapeType(self.type))
        object.__setattr__(self, "points", _as_points(self.points, self.type))
        if (self.type is ShapeType.MASK) != (self.mask is not None):
            raise AnnotationFormatError(f"{self.where()}: a mask geometry is required for masks and only for masks")
        min_rows = MIN_VERTICES.get(self.type)
        if min_rows is not None and self.points.shape[0] < min_rows:
            raise AnnotationFormatError(
                f"{self.where()}: {self.type.value} has {self.points.shape[0]} points, need >= {min_rows}"
            )
        if self.elements and self.type is not ShapeType.SKELETON:
            raise AnnotationFormatError(f"{self.where()}: only skeletons have elements")
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "elements", tuple(self.elements))

    def where(self) -> str:
        """A human locator: ``frame 14 rectangle 3``."""
        ident = f" {self.id}" if self.id is not None else ""
        return f"frame {self.frame} {self.type.value}{ident}"

    @property
    def xyxy(self) -> FloatArray:
        """(4,) axis-aligned bounding box [x_min, y_min, x_max, y_max] of the (unrotated) geometry.

        Rectangles and ellipses ignore ``rotation`` here; geometry kernels handle rotation.
        Skeletons use their visible keypoints (all keypoints if none is visible).
        """
        if self.type is ShapeType.RECTANGLE:
            return self.points
        if self.type is ShapeType.ELLIPSE:
            cx, cy, rx, ry = self.ellipse_cxcy_rxry
            return np.array([cx - rx, cy - ry, cx + rx, cy + ry])
        if self.type is ShapeType.MASK:
            assert self.mask is not None
            left, top, right, bottom = self.mask.ltrb
            # inclusive pixel box -> continuous extent
            return np.array([left, top, right + 1, bottom + 1], dtype=np.float64)
        if self.type is ShapeType.SKELETON:
            pts = [e.points.reshape(-1, 2) for e in self.elements if not e.outside] or [
                e.points.reshape(-1, 2) for e in self.elements
            ]
            if not pts:
                return np.zeros(4)
            xy = np.concatenate(pts)
        else:
            xy = self.points
        return np.concatenate([xy.min(axis=0), xy.max(axis=0)])

    @property
    def ellipse_cxcy_rxry(self) -> tuple[float, float, float, float]:
        """Ellipse centre and radii ``(cx, cy, rx, ry)`` (ellipses only)."""
        if self.type is not ShapeType.ELLIPSE:
            raise AnnotationFormatError(f"{self.where()}: not an ellipse")
        cx, cy, x_right, y_top = (float(v) for v in self.points)
        return cx, cy, abs(x_right - cx), abs(cy - y_top)

    def attribute_map(self) -> dict[int, str]:
        return {a.spec_id: a.value for a in self.attributes}


@dataclass(frozen=True, slots=True)
class Tag:
    """A frame-level tag (CVAT ``LabeledImage``)."""

    frame: int
    label_id: int
    id: int | None = None
    group: int = 0
    source: str = "manual"
    attributes: tuple[Attribute, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class TrackShape:
    """A keyframe of a track (CVAT ``TrackedShape``): ``points`` as in :class:`Shape`."""

    type: ShapeType
    frame: int
    points: FloatArray
    mask: MaskRle | None = None
    rotation: float = 0.0
    id: int | None = None
    occluded: bool = False
    outside: bool = False
    z_order: int = 0
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", ShapeType(self.type))
        object.__setattr__(self, "points", _as_points(self.points, self.type))
        object.__setattr__(self, "attributes", tuple(self.attributes))


@dataclass(frozen=True, slots=True, eq=False)
class Track:
    """A track (CVAT ``LabeledTrack``): keyframes in ``shapes`` (sorted by frame), skeleton tracks
    carry one sub-track per keypoint in ``elements``. ``attributes`` are the immutable ones."""

    frame: int
    label_id: int
    shapes: tuple[TrackShape, ...]
    id: int | None = None
    group: int = 0
    source: str = "manual"
    attributes: tuple[Attribute, ...] = ()
    elements: tuple[Track, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", tuple(sorted(self.shapes, key=lambda s: s.frame)))
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "elements", tuple(self.elements))


@dataclass(frozen=True, slots=True, eq=False)
class JobAnnotations:
    """All annotations of one job (CVAT ``LabeledData``: ``GET /api/jobs/{id}/annotations``).

    ``intervals`` (audio tasks) are carried through unchanged as raw dicts.
    """

    version: int = 0
    tags: tuple[Tag, ...] = ()
    shapes: tuple[Shape, ...] = ()
    tracks: tuple[Track, ...] = ()
    intervals: tuple[Mapping[str, Any], ...] = ()

    def frames(self) -> list[int]:
        """Sorted task frame indices that carry at least one tag, shape or track keyframe."""
        found = {t.frame for t in self.tags} | {s.frame for s in self.shapes}
        found |= {ts.frame for tr in self.tracks for ts in tr.shapes}
        return sorted(found)


@dataclass(frozen=True, slots=True)
class FrameAnnotations:
    """Everything on one frame after track expansion: what the QA engine and the rules consume.

    Shapes that came from a track carry ``track_id`` in :attr:`track_ids` (same index), else None.
    """

    frame: int
    shapes: tuple[Shape, ...] = ()
    tags: tuple[Tag, ...] = ()
    track_ids: tuple[int | None, ...] = ()

    def __post_init__(self) -> None:
        if self.track_ids and len(self.track_ids) != len(self.shapes):
            raise AnnotationFormatError(
                f"frame {self.frame}: {len(self.track_ids)} track ids for {len(self.shapes)} shapes"
            )


# ----------------------------------------------------------------------------------------------
# labels and frame meta


class AttributeInputType(StrEnum):
    NUMBER = "number"
    SELECT = "select"
    RADIO = "radio"
    CHECKBOX = "checkbox"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """A label attribute (``spec_id`` in annotations refers to ``id``). ``values`` as CVAT gives them
    (for ``number``: ``(min, max, step)`` as strings)."""

    id: int
    name: str
    input_type: AttributeInputType
    mutable: bool = False
    default_value: str = ""
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Label:
    """A CVAT label (``GET /api/labels``). ``type`` is a shape type name, ``any`` or ``tag``.
    Skeleton labels list their keypoint labels in ``sublabels`` and carry CVAT's ``svg``."""

    id: int
    name: str
    type: str = "any"
    attributes: tuple[AttributeSpec, ...] = ()
    sublabels: tuple[Label, ...] = ()
    svg: str = ""
    parent_id: int | None = None
    color: str = ""


@dataclass(frozen=True)
class LabelSet:
    """Labels of a task/project with lookups by id and by name (sublabels included by id)."""

    labels: tuple[Label, ...]
    by_id: Mapping[int, Label] = field(init=False, repr=False)
    by_name: Mapping[str, Label] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_id: dict[int, Label] = {}
        for label in self.labels:
            by_id[label.id] = label
            for sub in label.sublabels:
                by_id[sub.id] = sub
        object.__setattr__(self, "by_id", by_id)
        object.__setattr__(self, "by_name", {label.name: label for label in self.labels})

    def __iter__(self) -> Iterator[Label]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, label_id: int) -> Label:
        try:
            return self.by_id[label_id]
        except KeyError:
            raise AnnotationFormatError(f"unknown label id {label_id}") from None

    def name_of(self, label_id: int) -> str:
        label = self.by_id.get(label_id)
        return label.name if label is not None else f"#{label_id}"

    def attribute(self, spec_id: int) -> AttributeSpec | None:
        for label in self.by_id.values():
            for spec in label.attributes:
                if spec.id == spec_id:
                    return spec
        return None


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """One frame's size and file name (``data/meta`` ``frames[i]``)."""

    width: int
    height: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class JobMeta:
    """A job's frame meta (``GET /api/jobs/{id}/data/meta``).

    ``frames[i]`` describes task frame ``start_frame + i * step`` (``step`` from ``frame_filter``
    ``step=N``, default 1). GT jobs list every task frame, with ``included_frames`` the real ones.
    """

    start_frame: int
    stop_frame: int
    frames: tuple[FrameInfo, ...]
    frame_filter: str = ""
    deleted_frames: tuple[int, ...] = ()
    included_frames: tuple[int, ...] | None = None

    @property
    def step(self) -> int:
        for part in self.frame_filter.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "step" and value.strip().isdigit():
                return max(1, int(value))
        return 1

    def frame_info(self, frame_idx: int) -> FrameInfo:
        """Size and name of task frame ``frame_idx``."""
        if not self.frames:
            raise AnnotationFormatError(f"frame {frame_idx}: frame meta lists no frames")
        offset, rem = divmod(frame_idx - self.start_frame, self.step)
        if rem or not 0 <= offset < len(self.frames):
            if len({(f.width, f.height) for f in self.frames}) == 1:
                # all frames share one size (the usual case): answer for frames CVAT itself accepts
                # outside the range (it stored a box on frame 99 of a 4-frame job)
                return FrameInfo(self.frames[0].width, self.frames[0].height, "")
            raise AnnotationFormatError(
                f"frame {frame_idx}: outside the job's frames {self.start_frame}..{self.stop_frame}"
            )
        return self.frames[offset]

    def frame_indices(self) -> list[int]:
        """The task frame indices this job covers (GT jobs: ``included_frames``), deleted excluded."""
        if self.included_frames is not None:
            frames: Iterable[int] = self.included_frames
        else:
            frames = range(self.start_frame, self.stop_frame + 1, self.step)
        deleted = set(self.deleted_frames)
        return [f for f in frames if f not in deleted]


def shapes_of_type(shapes: Sequence[Shape], shape_type: ShapeType) -> list[Shape]:
    """The shapes of one type, in order."""
    return [s for s in shapes if s.type is shape_type]
