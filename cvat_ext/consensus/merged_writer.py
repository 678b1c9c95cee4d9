"""The merged annotations as CVAT JSON, written from the merge's columns.

Writes what :func:`cvat_ext.consensus.report.write_merged_json` writes, byte for byte: a
``LabeledData`` body whose ``shapes`` array holds one ``dump_shape`` object a line. Fused
rectangles, masks and polygons (:class:`~cvat_ext.consensus.fuse.MergedColumns`) are formatted
with one template per object straight from their columns (numbers as Python's ``repr``, as
``json`` writes them); every other merged shape (skeletons, the nearest member's copy) goes through
:func:`~cvat_ext.annotations.cvat_json.dump_shape`. Within a chunk the lines are ordered by frame,
stable across the chunk's parts, as :meth:`~cvat_ext.consensus.fuse.ChunkMerger.stream` orders
the shapes.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from cvat_ext.annotations.cvat_json import dump_job_annotations, dump_shape
from cvat_ext.annotations.model import Attribute, Shape
from cvat_ext.consensus.fuse import MergedColumns
from cvat_ext.consensus.merge import SOURCE
from cvat_ext.consensus.report import ConsensusResult, write_labeled_data, write_merged_json
from cvat_ext.consensus.report_text import (
    JsonArray,
    float_row_texts,
    float_texts,
    int_row_texts,
    round_like_python,
)
from cvat_ext.errors import ConfigError
from cvat_ext.rows import distinct_rows

__all__ = ["merged_json", "write_merged"]

_SOURCE = json.dumps(SOURCE)
_TAIL = '"label_id": %d, "group": 0, "source": ' + _SOURCE + ', "frame": %d, "score": %s, "attributes": %s, '
_SEGMENT = '{"type": "%s", "occluded": %s, "outside": false, "z_order": %d, "rotation": 0.0, "points": [%s], ' + _TAIL
_SEGMENT += '"elements": []}'
_BOOL = ("false", "true")


def _attributes_json(attrs: tuple[tuple[Attribute, ...], ...] | None, n: int) -> list[str]:
    if attrs is None:
        return ["[]"] * n
    return [json.dumps([{"spec_id": int(a.spec_id), "value": a.value} for a in at]) if at else "[]" for at in attrs]


def _column_lines(part: MergedColumns) -> list[str] | None:
    """One JSON line per fused rectangle or mask; None for parts the template does not cover."""
    n = part.frame.shape[0]
    if not np.isfinite(part.score).all():
        return None  # json writes NaN/Infinity, the templates would not
    tail = (part.label.tolist(), part.frame.tolist(), float_texts(round_like_python(part.score, 4)))
    attrs = _attributes_json(part.attributes, n)
    if part.xyxy is not None and part.rotation is not None:
        if not (np.isfinite(part.xyxy).all() and np.isfinite(part.rotation).all()):
            return None
        # one text per row for the box, and one per distinct (occluded, z order, rotation) for
        # what comes before it (fused boxes share a few): an f-string of six parts per row
        (box,) = float_row_texts(part.xyxy, (", ",))
        keys = np.stack([part.occluded.astype(np.int64), part.z_order.astype(np.int64),
                         np.asarray(part.rotation, dtype=np.float64).view(np.int64)], axis=1)  # fmt: skip
        distinct = distinct_rows(keys)
        first, pos = distinct.first, distinct.inverse
        heads = np.array(
            [
                f'{{"type": "rectangle", "occluded": {_BOOL[occ]}, "outside": false, "z_order": {z}, '
                f'"rotation": {rot}, "points": ['
                for occ, z, rot in zip(
                    part.occluded[first].tolist(), part.z_order[first].tolist(), float_texts(part.rotation[first]),
                    strict=True,
                )
            ],
            dtype=object,
        )[pos].tolist()  # fmt: skip
        return [
            f'{hd}{bx}], "label_id": {lb}, "group": 0, "source": {_SOURCE}, "frame": {fr}, "score": {sc}, '
            f'"attributes": {at}, "elements": []}}'
            for hd, bx, lb, fr, sc, at in zip(heads, box, *tail, attrs, strict=True)
        ]
    if part.mask_ltrb is not None and part.mask_counts is not None and part.kp_label is None:
        kind = "mask"
        points = _mask_points(part.mask_counts, part.mask_ltrb)
    elif part.poly_xy is not None and part.poly_start is not None:
        if not np.isfinite(part.poly_xy).all():
            return None
        kind = "polygon"
        texts = float_texts(part.poly_xy)
        points = [", ".join(texts[lo:hi]) for lo, hi in itertools.pairwise(part.poly_start.tolist())]
    else:
        return None
    head = (part.occluded.tolist(), part.z_order.tolist())
    return [
        _SEGMENT % (kind, _BOOL[occ], z, pts, lb, fr, sc, at)
        for occ, z, pts, lb, fr, sc, at in zip(*head, points, *tail, attrs, strict=True)
    ]


def _mask_points(counts: Sequence[np.ndarray], ltrb: np.ndarray) -> list[str]:
    """CVAT's flat mask ``points`` (RLE counts, then the inclusive ``ltrb``) of each fused mask as
    the text inside the JSON brackets, every number formatted in one call."""
    n = len(counts)
    if n == 0:
        return []
    sizes = np.fromiter(map(len, counts), dtype=np.int64, count=n) + 4
    ends = np.cumsum(sizes)
    flat = np.empty(int(ends[-1]), dtype=np.int64)
    is_box = np.zeros(flat.size, dtype=bool)
    is_box[(ends[:, None] - 4 + np.arange(4)).ravel()] = True
    flat[~is_box] = np.concatenate(counts)
    flat[is_box] = np.asarray(ltrb, dtype=np.int64).ravel()
    return int_row_texts(flat, sizes)


def _chunk_lines(parts: Sequence[MergedColumns | list[Shape]]) -> list[str]:
    """A chunk's merged shapes as JSON lines, ordered by frame (stable across parts)."""
    lines: list[str] = []
    frames: list[np.ndarray] = []
    for part in parts:
        got = _column_lines(part) if isinstance(part, MergedColumns) else None
        if got is None:
            shapes = part.materialise() if isinstance(part, MergedColumns) else part
            got = [json.dumps(dump_shape(sh)) for sh in shapes]
            frames.append(np.fromiter((sh.frame for sh in shapes), dtype=np.int64, count=len(shapes)))
        else:
            assert isinstance(part, MergedColumns)
            frames.append(np.asarray(part.frame, dtype=np.int64))
        lines.extend(got)
    if not lines:
        return lines
    frame = np.concatenate(frames)
    if not np.any(frame[1:] < frame[:-1]):
        return lines  # in frame order already (one part of fused boxes)
    return [lines[i] for i in np.argsort(frame, kind="stable").tolist()]


def write_merged(result: ConsensusResult, path: Path) -> None:
    """Write ``result``'s merged annotations to ``path`` (see the module docstring)."""
    if result.merged_parts is None:
        write_merged_json(result, path)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as fh:
            _write_body(fh, result)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the merged annotations: {exc.strerror}") from exc


def merged_json(result: ConsensusResult) -> str:
    """``result``'s merged annotations as CVAT ``LabeledData`` JSON text (the sidecar's PUT body):
    the text :func:`write_merged` writes, equal as JSON to ``dump_job_annotations(result.merged)``."""
    if result.merged_parts is None:
        return json.dumps(dump_job_annotations(result.merged))
    fh = io.StringIO()
    _write_body(fh, result)
    return fh.getvalue()


def _write_body(fh: TextIO, result: ConsensusResult) -> None:
    assert result.merged_parts is not None
    tags, chunks = result.merged_parts()
    write_labeled_data(fh, tags, lambda: _write_lines(fh, (_chunk_lines(parts) for parts in chunks)))


def _write_lines(fh: TextIO, chunks: Iterator[list[str]]) -> None:
    """A JSON array of pre-formatted elements, a chunk of lines at a time."""
    array = JsonArray(fh)
    for lines in chunks:
        array.extend(lines)
    array.close()
