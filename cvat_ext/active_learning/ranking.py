"""Rank frames by a weighted combination of signals, with temporal diversity for video.

``score = sum(w_s * value_s) / sum(w_s)`` over the signals supplied (so it stays in [0, 1]); a
weight for a signal that was not supplied is ignored. Frames are ordered by score, highest first,
ties by lower task frame index (the sort key rounds scores to 1e-12 so that float noise does not
decide a tie). Selection then walks that order greedily:

* **temporal NMS** (``nms_window = N > 0``): a picked frame suppresses every frame within ``N``
  task frames of it (``|f - g| <= N``), so the top K of a video are not K consecutive frames;
* **per-job cap**: at most ``per_job_cap`` picks per job (spreads expert work over jobs);
* **top K**: stop after ``top_k`` picks (``None``: every frame that survives).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from cvat_ext.active_learning.signals import SIGNAL_NAMES, FrameSet, Signal
from cvat_ext.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: default weights: model uncertainty and human disagreement count alike, rule findings half
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType({"uncertainty": 1.0, "disagreement": 1.0, "findings": 0.5})


def parse_weights(text: str, *, base: Mapping[str, float] = DEFAULT_WEIGHTS) -> dict[str, float]:
    """``"uncertainty=1,disagreement=2"`` -> weights; names not given keep ``base``'s value.

    Raises :class:`ConfigError` naming the bad item: unknown signal, not a number, negative,
    repeated, or every weight 0.
    """
    weights = dict(base)
    seen: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, eq, raw = (s.strip() for s in item.partition("="))
        if not eq or not name:
            raise ConfigError(f"--weights: expected NAME=NUMBER, got {item!r}")
        if name not in SIGNAL_NAMES:
            raise ConfigError(f"--weights: unknown signal {name!r}, expected one of {', '.join(SIGNAL_NAMES)}")
        if name in seen:
            raise ConfigError(f"--weights: {name!r} given twice")
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"--weights: {name}={raw!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"--weights: {name}={raw} must be a finite number >= 0")
        seen.add(name)
        weights[name] = value
    if not any(v > 0 for v in weights.values()):
        raise ConfigError("--weights: every weight is 0, nothing to rank by")
    return weights


@dataclass(frozen=True)
class RankParams:
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    top_k: int | None = 20
    nms_window: int = 0
    per_job_cap: int | None = None

    def __post_init__(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise ConfigError(f"top K: need >= 1, got {self.top_k}")
        if self.nms_window < 0:
            raise ConfigError(f"NMS window: need >= 0 frames, got {self.nms_window}")
        if self.per_job_cap is not None and self.per_job_cap < 1:
            raise ConfigError(f"per-job cap: need >= 1, got {self.per_job_cap}")
        for name, w in self.weights.items():
            if name not in SIGNAL_NAMES or not math.isfinite(w) or w < 0:
                raise ConfigError(f"weight {name}={w}: need a known signal and a finite weight >= 0")


@dataclass(frozen=True)
class RankedFrame:
    """One picked frame and why: ``signals`` the signal values, ``contributions`` each signal's
    share of ``score`` (``w * value / sum(w)``, they sum to ``score``), ``details`` the numbers
    behind the signals (``uncertainty.detections``, ``disagreement.missing``, ...)."""

    rank: int  # 1-based
    frame: int  # task frame index
    job: str
    score: float
    signals: tuple[tuple[str, float], ...]
    contributions: tuple[tuple[str, float], ...]
    details: tuple[tuple[str, float], ...]

    @property
    def top_signal(self) -> str:
        """The signal that contributes most (first in ``SIGNAL_NAMES`` order on a tie); "" if none."""
        best = max(self.contributions, key=lambda kv: kv[1], default=("", 0.0))
        return best[0] if best[1] > 0 else ""

    def why(self) -> str:
        """One line: the contributions, largest first, with the key numbers behind them."""
        d = dict(self.details)
        parts = []
        for name, share in sorted(self.contributions, key=lambda kv: -kv[1]):
            if share <= 0:
                continue
            value = dict(self.signals)[name]
            if name == "uncertainty":
                n = int(d.get("uncertainty.detections", 0))
                extra = (
                    f"{n} det, max H {d.get('uncertainty.entropy_max', 0):.2f}, "
                    f"ambiguous {d.get('uncertainty.ambiguous_share', 0):.0%}"
                    if n
                    else "no detections"
                )
            elif name == "disagreement":
                extra = (
                    f"1-F1 {d.get('disagreement.one_minus_f1', 0):.2f}, "
                    f"missing {int(d.get('disagreement.missing', 0))}, extra {int(d.get('disagreement.extra', 0))}"
                )
            else:
                extra = f"{int(d.get('findings.errors', 0))} errors, {int(d.get('findings.warnings', 0))} warnings"
            parts.append(f"{name} {value:.2f} ({extra})")
        return "; ".join(parts) or "nothing"


@dataclass(frozen=True, eq=False)
class Ranking:
    """The result: ``score (F,)`` for every frame of ``frames``, ``order (F,)`` positions by score
    (before selection), and the selected frames in ``picked``."""

    frames: FrameSet
    score: FloatArray
    order: IntArray
    picked: tuple[RankedFrame, ...]
    weights: Mapping[str, float]
    signals: tuple[str, ...]
    params: RankParams

    @property
    def frame_indices(self) -> list[int]:
        """Task frame indices of the picked frames, best first (what a GT job is built from)."""
        return [p.frame for p in self.picked]


def combine(frames: FrameSet, signals: Sequence[Signal], weights: Mapping[str, float]) -> tuple[FloatArray, FloatArray]:
    """``score (F,)`` and per-signal contributions ``(S, F)`` (they sum to ``score``)."""
    n = len(frames)
    names = [s.name for s in signals]
    if len(set(names)) != len(names):
        raise ConfigError(f"signals: a signal is given twice ({', '.join(names)})")
    for s in signals:
        if s.value.shape[0] != n:
            raise ConfigError(f"signal {s.name!r}: {s.value.shape[0]} values for {n} frames")
    w = np.array([float(weights.get(s.name, 0.0)) for s in signals])
    if not signals or w.sum() <= 0:
        given = ", ".join(names) or "none"
        raise ConfigError(f"nothing to rank by: every supplied signal ({given}) has weight 0")
    values = np.stack([s.value for s in signals]) if signals else np.zeros((0, n))
    contributions = values * (w / w.sum())[:, None]
    return contributions.sum(axis=0), contributions


def _select(frames: FrameSet, order: IntArray, params: RankParams) -> list[int]:
    """Greedy walk over ``order`` (positions) applying NMS, the per-job cap and top K."""
    limit = params.top_k if params.top_k is not None else len(frames)
    if params.nms_window == 0 and params.per_job_cap is None:
        return order[:limit].tolist()
    frame_idx = frames.frame_idx
    lo = int(frame_idx[0]) if len(frames) else 0
    span = int(frame_idx[-1]) - lo + 1 if len(frames) else 0
    window = params.nms_window
    blocked = bytearray(span)  # 1 where a picked frame is within the window
    cap = params.per_job_cap
    per_job = [0] * len(frames.job_names)
    jobs = frames.job.tolist()
    offsets = (frame_idx - lo).tolist()
    picked: list[int] = []
    for pos in order.tolist():
        if len(picked) >= limit:
            break
        off = offsets[pos]
        if blocked[off]:
            continue
        job = jobs[pos]
        if cap is not None and per_job[job] >= cap:
            continue
        picked.append(pos)
        per_job[job] += 1
        if window:
            start, stop = max(0, off - window), min(span, off + window + 1)
            blocked[start:stop] = b"\x01" * (stop - start)
    return picked


def rank_frames(frames: FrameSet, signals: Sequence[Signal], params: RankParams | None = None) -> Ranking:
    """Score every frame, order them and pick the top K with NMS and the per-job cap.

    ``signals`` are aligned with ``frames`` (one per kind at most). Only the picked frames become
    :class:`RankedFrame` objects, so ranking a 100,000-frame job for a top 50 stays cheap.
    """
    params = params or RankParams()
    score, contributions = combine(frames, signals, params.weights)
    # lexsort: last key is primary -> score descending, then frame index ascending
    order = np.lexsort((frames.frame_idx, -np.round(score, 12))).astype(np.int64)
    positions = _select(frames, order, params)
    names = tuple(s.name for s in signals)
    picked = []
    for rank, pos in enumerate(positions, start=1):
        details = tuple(
            (f"{s.name}.{key}", float(col[pos])) for s in signals for key, col in s.details.items()
        )
        picked.append(
            RankedFrame(
                rank=rank,
                frame=int(frames.frame_idx[pos]),
                job=frames.job_names[int(frames.job[pos])],
                score=float(score[pos]),
                signals=tuple((s.name, float(s.value[pos])) for s in signals),
                contributions=tuple((name, float(contributions[i, pos])) for i, name in enumerate(names)),
                details=details,
            )
        )
    score.setflags(write=False)
    order.setflags(write=False)
    return Ranking(
        frames=frames,
        score=score,
        order=order,
        picked=tuple(picked),
        weights=dict(params.weights),
        signals=names,
        params=params,
    )
