"""Qualification against gold: a pure decision over an annotator's gold checks, oldest first.

* **Pending** until the annotator's gold checks cover ``min_gold_frames`` gold frames.
* Then **qualified** when their pooled accuracy (F1 over all objects of those checks,
  :class:`~cvat_ext.workforce.gold.GoldCheck`) is at least ``bar``, and **not qualified** when it
  is below the bar *with confidence*: its upper bound, ``F1 + z·sqrt(F1·(1 - F1) / n)`` with ``n``
  the objects behind it (half of gold plus drawn) and ``z = confidence_z``, is still below the bar.
  In between, the annotator stays pending and more gold decides, until ``3 × min_gold_frames``
  gold frames, where the point estimate decides. Ten gold frames hold a few dozen objects, so an
  annotator at 0.95 would otherwise be blocked now and then by chance alone (``bench/workforce.py``
  measures it).
* A qualified annotator stays under watch: the latest checks covering ``min_gold_frames`` frames
  must not fall below the bar with the same confidence, or the annotator is not qualified.
* A not-qualified annotator re-qualifies by passing ``requalify_checks`` gold checks in a row
  (each at or above the bar).

The status is recomputed from the whole history each time, so it never depends on when the
sidecar looked, and a restart gives the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cvat_ext.workforce.gold import GoldCheck

Status = Literal["pending", "qualified", "not_qualified"]


@dataclass(frozen=True)
class QualificationPolicy:
    bar: float = 0.9
    min_gold_frames: int = 10
    requalify_checks: int = 2
    confidence_z: float = 1.645  # one-sided 95 %


def _objects(checks: Sequence[GoldCheck]) -> float:
    return sum(c.gold_objects + c.objects for c in checks) / 2.0


def surely_below(f1: float, n_objects: float, policy: QualificationPolicy) -> bool:
    """True when ``f1`` over ``n_objects`` is below the bar beyond chance (its upper bound is below)."""
    if n_objects <= 0:
        return False
    return f1 + policy.confidence_z * (f1 * (1.0 - f1) / n_objects) ** 0.5 < policy.bar


@dataclass(frozen=True)
class Standing:
    """The status, the accuracy behind it and how many gold frames it rests on; ``why`` for people."""

    status: Status
    accuracy: float | None
    gold_frames: int
    why: str


def _pooled(checks: Sequence[GoldCheck]) -> float:
    matched = sum(c.matched for c in checks)
    total = sum(c.gold_objects + c.objects for c in checks)
    return 1.0 if total == 0 else 2.0 * matched / total


def _latest_covering(checks: Sequence[GoldCheck], frames: int) -> list[GoldCheck]:
    out: list[GoldCheck] = []
    for check in reversed(checks):
        out.append(check)
        if sum(c.frames for c in out) >= frames:
            break
    return out[::-1]


def standing(checks: Sequence[GoldCheck], policy: QualificationPolicy) -> Standing:
    """The annotator's standing after ``checks`` (oldest first)."""
    status: Status = "pending"
    accuracy: float | None = None
    frames = 0
    passes_in_row = 0
    for i, check in enumerate(checks):
        seen = checks[: i + 1]
        frames = sum(c.frames for c in seen)
        passes_in_row = passes_in_row + 1 if check.frames and check.f1 >= policy.bar else 0
        if status == "pending":
            if frames >= policy.min_gold_frames:
                accuracy = _pooled(seen)
                if accuracy >= policy.bar:
                    status = "qualified"
                elif surely_below(accuracy, _objects(seen), policy) or frames >= 3 * policy.min_gold_frames:
                    status = "not_qualified"
                passes_in_row = 0
        elif status == "qualified":
            window = _latest_covering(seen, policy.min_gold_frames)
            accuracy = _pooled(window)
            if surely_below(accuracy, _objects(window), policy):
                status, passes_in_row = "not_qualified", 0
        elif passes_in_row >= policy.requalify_checks:
            status, accuracy = "qualified", _pooled(seen[-policy.requalify_checks:])
    if status == "pending" and frames >= policy.min_gold_frames:
        why = (f"accuracy {accuracy:.2f} on {frames} gold frames is below the bar {policy.bar:.2f} but not "
               "beyond chance yet: more gold decides")
    elif status == "pending":
        why = f"{frames} of {policy.min_gold_frames} gold frames so far"
    elif status == "qualified":
        why = f"accuracy {accuracy:.2f} on gold (bar {policy.bar:.2f})"
    else:
        why = (f"accuracy {accuracy:.2f} on gold is below the bar {policy.bar:.2f}; re-qualifies after "
               f"{policy.requalify_checks} gold checks in a row at or above it ({passes_in_row} so far)")
    return Standing(status, accuracy, frames, why)
