"""The ids of one CVAT annotations file as numpy columns: what the cross-checks read.

One row per object that sits on a frame and carries a label:

========  =========================================  ==========================================
kind      row                                        locator
========  =========================================  ==========================================
TAG       a tag                                      ``tags[i]``
SHAPE     a shape                                    ``shapes[i]``
ELEMENT   a skeleton keypoint of a shape             ``shapes[i].elements[j]``
TRACK     a keyframe of a track (a track without     ``tracks[i]`` (``.shapes[k]`` for its frame)
          keyframes: one row on the track's frame)
TRACK_EL  a keyframe of a skeleton track's element   ``tracks[i].elements[j]`` (``.shapes[k]``)
========  =========================================  ==========================================

Columns (all ``(N,)`` int64 unless said): ``kind`` (int8, the codes above), ``index`` (i),
``sub`` (j, -1 when none), ``keyframe`` (k, -1 when none), ``frame_idx`` (task frame),
``label_id``, ``parent_label_id`` (the skeleton's label for elements, else -1). Attribute values
are a second table: ``attr_row`` (the row they belong to), ``attr_pos`` (their position in the
object's ``attributes``; ``-1 - pos`` for a track's own attributes, kept on its first keyframe's
row) and ``attr_spec_id``, each ``(M,)``.

:func:`ids_from_file` reads the columns straight from the file with ijson's C parser, one section
at a time, after the file's reader has validated it. Why not from the reader's types: the current
reader (:class:`~cvat_ext.annotations.frame_store.FrameStore`) keeps objects as JSON text, and its
frames come with tracks expanded only up to the job's end, which would hide the keyframes the
checks look for. A columnar reader can fill :class:`AnnotationIds` directly and this adapter goes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum
from os import PathLike
from pathlib import Path
from typing import Any

import ijson
import numpy as np
import numpy.typing as npt

from cvat_ext.errors import AnnotationFormatError

__all__ = ["AnnotationIds", "RowKind", "ids_from_file"]

IntArray = npt.NDArray[np.int64]


class RowKind(IntEnum):
    TAG = 0
    SHAPE = 1
    ELEMENT = 2
    TRACK = 3
    TRACK_EL = 4


@dataclass(frozen=True)
class AnnotationIds:
    """The id columns of one annotations file (see the module docstring); ``path`` names it."""

    path: str
    kind: npt.NDArray[np.int8]
    index: IntArray
    sub: IntArray
    keyframe: IntArray
    frame_idx: IntArray
    label_id: IntArray
    parent_label_id: IntArray
    attr_row: IntArray
    attr_pos: IntArray
    attr_spec_id: IntArray

    def __post_init__(self) -> None:
        n = self.kind.shape[0]
        for name in ("index", "sub", "keyframe", "frame_idx", "label_id", "parent_label_id"):
            got = getattr(self, name).shape
            if got != (n,):
                raise ValueError(f"AnnotationIds.{name}: expected shape ({n},), got {got}")
        m = self.attr_row.shape[0]
        for name in ("attr_pos", "attr_spec_id"):
            got = getattr(self, name).shape
            if got != (m,):
                raise ValueError(f"AnnotationIds.{name}: expected shape ({m},), got {got}")

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def locate(self, row: int, *, keyframe: bool = False) -> str:
        """Where row ``row`` sits in the file: ``shapes[12].elements[3]``; ``keyframe`` adds a
        track's ``.shapes[k]`` (for frame problems; a label belongs to the whole track)."""
        kind, i, j, k = (int(self.kind[row]), int(self.index[row]), int(self.sub[row]), int(self.keyframe[row]))
        if kind == RowKind.TAG:
            return f"tags[{i}]"
        if kind == RowKind.SHAPE:
            return f"shapes[{i}]"
        if kind == RowKind.ELEMENT:
            return f"shapes[{i}].elements[{j}]"
        head = f"tracks[{i}]" if kind == RowKind.TRACK else f"tracks[{i}].elements[{j}]"
        return f"{head}.shapes[{k}]" if keyframe and k >= 0 else head

    def locate_attribute(self, a: int) -> str:
        """Where attribute value ``a`` sits: ``tracks[2].shapes[4].attributes[0]``."""
        row, pos = int(self.attr_row[a]), int(self.attr_pos[a])
        if pos < 0:  # the track's own attributes
            return f"{self.locate(row)}.attributes[{-pos - 1}]"
        return f"{self.locate(row, keyframe=True)}.attributes[{pos}]"


class _Builder:
    """Rows appended one object at a time (the file is a list of dicts), then turned into columns."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, int, int, int, int, int]] = []
        self.attrs: list[tuple[int, int, int]] = []

    def add(self, kind: RowKind, i: int, j: int, k: int, frame: int, label: int, parent: int) -> int:
        self.rows.append((kind, i, j, k, frame, label, parent))
        return len(self.rows) - 1

    def add_attributes(self, row: int, attributes: Any, *, of_track: bool = False) -> None:
        for pos, attr in enumerate(attributes or ()):
            self.attrs.append((row, -pos - 1 if of_track else pos, _int(attr.get("spec_id"))))

    def build(self, path: str) -> AnnotationIds:
        rows = np.array(self.rows, dtype=np.int64).reshape(-1, 7)
        attrs = np.array(self.attrs, dtype=np.int64).reshape(-1, 3)
        return AnnotationIds(
            path,
            rows[:, 0].astype(np.int8),
            *(np.ascontiguousarray(rows[:, c]) for c in range(1, 7)),
            *(np.ascontiguousarray(attrs[:, c]) for c in range(3)),
        )


def _int(value: Any) -> int:
    # the reader accepted integral floats (1.0) as CVAT does; anything else it rejected already
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else -1


def _items(path: Path, section: str) -> Iterator[Mapping[str, Any]]:
    try:
        with path.open("rb") as fh:
            for item in ijson.items(fh, f"{section}.item", use_float=True):
                if isinstance(item, Mapping):
                    yield item
    except (ijson.JSONError, ValueError) as exc:
        first_line = next(iter(str(exc).splitlines()), type(exc).__name__)
        raise AnnotationFormatError(f"{path}: invalid JSON: {first_line}") from exc
    except OSError as exc:
        raise AnnotationFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _add_shape(b: _Builder, i: int, shape: Mapping[str, Any]) -> None:
    frame, label = _int(shape.get("frame")), _int(shape.get("label_id"))
    row = b.add(RowKind.SHAPE, i, -1, -1, frame, label, -1)
    b.add_attributes(row, shape.get("attributes"))
    for j, element in enumerate(shape.get("elements") or ()):
        el_row = b.add(RowKind.ELEMENT, i, j, -1, frame, _int(element.get("label_id")), label)
        b.add_attributes(el_row, element.get("attributes"))


def _add_track(b: _Builder, i: int, j: int, track: Mapping[str, Any], parent: int) -> None:
    kind = RowKind.TRACK if j < 0 else RowKind.TRACK_EL
    label = _int(track.get("label_id"))
    keyframes = track.get("shapes") or ()
    if not keyframes:
        row = b.add(kind, i, j, -1, _int(track.get("frame")), label, parent)
        b.add_attributes(row, track.get("attributes"), of_track=True)
    for k, keyframe in enumerate(keyframes):
        row = b.add(kind, i, j, k, _int(keyframe.get("frame")), label, parent)
        if k == 0:  # a track's own (immutable) attributes, counted once
            b.add_attributes(row, track.get("attributes"), of_track=True)
        b.add_attributes(row, keyframe.get("attributes"))
    if j < 0:
        for el_j, element in enumerate(track.get("elements") or ()):
            _add_track(b, i, el_j, element, label)


def ids_from_file(path: str | PathLike[str]) -> AnnotationIds:
    """The id columns of a CVAT ``LabeledData`` file (three streaming passes: tags, shapes, tracks).

    Call it after the file's reader accepted the file: values of the wrong type become -1 here
    rather than errors (the reader names them).
    """
    p = Path(path)
    b = _Builder()
    for i, tag in enumerate(_items(p, "tags")):
        b.add_attributes(b.add(RowKind.TAG, i, -1, -1, _int(tag.get("frame")), _int(tag.get("label_id")), -1),
                         tag.get("attributes"))
    for i, shape in enumerate(_items(p, "shapes")):
        _add_shape(b, i, shape)
    for i, track in enumerate(_items(p, "tracks")):
        _add_track(b, i, -1, track, -1)
    return b.build(str(path))
