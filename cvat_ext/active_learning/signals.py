"""Per-frame signals for active learning, columnar over a job's frames, each value in [0, 1].

A signal answers "how informative would labeling (or re-checking) this frame be?" from one kind
of evidence. All arrays are aligned with one sorted frame universe ``frame_idx (F,)`` (task frame
indices, from the jobs' frame meta); per-object inputs are columnar ``(N,)`` arrays and are
aggregated per frame with ``bincount`` / ``maximum.at`` (no Python loop over objects).

* ``uncertainty`` (model pre-labels with scores): per detection the binary entropy of its score
  ``H(p) = -p log2 p - (1-p) log2 (1-p)`` (0 at p in {0, 1}, 1 at p = 0.5). Per frame:
  ``entropy_max``, ``entropy_mean`` and ``ambiguous_share`` (share of detections with
  ``band[0] <= score <= band[1]``); the value is their weighted mean (``mix``, default equal
  thirds). A frame without detections gets ``empty_prior`` (an empty frame may hide misses).
* ``disagreement`` (consensus replicas): ``1 - f1`` (pooled pairwise F1 on the frame),
  ``disputed_share = (missing + extra) / (kept * R + extra)`` (annotator slots of kept objects left
  empty plus objects below the quorum, over all slots; R annotators) and ``label_share =
  label_disagreements / clusters``; the value is their mean. A frame the report does not list had
  no annotation from anyone: value 0.
* ``findings`` (validation rules): ``w = errors + warning_weight * warnings`` per frame, value
  ``1 - 2 ** -w`` (one error 0.5, two 0.75; saturating, independent of other frames).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_ext.errors import ConfigError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SIGNAL_NAMES = ("uncertainty", "disagreement", "findings")


def _readonly_1d(values: npt.ArrayLike, dtype: type, what: str, n: int | None = None) -> Any:
    arr: np.ndarray = np.array(values, dtype=dtype)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = f"({n},)" if n is not None else "(N,)"
        raise ConfigError(f"{what}: expected shape {want}, got {arr.shape}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class FrameSet:
    """The frames to rank: ``frame_idx (F,)`` sorted unique task frame indices, ``job (F,)`` the
    position of each frame's job in ``job_names``."""

    frame_idx: IntArray
    job: IntArray
    job_names: tuple[str, ...] = ("job",)

    def __post_init__(self) -> None:
        frame_idx = _readonly_1d(self.frame_idx, np.int64, "frame set frame_idx")
        job = _readonly_1d(self.job, np.int64, "frame set job", frame_idx.shape[0])
        if frame_idx.size and np.any(np.diff(frame_idx) <= 0):
            raise ConfigError("frame set: frame_idx must be sorted and unique")
        if job.size and (job.min() < 0 or job.max() >= len(self.job_names)):
            raise ConfigError(f"frame set: job codes must index job_names ({len(self.job_names)} names)")
        object.__setattr__(self, "frame_idx", frame_idx)
        object.__setattr__(self, "job", job)
        object.__setattr__(self, "job_names", tuple(self.job_names))

    def __len__(self) -> int:
        return int(self.frame_idx.shape[0])

    @classmethod
    def single_job(cls, frame_idx: npt.ArrayLike, name: str = "job") -> FrameSet:
        frames = np.unique(np.asarray(frame_idx, dtype=np.int64))
        return cls(frames, np.zeros(frames.shape[0], dtype=np.int64), (name,))

    def positions(self, frame_idx: IntArray) -> tuple[IntArray, BoolArray]:
        """For task frames ``frame_idx (N,)``: their positions in this set and which are in it."""
        pos = np.searchsorted(self.frame_idx, frame_idx)
        inside = pos < self.frame_idx.shape[0]
        inside[inside] = self.frame_idx[pos[inside]] == frame_idx[inside]
        return np.where(inside, pos, 0), inside


@dataclass(frozen=True, eq=False)
class Signal:
    """One signal over a :class:`FrameSet`: ``value (F,)`` in [0, 1] plus named ``details (F,)``
    columns that explain it (counts, components)."""

    name: str
    value: FloatArray
    details: Mapping[str, FloatArray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        value = _readonly_1d(self.value, np.float64, f"signal {self.name!r}")
        if value.size and not (np.all(np.isfinite(value)) and value.min() >= 0.0 and value.max() <= 1.0):
            raise ConfigError(f"signal {self.name!r}: values must be finite and in [0, 1]")
        details = {k: _readonly_1d(v, np.float64, f"signal {self.name!r} {k}", value.shape[0])
                   for k, v in self.details.items()}
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "details", details)


# ----------------------------------------------------------------------------------------------
# model uncertainty


@dataclass(frozen=True, eq=False)
class Prelabels:
    """Model pre-labels over a job's frames, columnar: ``frame_idx (N,)`` task frames, ``score (N,)``
    in [0, 1], ``label_id (N,)``. Not :class:`cvat_ext.models.detections.Detections` (one image's
    geometry from a model): only what the uncertainty signal reads, across frames."""

    frame_idx: IntArray
    score: FloatArray
    label_id: IntArray

    def __post_init__(self) -> None:
        frame_idx = _readonly_1d(self.frame_idx, np.int64, "detections frame_idx")
        n = frame_idx.shape[0]
        score = _readonly_1d(self.score, np.float64, "detections score", n)
        label_id = _readonly_1d(self.label_id, np.int64, "detections label_id", n)
        bad = ~(np.isfinite(score) & (score >= 0.0) & (score <= 1.0))
        if np.any(bad):
            k = int(np.flatnonzero(bad)[0])
            raise ConfigError(f"detection {k} on frame {int(frame_idx[k])}: score {score[k]} is not in [0, 1]")
        object.__setattr__(self, "frame_idx", frame_idx)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "label_id", label_id)

    def __len__(self) -> int:
        return int(self.frame_idx.shape[0])

    @classmethod
    def concat(cls, parts: list[Prelabels]) -> Prelabels:
        if not parts:
            return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))
        return cls(
            np.concatenate([p.frame_idx for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.label_id for p in parts]),
        )


@dataclass(frozen=True)
class UncertaintyParams:
    """``band`` the ambiguous score interval (inclusive); ``empty_prior`` the value of a frame
    without detections; ``mix`` the weights of (entropy_max, entropy_mean, ambiguous_share)."""

    band: tuple[float, float] = (0.3, 0.7)
    empty_prior: float = 0.5
    mix: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        lo, hi = self.band
        if not 0.0 <= lo <= hi <= 1.0:
            raise ConfigError(f"ambiguous band: need 0 <= low <= high <= 1, got {lo}, {hi}")
        if not 0.0 <= self.empty_prior <= 1.0:
            raise ConfigError(f"empty prior: need a value in [0, 1], got {self.empty_prior}")
        if len(self.mix) != 3 or min(self.mix) < 0 or sum(self.mix) <= 0:
            raise ConfigError(f"uncertainty mix: need 3 non-negative weights, not all 0, got {self.mix}")


def binary_entropy(p: npt.ArrayLike) -> FloatArray:
    """Binary entropy in bits of probabilities ``p (N,)``: 0 at 0 and 1, 1 at 0.5."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    q = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log2(p), 0.0) + np.where(q > 0, q * np.log2(q), 0.0))
    return np.clip(h, 0.0, 1.0)


def uncertainty_signal(frames: FrameSet, det: Prelabels, params: UncertaintyParams | None = None) -> Signal:
    """Model uncertainty per frame from scored detections (see the module docstring).

    Pre-labels on frames outside ``frames`` are ignored (the caller may log them).
    """
    params = params or UncertaintyParams()
    n_frames = len(frames)
    pos, inside = frames.positions(det.frame_idx)
    pos = pos[inside]
    score = det.score[inside]
    entropy = binary_entropy(score)
    count = np.bincount(pos, minlength=n_frames).astype(np.float64)
    h_sum = np.bincount(pos, weights=entropy, minlength=n_frames)
    h_max = np.zeros(n_frames)
    np.maximum.at(h_max, pos, entropy)
    lo, hi = params.band
    ambiguous = np.bincount(pos, weights=((score >= lo) & (score <= hi)).astype(np.float64), minlength=n_frames)
    has = count > 0
    safe = np.where(has, count, 1.0)
    h_mean = h_sum / safe
    share = ambiguous / safe
    w = np.asarray(params.mix, dtype=np.float64) / float(sum(params.mix))
    value = np.where(has, w[0] * h_max + w[1] * h_mean + w[2] * share, params.empty_prior)
    return Signal(
        "uncertainty",
        np.clip(value, 0.0, 1.0),
        {"detections": count, "entropy_max": h_max, "entropy_mean": h_mean, "ambiguous_share": share},
    )


# ----------------------------------------------------------------------------------------------
# human disagreement


@dataclass(frozen=True, eq=False)
class ConsensusFrames:
    """Per-frame consensus tallies, columnar (M frames the consensus run saw annotations on):
    ``frame_idx, clusters, kept, f1, missing, extra, label_disagreements`` all (M,);
    ``n_annotators`` the replica count R. ``f1`` NaN where undefined."""

    frame_idx: IntArray
    clusters: FloatArray
    kept: FloatArray
    f1: FloatArray
    missing: FloatArray
    extra: FloatArray
    label_disagreements: FloatArray
    n_annotators: int

    def __post_init__(self) -> None:
        frame_idx = _readonly_1d(self.frame_idx, np.int64, "consensus frames frame_idx")
        n = frame_idx.shape[0]
        for name in ("clusters", "kept", "f1", "missing", "extra", "label_disagreements"):
            arr = _readonly_1d(getattr(self, name), np.float64, f"consensus frames {name}", n)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "frame_idx", frame_idx)
        if self.n_annotators < 2:
            raise ConfigError(f"consensus frames: need >= 2 annotators, got {self.n_annotators}")
        if np.unique(frame_idx).shape[0] != n:
            raise ConfigError("consensus frames: a frame is listed twice")

    @classmethod
    def concat(cls, parts: list[ConsensusFrames]) -> ConsensusFrames:
        """Several parent jobs' tables; frames must not repeat."""
        if len({p.n_annotators for p in parts}) > 1:
            raise ConfigError("consensus reports disagree on the number of annotators")
        cols = ("frame_idx", "clusters", "kept", "f1", "missing", "extra", "label_disagreements")
        arrays = {c: np.concatenate([getattr(p, c) for p in parts]) for c in cols}
        return cls(**arrays, n_annotators=parts[0].n_annotators)


def disagreement_signal(frames: FrameSet, table: ConsensusFrames) -> Signal:
    """Human disagreement per frame from consensus tallies (see the module docstring)."""
    n_frames = len(frames)
    pos, inside = frames.positions(table.frame_idx)
    pos = pos[inside]

    def spread(values: FloatArray, fill: float = 0.0) -> FloatArray:
        out = np.full(n_frames, fill)
        out[pos] = values[inside]
        return out

    f1 = spread(np.nan_to_num(table.f1, nan=1.0), 1.0)
    slots = table.kept * table.n_annotators + table.extra
    disputed = np.divide(table.missing + table.extra, slots, out=np.zeros_like(slots), where=slots > 0)
    labels = np.divide(
        table.label_disagreements, table.clusters, out=np.zeros_like(table.clusters), where=table.clusters > 0
    )
    disputed_share = np.clip(spread(disputed), 0.0, 1.0)
    label_share = np.clip(spread(labels), 0.0, 1.0)
    one_minus_f1 = np.clip(1.0 - f1, 0.0, 1.0)
    value = (one_minus_f1 + disputed_share + label_share) / 3.0
    return Signal(
        "disagreement",
        value,
        {
            "one_minus_f1": one_minus_f1,
            "disputed_share": disputed_share,
            "label_share": label_share,
            "missing": spread(table.missing),
            "extra": spread(table.extra),
        },
    )


# ----------------------------------------------------------------------------------------------
# rule findings


@dataclass(frozen=True, eq=False)
class FindingCounts:
    """Rule findings, columnar: ``frame_idx (N,)`` and ``is_error (N,)`` (else a warning)."""

    frame_idx: IntArray
    is_error: BoolArray

    def __post_init__(self) -> None:
        frame_idx = _readonly_1d(self.frame_idx, np.int64, "findings frame_idx")
        is_error = _readonly_1d(self.is_error, np.bool_, "findings is_error", frame_idx.shape[0])
        object.__setattr__(self, "frame_idx", frame_idx)
        object.__setattr__(self, "is_error", is_error)

    @classmethod
    def concat(cls, parts: list[FindingCounts]) -> FindingCounts:
        return cls(
            np.concatenate([p.frame_idx for p in parts]) if parts else np.zeros(0, np.int64),
            np.concatenate([p.is_error for p in parts]) if parts else np.zeros(0, bool),
        )


def findings_signal(frames: FrameSet, findings: FindingCounts, *, warning_weight: float = 0.5) -> Signal:
    """Rule findings per frame: ``1 - 2 ** -(errors + warning_weight * warnings)``."""
    if not warning_weight >= 0.0:  # also rejects NaN
        raise ConfigError(f"warning weight: need >= 0, got {warning_weight}")
    n_frames = len(frames)
    pos, inside = frames.positions(findings.frame_idx)
    pos = pos[inside]
    is_error = findings.is_error[inside]
    errors = np.bincount(pos, weights=is_error.astype(np.float64), minlength=n_frames).astype(np.float64)
    warnings = np.bincount(pos, weights=(~is_error).astype(np.float64), minlength=n_frames).astype(np.float64)
    value = 1.0 - np.exp2(-(errors + warning_weight * warnings))
    return Signal("findings", value, {"errors": errors, "warnings": warnings})
