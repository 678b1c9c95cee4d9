"""Results of a consensus run (frozen dataclasses) and their JSON / CSV writers.

Similarities are IoU for areas and OKS for points/skeletons; NaN (JSON ``null``) where undefined.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import JobAnnotations, Shape, ShapeType, Tag
from cvat_ext.consensus.report_text import JsonArray
from cvat_ext.errors import ConfigError
from cvat_ext.qa.findings import Finding, Severity, Source, Votes

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class FindingKind(StrEnum):
    MISSING = "missing"  # a kept object some annotators did not draw
    EXTRA = "extra"  # an object drawn by fewer annotators than the quorum (dropped from the merge)
    LABEL_DISAGREEMENT = "label_disagreement"  # matched geometry, different labels
    ATTRIBUTE_DISAGREEMENT = "attribute_disagreement"  # same label, different attribute values
    LOW_OVERLAP = "low_overlap"  # matched, but some pair below ``low_overlap_thr``
    TAG_DISAGREEMENT = "tag_disagreement"  # a frame tag not given by every annotator


#: issue severity of each kind: what the merge got wrong or may have (errors), what a reviewer may
#: want to look at (warnings)
KIND_SEVERITY: Mapping[FindingKind, Severity] = {
    FindingKind.MISSING: Severity.ERROR,
    FindingKind.EXTRA: Severity.ERROR,
    FindingKind.LABEL_DISAGREEMENT: Severity.ERROR,
    FindingKind.ATTRIBUTE_DISAGREEMENT: Severity.WARNING,
    FindingKind.LOW_OVERLAP: Severity.WARNING,
    FindingKind.TAG_DISAGREEMENT: Severity.WARNING,
}

#: the columns of a consensus finding in the report (JSON ``findings`` and ``findings.csv``)
FINDING_COLUMNS = (
    "frame",
    "kind",
    "shape_type",
    "label",
    "present",
    "missing",
    "labels_by_annotator",
    "xyxy",
    "min_similarity",
    "score",
    "kept",
    "message",
)


def consensus_finding(
    kind: FindingKind, frame: int, label: str, xyxy: tuple[float, float, float, float], votes: Votes
) -> Finding:
    """A consensus :class:`Finding` (``code`` = ``kind``) on one cluster; its message names the annotators."""
    v = votes
    by_annot = v.labels_by_annotator
    message = finding_message(kind, frame, label, v.shape_type, v.present, v.missing, by_annot, v.min_similarity)
    return Finding(
        source=Source.CONSENSUS,
        code=kind,
        severity=KIND_SEVERITY[kind],
        frame=frame,
        xyxy=xyxy,
        message=message,
        label=label,
        votes=votes,
    )


def finding_record(f: Finding) -> dict[str, Any]:
    """The report row of a consensus finding, keyed by :data:`FINDING_COLUMNS`."""
    v = f.votes
    assert v is not None, "a consensus finding carries its votes"
    return {
        "frame": f.frame,
        "kind": f.code,
        "shape_type": v.shape_type,
        "label": f.label,
        "present": v.present,
        "missing": v.missing,
        "labels_by_annotator": v.labels_by_annotator,
        "xyxy": f.xyxy,
        "min_similarity": v.min_similarity,
        "score": v.score,
        "kept": v.kept,
        "message": f.message,
    }


@dataclass(frozen=True)
class AnnotatorStats:
    """One annotator: against the consensus (``vs_consensus_*``, kept clusters: agreement, not
    accuracy) and, in ``truth_estimate``, against the latent truth as the annotator model estimates
    it (:mod:`cvat_ext.consensus.annotator_model`)."""

    annotator: str
    objects: int
    matched: int  # objects in kept clusters
    missing: int  # kept clusters without this annotator
    extra: int  # objects in clusters below the quorum
    vs_consensus_precision: float
    vs_consensus_recall: float
    vs_consensus_f1: float
    vs_consensus_mean_iou: float  # mean similarity with the other members of its clusters
    vs_consensus_iou: float  # mean IoU/OKS of its members against the merged object of their kept cluster
    vs_consensus_label_accuracy: float  # share of its matched objects whose label equals the consensus label
    label_reliability: float  # Dawid–Skene prior-weighted accuracy
    geometric_reliability: float  # 1 - sqrt(noise) from the pairwise variance separation
    weight: float  # fusion weight used by the merge
    #: estimated precision / recall / f1 / mean_iou / label_accuracy against the latent truth at the
    #: job's match threshold, ``se`` (a standard error each) and ``gt_objects``
    truth_estimate: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: the annotator's fitted parameters (a prior for later jobs)
    model: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _pm(est: Mapping[str, Any], metric: str) -> str:
    value, se = est.get(metric), (est.get("se") or {}).get(metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if se is None or (isinstance(se, float) and math.isnan(se)):
        return f"{value:.2f}"
    return f"{value:.2f} ± {se:.2f}"


def annotator_line(a: AnnotatorStats) -> str:
    """One line about an annotator for a person: the truth estimate ± its standard error, then the
    agreement with the consensus (named so, never taken for accuracy)."""
    est = a.truth_estimate
    head = ""
    if est:
        gt = f" ({est.get('gt_objects', 0)} GT objects)" if est.get("gt_objects") else ""
        head = (
            f"estimated F1 {_pm(est, 'f1')}, mean IoU {_pm(est, 'mean_iou')}, "
            f"label accuracy {_pm(est, 'label_accuracy')}{gt}; "
        )
    return (
        f"{head}vs consensus F1 {a.vs_consensus_f1:.3f}, mean IoU {a.vs_consensus_mean_iou:.3f}, "
        f"label acc {a.vs_consensus_label_accuracy:.3f}, weight {a.weight:.2f}"
    )


#: the truth-estimate metrics (``AnnotatorStats.truth_estimate``)
TRUTH_METRICS = ("precision", "recall", "f1", "mean_iou", "label_accuracy")
#: ``annotators.csv`` columns: the scalar fields, then the truth estimate flattened, then the model
ANNOTATOR_CSV_COLUMNS = (
    *(f.name for f in dataclasses.fields(AnnotatorStats) if f.name not in ("truth_estimate", "model")),
    *(f"truth_{m}" for m in TRUTH_METRICS),
    *(f"truth_{m}_se" for m in TRUTH_METRICS),
    "gt_objects",
    "model",
)


def annotator_csv_row(a: AnnotatorStats) -> dict[str, Any]:
    """The ``annotators.csv`` row of ``a`` (:data:`ANNOTATOR_CSV_COLUMNS`; the model as JSON)."""
    row = _plain(a)
    est = row.pop("truth_estimate") or {}
    se = est.get("se") or {}
    for m in TRUTH_METRICS:
        row[f"truth_{m}"] = est.get(m)
        row[f"truth_{m}_se"] = se.get(m)
    row["gt_objects"] = est.get("gt_objects")
    row["model"] = json.dumps(row.pop("model") or {}, sort_keys=True)
    return row


@dataclass(frozen=True)
class PairStats:
    """Two annotators against each other (pairwise optimal matching)."""

    a: str
    b: str
    objects_a: int
    objects_b: int
    matched: int
    f1: float  # 2 * matched / (objects_a + objects_b)
    mean_iou: float


@dataclass(frozen=True)
class LabelStats:
    """Clusters grouped by their consensus label."""

    label: str
    clusters: int
    kept: int
    mean_iou: float
    missing: int
    extra: int
    label_disagreements: int
    attribute_disagreements: int
    alpha: float  # nominal alpha (localise-then-label) over this label's clusters


@dataclass(frozen=True)
class FrameStats:
    frame: int
    clusters: int
    kept: int
    mean_iou: float
    f1: float  # pooled pairwise F1 on the frame
    missing: int
    extra: int
    label_disagreements: int
    findings: int


@dataclass(frozen=True)
class JobSummary:
    frames: int  # frames with at least one annotation
    annotators: tuple[str, ...]
    clusters: int
    kept: int
    mean_iou: float  # mean similarity over all matched pairs
    f1: float  # pooled pairwise F1
    alpha_lol: float  # nominal alpha, localise-then-label ("not annotated" is a value)
    alpha_label: float  # nominal alpha on labels of localised objects only
    missing: int
    extra: int
    label_disagreements: int
    attribute_disagreements: int
    low_overlap: int
    quorum: str  # "auto" (existence model) or the annotator count
    iou_thr: float
    method: str


#: finding kinds in the column order of :attr:`FindingBlock.flags`
CLUSTER_FINDING_KINDS: tuple[FindingKind, ...] = (
    FindingKind.MISSING,
    FindingKind.EXTRA,
    FindingKind.LABEL_DISAGREEMENT,
    FindingKind.ATTRIBUTE_DISAGREEMENT,
    FindingKind.LOW_OVERLAP,
)


@dataclass(frozen=True, eq=False)
class FindingBlock:
    """Findings of one match group in one chunk, columnar (K flagged clusters, R annotators).

    ``flags (K, 5)`` one column per :data:`CLUSTER_FINDING_KINDS`; ``labels (K, R)`` member label
    ids (-1 absent); ``label (K,)`` consensus label; ``xyxy (K, 4)`` union of the members' extents.
    """

    frame: IntArray
    type_code: IntArray  # (K,) position in ``tuple(ShapeType)`` of the first member's type
    label: IntArray
    labels: IntArray
    xyxy: FloatArray
    min_similarity: FloatArray
    score: FloatArray
    kept: BoolArray
    flags: BoolArray

    def __len__(self) -> int:
        return int(self.flags.sum())

    def materialise(self, names: Sequence[str], label_name: Callable[[int], str]) -> list[Finding]:
        return list(self.iter_findings(names, label_name))

    def iter_findings(self, names: Sequence[str], label_name: Callable[[int], str]) -> Iterator[Finding]:
        """The block's findings as objects, one cluster at a time (in frame order)."""
        for k in range(self.frame.shape[0]):
            for c in np.flatnonzero(self.flags[k]).tolist():
                yield self.finding(k, c, names, label_name)

    def finding(self, k: int, c: int, names: Sequence[str], label_name: Callable[[int], str]) -> Finding:
        """The finding of kind ``CLUSTER_FINDING_KINDS[c]`` on flagged cluster ``k``, as an object."""
        members = self.labels[k]
        present = tuple(names[r] for r in range(len(names)) if members[r] >= 0)
        missing = tuple(names[r] for r in range(len(names)) if members[r] < 0)
        by_annot = tuple((names[r], label_name(int(members[r]))) for r in range(len(names)) if members[r] >= 0)
        x0, y0, x1, y1 = (round(float(v), 2) for v in self.xyxy[k])
        shape_type = _SHAPE_TYPE_NAMES[int(self.type_code[k])]
        votes = Votes(
            shape_type,
            present,
            missing,
            by_annot,
            float(self.min_similarity[k]),
            float(self.score[k]),
            bool(self.kept[k]),
        )
        return consensus_finding(
            CLUSTER_FINDING_KINDS[c],
            int(self.frame[k]),
            label_name(int(self.label[k])),
            (x0, y0, x1, y1),
            votes,
        )


_SHAPE_TYPE_NAMES: tuple[str, ...] = tuple(t.value for t in ShapeType)


def finding_message(
    kind: FindingKind,
    frame: int,
    label: str,
    shape_type: str,
    present: tuple[str, ...],
    missing: tuple[str, ...],
    by_annot: tuple[tuple[str, str], ...],
    min_sim: float,
) -> str:
    """One line for a CVAT issue comment."""
    head = f"frame {frame}: {label} {shape_type}"
    if kind is FindingKind.MISSING:
        return f"{head} drawn by {', '.join(present)}; missing from {', '.join(missing)}"
    if kind is FindingKind.EXTRA:
        return f"{head} drawn only by {', '.join(present)} (below quorum, not merged)"
    if kind is FindingKind.LABEL_DISAGREEMENT:
        return f"{head}: labels disagree (" + ", ".join(f"{a}: {lb}" for a, lb in by_annot) + ")"
    if kind is FindingKind.ATTRIBUTE_DISAGREEMENT:
        return f"{head}: attribute values disagree between {', '.join(present)}"
    if kind is FindingKind.TAG_DISAGREEMENT:
        return f"frame {frame}: tag {label!r} given by {', '.join(present)}; not by {', '.join(missing)}"
    return f"{head}: low overlap between annotators (min similarity {min_sim:.2f})"


@dataclass(frozen=True, eq=False)
class FrameTable:
    """Per-frame tallies, columnar: ``frame (F,)`` and ``counts (F, len(FRAME_COLUMNS))``."""

    frame: IntArray
    counts: FloatArray
    n_annotators: int

    def materialise(self) -> tuple[FrameStats, ...]:
        return tuple(self.iter_rows())

    def iter_rows(self, block: int = 4096) -> Iterator[FrameStats]:
        """Rows as objects, ``block`` frames converted at a time."""
        for lo in range(0, self.frame.shape[0], block):
            yield from self._rows(slice(lo, lo + block))

    def _rows(self, part: slice) -> Iterator[FrameStats]:
        for frame, row in zip(self.frame[part].tolist(), self.counts[part].tolist(), strict=True):
            clusters, kept, sim, sim_n, missing, extra, label_dis, findings, objects = row
            yield (
                FrameStats(
                    frame=frame,
                    clusters=int(clusters),
                    kept=int(kept),
                    mean_iou=sim / sim_n if sim_n else float("nan"),
                    f1=2 * sim_n / ((self.n_annotators - 1) * objects) if objects else float("nan"),
                    missing=int(missing),
                    extra=int(extra),
                    label_disagreements=int(label_dis),
                    findings=int(findings),
                )
            )


#: columns of :attr:`FrameTable.counts`
FRAME_COLUMNS = ("clusters", "kept", "sim_sum", "sim_n", "missing", "extra", "label_dis", "findings", "objects")


@dataclass(frozen=True, eq=False)
class ConsensusResult:
    """Everything a consensus run produces.

    ``frames``, ``findings`` and ``merged`` are built on first access from columnar tables (a long
    job's per-frame rows and merged objects cost more to build as Python objects than to compute).
    ``merged`` is ready for ``cvat_json.dump_job_annotations`` and a PUT to the parent job.
    """

    summary: JobSummary
    annotators: tuple[AnnotatorStats, ...]
    pairs: tuple[PairStats, ...]
    labels: tuple[LabelStats, ...]
    frame_table: FrameTable
    finding_blocks: tuple[FindingBlock, ...]
    extra_findings: tuple[Finding, ...]  # tag findings
    label_name: Callable[[int], str]
    merged_builder: Callable[[], JobAnnotations]
    #: the merged annotations, chunk by chunk, for writing them without building them all:
    #: returns the merged tags and an iterator over each chunk's shapes (sorted by frame)
    merged_stream: Callable[[], tuple[tuple[Tag, ...], Iterator[list[Shape]]]] | None = None
    #: the same, columnar: the merged tags and per chunk its parts, each a
    #: :class:`~cvat_ext.consensus.fuse.MergedColumns` or a list of shapes (for the columnar writer)
    merged_parts: Callable[[], tuple[tuple[Tag, ...], Iterator[Sequence[Any]]]] | None = None
    #: skeleton label name -> OKS sigma per keypoint (sublabel order) used to match; empty when
    #: every keypoint used ``oks_sigma``
    keypoint_sigmas: Mapping[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    #: with ground truth: ``{"frames", "objects", "model_error": {annotator: {metric: estimate -
    #: GT-measured}}}`` (the annotator model's own error on the GT frames); None without
    ground_truth: Mapping[str, Any] | None = None

    @cached_property
    def frames(self) -> tuple[FrameStats, ...]:
        return self.frame_table.materialise()

    @cached_property
    def findings(self) -> tuple[Finding, ...]:
        """All findings, sorted by frame."""
        return tuple(self.iter_findings())

    def iter_findings(self) -> Iterator[Finding]:
        """All findings sorted by frame (stable: in block order, tag findings last), built lazily
        block by block: every block and the tag findings are already in frame order."""
        names = self.summary.annotators
        streams = [block.iter_findings(names, self.label_name) for block in self.finding_blocks]
        return heapq.merge(*streams, iter(self.extra_findings), key=lambda f: f.frame)

    def iter_frames(self) -> Iterator[FrameStats]:
        """Per-frame rows, built lazily."""
        if "frames" in self.__dict__:
            return iter(self.frames)
        return self.frame_table.iter_rows()

    @cached_property
    def merged(self) -> JobAnnotations:
        return self.merged_builder()

    @property
    def n_findings(self) -> int:
        return sum(len(b) for b in self.finding_blocks) + len(self.extra_findings)

    def head_json(self) -> dict[str, Any]:
        """The report's small sections (everything but ``frames`` and ``findings``), in order."""
        head = {
            "summary": _plain(self.summary),
            "annotators": [_plain(a) for a in self.annotators],
            "pairs": [_plain(p) for p in self.pairs],
            "labels": [_plain(lb) for lb in self.labels],
            "keypoint_sigmas": _clean(dict(self.keypoint_sigmas)),
        }
        if self.ground_truth is not None:
            head["ground_truth"] = _clean(dict(self.ground_truth))
        return head

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (NaN -> None); the merged annotations are not included."""
        return {
            **self.head_json(),
            "frames": [_plain(f) for f in self.frames],
            "findings": [_clean(finding_record(f)) for f in self.findings],
        }


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple | list):
        return [_clean(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: _clean(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _json_array(fh: TextIO, rows: Iterable[Any]) -> None:
    """A JSON array of ``rows`` (each through ``json.dumps``) written one element a line."""
    array = JsonArray(fh)
    for row in rows:
        array.extend((json.dumps(row),))
    array.close()


def write_report_json(result: ConsensusResult, path: str | Path) -> None:
    """Write the report (:meth:`ConsensusResult.to_json`) to ``path``, streaming the per-frame rows
    and findings (built a block at a time, never all at once)."""
    head = result.head_json()
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with Path(path).open("w") as fh:
            fh.write("{\n")
            for key, value in head.items():
                fh.write(f" {json.dumps(key)}: {json.dumps(value)},\n")
            fh.write(' "frames": ')
            _json_array(fh, (_plain(f) for f in result.iter_frames()))
            fh.write(',\n "findings": ')
            _json_array(fh, (_clean(finding_record(f)) for f in result.iter_findings()))
            fh.write("\n}\n")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the report: {exc.strerror}") from exc


def write_merged_json(result: ConsensusResult, path: str | Path) -> None:
    """Write the merged annotations as CVAT ``LabeledData`` JSON (what ``dump_job_annotations``
    gives), a chunk of shapes at a time when the result can stream them."""
    from cvat_ext.annotations.cvat_json import dump_job_annotations, dump_shape

    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with Path(path).open("w") as fh:
            if result.merged_stream is None:
                fh.write(json.dumps(dump_job_annotations(result.merged)))
                return
            tags, chunks = result.merged_stream()
            write_labeled_data(fh, tags, lambda: _json_array(fh, (dump_shape(sh) for part in chunks for sh in part)))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the merged annotations: {exc.strerror}") from exc


def write_labeled_data(fh: TextIO, tags: tuple[Tag, ...], write_shapes: Callable[[], None]) -> None:
    """A CVAT ``LabeledData`` body with ``tags`` whose ``shapes`` array ``write_shapes`` writes
    (key order and separators as ``json.dumps(dump_job_annotations(...))``)."""
    from cvat_ext.annotations.cvat_json import dump_job_annotations

    body = dump_job_annotations(JobAnnotations(tags=tags))
    fh.write("{")
    for key, value in body.items():
        if key != "version":
            fh.write(", ")
        fh.write(f"{json.dumps(key)}: ")
        if key == "shapes":
            write_shapes()
        else:
            fh.write(json.dumps(value))
    fh.write("}\n")


def _cell(value: Any) -> Any:
    """A CSV cell: lists joined with ';', pairs inside them with ':', None empty."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(":".join(map(str, v)) if isinstance(v, list) else str(v) for v in value)
    return value


def _write_table(path: Path, rows: Iterable[Mapping[str, Any]], names: Sequence[str]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for plain in rows:
            writer.writerow([_cell(plain[n]) for n in names])


def _dataclass_table(rows: Iterable[Any], row_type: type) -> tuple[Iterable[Mapping[str, Any]], Sequence[str]]:
    if row_type is AnnotatorStats:
        return (annotator_csv_row(r) for r in rows), ANNOTATOR_CSV_COLUMNS
    return (_plain(r) for r in rows), [f.name for f in dataclasses.fields(row_type)]


def write_csv_tables(result: ConsensusResult, directory: str | Path) -> list[Path]:
    """Write ``summary.csv annotators.csv pairs.csv labels.csv frames.csv findings.csv``."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tables: list[tuple[str, tuple[Iterable[Mapping[str, Any]], Sequence[str]]]] = [
            ("summary.csv", _dataclass_table([result.summary], JobSummary)),
            ("annotators.csv", _dataclass_table(result.annotators, AnnotatorStats)),
            ("pairs.csv", _dataclass_table(result.pairs, PairStats)),
            ("labels.csv", _dataclass_table(result.labels, LabelStats)),
            ("frames.csv", _dataclass_table(result.iter_frames(), FrameStats)),
            ("findings.csv", ((_clean(finding_record(f)) for f in result.iter_findings()), FINDING_COLUMNS)),
        ]
        paths = []
        for name, (rows, names) in tables:
            _write_table(out / name, rows, names)
            paths.append(out / name)
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot write CSV tables: {exc.strerror}") from exc
    return paths
