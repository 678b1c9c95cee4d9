"""Results of a consensus run (frozen dataclasses) and their JSON / CSV writers.

Similarities are IoU for areas and OKS for points/skeletons; NaN (JSON ``null``) where undefined.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_ext.annotations.model import JobAnnotations, ShapeType
from cvat_ext.errors import ConfigError

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


@dataclass(frozen=True)
class Finding:
    """One problem on one frame, with a box to pin a CVAT issue on (``xyxy`` pixels)."""

    frame: int
    kind: FindingKind
    shape_type: str
    label: str
    present: tuple[str, ...]  # annotators with a member
    missing: tuple[str, ...]  # annotators without one
    labels_by_annotator: tuple[tuple[str, str], ...]
    xyxy: tuple[float, float, float, float]
    min_similarity: float
    score: float
    kept: bool
    message: str


@dataclass(frozen=True)
class AnnotatorStats:
    """One annotator against the consensus (kept clusters)."""

    annotator: str
    objects: int
    matched: int  # objects in kept clusters
    missing: int  # kept clusters without this annotator
    extra: int  # objects in clusters below the quorum
    precision: float
    recall: float
    f1: float
    mean_iou: float  # mean similarity with the other members of its clusters
    consensus_iou: float  # mean IoU/OKS of its members against the merged object of their kept cluster
    label_accuracy: float  # share of its matched objects whose label equals the consensus label
    label_reliability: float  # Dawid–Skene prior-weighted accuracy
    geometric_reliability: float  # 1 - sqrt(noise) from the pairwise variance separation
    weight: float  # fusion weight used by the merge


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
        out: list[Finding] = []
        shape_types = [t.value for t in ShapeType]
        for k in range(self.frame.shape[0]):
            shape_type = shape_types[int(self.type_code[k])]
            members = self.labels[k]
            present = tuple(names[r] for r in range(len(names)) if members[r] >= 0)
            missing = tuple(names[r] for r in range(len(names)) if members[r] < 0)
            by_annot = tuple((names[r], label_name(int(members[r]))) for r in range(len(names)) if members[r] >= 0)
            frame = int(self.frame[k])
            label = label_name(int(self.label[k]))
            xyxy = tuple(round(float(v), 2) for v in self.xyxy[k])
            min_sim = float(self.min_similarity[k])
            for c, kind in enumerate(CLUSTER_FINDING_KINDS):
                if not self.flags[k, c]:
                    continue
                out.append(
                    Finding(
                        frame=frame,
                        kind=kind,
                        shape_type=shape_type,
                        label=label,
                        present=present,
                        missing=missing,
                        labels_by_annotator=by_annot,
                        xyxy=xyxy,  # type: ignore[arg-type]
                        min_similarity=min_sim,
                        score=float(self.score[k]),
                        kept=bool(self.kept[k]),
                        message=finding_message(kind, frame, label, shape_type, present, missing, by_annot, min_sim),
                    )
                )
        return out


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
        out = []
        for frame, row in zip(self.frame.tolist(), self.counts.tolist(), strict=True):
            clusters, kept, sim, sim_n, missing, extra, label_dis, findings, objects = row
            out.append(
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
        return tuple(out)


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
    #: skeleton label name -> OKS sigma per keypoint (sublabel order) used to match; empty when
    #: every keypoint used ``oks_sigma``
    keypoint_sigmas: Mapping[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)

    @cached_property
    def frames(self) -> tuple[FrameStats, ...]:
        return self.frame_table.materialise()

    @cached_property
    def findings(self) -> tuple[Finding, ...]:
        """All findings, sorted by frame."""
        names = self.summary.annotators
        out = [f for block in self.finding_blocks for f in block.materialise(names, self.label_name)]
        out.extend(self.extra_findings)
        out.sort(key=lambda f: f.frame)
        return tuple(out)

    @cached_property
    def merged(self) -> JobAnnotations:
        return self.merged_builder()

    @property
    def n_findings(self) -> int:
        return sum(len(b) for b in self.finding_blocks) + len(self.extra_findings)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (NaN -> None); the merged annotations are not included."""
        return {
            "summary": _plain(self.summary),
            "annotators": [_plain(a) for a in self.annotators],
            "pairs": [_plain(p) for p in self.pairs],
            "labels": [_plain(lb) for lb in self.labels],
            "keypoint_sigmas": _clean(dict(self.keypoint_sigmas)),
            "frames": [_plain(f) for f in self.frames],
            "findings": [_plain(f) for f in self.findings],
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


def write_report_json(result: ConsensusResult, path: str | Path) -> None:
    """Write :meth:`ConsensusResult.to_json` to ``path``."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result.to_json(), indent=1))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the report: {exc.strerror}") from exc


def _cell(value: Any) -> Any:
    """A CSV cell: lists joined with ';', pairs inside them with ':', None empty."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(":".join(map(str, v)) if isinstance(v, list) else str(v) for v in value)
    return value


def _write_table(path: Path, rows: Sequence[Any], row_type: type) -> None:
    names = [f.name for f in dataclasses.fields(row_type)]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in rows:
            plain = _plain(row)
            writer.writerow([_cell(plain[n]) for n in names])


def write_csv_tables(result: ConsensusResult, directory: str | Path) -> list[Path]:
    """Write ``summary.csv annotators.csv pairs.csv labels.csv frames.csv findings.csv``."""
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tables: list[tuple[str, Sequence[Any], type]] = [
            ("summary.csv", [result.summary], JobSummary),
            ("annotators.csv", result.annotators, AnnotatorStats),
            ("pairs.csv", result.pairs, PairStats),
            ("labels.csv", result.labels, LabelStats),
            ("frames.csv", result.frames, FrameStats),
            ("findings.csv", result.findings, Finding),
        ]
        paths = []
        for name, rows, row_type in tables:
            _write_table(out / name, rows, row_type)
            paths.append(out / name)
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot write CSV tables: {exc.strerror}") from exc
    return paths
