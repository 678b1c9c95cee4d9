"""Columnar writers of a consensus run: the agreement report (JSON), the CSV tables and the merged
annotations (CVAT JSON), byte for byte what the per-object writers of
:mod:`cvat_ext.consensus.report` write, without building a :class:`~cvat_ext.consensus.report.Finding`,
:class:`~cvat_ext.consensus.report.FrameStats` or :class:`~cvat_ext.annotations.model.Shape` per row.

* per-frame rows come from the :class:`~cvat_ext.consensus.report.FrameTable` columns (NumPy for
  the ratios, Python's ``round`` for the 6-decimal rounding the report promises);
* findings come from the :class:`~cvat_ext.consensus.report.FindingBlock` columns: one plain row
  per flagged (cluster, kind), the cluster's member pattern (present / missing / labels) formatted
  once per distinct pattern, the blocks merged by frame as the report orders them;
* merged rectangles and masks are formatted from :class:`~cvat_ext.consensus.fuse.MergedColumns`
  with one template per object; other merged shapes go through ``dump_shape``.

:func:`write_outputs` walks each table once and writes the report and the CSV file together.
If the row types grow fields these writers do not know, they hand the job to the per-object
writers (same bytes, their speed) rather than drop a column.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import itertools
import json
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from cvat_ext.consensus import report
from cvat_ext.consensus.batch import IntArray
from cvat_ext.consensus.report import (
    CLUSTER_FINDING_KINDS,
    FINDING_COLUMNS,
    AnnotatorStats,
    ConsensusResult,
    FindingBlock,
    FrameStats,
    FrameTable,
    JobSummary,
    LabelStats,
    PairStats,
    finding_message,
)
from cvat_ext.errors import ConfigError

__all__ = ["write_outputs"]

#: the row fields these writers produce, in the report's order (``report.FINDING_COLUMNS``, ``FrameStats``)
_FINDING_FIELDS = (
    "frame", "kind", "shape_type", "label", "present", "missing", "labels_by_annotator", "xyxy",
    "min_similarity", "score", "kept", "message",
)  # fmt: skip
_FRAME_FIELDS = ("frame", "clusters", "kept", "mean_iou", "f1", "missing", "extra", "label_disagreements", "findings")
_SHAPE_TYPES = tuple(t.value for t in report.ShapeType)

Row = dict[str, Any]
#: one row of a table: its frame, its report JSON line and its CSV cells
Line = tuple[int, str, list[Any]]


def _fields(row_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(row_type))


def _known_layout() -> bool:
    """Whether the row types still have the fields these writers produce."""
    return tuple(FINDING_COLUMNS) == _FINDING_FIELDS and _fields(FrameStats) == _FRAME_FIELDS


def _r6(value: float) -> float | None:
    """The report's number: NaN -> null, else rounded to 6 decimals (``report._clean``)."""
    return None if math.isnan(value) else round(value, 6)


# ----------------------------------------------------------------------------------------------
# rows


def _plain_line(row: Row, names: Sequence[str]) -> Line:
    """A plain row as its report line and CSV cells (``json.dumps`` and ``report._cell``)."""
    return row["frame"], json.dumps(row), [report._cell(row[n]) for n in names]


def _num(value: float | None) -> str:
    """A number as ``json.dumps`` writes it."""
    if value is None:
        return "null"
    return repr(value) if math.isfinite(value) else json.dumps(value)


def frame_lines(table: FrameTable, block: int = 4096) -> Iterator[Line]:
    """Per-frame rows (report line, CSV cells), ``block`` frames at a time."""
    n_other = table.n_annotators - 1
    for lo in range(0, table.frame.shape[0], block):
        counts = table.counts[lo : lo + block]
        sim, sim_n, objects = counts[:, 2], counts[:, 3], counts[:, 8]  # see FRAME_COLUMNS
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_iou = np.where(sim_n != 0, sim / np.where(sim_n != 0, sim_n, 1.0), np.nan)
            f1 = np.where(objects != 0, 2 * sim_n / np.where(objects != 0, n_other * objects, 1.0), np.nan)
        ints = counts[:, [0, 1, 4, 5, 6, 7]].astype(np.int64).tolist()
        for frame, (c, k, m, e, ld, fi), iou, f in zip(
            table.frame[lo : lo + block].tolist(), ints, mean_iou.tolist(), f1.tolist(), strict=True
        ):
            row = {
                "frame": frame,
                "clusters": c,
                "kept": k,
                "mean_iou": _r6(iou),
                "f1": _r6(f),
                "missing": m,
                "extra": e,
                "label_disagreements": ld,
                "findings": fi,
            }
            yield _plain_line(row, _FRAME_FIELDS)


class _Patterns:
    """A member label row's present / missing / labels-by-annotator, as values, report JSON and
    CSV cells, formatted once per distinct pattern."""

    def __init__(self, names: Sequence[str], label_name: Callable[[int], str]) -> None:
        self.names = tuple(names)
        self.label_name = label_name
        self._seen: dict[tuple[int, ...], tuple[Any, ...]] = {}
        self._labels: dict[int, tuple[str, str]] = {}

    def label(self, label_id: int) -> tuple[str, str]:
        """The label's name and its JSON string."""
        found = self._labels.get(label_id)
        if found is None:
            name = self.label_name(label_id)
            found = self._labels[label_id] = (name, json.dumps(name))
        return found

    def get(self, members: tuple[int, ...]) -> tuple[Any, ...]:
        found = self._seen.get(members)
        if found is None:
            pairs = list(zip(self.names, members, strict=True))
            present = tuple(n for n, m in pairs if m >= 0)
            missing = tuple(n for n, m in pairs if m < 0)
            by_annot = tuple((n, self.label(m)[0]) for n, m in pairs if m >= 0)
            as_json = (
                f'"present": {json.dumps(list(present))}, "missing": {json.dumps(list(missing))}, '
                f'"labels_by_annotator": {json.dumps([list(p) for p in by_annot])}'
            )
            cells = (";".join(present), ";".join(missing), ";".join(f"{a}:{lb}" for a, lb in by_annot))
            found = self._seen[members] = (present, missing, by_annot, as_json, cells)
        return found


#: clusters of a block converted to Python values at once (``heapq.merge`` starts every block's
#: generator at once: converting whole blocks up front held the whole job's findings as objects)
_SLICE = 512


def _block_lines(block: FindingBlock, patterns: _Patterns) -> Iterator[Line]:
    """A block's findings (report line, CSV cells), in the order :meth:`FindingBlock.iter_findings`
    yields them; the cluster's part of the line is formatted once for all its findings."""
    flagged = np.flatnonzero(block.flags.any(axis=1))
    for lo in range(0, flagged.size, _SLICE):
        yield from _slice_lines(block, flagged[lo : lo + _SLICE], patterns)


def _slice_lines(block: FindingBlock, rows: IntArray, patterns: _Patterns) -> Iterator[Line]:
    ks, cs = np.nonzero(block.flags[rows])
    frames = block.frame[rows].tolist()
    labels = block.labels[rows].tolist()
    label_of = block.label[rows].tolist()
    type_code = block.type_code[rows].tolist()
    xyxy = block.xyxy[rows].tolist()
    min_sim = block.min_similarity[rows].tolist()
    score = block.score[rows].tolist()
    kept = block.kept[rows].tolist()
    last = -1
    for k, c in zip(ks.tolist(), cs.tolist(), strict=True):
        if k != last:
            last = k
            present, missing, by_annot, pattern_json, (p_cell, m_cell, b_cell) = patterns.get(tuple(labels[k]))
            frame = frames[k]
            label, label_json = patterns.label(label_of[k])
            shape_type = _SHAPE_TYPES[type_code[k]]
            # round(round(v, 2), 6) == round(v, 2): the report's 6-decimal rounding changes nothing
            box = [round(v, 2) for v in xyxy[k]]
            sim = min_sim[k]
            sim_plain = _r6(sim)
            sc = None if math.isnan(score[k]) else round(score[k], 6)
            middle = (
                f'"shape_type": "{shape_type}", "label": {label_json}, {pattern_json}, '
                f'"xyxy": [{", ".join(map(_num, box))}], "min_similarity": {_num(sim_plain)}, '
                f'"score": {_num(sc)}, "kept": {"true" if kept[k] else "false"}, "message": '
            )
            cells = [
                frame, None, shape_type, label, p_cell, m_cell, b_cell, ";".join(map(str, box)),
                "" if sim_plain is None else sim_plain, "" if sc is None else sc, kept[k], None,
            ]  # fmt: skip
        kind = CLUSTER_FINDING_KINDS[c].value
        message = finding_message(CLUSTER_FINDING_KINDS[c], frame, label, shape_type, present, missing, by_annot, sim)
        row_cells = cells.copy()
        row_cells[1] = kind
        row_cells[11] = message
        yield frame, f'{{"frame": {frame}, "kind": "{kind}", {middle}{json.dumps(message)}}}', row_cells


def finding_lines(result: ConsensusResult) -> Iterator[Line]:
    """All findings (report line, CSV cells) in the report's order (by frame; blocks in order, tag
    findings last on a frame)."""
    patterns = _Patterns(result.summary.annotators, result.label_name)
    streams: list[Iterator[Line]] = [_block_lines(b, patterns) for b in result.finding_blocks]
    streams.append(_plain_line(report._clean(report.finding_record(f)), _FINDING_FIELDS) for f in result.extra_findings)
    return heapq.merge(*streams, key=operator.itemgetter(0))


# ----------------------------------------------------------------------------------------------
# writing


class _Outputs:
    """The report file and the CSV folder being written side by side (either may be absent)."""

    def __init__(self, report_out: Path | None, csv_dir: Path | None) -> None:
        self.report_out = report_out
        self.csv_dir = csv_dir
        self.fh: TextIO | None = None

    def write_table(self, key: str, csv_name: str, names: Sequence[str], rows: Iterable[Line]) -> None:
        """One table: a JSON array under ``key`` in the report, and ``csv_name`` in the folder."""
        writer = None
        csv_fh = None
        try:
            if self.csv_dir is not None:
                csv_fh = (self.csv_dir / csv_name).open("w", newline="")
                writer = csv.writer(csv_fh)
                writer.writerow(names)
            fh = self.fh
            if fh is not None:
                fh.write(f',\n "{key}": [')
            sep = "\n  "
            it = iter(rows)
            while batch := list(itertools.islice(it, 2048)):
                if fh is not None:
                    fh.write(sep + ",\n  ".join(line for _, line, _ in batch))
                    sep = ",\n  "
                if writer is not None:
                    writer.writerows(cells for _, _, cells in batch)
            if fh is not None:
                fh.write("\n ]" if sep != "\n  " else "]")
        finally:
            if csv_fh is not None:
                csv_fh.close()


def write_outputs(
    result: ConsensusResult,
    *,
    report_out: str | Path | None = None,
    csv_dir: str | Path | None = None,
    merged_out: str | Path | None = None,
) -> None:
    """Write the report (``report_out``), the CSV tables (``csv_dir``) and the merged annotations
    (``merged_out``): the bytes of ``write_report_json``, ``write_csv_tables`` and
    ``write_merged_json`` of :mod:`cvat_ext.consensus.report`."""
    if not _known_layout():
        if report_out is not None:
            report.write_report_json(result, report_out)
        if csv_dir is not None:
            report.write_csv_tables(result, csv_dir)
        if merged_out is not None:
            report.write_merged_json(result, merged_out)
        return
    if report_out is not None or csv_dir is not None:
        _write_report_and_tables(
            result, None if report_out is None else Path(report_out), None if csv_dir is None else Path(csv_dir)
        )
    if merged_out is not None:
        from cvat_ext.consensus.merged_writer import write_merged

        write_merged(result, Path(merged_out))


def _write_report_and_tables(result: ConsensusResult, report_out: Path | None, csv_dir: Path | None) -> None:
    out = _Outputs(report_out, csv_dir)
    small: list[tuple[str, str, Sequence[Any], type]] = [
        ("summary", "summary.csv", [result.summary], JobSummary),
        ("annotators", "annotators.csv", result.annotators, AnnotatorStats),
        ("pairs", "pairs.csv", result.pairs, PairStats),
        ("labels", "labels.csv", result.labels, LabelStats),
    ]
    try:
        if csv_dir is not None:
            try:
                csv_dir.mkdir(parents=True, exist_ok=True)
                for _, csv_name, rows, row_type in small:
                    report._write_table(csv_dir / csv_name, *report._dataclass_table(rows, row_type))
            except OSError as exc:
                raise ConfigError(f"{csv_dir}: cannot write CSV tables: {exc.strerror}") from exc
        if report_out is not None:
            report_out.parent.mkdir(parents=True, exist_ok=True)
            out.fh = report_out.open("w")
            head = result.head_json()
            out.fh.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in head.items()))
        out.write_table("frames", "frames.csv", _FRAME_FIELDS, frame_lines(result.frame_table))
        out.write_table("findings", "findings.csv", _FINDING_FIELDS, finding_lines(result))
        if out.fh is not None:
            out.fh.write("\n}\n")
    except OSError as exc:
        where = report_out if report_out is not None else csv_dir
        raise ConfigError(f"{where}: cannot write the report: {exc.strerror}") from exc
    finally:
        if out.fh is not None:
            out.fh.close()
