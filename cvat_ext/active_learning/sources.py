"""Readers: files and in-memory results -> the columnar inputs of :mod:`.signals`.

* predictions: CVAT ``LabeledData`` JSON (``GET /api/jobs/{id}/annotations`` or ``/api/tasks/{id}/
  annotations`` after ``cvat-cli task auto-annotate``; every shape carries ``score``), read by
  :mod:`cvat_ext.annotations.columnar_json` (as strict as every other annotations file), or a
  :class:`JobAnnotations`. Shapes only: CVAT tracks and tags have no score.
* consensus: the report JSON of ``cvat-ext qa consensus --report-out`` or a
  :class:`~cvat_ext.consensus.report.ConsensusResult` (read column-wise, no per-frame objects).
* findings: the JSON of ``cvat-ext rules check --format json`` (or a bare list of findings), or
  rule :class:`~cvat_ext.qa.findings.Finding` objects.
* frames: job frame metas (read by :func:`cvat_ext.inputs.files.read_meta`), one per job.

Errors raise :class:`AnnotationFormatError` naming the file and the item
(``pred.json: shapes[3]: score 1.5 is not a number in [0, 1]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from cvat_ext.active_learning.signals import ConsensusFrames, FindingCounts, FrameSet, Prelabels
from cvat_ext.annotations.columnar_json import read_annotations_file
from cvat_ext.annotations.cvat_json import load_json_file
from cvat_ext.annotations.model import JobAnnotations, JobMeta
from cvat_ext.errors import AnnotationFormatError

if TYPE_CHECKING:
    from cvat_ext.consensus.report import ConsensusResult
    from cvat_ext.qa.findings import Finding as RuleFinding


def _column(rows: Sequence[Any], key: str, default: Any, ok: Callable[[Any], bool], where: str, want: str) -> list[Any]:
    """``rows[i][key]`` for every row; on the first bad one, an error naming ``where[i]``."""
    try:
        values = [r[key] if default is None else r.get(key, default) for r in rows]
    except (KeyError, TypeError, AttributeError):
        values = None
    if values is not None and all(map(ok, values)):
        return values
    for i, r in enumerate(rows):  # slow path only to name the culprit
        if not isinstance(r, dict):
            raise AnnotationFormatError(f"{where}[{i}]: expected an object, got {type(r).__name__}")
        if default is None and key not in r:
            raise AnnotationFormatError(f"{where}[{i}]: missing {key!r}")
        value = r.get(key, default)
        if not ok(value):
            raise AnnotationFormatError(f"{where}[{i}]: {key} {value!r} is not {want}")
    raise AssertionError("unreachable")  # pragma: no cover


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)



def _list_field(data: Any, key: str, where: str) -> list[Any]:
    if not isinstance(data, dict):
        raise AnnotationFormatError(f"{where}: expected a JSON object, got {type(data).__name__}")
    value = data.get(key, [])
    if not isinstance(value, list):
        raise AnnotationFormatError(f"{where}: {key!r} must be a list, got {type(value).__name__}")
    return value


# ----------------------------------------------------------------------------------------------
# predictions


def detections_from_annotations(ann: JobAnnotations) -> Prelabels:
    """Scored shapes of a :class:`JobAnnotations` (tracks and tags carry no score)."""
    n = len(ann.shapes)
    return Prelabels(
        np.fromiter((s.frame for s in ann.shapes), np.int64, n),
        np.fromiter((s.score for s in ann.shapes), np.float64, n),
        np.fromiter((s.label_id for s in ann.shapes), np.int64, n),
    )


def read_predictions(path: str | Path) -> Prelabels:
    """A predictions file (CVAT annotations JSON with scores), read by the columnar reader with
    the two options predictions need: every score in [0, 1], tracks checked but not counted (they
    carry no score). Rows come in frame order (the signals do not depend on it)."""
    shapes = read_annotations_file(path, tracks="skip", score_range=(0.0, 1.0)).shapes
    return Prelabels(shapes.frame.astype(np.int64), shapes.score.astype(np.float64), shapes.label_id.astype(np.int64))


# ----------------------------------------------------------------------------------------------
# consensus


class _ReportFrame(BaseModel):
    # ignore extra columns: a report written by a newer consensus engine must still load
    model_config = ConfigDict(extra="ignore", strict=True)
    frame: int
    clusters: int
    kept: int
    f1: float | None
    missing: int
    extra: int
    label_disagreements: int


class _ReportSummary(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    annotators: list[str]


class _Report(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    summary: _ReportSummary
    frames: list[_ReportFrame]


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    return f"{loc}: {err['msg']}" if loc else err["msg"]


def consensus_frames_from_json(data: Any, *, where: str) -> ConsensusFrames:
    """The ``frames`` table of a consensus report JSON (``summary.annotators`` gives R)."""
    try:
        report = _Report.model_validate(data)
    except ValidationError as exc:
        raise AnnotationFormatError(f"{where}: not a consensus report: {_first_error(exc)}") from None
    rows = report.frames
    if len(report.summary.annotators) < 2:
        raise AnnotationFormatError(f"{where}: summary.annotators lists fewer than 2 annotators")
    frame_idx = np.array([r.frame for r in rows], dtype=np.int64)
    if np.unique(frame_idx).shape[0] != frame_idx.shape[0]:
        raise AnnotationFormatError(f"{where}: frames: a frame is listed twice")

    def col(name: str) -> np.ndarray:
        return np.array([getattr(r, name) for r in rows], dtype=np.float64)

    return ConsensusFrames(
        frame_idx=frame_idx,
        clusters=col("clusters"),
        kept=col("kept"),
        f1=np.array([np.nan if r.f1 is None else r.f1 for r in rows], dtype=np.float64),
        missing=col("missing"),
        extra=col("extra"),
        label_disagreements=col("label_disagreements"),
        n_annotators=len(report.summary.annotators),
    )


def read_consensus_report(path: str | Path) -> ConsensusFrames:
    """A ``cvat-ext qa consensus --report-out`` file."""
    return consensus_frames_from_json(load_json_file(path), where=str(path))


def consensus_frames_from_result(result: ConsensusResult) -> ConsensusFrames:
    """The per-frame tallies of :func:`cvat_ext.consensus.score_replicas`, read column-wise."""
    from cvat_ext.consensus.report import FRAME_COLUMNS

    table = result.frame_table
    c = {name: table.counts[:, i] for i, name in enumerate(FRAME_COLUMNS)}
    n = table.n_annotators
    # the same pooled pairwise F1 as FrameTable.materialise, vectorised
    denom = (n - 1) * c["objects"]
    f1 = np.divide(2 * c["sim_n"], denom, out=np.full(denom.shape, np.nan), where=denom > 0)
    return ConsensusFrames(
        frame_idx=table.frame,
        clusters=c["clusters"],
        kept=c["kept"],
        f1=f1,
        missing=c["missing"],
        extra=c["extra"],
        label_disagreements=c["label_dis"],
        n_annotators=n,
    )


# ----------------------------------------------------------------------------------------------
# rule findings


def findings_from_json(data: Any, *, where: str) -> FindingCounts:
    """``{"summary": ..., "findings": [...]}`` (``rules check --format json``) or a bare list."""
    rows = data if isinstance(data, list) else _list_field(data, "findings", where)
    loc = f"{where}: findings"
    frame = _column(rows, "frame", None, _is_int, loc, "a frame index")
    severity = _column(rows, "severity", None, lambda v: v in ("error", "warning"), loc, "'error' or 'warning'")
    return FindingCounts(np.array(frame, dtype=np.int64).reshape(-1), np.array(severity).reshape(-1) == "error")


def findings_from_rules(findings: Sequence[RuleFinding]) -> FindingCounts:
    """Rule findings from :func:`cvat_ext.rules.check_job`."""
    return FindingCounts(
        np.array([f.frame for f in findings], dtype=np.int64).reshape(-1),
        np.array([f.severity.value == "error" for f in findings], dtype=bool).reshape(-1),
    )


def read_findings(path: str | Path) -> FindingCounts:
    return findings_from_json(load_json_file(path), where=str(path))


# ----------------------------------------------------------------------------------------------
# frames


def frames_from_metas(metas: Sequence[tuple[str, JobMeta]]) -> FrameSet:
    """The frames of one or more jobs (``(name, meta)`` each; deleted frames excluded).

    A frame in two jobs is an error (give parent jobs, not their consensus replicas or GT job).
    """
    if not metas:
        raise AnnotationFormatError("no frame meta given")
    names = [name for name, _ in metas]
    if len(set(names)) != len(names):
        raise AnnotationFormatError(f"frame meta: job names repeat ({', '.join(names)})")
    parts = [np.asarray(meta.frame_indices(), dtype=np.int64) for _, meta in metas]
    frame_idx = np.concatenate(parts)
    job = np.concatenate([np.full(p.shape[0], i, dtype=np.int64) for i, p in enumerate(parts)])
    order = np.argsort(frame_idx, kind="stable")
    frame_idx, job = frame_idx[order], job[order]
    dup = np.flatnonzero(np.diff(frame_idx) == 0)
    if dup.size:
        k = int(dup[0])
        raise AnnotationFormatError(
            f"frame {int(frame_idx[k])} is in both {names[int(job[k])]!r} and {names[int(job[k + 1])]!r}"
        )
    return FrameSet(frame_idx, job, tuple(names))

