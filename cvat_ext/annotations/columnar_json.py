"""CVAT annotations JSON -> the object table, at the JSON decoder's speed.

Reads a ``GET /api/jobs/{id}/annotations`` body (``LabeledData``: a file, or the bytes CVAT sent)
into a :class:`ReplicaColumns`: the shapes as one :class:`~cvat_ext.annotations.table.ShapeTable`
in frame order (file order within a frame), the tags by frame.

Two paths, one result:

* the **fast path** decodes with msgspec into typed structs (C-level type checks: no bools for
  numbers, no strings for numbers, no NaN/infinity), then checks every rule of
  :func:`~cvat_ext.annotations.cvat_json.parse_shape` on whole columns (points per type, mask RLE
  sums and boxes, finite numbers) and fills the columns without a Python object per shape.
  Skeletons (``parse_shape``) and tracks (``parse_track``, then
  :func:`~cvat_ext.annotations.tracks.expand_track` up to ``last_frame``: the per-object path's
  keyframes, interpolation and outside frames) are built by the per-object code and go into the
  same table, track rows after each frame's own shapes, in track order;
* the **slow path** runs when the fast one cannot vouch for a file: a check failed, the
  per-object parser complained about a skeleton or a track, an integer is written as ``14.0``, a
  top-level key may be repeated. It is :class:`~cvat_ext.annotations.frame_store.FrameStore`,
  the strict per-object reader: it raises the one error naming the file, the object index and the
  field (``a.json: shapes[1234] frame 7: polygon 3 has 2 points, need >= 3``), or, for a valid
  body, gives the frames the table is built from (tracks expanded up to ``last_frame``).

Two options serve readers with other needs than the consensus engine's (``cvat-ext al rank``'s
predictions files), named at the call, the strict rules otherwise unchanged:

* ``tracks="skip"``: tracks are still checked but not expanded into rows (a prediction's
  confidence is a shape's ``score``; track keyframes carry none);
* ``score_range=(lo, hi)``: every shape's ``score`` must lie in it (detector confidences are
  probabilities); the first one outside is named by its index in the file
  (``pred.json: shapes[2]: score 1.5 is not a number in [0, 1]``).

Files are memory-mapped and decoded from the page cache. Bodies of :data:`SPLIT_BYTES` or more,
and those whose structs would exceed :data:`WHOLE_STRUCT_BYTES` (dense mask RLEs), are not
decoded whole: :func:`~cvat_ext.annotations.json_scan.array_items` finds each shape's bytes and
the shapes are decoded :data:`BLOCK_ITEMS` at a time (the pages dropped as they are done), so
reading holds the columns, not the file. Other bodies are decoded in one call (the scan costs
more than the decoding); the cyclic garbage collector is paused meanwhile
(:mod:`cvat_ext.annotations.gc_pause`).

msgspec was chosen on measurement (bench/consensus_e2e.py's notes; a 58 MB file of 200,000 boxes
decodes into typed structs in about half the time ``orjson``/``json`` take to build dicts, and the
columns come out of structs 2x faster than out of dicts).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import mmap
import operator
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.gc_pause import gc_paused
from cvat_ext.annotations.json_scan import ArrayItems, array_items, is_gap, keys_once
from cvat_ext.annotations.model import Attribute, ShapeType, ShapeTypeName, Tag
from cvat_ext.annotations.table import (
    SHAPE_TYPES,
    TYPE_CODE,
    ShapeTable,
    TableBuilder,
    compact_coords,
    compact_ints,
)
from cvat_ext.errors import AnnotationFormatError

__all__ = ["ReplicaColumns", "read_annotations_body", "read_annotations_bytes", "read_annotations_file"]

T = TypeVar("T")
#: what a read does with tracks: expand them into rows (the engine's view) or only check them
Tracks = Literal["expand", "skip"]


# ----------------------------------------------------------------------------------------------
# the typed form of LabeledData the fast path decodes (defaults as CVAT's serializer fills them)


class _Attribute(msgspec.Struct):
    spec_id: int
    value: str


class _Shape(msgspec.Struct):
    #: decoded as a literal, the string is one object, not a new one per shape (and a type CVAT
    #: does not know sends the body to the slow path, which names it)
    type: ShapeTypeName
    frame: int
    label_id: int
    #: whole numbers stay ints: a mask's RLE counts are mostly below 257, Python's cached small
    #: ints, so decoding allocates no object for them (3x faster than a float each); the same
    #: values are accepted (bools, strings and nulls are not), and the columns are float64 anyway
    points: list[int | float] = msgspec.field(default_factory=list)
    occluded: bool = False
    outside: bool = False
    z_order: int = 0
    rotation: float = 0.0
    id: int | None = None
    group: int = 0
    source: str = "manual"
    score: float = 1.0
    #: tuples, not lists: an empty one is the shared ``()`` (no list made and freed per shape:
    #: a tenth of the decoding time of a box body)
    attributes: tuple[_Attribute, ...] = ()
    #: a skeleton's keypoints, as plain JSON data for the per-object parser
    elements: tuple[Any, ...] = ()


class _Tag(msgspec.Struct):
    frame: int
    label_id: int
    id: int | None = None
    group: int = 0
    source: str = "manual"
    attributes: tuple[_Attribute, ...] = ()


class _Body(msgspec.Struct):
    version: int = 0
    tags: list[_Tag] = msgspec.field(default_factory=list)
    shapes: list[_Shape] = msgspec.field(default_factory=list)
    #: plain JSON data for the per-object parser and the track expansion
    tracks: list[Any] = msgspec.field(default_factory=list)
    intervals: list[dict[str, Any]] = msgspec.field(default_factory=list)


class _IntShape(_Shape):
    """A shape whose ``points`` are all written as integers (a mask's RLE, a box on the pixel
    grid): tried first, since NumPy reads a list of ints as int64 in about 60 % of the time it
    takes to read them as float64. Any other number fails it, and the block is decoded again
    as :class:`_Shape` (and so is the rest of the body)."""

    # a narrower field for msgspec to decode into (read only, so the invariance is harmless)
    points: list[int] = msgspec.field(default_factory=list)  # type: ignore[assignment]


class _IntBody(_Body):
    shapes: list[_IntShape] = msgspec.field(default_factory=list)  # type: ignore[assignment]


class _TopValues(msgspec.Struct):
    """The values of the top-level keys as spans of the text (:func:`json_scan.keys_once`)."""

    version: msgspec.Raw = msgspec.Raw()
    tags: msgspec.Raw = msgspec.Raw()
    shapes: msgspec.Raw = msgspec.Raw()
    tracks: msgspec.Raw = msgspec.Raw()
    intervals: msgspec.Raw = msgspec.Raw()


_DECODER: Final = msgspec.json.Decoder(_Body)
_TOP_VALUES: Final = msgspec.json.Decoder(_TopValues)
_SHAPES_DECODER: Final = msgspec.json.Decoder(list[_Shape])
#: the integer-points decoders, tried first (see :class:`_IntShape`)
_INT_DECODER: Final = msgspec.json.Decoder(_IntBody)
_INT_SHAPES_DECODER: Final = msgspec.json.Decoder(list[_IntShape])
#: bodies of this size or more have their shapes decoded a block at a time ...
SPLIT_BYTES: Final = 128 << 20
#: ... bodies under this size are decoded whole (no scan: it costs more than the decoding) ...
WHOLE_BYTES: Final = 16 << 20
#: ... and those between when their structs are expected to stay under this: each JSON number
#: becomes a Python float in a list (32 bytes), and the shapes' structs add about as much again
#: per comma for boxes; the commas are counted in the body's first and last MB (a mask RLE of short
#: numbers is about 8 bytes of structs per byte of JSON, a box about 2)
WHOLE_STRUCT_BYTES: Final = 256 << 20
_STRUCT_BYTES_PER_COMMA: Final = 40
_SAMPLE_BYTES: Final = 1 << 20
#: shapes decoded at once from a split body (a few MB of structs) ...
BLOCK_ITEMS: Final = 20_000
#: ... and at most about this much of its text
BLOCK_BYTES: Final = 4 << 20
#: a top-level key the fast decoder would silently take twice (the last one wins)
_TOP_KEY = re.compile(rb'"(%b)"\s*:' % "|".join(_TopValues.__struct_fields__).encode())
_CODE_OF: Final = {t.value: TYPE_CODE[t] for t in SHAPE_TYPES if t is not ShapeType.SKELETON}
_SKELETON: Final = ShapeType.SKELETON.value
#: numbers in ``points`` per type code (-1: XY pairs, at least MIN_VERTICES of them; -2: mask)
_NEED = np.array(
    [
        {ShapeType.RECTANGLE: 4, ShapeType.ELLIPSE: 4, ShapeType.CUBOID: 16, ShapeType.MASK: -2}.get(t, -1)
        for t in SHAPE_TYPES
    ],
    dtype=np.int64,
)
_MIN_NUMBERS = np.array(
    [2 * {ShapeType.POLYGON: 3, ShapeType.POLYLINE: 2, ShapeType.POINTS: 1}.get(t, 0) for t in SHAPE_TYPES],
    dtype=np.int64,
)
_MASK_CODE = TYPE_CODE[ShapeType.MASK]


class _NotFast(Exception):
    """The fast path cannot vouch for this body: the slow path decides."""


@dataclass(frozen=True, eq=False)
class ReplicaColumns:
    """One annotations body as columns: ``shapes`` sorted by frame (stable), ``tags`` by frame,
    ``frames (F,)`` the sorted frames that hold anything (a shape, a tag, a track's frame).
    ``from_tracks`` is True when the body had tracks (their shapes are in ``shapes``, after the
    frame's own)."""

    shapes: ShapeTable
    frames: npt.NDArray[np.int64]
    tags: dict[int, tuple[Tag, ...]] = field(default_factory=dict)
    version: int = 0
    from_tracks: bool = False


def read_annotations_file(
    path: str | PathLike[str],
    *,
    last_frame: int | None = None,
    tracks: Tracks = "expand",
    score_range: tuple[float, float] | None = None,
) -> ReplicaColumns:
    """A CVAT annotations JSON file -> :class:`ReplicaColumns` (tracks expanded up to ``last_frame``;
    ``tracks`` and ``score_range``: see the module docstring).

    Files are memory-mapped and decoded from the page cache; large ones (see ``_decode_whole``)
    have their shapes decoded :data:`BLOCK_ITEMS` at a time, the pages dropped as they are done, so
    memory holds the columns and one block, not the file. Bad input raises
    :class:`AnnotationFormatError` naming the file, the object and the field."""
    path = Path(path)
    cols: ReplicaColumns | None = None
    try:
        with path.open("rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode) or not info.st_size:  # a pipe, an empty file
                # read once: the slow path gets the bytes (a pipe cannot be opened again)
                return read_annotations_bytes(fh.read(), where=str(path), last_frame=last_frame, tracks=tracks,
                                              score_range=score_range)
            # decoded straight from the page cache: no copy of the file in memory
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped, contextlib.suppress(_NotFast):
                cols = _fast(mapped, last_frame, tracks, release=functools.partial(_drop_pages, mapped))
    except OSError as exc:
        raise AnnotationFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if cols is None:
        cols = _slow(b"", str(path), last_frame, path, tracks)
    return _scores_within(cols, score_range, str(path), path.read_bytes)


def read_annotations_bytes(
    raw: bytes,
    *,
    where: str,
    last_frame: int | None = None,
    tracks: Tracks = "expand",
    score_range: tuple[float, float] | None = None,
) -> ReplicaColumns:
    """:func:`read_annotations_file` on a body already in memory (``where`` starts the errors)."""
    try:
        cols = _fast(raw, last_frame, tracks)  # the collector is paused inside
    except _NotFast:
        cols = _slow(raw, where, last_frame, None, tracks)
    return _scores_within(cols, score_range, where, lambda: raw)


def read_annotations_body(
    data: Any,
    *,
    where: str,
    last_frame: int | None = None,
    tracks: Tracks = "expand",
    score_range: tuple[float, float] | None = None,
) -> ReplicaColumns:
    """:func:`read_annotations_file` on a body already decoded (the dict an HTTP client returns):
    msgspec converts it into the typed structs with the same strict type checks."""
    cols: ReplicaColumns | None = None
    # the structs are garbage a moment later; the collector would rescan the caller's whole heap
    # (the decoded bodies themselves) on every allocation burst
    with gc_paused():
        try:
            body = msgspec.convert(data, _Body)
        except (msgspec.ValidationError, TypeError):
            body = None
        if body is not None:
            with contextlib.suppress(_NotFast):  # the slow path decides
                cols = _columns(body, [_table_or_not(body.shapes)], None, last_frame, tracks)
    if cols is None:
        try:
            raw = json.dumps(data, allow_nan=True).encode()
        except (TypeError, ValueError) as exc:
            raise AnnotationFormatError(f"{where}: annotations are not JSON data: {exc}") from exc
        cols = _slow(raw, where, last_frame, None, tracks)
    return _scores_within(cols, score_range, where, lambda: json.dumps(data, allow_nan=True).encode())


def _scores_within(
    cols: ReplicaColumns, score_range: tuple[float, float] | None, where: str, text: Callable[[], bytes]
) -> ReplicaColumns:
    """``cols`` when every shape's score lies in ``score_range`` (or no range is asked for); else
    the error naming the first shape outside it by its index in the body (``text()`` gives the
    body again: only then, to name it)."""
    if score_range is None:
        return cols
    lo, hi = score_range
    score = cols.shapes.score
    if not np.any((score < lo) | (score > hi)):
        return cols
    shapes = msgspec.json.decode(text()).get("shapes", [])  # a valid body: the reader just read it
    for i, item in enumerate(shapes):
        value = item.get("score", 1.0)
        if not lo <= value <= hi:
            raise AnnotationFormatError(f"{where}: shapes[{i}]: score {value!r} is not a number in [{lo:g}, {hi:g}]")
    raise AssertionError("unreachable: a score outside the range is a shape's")  # pragma: no cover


# ----------------------------------------------------------------------------------------------
# fast path


def _drop_pages(mapped: mmap.mmap, lo: int, hi: int) -> None:
    """Let the kernel take back the pages of ``mapped[lo:hi]`` (read again from the page cache if
    touched), so a scanned file does not stay in the resident set."""
    start = lo - lo % mmap.PAGESIZE
    if hi > start:
        mapped.madvise(mmap.MADV_DONTNEED, start, hi - start)


def _decode(raw: bytes | mmap.mmap, int_first: bool = True) -> _Body:
    """``raw`` decoded by the integer-points decoder, else (or when not ``int_first``) by the
    general one."""
    if int_first:
        try:
            return _INT_DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass
    try:
        return _DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _NotFast from exc


def _fast(
    raw: bytes | mmap.mmap,
    last_frame: int | None,
    tracks: Tracks = "expand",
    release: Callable[[int, int], None] | None = None,
) -> ReplicaColumns:
    with gc_paused():  # millions of acyclic structs and lists: the collector would rescan them all
        return _fast_columns(raw, last_frame, tracks, release)


def _decode_whole(raw: bytes | mmap.mmap) -> bool:
    """Whether to decode ``raw`` in one call (see :data:`WHOLE_STRUCT_BYTES`)."""
    n = len(raw)
    if n >= SPLIT_BYTES:
        return False
    if n < WHOLE_BYTES:
        return True
    sample = raw[:_SAMPLE_BYTES] + raw[-_SAMPLE_BYTES:]
    return sample.count(b",") / len(sample) * n * _STRUCT_BYTES_PER_COMMA <= WHOLE_STRUCT_BYTES


def _fast_columns(
    raw: bytes | mmap.mmap, last_frame: int | None, tracks: Tracks, release: Callable[[int, int], None] | None
) -> ReplicaColumns:
    items = None if _decode_whole(raw) else array_items(raw, b"shapes", release=release)
    if items is None:
        body = _decode(raw)
        head: bytes | mmap.mmap = raw
        parts = [_table_or_not(body.shapes)]
    else:
        # everything but the shapes in one decode (the array emptied), the shapes a block at a time
        head = raw[: items.open + 1] + raw[items.close :]
        body = _decode(head, int_first=False)  # no shapes: nothing to gain
        # the blocks go straight into columns allocated once
        builder = TableBuilder(items.start.size)
        for block in _shape_blocks(raw, items, release):
            builder.add(block)
        parts = [builder.build()]
    return _columns(body, parts, head, last_frame, tracks)


def _columns(
    body: _Body, parts: list[ShapeTable], head: bytes | mmap.mmap | None, last_frame: int | None,
    tracks: Tracks = "expand",
) -> ReplicaColumns:
    """The replica's columns from its decoded body and shape tables (``head``: the JSON text with
    the top-level keys, checked for a repeated key; None for a body decoded elsewhere). Tracks
    are checked, and with ``tracks="expand"`` expanded up to ``last_frame`` into rows after the
    shapes' (the frame sort below puts them after each frame's own shapes, in track order)."""
    expand = tracks == "expand"
    if body.tracks:
        track_rows = _track_table(body.tracks, last_frame, expand=expand)
        if expand:
            parts = [*parts, track_rows]
    if head is not None and not keys_once(head, _TOP_KEY, _TOP_VALUES):
        raise _NotFast
    shapes = compact_ints(ShapeTable.concat(parts))
    tags: dict[int, list[Tag]] = {}
    for t in body.tags:
        tag = Tag(t.frame, t.label_id, t.id, t.group, t.source, _attrs(t.attributes))
        tags.setdefault(t.frame, []).append(tag)
    tag_frames = np.fromiter(tags, dtype=np.int64, count=len(tags))
    shapes = _by_frame(shapes)
    frame = shapes.frame.astype(np.int64)
    shape_frames = frame[np.concatenate(([True], frame[1:] != frame[:-1]))] if frame.size else frame  # sorted
    return ReplicaColumns(
        shapes=shapes,
        frames=np.union1d(shape_frames, tag_frames) if tag_frames.size else shape_frames,
        tags={f: tuple(v) for f, v in sorted(tags.items())},
        version=body.version,
        from_tracks=bool(body.tracks) and expand,
    )


def _shape_blocks(
    raw: bytes | mmap.mmap, items: ArrayItems, release: Callable[[int, int], None] | None
) -> Iterator[ShapeTable]:
    """The shapes array's items decoded a block at a time (at most :data:`BLOCK_ITEMS` shapes and
    about :data:`BLOCK_BYTES` of text: a block of masks is mostly numbers, each a Python float
    while it is decoded), as tables."""
    starts = items.start
    start, stop = starts.tolist(), items.stop.tolist()
    view = memoryview(raw)
    # integer points until a block has another number; from then on the general decoder
    decoders: list[msgspec.json.Decoder[Any]] = [_INT_SHAPES_DECODER, _SHAPES_DECODER]
    try:
        lo = 0
        while lo < len(start):
            by_bytes = int(np.searchsorted(starts, start[lo] + BLOCK_BYTES, side="right"))
            hi = max(lo + 1, min(lo + BLOCK_ITEMS, by_bytes, len(start)))
            if lo and not is_gap(view, stop[lo - 1], start[lo], comma=True):
                raise _NotFast
            text = b"[" + raw[start[lo] : stop[hi - 1]] + b"]"
            shapes = None
            while shapes is None:
                try:
                    shapes = decoders[0].decode(text)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    if len(decoders) == 1:
                        raise _NotFast from exc
                    decoders.pop(0)
            if len(shapes) != hi - lo:
                raise _NotFast
            yield _table_or_not(shapes)
            if release is not None:
                release(start[lo], stop[hi - 1])
            lo = hi
    finally:
        view.release()


def _table_or_not(items: Sequence[_Shape]) -> ShapeTable:
    try:
        return _shape_table(items)
    except (OverflowError, TypeError) as exc:  # an integer beyond int64
        raise _NotFast from exc


def _attrs(items: Sequence[_Attribute]) -> tuple[Attribute, ...]:
    return tuple(Attribute(a.spec_id, a.value) for a in items)


def _column(items: Sequence[_Shape], name: str, dtype: type) -> np.ndarray:
    return np.fromiter(map(operator.attrgetter(name), items), dtype=dtype, count=len(items))


def _flag_column(items: Sequence[_Shape], name: str, dtype: type) -> np.ndarray:
    """An integer or boolean field as a column: CVAT's ``occluded``, ``outside``, ``z_order`` and
    ``group`` are mostly one value in a job, which one C-level ``list.count`` finds (about half
    the time of ``fromiter``). Not for floats: ``count`` takes ``-0.0`` for ``0.0``."""
    values = list(map(operator.attrgetter(name), items))
    if _same(values):
        return np.full(len(values), values[0], dtype=dtype)
    return np.fromiter(values, dtype=dtype, count=len(values))


def _shape_table(items: Sequence[_Shape]) -> ShapeTable:
    """Typed shapes -> columns; raises :class:`_NotFast` when any rule of ``parse_shape`` may fail.
    Skeletons (and anything with elements) are built by ``parse_shape`` itself and put back in
    file order."""
    types = list(map(operator.attrgetter("type"), items))
    if not any(map(operator.attrgetter("elements"), items)) and _SKELETON not in types:
        return _plain_table(items, types)
    from cvat_ext.annotations.cvat_json import parse_shape  # the per-object parser: only for skeletons

    is_object = np.fromiter((bool(s.elements) or s.type == _SKELETON for s in items), dtype=np.bool_, count=len(items))
    objects, plain = np.flatnonzero(is_object), np.flatnonzero(~is_object)
    tables = [
        _plain_table([items[i] for i in plain.tolist()]),
        ShapeTable.from_shapes([_parsed(_plain_data(items[i]), parse_shape) for i in objects.tolist()]),
    ]
    return ShapeTable.concat(tables).take(np.argsort(np.concatenate([plain, objects]), kind="stable"))


def _plain_data(shape: _Shape) -> dict[str, Any]:
    """A typed shape as the JSON data it was decoded from (its tuples as lists), for the
    per-object parser."""
    data = msgspec.to_builtins(shape)
    data["attributes"] = list(data["attributes"])
    data["elements"] = list(data["elements"])
    return data


def _parsed(data: Any, parse: Callable[..., T]) -> T:
    """``parse(data)`` by the per-object parser; any complaint sends the body to the slow path,
    which names the object in its error."""
    try:
        return parse(data)
    except AnnotationFormatError as exc:
        raise _NotFast from exc


def _track_table(tracks: Sequence[Any], last_frame: int | None, *, expand: bool = True) -> ShapeTable:
    """The tracks' visible shapes expanded up to ``last_frame``, in track order: each track
    checked by the per-object parser, expanded straight into rows by
    :func:`~cvat_ext.annotations.track_columns.track_table` (``expand_track``'s rows); without
    ``expand`` the tracks are only checked (no rows)."""
    from cvat_ext.annotations.cvat_json import parse_track
    from cvat_ext.annotations.track_columns import track_table

    parsed = [_parsed(data, parse_track) for data in tracks]
    if not expand:
        return ShapeTable.empty()
    return _parsed(parsed, functools.partial(track_table, last_frame=last_frame))


def _plain_table(items: Sequence[_Shape], types: list[str] | None = None) -> ShapeTable:
    """Typed shapes without elements -> columns (see :func:`_shape_table`; ``types``: their
    types, when the caller has them)."""
    n = len(items)
    type_code = _codes(list(map(operator.attrgetter("type"), items)) if types is None else types, _CODE_OF)
    if n and type_code.min() < 0:
        raise _NotFast
    points = list(map(operator.attrgetter("points"), items))
    lengths = np.fromiter(map(len, points), dtype=np.int64, count=n)
    # integer points (every item an _IntShape) are read as int64: faster, and the same float64
    # values (both conversions round to nearest; ints beyond int64 raise, the slow path decides)
    as_ints = bool(n) and isinstance(items[0], _IntShape)
    numbers = itertools.chain.from_iterable(points)
    total = int(lengths.sum())
    coords = (
        np.fromiter(numbers, dtype=np.int64, count=total).astype(np.float64)
        if as_ints
        else np.fromiter(numbers, dtype=np.float64, count=total)
    )
    coord_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=coord_start[1:])
    rotation = _column(items, "rotation", np.float64)
    score = _column(items, "score", np.float64)
    if not (np.isfinite(coords).all() and np.isfinite(rotation).all() and np.isfinite(score).all()):
        raise _NotFast
    _check_points(type_code, lengths, coords, coord_start)
    ids = list(map(operator.attrgetter("id"), items))
    if ids.count(None) == n:  # CVAT's export of a job: no ids at all (C-level count, no loop)
        has_id, obj_id = np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.int64)
    else:
        has_id = np.fromiter((i is not None for i in ids), dtype=np.bool_, count=n)
        obj_id = np.fromiter((0 if i is None else i for i in ids), dtype=np.int64, count=n)
    source_names = list(map(operator.attrgetter("source"), items))
    if _same(source_names):  # one source (CVAT's export of a job: "manual")
        sources, source_code = {source_names[0]: 0}, np.zeros(n, dtype=np.int64)
    else:
        sources = {name: code for code, name in enumerate(dict.fromkeys(source_names))}
        source_code = _codes(source_names, sources)
    with_attributes = np.flatnonzero(np.fromiter(map(bool, map(operator.attrgetter("attributes"), items)), np.bool_, n))
    return ShapeTable(
        frame=_column(items, "frame", np.int64),
        label_id=_column(items, "label_id", np.int64),
        type_code=type_code,
        occluded=_flag_column(items, "occluded", np.bool_),
        outside=_flag_column(items, "outside", np.bool_),
        z_order=_flag_column(items, "z_order", np.int64),
        group=_flag_column(items, "group", np.int64),
        rotation=rotation,
        score=score,
        obj_id=obj_id,
        has_id=has_id,
        source_code=source_code,
        sources=tuple(sources),
        coords=compact_coords(coords),
        coord_start=coord_start,
        attributes={i: _attrs(items[i].attributes) for i in with_attributes.tolist()},
    )


def _same(names: list[str]) -> bool:
    """Whether every name is the first one (one C-level count: a job of boxes, every type is
    ``rectangle``, every source ``manual``)."""
    return bool(names) and names.count(names[0]) == len(names)


def _codes(names: list[str], code_of: dict[str, int]) -> npt.NDArray[np.int64]:
    """``(N,)`` the code of every name (-1 for a name ``code_of`` lacks); one C-level count when
    every name is the same."""
    if _same(names):
        return np.full(len(names), code_of.get(names[0], -1), dtype=np.int64)
    return np.fromiter(map(code_of.get, names, itertools.repeat(-1)), dtype=np.int64, count=len(names))


def _check_points(type_code: np.ndarray, lengths: np.ndarray, coords: np.ndarray, coord_start: np.ndarray) -> None:
    """Every shape's ``points`` count fits its type, and every mask RLE is whole, non-negative,
    over a non-empty box whose area the runs sum to; else :class:`_NotFast`."""
    need = _NEED[type_code]
    fixed = need >= 0
    if np.any(lengths[fixed] != need[fixed]):
        raise _NotFast
    pairs = need == -1
    if np.any((lengths[pairs] % 2 != 0) | (lengths[pairs] < _MIN_NUMBERS[type_code[pairs]])):
        raise _NotFast
    masks = np.flatnonzero(type_code == _MASK_CODE)
    if not masks.size:
        return
    length = lengths[masks]
    if np.any(length < 5):
        raise _NotFast
    if masks.size == type_code.size:  # a job of masks: its coordinates are all mask numbers
        values, first = coords, coord_start[:-1]
    else:
        first = np.cumsum(length) - length
        values = coords[np.repeat(coord_start[masks] - first, length) + np.arange(int(length.sum()))]
    if np.any(np.floor(values) != values):
        raise _NotFast
    box_first = first + length - 4
    left, top, right, bottom = values[box_first[:, None] + np.arange(4)].T
    if np.any(right < left) or np.any(bottom < top):
        raise _NotFast
    # sums of the counts and of the boxes alternate: [counts_0, box_0, counts_1, box_1, ...]
    sums = np.add.reduceat(values, np.stack([first, box_first], axis=1).ravel())
    count_sum = sums[0::2]
    if values.min() < 0:  # a box may start left of or above the frame; a count is never negative
        is_count = np.ones(values.size, dtype=bool)
        is_count[(box_first[:, None] + np.arange(4)).ravel()] = False
        if np.any(values[is_count] < 0):
            raise _NotFast
    if np.any(count_sum != (right - left + 1) * (bottom - top + 1)):
        raise _NotFast


def _by_frame(table: ShapeTable) -> ShapeTable:
    """The table sorted by frame, file order within a frame (as the per-object readers give it)."""
    frame = table.frame
    if not frame.size or not np.any(frame[1:] < frame[:-1]):
        return table
    return table.take(np.argsort(frame, kind="stable"))


# ----------------------------------------------------------------------------------------------
# slow path


def _slow(
    raw: bytes, where: str, last_frame: int | None, path: Path | None, tracks: Tracks = "expand"
) -> ReplicaColumns:
    """The strict per-object reader: raises today's errors, or builds the columns from its frames
    (with ``tracks="skip"``, the frames' own shapes only)."""
    import tempfile

    from cvat_ext.annotations.frame_store import FrameStore

    with tempfile.TemporaryDirectory(prefix="cvat-ext-body-") as tmp:
        source = path
        if source is None:
            source = Path(tmp) / "annotations.json"
            source.write_bytes(raw)
        try:
            with FrameStore(source, temp_dir=tmp) as store:
                frames = list(store.iter_frames(last_frame))
                version, from_tracks = store.version, store.has_tracks
        except AnnotationFormatError as exc:
            if path is None:  # the temporary file's name means nothing to the reader: name the body
                raise AnnotationFormatError(str(exc).replace(str(source), where, 1)) from None
            raise
    if tracks != "expand" and from_tracks:  # the fast path's test: expand only when asked
        # a shape from a track carries its track id (same index); a frame's own shapes carry None
        frames = [replace(fa, shapes=tuple(s for s, t in zip(fa.shapes, fa.track_ids, strict=True) if t is None),
                          track_ids=()) for fa in frames]
        frames = [fa for fa in frames if fa.shapes or fa.tags]
        from_tracks = False
    shapes = ShapeTable.from_shapes([s for fa in frames for s in fa.shapes])
    tags = {fa.frame: fa.tags for fa in frames if fa.tags}
    frame_idx = np.fromiter((fa.frame for fa in frames), dtype=np.int64, count=len(frames))
    return ReplicaColumns(shapes=shapes, frames=frame_idx, tags=tags, version=version, from_tracks=from_tracks)
