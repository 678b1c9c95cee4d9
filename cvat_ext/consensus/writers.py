"""Columnar writers of a consensus run: the agreement report (JSON), the CSV tables and the merged
annotations (CVAT JSON), byte for byte what the per-object writers of
:mod:`cvat_ext.consensus.report` write, without building a :class:`~cvat_ext.consensus.report.Finding`,
:class:`~cvat_ext.consensus.report.FrameStats` or :class:`~cvat_ext.annotations.model.Shape` per row.

* per-frame rows come from the :class:`~cvat_ext.consensus.report.FrameTable` columns (NumPy for
  the ratios, Python's ``round`` for the 6-decimal rounding the report promises);
* findings come from the :class:`~cvat_ext.consensus.report.FindingBlock` columns, formatted a
  window of clusters at a time by :mod:`cvat_ext.consensus.finding_text`;
* merged rectangles and masks are formatted from :class:`~cvat_ext.consensus.fuse.MergedColumns`
  (:mod:`cvat_ext.consensus.merged_writer`); other merged shapes go through ``dump_shape``.

:func:`write_outputs` walks each table once and writes the report and the CSV file together, a
batch of rows per ``write``. If the row types grow fields these writers do not know, or a run's
findings are not in the order the windows assume (:func:`~cvat_ext.consensus.finding_text.supported`),
they hand the job to the per-object writers (same bytes, their speed) rather than drop a column.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from cvat_ext.annotations.gc_pause import gc_paused
from cvat_ext.consensus import report
from cvat_ext.consensus.finding_text import Batch, finding_batches, supported
from cvat_ext.consensus.report import (
    FINDING_COLUMNS,
    AnnotatorStats,
    ConsensusResult,
    FrameStats,
    FrameTable,
    JobSummary,
    LabelStats,
    PairStats,
)
from cvat_ext.consensus.report_text import JsonArray, json_and_csv_texts, round_like_python
from cvat_ext.errors import ConfigError

__all__ = ["write_outputs"]

#: the row fields these writers produce, in the report's order (``report.FINDING_COLUMNS``, ``FrameStats``)
_FINDING_FIELDS = (
    "frame", "kind", "shape_type", "label", "present", "missing", "labels_by_annotator", "xyxy",
    "min_similarity", "score", "kept", "message",
)  # fmt: skip
_FRAME_FIELDS = ("frame", "clusters", "kept", "mean_iou", "f1", "missing", "extra", "label_disagreements", "findings")


def _fields(row_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(row_type))


def _known_layout() -> bool:
    """Whether the row types still have the fields these writers produce."""
    return tuple(FINDING_COLUMNS) == _FINDING_FIELDS and _fields(FrameStats) == _FRAME_FIELDS


# ----------------------------------------------------------------------------------------------
# rows


def frame_batches(table: FrameTable, block: int = 4096) -> Iterator[Batch]:
    """Per-frame rows (report lines, CSV text), ``block`` frames at a time: one f-string per row
    and format, the ratios rounded and formatted a column at a time (as the report's ``round(v, 6)``
    and ``json`` / ``csv`` write them: NaN is ``null`` / an empty cell)."""
    n_other = table.n_annotators - 1
    for lo in range(0, table.frame.shape[0], block):
        counts = table.counts[lo : lo + block]
        sim, sim_n, objects = counts[:, 2], counts[:, 3], counts[:, 8]  # see FRAME_COLUMNS
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_iou = np.where(sim_n != 0, sim / np.where(sim_n != 0, sim_n, 1.0), np.nan)
            f1 = np.where(objects != 0, 2 * sim_n / np.where(objects != 0, n_other * objects, 1.0), np.nan)
        iou_json, iou_csv = json_and_csv_texts(round_like_python(mean_iou, 6))
        f1_json, f1_csv = json_and_csv_texts(round_like_python(f1, 6))
        ints = counts[:, [0, 1, 4, 5, 6, 7]].astype(np.int64).T.tolist()
        frames = table.frame[lo : lo + block].tolist()
        lines = [
            f'{{"frame": {fr}, "clusters": {c}, "kept": {k}, "mean_iou": {iou}, "f1": {f}, "missing": {m}, '
            f'"extra": {e}, "label_disagreements": {ld}, "findings": {fi}}}'
            for fr, c, k, iou, f, m, e, ld, fi in zip(frames, *ints[:2], iou_json, f1_json, *ints[2:], strict=True)
        ]
        rows = [
            f"{fr},{c},{k},{iou},{f},{m},{e},{ld},{fi}\r\n"
            for fr, c, k, iou, f, m, e, ld, fi in zip(frames, *ints[:2], iou_csv, f1_csv, *ints[2:], strict=True)
        ]
        yield lines, "".join(rows)


# ----------------------------------------------------------------------------------------------
# writing


class _Outputs:
    """The report file and the CSV folder being written side by side (either may be absent)."""

    def __init__(self, report_out: Path | None, csv_dir: Path | None) -> None:
        self.report_out = report_out
        self.csv_dir = csv_dir
        self.fh: TextIO | None = None

    def write_table(self, key: str, csv_name: str, names: Sequence[str], batches: Iterable[Batch]) -> None:
        """One table: a JSON array under ``key`` in the report, and ``csv_name`` in the folder."""
        csv_fh = None
        try:
            if self.csv_dir is not None:
                csv_fh = (self.csv_dir / csv_name).open("w", newline="")
                csv.writer(csv_fh).writerow(names)
            array = None
            if self.fh is not None:
                self.fh.write(f',\n "{key}": ')
                array = JsonArray(self.fh)
            for lines, csv_text in batches:
                if array is not None:
                    array.extend(lines)
                if csv_fh is not None:
                    csv_fh.write(csv_text)
            if array is not None:
                array.close()
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
    with gc_paused():  # hundreds of thousands of short-lived strings and lists, no cycles
        if not _known_layout():
            if report_out is not None:
                report.write_report_json(result, report_out)
            if csv_dir is not None:
                report.write_csv_tables(result, csv_dir)
            if merged_out is not None:
                report.write_merged_json(result, merged_out)
            return
        if not supported(result):
            if report_out is not None:
                report.write_report_json(result, report_out)
            if csv_dir is not None:
                report.write_csv_tables(result, csv_dir)
        elif report_out is not None or csv_dir is not None:
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
        out.write_table("frames", "frames.csv", _FRAME_FIELDS, frame_batches(result.frame_table))
        out.write_table("findings", "findings.csv", _FINDING_FIELDS, finding_batches(result))
        if out.fh is not None:
            out.fh.write("\n}\n")
    except OSError as exc:
        where = report_out if report_out is not None else csv_dir
        raise ConfigError(f"{where}: cannot write the report: {exc.strerror}") from exc
    finally:
        if out.fh is not None:
            out.fh.close()
