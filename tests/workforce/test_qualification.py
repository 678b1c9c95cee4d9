"""The qualification decision, as a table: checks in, standing out."""

from __future__ import annotations

import pytest

from cvat_ext.workforce.gold import GoldCheck
from cvat_ext.workforce.qualification import QualificationPolicy, standing

POLICY = QualificationPolicy(bar=0.9, min_gold_frames=10, requalify_checks=2)


def check(frames: int, f1: float, objects: int = 50) -> GoldCheck:
    """A check with ``objects`` gold objects, as many drawn, ``f1`` of them matched."""
    return GoldCheck(0, frames, objects, objects, round(f1 * objects))


@pytest.mark.parametrize(("checks", "status", "accuracy"), [
    ([], "pending", None),
    ([check(4, 0.5)], "pending", None),  # too few gold frames to decide
    ([check(4, 1.0), check(6, 0.9)], "qualified", 0.95),  # decided on the job that reaches 10 frames
    ([check(10, 0.88)], "pending", 0.88),  # below the bar, but 50 objects cannot tell 0.88 from 0.9
    ([check(10, 0.88, objects=2000)], "not_qualified", 0.88),  # 2000 objects can
    ([check(10, 0.88), check(20, 0.88)], "not_qualified", 0.88),  # at 3 x min_gold_frames the estimate decides
    ([check(12, 0.5), check(5, 1.0)], "not_qualified", 0.5),  # one pass is not enough to re-qualify
    ([check(12, 0.5), check(5, 1.0), check(5, 0.92)], "qualified", 0.96),  # two in a row
    ([check(12, 0.5), check(5, 1.0), check(5, 0.6), check(5, 1.0)], "not_qualified", 0.5),  # not in a row
    ([check(10, 1.0), check(10, 0.7)], "not_qualified", 0.7),  # a qualified annotator slips
    ([check(10, 1.0), check(4, 0.86), check(6, 0.96)], "qualified", 0.91),  # watched over the last 10 frames
    ([check(10, 1.0), check(0, 0.0, objects=0)], "qualified", 1.0),  # a job without gold changes nothing
])
def test_standing(checks: list[GoldCheck], status: str, accuracy: float | None) -> None:
    got = standing(checks, POLICY)
    assert got.status == status
    assert got.accuracy == (None if accuracy is None else pytest.approx(accuracy))
    assert got.gold_frames == sum(c.frames for c in checks)
    assert got.why  # people read it


def test_the_reason_carries_the_numbers() -> None:
    why = standing([check(10, 0.7)], POLICY).why
    assert "0.70" in why and "0.90" in why and "2 gold checks in a row" in why
    assert "not beyond chance" in standing([check(10, 0.88)], POLICY).why


@pytest.mark.parametrize(("f1", "n", "below"), [(0.5, 50, True), (0.85, 50, False), (0.85, 1000, True),
                                                (0.9, 10_000, False), (0.0, 0, False)])
def test_surely_below_is_a_one_sided_bound(f1: float, n: float, below: bool) -> None:
    from cvat_ext.workforce.qualification import surely_below

    assert surely_below(f1, n, POLICY) is below
