"""CVAT JSON <-> our annotation types: the one boundary conversion.

Formats (CVAT 2.73 ``LabeledData``, ``GET/PUT/PATCH /api/jobs/{id}/annotations``):

* shape ``{type, occluded, outside, z_order, rotation, points, id, label_id, group, source, frame,
  score, attributes, elements}``; skeleton elements are the same without ``elements``;
* tag ``{id, label_id, group, source, frame, attributes}``;
* track ``{id, label_id, frame, group, source, shapes, attributes, elements}`` whose keyframes are
  ``{id, type, frame, occluded, outside, z_order, rotation, points, attributes}`` and whose elements
  (skeleton keypoint sub-tracks) are tracks without ``elements``;
* ``points`` is flat: rectangle/ellipse 4 numbers, polygon >= 3 XY pairs, polyline >= 2, points
  >= 1, cuboid 16 numbers -> (8, 2), skeleton ``[]``, mask ``counts... + [left, top, right, bottom]``
  (CVAT RLE over the inclusive box, row-major, first run background) -> :class:`MaskRle`.

Parsing is strict on types (no bools for numbers, no NaN/infinity, no strings for numbers) and
lenient on optional fields (CVAT's serializer defaults fill them). Every problem raises
:class:`AnnotationFormatError` naming where it is, e.g.
``job 812 frame 14: polygon 3 has 2 points, need >= 3``. Unknown keys are ignored, not kept.

:func:`dump_job_annotations` writes CVAT's response form: ``dump(parse(body)) == body`` for every
body CVAT returns (``id`` is left out when it is ``None``, as CVAT's create forbids it). Numbers are
written as plain ``int``/``float`` even when our objects hold numpy scalars, so ``json.dumps`` works.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

from cvat_ext.annotations.gc_pause import gc_paused
from cvat_ext.annotations.json_files import load_json_file
from cvat_ext.annotations.model import (
    MIN_VERTICES,
    Attribute,
    AttributeInputType,
    AttributeSpec,
    FloatArray,
    FrameInfo,
    JobAnnotations,
    JobMeta,
    Label,
    LabelSet,
    MaskRle,
    Shape,
    ShapeType,
    Tag,
    Track,
    TrackShape,
)
from cvat_ext.errors import AnnotationFormatError

__all__ = [
    "dump_job_annotations",
    "dump_labels",
    "dump_shape",
    "dump_tag",
    "dump_track",
    "load_json_file",
    "parse_job_annotations",
    "parse_job_meta",
    "parse_labels",
    "parse_shape",
    "parse_tag",
    "parse_track",
]

_NUMBER_TYPES = frozenset({int, float})
_SHAPE_TYPES = {t.value: t for t in ShapeType}
_FLAT_SIZE = {ShapeType.RECTANGLE: 4, ShapeType.ELLIPSE: 4, ShapeType.CUBOID: 16, ShapeType.SKELETON: 0}
_MISSING = object()


# ----------------------------------------------------------------------------------------------
# error locations


class _Loc:
    """Where an object sits, rendered only when an error is raised: ``job 812 frame 14: polygon 3``."""

    __slots__ = ("frame", "kind", "obj_id", "where")

    def __init__(self, where: str, kind: str, frame: Any = None, obj_id: Any = None) -> None:
        self.where = where
        self.kind = kind
        self.frame = frame
        self.obj_id = obj_id

    def __str__(self) -> str:
        head = self.where
        if type(self.frame) is int:
            head = f"{head} frame {self.frame}" if head else f"frame {self.frame}"
        obj = self.kind if type(self.obj_id) is not int else f"{self.kind} {self.obj_id}"
        return f"{head}: {obj}" if head else obj

    def without_frame(self) -> str:
        """The locator without the frame, to prefix parts that carry their own (track keyframes)."""
        obj = self.kind if type(self.obj_id) is not int else f"{self.kind} {self.obj_id}"
        return f"{self.where}: {obj}" if self.where else obj

    def fail(self, message: str) -> NoReturn:
        """Raise for this object; ``message`` continues the sentence (``has 2 points, need >= 3``)."""
        raise AnnotationFormatError(f"{self} {message}")

    def bad_field(self, key: str, expected: str, value: Any) -> NoReturn:
        self.fail(f"field '{key}': expected {expected}, got {_describe(value)}")


def _describe(value: Any) -> str:
    if type(value) is int and not -(10**15) < value < 10**15:
        return f"int with {len(str(abs(value)))} digits"
    if isinstance(value, bool | int | float):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"str {shown!r}"
    if value is None:
        return "null"
    return type(value).__name__


def _prefixed(where: str, exc: AnnotationFormatError) -> AnnotationFormatError:
    return AnnotationFormatError(f"{where}: {exc}" if where else str(exc))


# ----------------------------------------------------------------------------------------------
# field readers (strict on types, defaults for missing optional fields)


def _mapping(value: Any, loc: _Loc) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        loc.fail(f"must be a JSON object, got {_describe(value)}")
    return value


def _int(d: Mapping[str, Any], key: str, loc: _Loc, default: Any = _MISSING) -> int:
    value = d.get(key, default)
    if type(value) is int:
        return value
    if value is _MISSING:
        loc.fail(f"is missing required field '{key}'")
    if type(value) is float and value.is_integer():
        return int(value)
    loc.bad_field(key, "an integer", value)


def _opt_int(d: Mapping[str, Any], key: str, loc: _Loc) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    return _int(d, key, loc)


def _float(d: Mapping[str, Any], key: str, loc: _Loc, default: float) -> float:
    value = d.get(key, default)
    if type(value) is float:
        if math.isfinite(value):
            return value
        loc.bad_field(key, "a finite number", value)
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            loc.bad_field(key, "a finite number", value)
    loc.bad_field(key, "a number", value)


def _bool(d: Mapping[str, Any], key: str, loc: _Loc, default: bool = False) -> bool:
    value = d.get(key, default)
    if type(value) is bool:
        return value
    loc.bad_field(key, "true or false", value)


def _str(d: Mapping[str, Any], key: str, loc: _Loc, default: Any = _MISSING) -> str:
    value = d.get(key, default)
    if type(value) is str:
        return value
    if value is _MISSING:
        loc.fail(f"is missing required field '{key}'")
    loc.bad_field(key, "a string", value)


def _list(d: Mapping[str, Any], key: str, loc: _Loc, *, required: bool = False) -> Sequence[Any]:
    value = d.get(key, _MISSING)
    if value is _MISSING:
        if required:
            loc.fail(f"is missing required field '{key}'")
        return ()
    if type(value) is list or type(value) is tuple:
        return value
    loc.bad_field(key, "a list", value)


def _attributes(d: Mapping[str, Any], loc: _Loc) -> tuple[Attribute, ...]:
    raw = _list(d, "attributes", loc)
    if not raw:
        return ()
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            loc.bad_field(f"attributes[{i}]", "an object {spec_id, value}", item)
        spec_id = item.get("spec_id", _MISSING)
        value = item.get("value", _MISSING)
        if type(spec_id) is not int:
            loc.bad_field(f"attributes[{i}].spec_id", "an integer", None if spec_id is _MISSING else spec_id)
        if type(value) is not str:
            loc.bad_field(f"attributes[{i}].value", "a string", None if value is _MISSING else value)
        out.append(Attribute(spec_id, value))
    return tuple(out)


def _pose_fields(d: Mapping[str, Any], loc: _Loc) -> dict[str, Any]:
    """The per-frame fields shapes and track keyframes share (CVAT's ``ShapeSerializer`` part)."""
    return {
        "rotation": _float(d, "rotation", loc, 0.0),
        "occluded": _bool(d, "occluded", loc),
        "outside": _bool(d, "outside", loc),
        "z_order": _int(d, "z_order", loc, 0),
        "attributes": _attributes(d, loc),
    }


def _shape_type(d: Mapping[str, Any], loc: _Loc) -> ShapeType:
    raw = _str(d, "type", loc)
    shape_type = _SHAPE_TYPES.get(raw)
    if shape_type is None:
        loc.bad_field("type", f"one of {', '.join(_SHAPE_TYPES)}", raw)
    loc.kind = shape_type.value
    return shape_type


def _flat_numbers(d: Mapping[str, Any], loc: _Loc) -> FloatArray:
    """``points`` as a flat float64 array; rejects bools, strings, NaN and infinity."""
    raw = d.get("points", ())
    if type(raw) is not list and type(raw) is not tuple:
        loc.bad_field("points", "a list of numbers", raw)
    if not _NUMBER_TYPES.issuperset(map(type, raw)):
        i, bad = next((i, v) for i, v in enumerate(raw) if type(v) not in _NUMBER_TYPES)
        loc.bad_field(f"points[{i}]", "a number", bad)
    try:
        flat = np.array(raw, dtype=np.float64)
    except OverflowError:
        loc.fail("field 'points': a number is too large")
    if not np.isfinite(flat).all():
        i = int(np.flatnonzero(~np.isfinite(flat))[0])
        loc.bad_field(f"points[{i}]", "a finite number", float(flat[i]))
    return flat


def _geometry(shape_type: ShapeType, flat: FloatArray, loc: _Loc) -> tuple[FloatArray, MaskRle | None]:
    """Flat CVAT points -> our ``points`` array (and the mask for masks)."""
    if shape_type is ShapeType.MASK:
        return np.zeros((0, 2)), _mask_rle(flat, loc)
    size = _FLAT_SIZE.get(shape_type)
    if size is not None:
        if flat.size != size:
            loc.fail(f"has {flat.size} numbers in 'points', need {size}")
        return (flat.reshape(8, 2) if shape_type is ShapeType.CUBOID else flat), None
    if flat.size % 2:
        loc.fail(f"has an odd count of numbers in 'points' ({flat.size}), need x, y pairs")
    need = MIN_VERTICES[shape_type]
    if flat.size // 2 < need:
        loc.fail(f"has {flat.size // 2} points, need >= {need}")
    return flat.reshape(-1, 2), None


def _mask_rle(flat: FloatArray, loc: _Loc) -> MaskRle:
    if flat.size < 5:
        loc.fail(f"has {flat.size} numbers in 'points', need >= 5 (RLE counts + left, top, right, bottom)")
    whole = np.floor(flat)
    if not np.array_equal(whole, flat):
        loc.fail("RLE has a fractional run length or box coordinate")
    ints = whole.astype(np.int64)
    left, top, right, bottom = (int(v) for v in ints[-4:])
    counts = ints[:-4]
    if right < left or bottom < top:
        loc.fail(f"has an empty mask box ltrb=({left}, {top}, {right}, {bottom})")
    if counts.min() < 0:
        loc.fail("RLE has a negative run length")
    area = (right - left + 1) * (bottom - top + 1)
    total = int(counts.sum())
    if total != area:
        loc.fail(f"RLE counts sum to {total}, box ({left}, {top}, {right}, {bottom}) has {area} pixels")
    return MaskRle(counts, (left, top, right, bottom))


# ----------------------------------------------------------------------------------------------
# shapes


def parse_shape(d: Mapping[str, Any], *, where: str = "") -> Shape:
    """One CVAT ``LabeledShape`` dict -> :class:`Shape` (skeleton elements included)."""
    return _parse_shape(d, where, element=False)


def _parse_shape(d: Any, where: str, *, element: bool) -> Shape:
    loc = _Loc(where, "element" if element else "shape")
    d = _mapping(d, loc)
    loc.obj_id = obj_id = _opt_int(d, "id", loc)
    shape_type = _shape_type(d, loc)
    frame = _int(d, "frame", loc)
    if not element:  # an element's frame is its skeleton's, already in ``where``
        loc.frame = frame
    label_id = _int(d, "label_id", loc)
    points, mask = _geometry(shape_type, _flat_numbers(d, loc), loc)
    elements: tuple[Shape, ...] = ()
    raw_elements = () if element else _list(d, "elements", loc)
    if raw_elements:
        if shape_type is not ShapeType.SKELETON:
            loc.fail(f"has {len(raw_elements)} elements, only skeletons have elements")
        inner = f"{loc}"
        elements = tuple(_parse_shape(e, inner, element=True) for e in raw_elements)
        for e in elements:
            if e.type is not ShapeType.POINTS:
                loc.fail(f"has a {e.type.value} element, skeleton elements must be points")
    elif element and shape_type is ShapeType.SKELETON:
        loc.fail("is a skeleton inside a skeleton")
    try:
        return Shape(
            type=shape_type,
            frame=frame,
            label_id=label_id,
            points=points,
            mask=mask,
            id=obj_id,
            group=_int(d, "group", loc, 0),
            source=_str(d, "source", loc, "manual"),
            score=_float(d, "score", loc, 1.0),
            elements=elements,
            **_pose_fields(d, loc),
        )
    except AnnotationFormatError as exc:
        raise _prefixed(where, exc) from None


def _dump_points(shape_type: ShapeType, points: FloatArray, mask: MaskRle | None) -> list[Any]:
    if mask is not None:
        return [*mask.counts.tolist(), *mask.ltrb]
    return points.ravel().tolist()


def dump_shape(s: Shape) -> dict[str, Any]:
    """:class:`Shape` -> CVAT ``LabeledShape`` dict (elements without an ``elements`` key)."""
    return _dump_shape(s, element=False)


def _dump_shape(s: Shape, *, element: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": s.type.value,
        "occluded": bool(s.occluded),
        "outside": bool(s.outside),
        "z_order": int(s.z_order),
        "rotation": float(s.rotation),
        "points": _dump_points(s.type, s.points, s.mask),
    }
    _dump_head(out, s)
    out["score"] = float(s.score)
    out["attributes"] = _dump_attributes(s.attributes)
    if not element:
        out["elements"] = [_dump_shape(e, element=True) for e in s.elements]
    return out


def _dump_head(out: dict[str, Any], obj: Shape | Tag | Track) -> None:
    """The fields every labeled object has (CVAT's ``AnnotationSerializer``); ``id`` only when set."""
    if obj.id is not None:
        out["id"] = int(obj.id)
    out["label_id"] = int(obj.label_id)
    out["group"] = int(obj.group)
    out["source"] = obj.source
    out["frame"] = int(obj.frame)


def _dump_attributes(attributes: Sequence[Attribute]) -> list[dict[str, Any]]:
    return [{"spec_id": int(a.spec_id), "value": a.value} for a in attributes]


# ----------------------------------------------------------------------------------------------
# tags


def parse_tag(d: Mapping[str, Any], *, where: str = "") -> Tag:
    """One CVAT ``LabeledImage`` dict -> :class:`Tag`."""
    loc = _Loc(where, "tag")
    d = _mapping(d, loc)
    loc.obj_id = obj_id = _opt_int(d, "id", loc)
    loc.frame = frame = _int(d, "frame", loc)
    return Tag(
        frame=frame,
        label_id=_int(d, "label_id", loc),
        id=obj_id,
        group=_int(d, "group", loc, 0),
        source=_str(d, "source", loc, "manual"),
        attributes=_attributes(d, loc),
    )


def dump_tag(t: Tag) -> dict[str, Any]:
    """:class:`Tag` -> CVAT ``LabeledImage`` dict."""
    out: dict[str, Any] = {}
    _dump_head(out, t)
    out["attributes"] = _dump_attributes(t.attributes)
    return out


# ----------------------------------------------------------------------------------------------
# tracks


def parse_track(d: Mapping[str, Any], *, where: str = "") -> Track:
    """One CVAT ``LabeledTrack`` dict -> :class:`Track` (keyframes sorted, skeleton sub-tracks)."""
    return _parse_track(d, where, element=False)


def _parse_track(d: Any, where: str, *, element: bool) -> Track:
    loc = _Loc(where, "track")
    d = _mapping(d, loc)
    loc.obj_id = obj_id = _opt_int(d, "id", loc)
    loc.frame = frame = _int(d, "frame", loc)
    label_id = _int(d, "label_id", loc)
    shapes = tuple(_parse_track_shape(s, loc) for s in _list(d, "shapes", loc, required=True))
    types = {s.type for s in shapes}
    if len(types) > 1:
        loc.fail(f"mixes keyframe types {sorted(t.value for t in types)}")
    seen: set[int] = set()
    for s in shapes:
        if s.frame in seen:
            loc.fail(f"has two keyframes on frame {s.frame}")
        seen.add(s.frame)
    elements: tuple[Track, ...] = ()
    raw_elements = () if element else _list(d, "elements", loc)
    if raw_elements:
        if types and types != {ShapeType.SKELETON}:
            loc.fail(f"has {len(raw_elements)} element tracks, only skeleton tracks have elements")
        elements = tuple(_parse_track(e, loc.without_frame(), element=True) for e in raw_elements)
        for e in elements:
            if e.shapes and e.shapes[0].type is not ShapeType.POINTS:
                loc.fail(f"has a {e.shapes[0].type.value} element track, keypoint tracks must be points")
    return Track(
        frame=frame,
        label_id=label_id,
        shapes=shapes,
        id=obj_id,
        group=_int(d, "group", loc, 0),
        source=_str(d, "source", loc, "manual"),
        attributes=_attributes(d, loc),
        elements=elements,
    )


def _parse_track_shape(d: Any, track_loc: _Loc) -> TrackShape:
    loc = _Loc(track_loc.without_frame(), "keyframe")
    d = _mapping(d, loc)
    loc.obj_id = obj_id = _opt_int(d, "id", loc)
    shape_type = _shape_type(d, loc)
    loc.kind = f"{shape_type.value} keyframe"
    loc.frame = frame = _int(d, "frame", loc)
    points, mask = _geometry(shape_type, _flat_numbers(d, loc), loc)
    try:
        return TrackShape(
            type=shape_type,
            frame=frame,
            points=points,
            mask=mask,
            id=obj_id,
            **_pose_fields(d, loc),
        )
    except AnnotationFormatError as exc:
        raise _prefixed(str(loc), exc) from None


def dump_track(t: Track) -> dict[str, Any]:
    """:class:`Track` -> CVAT ``LabeledTrack`` dict (sub-tracks without an ``elements`` key)."""
    return _dump_track(t, element=False)


def _dump_track(t: Track, *, element: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _dump_head(out, t)
    out["shapes"] = [_dump_track_shape(s) for s in t.shapes]
    out["attributes"] = _dump_attributes(t.attributes)
    if not element:
        out["elements"] = [_dump_track(e, element=True) for e in t.elements]
    return out


def _dump_track_shape(s: TrackShape) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if s.id is not None:
        out["id"] = int(s.id)
    out["type"] = s.type.value
    out["frame"] = int(s.frame)
    out["occluded"] = bool(s.occluded)
    out["outside"] = bool(s.outside)
    out["z_order"] = int(s.z_order)
    out["rotation"] = float(s.rotation)
    out["points"] = _dump_points(s.type, s.points, s.mask)
    out["attributes"] = _dump_attributes(s.attributes)
    return out


# ----------------------------------------------------------------------------------------------
# whole job


def parse_job_annotations(data: Mapping[str, Any], *, where: str = "") -> JobAnnotations:
    """CVAT ``LabeledData`` ``{version, tags, shapes, tracks, intervals}`` -> :class:`JobAnnotations`.

    ``where`` (e.g. ``"job 812"``) starts every error message. Missing lists count as empty.
    """
    with gc_paused():
        return _parse_job_annotations(data, where)


def _parse_job_annotations(data: Mapping[str, Any], where: str) -> JobAnnotations:
    loc = _Loc(where, "annotations")
    data = _mapping(data, loc)
    intervals = _list(data, "intervals", loc)
    for i, interval in enumerate(intervals):
        if not isinstance(interval, Mapping):
            loc.bad_field(f"intervals[{i}]", "an object", interval)
    return JobAnnotations(
        version=_int(data, "version", loc, 0),
        tags=tuple(parse_tag(t, where=where) for t in _list(data, "tags", loc)),
        shapes=tuple(_parse_shape(s, where, element=False) for s in _list(data, "shapes", loc)),
        tracks=tuple(_parse_track(t, where, element=False) for t in _list(data, "tracks", loc)),
        intervals=tuple(dict(i) for i in intervals),
    )


def dump_job_annotations(ann: JobAnnotations) -> dict[str, Any]:
    """:class:`JobAnnotations` -> CVAT ``LabeledData`` JSON (lossless round trip of CVAT's responses)."""
    with gc_paused():
        return {
            "version": ann.version,
            "tags": [dump_tag(t) for t in ann.tags],
            "shapes": [_dump_shape(s, element=False) for s in ann.shapes],
            "tracks": [_dump_track(t, element=False) for t in ann.tracks],
            "intervals": [dict(i) for i in ann.intervals],
        }


# ----------------------------------------------------------------------------------------------
# labels


def parse_labels(data: Mapping[str, Any] | Sequence[Any], *, where: str = "") -> LabelSet:
    """``GET /api/labels`` (a list, or a paginated ``{"results": [...]}``) -> :class:`LabelSet`.

    Sublabels get ``parent_id`` = their skeleton's id when CVAT leaves it out.
    """
    loc = _Loc(where, "labels")
    if isinstance(data, Mapping):
        items = _list(data, "results", loc, required=True)
    elif isinstance(data, list | tuple):
        items = data
    else:
        loc.fail(f"must be a list or a paginated object, got {_describe(data)}")
    return LabelSet(tuple(_parse_label(item, where, parent_id=None) for item in items))


def _parse_label(d: Any, where: str, *, parent_id: int | None) -> Label:
    loc = _Loc(where, "label" if parent_id is None else f"sublabel of label {parent_id}")
    d = _mapping(d, loc)
    label_id = _int(d, "id", loc)
    loc.kind = f"label {label_id}" if parent_id is None else f"sublabel {label_id} of label {parent_id}"
    sublabels = tuple(_parse_label(s, where, parent_id=label_id) for s in _list(d, "sublabels", loc))
    own_parent = _opt_int(d, "parent_id", loc)
    return Label(
        id=label_id,
        name=_str(d, "name", loc),
        type=_str(d, "type", loc, "any"),
        attributes=tuple(_parse_attribute_spec(a, loc) for a in _list(d, "attributes", loc)),
        sublabels=sublabels,
        svg=_str(d, "svg", loc, ""),
        parent_id=own_parent if own_parent is not None else parent_id,
        color=_str(d, "color", loc, ""),
    )


def _parse_attribute_spec(d: Any, label_loc: _Loc) -> AttributeSpec:
    loc = _Loc(str(label_loc), "attribute")
    d = _mapping(d, loc)
    spec_id = _int(d, "id", loc)
    loc.kind = f"attribute {spec_id}"
    raw_type = _str(d, "input_type", loc)
    try:
        input_type = AttributeInputType(raw_type)
    except ValueError:
        loc.bad_field("input_type", f"one of {', '.join(t.value for t in AttributeInputType)}", raw_type)
    values = _list(d, "values", loc)
    for i, v in enumerate(values):
        if type(v) is not str:
            loc.bad_field(f"values[{i}]", "a string", v)
    return AttributeSpec(
        id=spec_id,
        name=_str(d, "name", loc),
        input_type=input_type,
        mutable=_bool(d, "mutable", loc),
        default_value=_str(d, "default_value", loc, ""),
        values=tuple(values),
    )


def dump_labels(labels: LabelSet) -> list[dict[str, Any]]:
    """:class:`LabelSet` -> the list CVAT serves in ``GET /api/labels`` ``results``.

    ``project_id``/``task_id`` are not modelled and are left out; ``svg`` only for skeletons.
    Sublabels are written as CVAT serves them (no ``sublabels``, ``parent_id`` or ``svg``).
    """
    return [_dump_label(label, sub=False) for label in labels]


def _dump_label(label: Label, *, sub: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": label.id,
        "name": label.name,
        "color": label.color,
        "attributes": [
            {
                "id": a.id,
                "name": a.name,
                "mutable": a.mutable,
                "input_type": a.input_type.value,
                "default_value": a.default_value,
                "values": list(a.values),
            }
            for a in label.attributes
        ],
        "type": label.type,
    }
    if sub:
        out["has_parent"] = True
        return out
    out["sublabels"] = [_dump_label(s, sub=True) for s in label.sublabels]
    out["parent_id"] = label.parent_id
    out["has_parent"] = label.parent_id is not None
    if label.svg or label.type == "skeleton":
        out["svg"] = label.svg
    return out


# ----------------------------------------------------------------------------------------------
# job meta


def parse_job_meta(data: Mapping[str, Any], *, where: str = "") -> JobMeta:
    """``GET /api/jobs/{id}/data/meta`` -> :class:`JobMeta` (only the fields we use are read)."""
    loc = _Loc(where, "data meta")
    data = _mapping(data, loc)
    frames = []
    for i, raw in enumerate(_list(data, "frames", loc)):
        floc = _Loc(where, f"data meta frames[{i}]")
        raw = _mapping(raw, floc)
        width, height = _int(raw, "width", floc), _int(raw, "height", floc)
        if width <= 0 or height <= 0:
            floc.fail(f"has size {width}x{height}, need positive width and height")
        frames.append(FrameInfo(width, height, _str(raw, "name", floc, "")))
    included = data.get("included_frames")
    start, stop = _int(data, "start_frame", loc), _int(data, "stop_frame", loc)
    if stop < start:
        loc.fail(f"has stop_frame {stop} < start_frame {start}")
    return JobMeta(
        start_frame=start,
        stop_frame=stop,
        frames=tuple(frames),
        frame_filter=_str(data, "frame_filter", loc, "") if data.get("frame_filter") is not None else "",
        deleted_frames=_int_tuple(data, "deleted_frames", loc),
        included_frames=None if included is None else _int_tuple(data, "included_frames", loc),
    )


def _int_tuple(d: Mapping[str, Any], key: str, loc: _Loc) -> tuple[int, ...]:
    values = _list(d, key, loc)
    for i, v in enumerate(values):
        if type(v) is not int:
            loc.bad_field(f"{key}[{i}]", "an integer", v)
    return tuple(values)
