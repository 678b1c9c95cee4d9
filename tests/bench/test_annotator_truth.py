"""bench/annotator_truth.truth_scores on hand-made cases whose answer is known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from cvat_ext.annotations.model import JobAnnotations, MaskRle, Shape, ShapeType

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from annotator_truth import params_for, truth_scores
from consensus_generator import KEYPOINTS, SKELETON_ID, make_meta

from cvat_ext.consensus.settings import ConsensusSettings

CAR, SIGN = 1, 3


def _box(xyxy: list[float], label: int = CAR, frame: int = 0) -> Shape:
    return Shape(type=ShapeType.RECTANGLE, frame=frame, label_id=label, points=np.asarray(xyxy, dtype=np.float64))


def _job(*shapes: Shape) -> JobAnnotations:
    return JobAnnotations(shapes=tuple(shapes))


@pytest.mark.parametrize(
    ("pred", "matched", "iou"),
    [
        ([0, 0, 10, 20], 1, 0.5),  # IoU exactly 0.5 matches (>=)
        ([0, 0, 10, 25], 0, float("nan")),  # IoU 0.4: a miss and an extra
        ([1, 0, 11, 10], 1, 90 / 110),
    ],
)
def test_known_iou(pred: list[float], matched: int, iou: float) -> None:
    s = truth_scores(_job(_box(pred)), _job(_box([0, 0, 10, 10])))
    assert s.matched == matched and s.drawn == 1 and s.truth == 1
    assert s.f1 == matched and s.precision == matched and s.recall == matched
    np.testing.assert_allclose(s.mean_iou, iou)


def test_a_miss_an_extra_and_a_wrong_label() -> None:
    truth = _job(
        _box([0, 0, 10, 10]), _box([50, 50, 70, 70], SIGN), _box([100, 0, 120, 20]), _box([0, 0, 10, 10], frame=1)
    )
    pred = _job(
        _box([0, 0, 10, 10]),
        _box([50, 50, 70, 70], CAR),  # the sign, labelled car
        _box([300, 300, 310, 310]),  # an extra; [100, 0, 120, 20] is missed
        _box([0, 0, 10, 10], frame=1),
    )
    s = truth_scores(pred, truth)
    assert (s.matched, s.drawn, s.truth) == (3, 4, 4)
    assert s.precision == s.recall == s.f1 == 0.75
    assert s.mean_iou == 1.0
    assert s.label_accuracy == pytest.approx(2 / 3)
    # per truth object, frame by frame: the missed one is NaN
    np.testing.assert_array_equal(s.truth_iou, [1.0, 1.0, np.nan, 1.0])
    # a frame subset (a GT job's frames) sees only its frames
    on_frame_1 = truth_scores(pred, truth, frames=[1])
    assert (on_frame_1.matched, on_frame_1.drawn, on_frame_1.truth) == (1, 1, 1)


def test_matching_is_optimal_not_greedy() -> None:
    # p1 overlaps A best (IoU 0.9) but also B (0.74); p2 overlaps A (0.6) and B too little (0.4):
    # greedy takes p1-A and leaves p2 and B unmatched; the optimal matching pairs p1-B and p2-A
    a, b = [0, 0, 100, 100], [0, 0, 100, 150]
    p1 = [0, 0, 100, 100 / 0.9]
    p2 = [0, 40, 100, 100]
    s = truth_scores(_job(_box(p1), _box(p2)), _job(_box(a), _box(b)))
    assert s.matched == 2
    assert s.mean_iou == pytest.approx(((100 / 0.9) / 150 + 0.6) / 2)


def test_empty_sides() -> None:
    empty = _job()
    assert truth_scores(empty, _job(_box([0, 0, 5, 5]))).recall == 0.0
    s = truth_scores(_job(_box([0, 0, 5, 5])), empty)
    assert (s.precision, s.matched, s.drawn) == (0.0, 0, 1)
    assert np.isnan(s.mean_iou)


def test_masks_use_pixel_iou() -> None:
    full = np.ones((10, 10), dtype=bool)
    half = np.zeros((10, 10), dtype=bool)
    half[:5] = True
    mask = [
        Shape(
            type=ShapeType.MASK,
            frame=0,
            label_id=CAR,
            points=np.zeros((0, 2)),
            mask=MaskRle.from_bitmap(b, 20, 30).tight(),
        )
        for b in (full, half)
    ]
    s = truth_scores(_job(mask[1]), _job(mask[0]))
    assert s.matched == 1 and s.mean_iou == pytest.approx(0.5)


def _skeleton(xy: np.ndarray) -> Shape:
    elements = tuple(
        Shape(type=ShapeType.POINTS, frame=0, label_id=kid, points=xy[i : i + 1])
        for i, (kid, _) in enumerate(KEYPOINTS)
    )
    return Shape(type=ShapeType.SKELETON, frame=0, label_id=SKELETON_ID, points=np.zeros((0, 2)), elements=elements)


def test_skeletons_use_oks_with_the_jobs_sigma() -> None:
    xy = np.array([[50, 10], [20, 45], [80, 45], [30, 95], [70, 95]], dtype=np.float64)
    truth = _job(_skeleton(xy))
    assert truth_scores(_job(_skeleton(xy)), truth).mean_iou == pytest.approx(1.0)
    moved = _job(_skeleton(xy + 10.0))
    meta = make_meta(1, (1280, 720))
    loose = truth_scores(moved, truth, params=params_for(ConsensusSettings(oks_sigma=0.2), meta))
    tight = truth_scores(moved, truth, params=params_for(ConsensusSettings(oks_sigma=0.05), meta))
    assert 1.0 > loose.mean_iou > 0.5 and tight.matched == 0
